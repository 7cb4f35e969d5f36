//! Every Redis key of cluster mode, in one place (shared/cluster.md §3). `{…}` is the hash tag:
//! keys with the same tag share a slot, and every script touches one tag only.

use sha2::{Digest, Sha256};

/// The user's hash: `v` (CAS version) and `d:<device>` records.
pub fn user(user: &str) -> String {
    format!("pg:{{u:{user}}}")
}

/// Field of one device in the user's hash.
pub fn device_field(device: &str) -> String {
    format!("d:{device}")
}

/// The user's last notification per device (diagnosis), 7-day TTL.
pub fn user_last(user: &str) -> String {
    format!("pg:{{u:{user}}}:last")
}

/// What the vendors' receipts said last about each of the user's devices (diagnosis), at most
/// four fields per device: `m:<device>` the vendor's message id they are about, `d:<device>` /
/// `c:<device>` when it reached the phone / was tapped, `i:<device>` when the vendor named the
/// token invalid. 7-day TTL, like `:last`.
pub fn user_receipts(user: &str) -> String {
    format!("pg:{{u:{user}}}:rcpt")
}

/// The user's APNs badge count per iOS device (same tag as the user's hash).
pub fn user_badge(user: &str) -> String {
    format!("pg:{{u:{user}}}:badge")
}

/// The token's ownership entry: `o` = `user\0device`, `c` = certificate, `k` = the token.
/// The tag is the first 16 hex characters of SHA-256(token): tokens spread over all slots and
/// never appear in a key.
pub fn token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut h = String::with_capacity(16);
    for b in &digest[..8] {
        h.push_str(&format!("{b:02x}"));
    }
    format!("pg:t:{{{h}}}")
}

/// Pattern matching every token entry (for the invariant check's SCAN).
pub const TOKEN_PATTERN: &str = "pg:t:*";
/// Pattern matching every user hash (not the `:last` hashes).
pub const USER_PATTERN: &str = "pg:{u:*}";

/// Registered node incarnations, scored by registration time.
pub const NODES: &str = "pg:nodes";
/// Incarnation counter.
pub const NODE_SEQ: &str = "pg:node:seq";
/// Message id blocks.
pub const MSG_ID: &str = "pg:msgid";

pub fn node_alive(node: &str) -> String {
    format!("pg:{{n:{node}}}:alive")
}

/// `user\0device` → ConnId of every WebSocket on the node (a superset of its Online devices).
pub fn node_conns(node: &str) -> String {
    format!("pg:{{n:{node}}}:conns")
}

/// The node's inbox stream.
pub fn node_inbox(node: &str) -> String {
    format!("pg:{{n:{node}}}:in")
}

/// The inbox bound's counter (`jobs`).
pub fn node_meta(node: &str) -> String {
    format!("pg:{{n:{node}}}:meta")
}

/// The reaper's claim on a dead node.
pub fn node_reap(node: &str) -> String {
    format!("pg:{{n:{node}}}:reap")
}

/// The certificate's rate state for the global limiter option (§8, Appendix B).
pub fn cert_gcra(cert: u64) -> String {
    format!("pg:{{c:{cert}}}:gcra")
}

/// Every certificate: id → certificate JSON, secrets included (Redis must be protected by a
/// password/ACL, and by TLS off loopback: shared/cluster.md §3).
pub const CERTS: &str = "pg:certs";
/// The last certificate id handed out (ids start at 1001).
pub const CERTS_NEXT: &str = "pg:certs:next";
/// Certificate changes (`id`, `op` = put|delete|health) that every node tails.
pub const CERTS_LOG: &str = "pg:certs:log";

/// The certificate's durable queue of notifications (consumer group `senders`).
pub fn cert_queue(cert: u64) -> String {
    format!("pg:{{c:{cert}}}:q")
}

/// A certificate's queue bound's counter (`jobs`, notifications queued), its health as its
/// owner last saw it (`broken`, `broken_reason`, `paused_until`), the version of it last written
/// (`cert_fp`), the owner's 10027 back-off (`factor`), its figures of every node together
/// (`sent`, `rate_limited`, `failed:<class>`, `receipts_delivered`, `receipts_clicked`) and each
/// adding process's last addition number (`add:<node>`).
pub fn cert_meta(cert: u64) -> String {
    format!("pg:{{c:{cert}}}:meta")
}

/// The certificate's receipts counted lately (zset: receipt id → server time in ms), so that a
/// vendor posting a receipt again (after a 503) is not counted twice: the last hour's, at most
/// `RECEIPTS_REMEMBERED` of them (`cluster::receipts`).
pub fn cert_receipts(cert: u64) -> String {
    format!("pg:{{c:{cert}}}:rcpt")
}

/// The certificate's owner lease: the incarnation consuming its queue.
pub fn cert_owner(cert: u64) -> String {
    format!("pg:{{c:{cert}}}:owner")
}

/// Who owns a token: `user\0device`.
pub fn owner_value(user: &str, device: &str) -> String {
    format!("{user}\0{device}")
}

/// One key of the TIM duplicate window (`SET … NX PX`): its own slot, nothing else shares it.
pub fn dedupe(key: u64) -> String {
    format!("pg:dd:{{{key:016x}}}")
}

/// Splits an owner value or a conns field back into (user, device).
pub fn split_owner(v: &str) -> Option<(&str, &str)> {
    v.split_once('\0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_one_user_or_node_share_a_hash_tag() {
        assert_eq!(user("alice"), "pg:{u:alice}");
        assert_eq!(user_last("alice"), "pg:{u:alice}:last");
        assert_eq!(user_badge("alice"), "pg:{u:alice}:badge");
        assert_eq!(user_receipts("alice"), "pg:{u:alice}:rcpt");
        assert_eq!(node_inbox("gw-2#7"), "pg:{n:gw-2#7}:in");
        assert_eq!(node_meta("gw-2#7"), "pg:{n:gw-2#7}:meta");
        let t = token("regid-123");
        assert!(
            t.starts_with("pg:t:{") && t.ends_with('}') && t.len() == 6 + 16 + 1,
            "{t}"
        );
        assert_eq!(t, token("regid-123"));
        assert_ne!(t, token("regid-124"));
        assert_eq!(split_owner(&owner_value("a", "d1")), Some(("a", "d1")));
        assert_eq!(cert_queue(1001), "pg:{c:1001}:q");
        assert_eq!(cert_meta(1001), "pg:{c:1001}:meta");
        assert_eq!(cert_owner(1001), "pg:{c:1001}:owner");
        assert_eq!(cert_receipts(1001), "pg:{c:1001}:rcpt");
        assert_eq!(dedupe(0xab), "pg:dd:{00000000000000ab}");
    }
}
