//! Pending notifications of one certificate, grouped by identical content, and the cut of the
//! next request by the service's [`BatchRule`]. A request is cut only when the sender holds a
//! rate token for it, so while the bucket is empty queued notifications keep joining these
//! groups and, under a backlog, every request is as full as the vendor allows.

use crate::providers::{Batch, BatchRule};
use crate::push::PushJob;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

type GroupId = u64;

/// Hashes the maps keyed by our own counters (group and message ids, never from the network)
/// with one multiplication instead of SipHash: they are probed once per queued notification.
#[derive(Default, Clone, Copy)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        // Fibonacci hashing: consecutive ids spread over the whole table.
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type IdMap<V> = HashMap<u64, V, std::hash::BuildHasherDefault<IdHasher>>;

struct Group<C> {
    content: C,
    /// A deque: a request takes its jobs from the front, and a backlog of one content can hold
    /// a million (with a Vec each request moved the whole rest: quadratic in the backlog).
    jobs: VecDeque<PushJob>,
    /// Messages whose content is this group's (so each message's content is rendered once).
    messages: Vec<u64>,
}

/// Notifications waiting for a request, in arrival order of their content.
pub struct Pending<C> {
    groups: IdMap<Group<C>>,
    by_content: HashMap<C, GroupId>,
    by_message: IdMap<GroupId>,
    /// Groups in creation order; ids of groups already sent are skipped.
    order: VecDeque<GroupId>,
    next_id: GroupId,
    jobs: usize,
    /// Groups holding exactly one notification (the candidates of a mixed request).
    singles: usize,
    /// Groups holding at least a full identical-content request.
    full_groups: usize,
    /// When the oldest waiting notification arrived.
    oldest: Option<Instant>,
    rule: BatchRule,
}

/// Up to `limit` jobs from the front of `jobs`, at most one per token. Two messages of identical
/// content share a group, and a device sent both would be named twice in one request: the
/// vendor delivers one notification for it (Xiaomi's regId list is a set) while both would be
/// counted delivered. The later one waits, in order, for the next request.
///
/// The tokens are compared by their bytes in a table of the request's own (open addressing,
/// [`token_hash`]): a set of cloned `Arc<str>`s wrote each token's reference count, a cache
/// miss per notification here and another where the clone was dropped.
fn take_distinct_tokens(jobs: &mut VecDeque<PushJob>, limit: usize) -> Vec<PushJob> {
    let want = jobs.len().min(limit);
    let mut taken: Vec<PushJob> = Vec::with_capacity(want);
    let size = (2 * want).next_power_of_two().max(2);
    let mask = size - 1;
    // Index in `taken` + 1; 0 is empty.
    let mut table = vec![0u32; size];
    let mut later = VecDeque::new();
    while taken.len() < limit {
        let Some(job) = jobs.pop_front() else { break };
        let mut i = token_hash(&job.token) as usize & mask;
        let seen = loop {
            match table[i] {
                0 => break false,
                t => {
                    if taken[t as usize - 1].token == job.token {
                        break true;
                    }
                }
            }
            i = (i + 1) & mask;
        };
        if seen {
            later.push_back(job);
        } else {
            // At most `limit` ≤ 1000 entries, so the index fits.
            table[i] = taken.len() as u32 + 1;
            taken.push(job);
        }
    }
    while let Some(job) = later.pop_back() {
        jobs.push_front(job);
    }
    taken
}

/// A fast hash of a token's bytes for [`take_distinct_tokens`]'s table. Unkeyed: tokens chosen
/// to collide only slow one request's cut (at most 1000 tokens compared with each other).
fn token_hash(token: &str) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let bytes = token.as_bytes();
    let mut h = bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    for b in chunks.remainder() {
        h = (h.rotate_left(5) ^ u64::from(*b)).wrapping_mul(K);
    }
    h ^ (h >> 29)
}

impl<C: Clone + Eq + Hash> Pending<C> {
    pub fn new(rule: BatchRule) -> Pending<C> {
        Pending {
            groups: IdMap::default(),
            by_content: HashMap::new(),
            by_message: IdMap::default(),
            order: VecDeque::new(),
            next_id: 0,
            jobs: 0,
            singles: 0,
            full_groups: 0,
            oldest: None,
            rule,
        }
    }

    pub fn len(&self) -> usize {
        self.jobs
    }

    pub fn is_empty(&self) -> bool {
        self.jobs == 0
    }

    /// Adds a notification; `render` gives its content, called once per message. `following`:
    /// how many more of the same message the caller is about to add (room is made for them
    /// at once).
    pub fn add(
        &mut self,
        job: PushJob,
        now: Instant,
        following: usize,
        render: impl FnOnce() -> C,
    ) {
        let message = job.message.id;
        let gid = match self.by_message.get(&message) {
            Some(g) => *g,
            None => {
                let content = render();
                let gid = match self.by_content.get(&content) {
                    Some(g) => *g,
                    None => {
                        let gid = self.next_id;
                        self.next_id += 1;
                        self.by_content.insert(content.clone(), gid);
                        self.groups.insert(
                            gid,
                            Group {
                                content,
                                jobs: VecDeque::new(),
                                messages: Vec::new(),
                            },
                        );
                        self.order.push_back(gid);
                        gid
                    }
                };
                self.by_message.insert(message, gid);
                if let Some(g) = self.groups.get_mut(&gid) {
                    g.messages.push(message);
                }
                gid
            }
        };
        let Some(g) = self.groups.get_mut(&gid) else {
            return;
        };
        let before = g.jobs.len();
        if before == g.jobs.capacity() {
            g.jobs.reserve(following + 1);
        }
        g.jobs.push_back(job);
        self.jobs += 1;
        self.oldest.get_or_insert(now);
        self.count_change(before, before + 1);
    }

    fn count_change(&mut self, before: usize, after: usize) {
        if before == 1 {
            self.singles -= 1;
        }
        if after == 1 {
            self.singles += 1;
        }
        let full = self.rule.same_content;
        match (before >= full, after >= full) {
            (false, true) => self.full_groups += 1,
            (true, false) => self.full_groups -= 1,
            _ => {}
        }
    }

    /// When the next request should be cut: now when it would be full, else once the oldest
    /// notification has waited `linger`; `None` when nothing waits.
    pub fn due_at(&self, linger: Duration) -> Option<Instant> {
        let oldest = self.oldest?;
        if self.full_groups > 0 || self.singles >= self.rule.mixed_content {
            return Some(oldest);
        }
        Some(oldest + linger)
    }

    /// Cuts the next request: the oldest group of identical content with more than one
    /// notification (up to `same_content` of them), else up to `mixed_content` single
    /// notifications of distinct content, oldest first.
    pub fn cut(&mut self) -> Option<Batch<C>> {
        let rule = self.rule;
        let mut singles: Vec<GroupId> = Vec::new();
        let mut same: Option<GroupId> = None;
        for gid in self.order.iter() {
            let Some(g) = self.groups.get(gid) else {
                continue;
            };
            match g.jobs.len() {
                0 => {}
                1 if rule.mixed_content > 1 => {
                    if singles.len() < rule.mixed_content {
                        singles.push(*gid);
                    }
                }
                _ => {
                    same = Some(*gid);
                    break;
                }
            }
            if singles.len() >= rule.mixed_content {
                break;
            }
        }
        let batch = match (same, singles.len()) {
            // A group of identical content older than the singles goes first.
            (Some(gid), _) if singles.is_empty() => self.take_same(gid),
            (_, 0) => return None,
            (_, 1) => self.take_same(singles[0]),
            _ => self.take_singles(&singles),
        };
        self.forget_sent();
        // The oldest arrival stays while anything waits: what was due stays due, as a whole
        // backlog is, and a burst of arrivals does not restart the linger.
        if self.jobs == 0 {
            self.oldest = None;
        }
        Some(batch)
    }

    fn take_same(&mut self, gid: GroupId) -> Batch<C> {
        let limit = self.rule.same_content;
        let (before, content, jobs) = match self.groups.get_mut(&gid) {
            Some(g) => {
                let before = g.jobs.len();
                let jobs: Vec<PushJob> = if g.messages.len() == 1 {
                    // One message names each token once.
                    g.jobs.drain(..before.min(limit)).collect()
                } else {
                    take_distinct_tokens(&mut g.jobs, limit)
                };
                (before, g.content.clone(), jobs)
            }
            None => return self.empty(),
        };
        self.jobs -= jobs.len();
        self.count_change(before, before - jobs.len());
        if before == jobs.len() {
            self.remove(gid);
        }
        Batch {
            kind: self.rule.same_kind,
            parts: vec![(content, jobs)],
        }
    }

    fn take_singles(&mut self, gids: &[GroupId]) -> Batch<C> {
        let mut parts = Vec::with_capacity(gids.len());
        for gid in gids {
            if let Some(g) = self.groups.remove(gid) {
                self.by_content.remove(&g.content);
                for m in &g.messages {
                    self.by_message.remove(m);
                }
                self.jobs -= g.jobs.len();
                self.count_change(g.jobs.len(), 0);
                parts.push((g.content, Vec::from(g.jobs)));
            }
        }
        Batch {
            kind: self.rule.mixed_kind,
            parts,
        }
    }

    fn empty(&self) -> Batch<C> {
        Batch {
            kind: self.rule.same_kind,
            parts: Vec::new(),
        }
    }

    /// Forgets the ids of sent groups in the creation order (amortised: the front at once,
    /// the rest when they outnumber the live groups).
    fn forget_sent(&mut self) {
        while let Some(gid) = self.order.front() {
            if self.groups.contains_key(gid) {
                break;
            }
            self.order.pop_front();
        }
        if self.order.len() > 2 * self.groups.len() + 16 {
            let groups = &self.groups;
            self.order.retain(|gid| groups.contains_key(gid));
        }
    }

    fn remove(&mut self, gid: GroupId) {
        if let Some(g) = self.groups.remove(&gid) {
            self.by_content.remove(&g.content);
            for m in g.messages {
                self.by_message.remove(&m);
            }
        }
    }

    /// Everything pending, oldest content first (the certificate stopped sending).
    pub fn drain(&mut self) -> Vec<PushJob> {
        let mut out = Vec::with_capacity(self.jobs);
        for gid in std::mem::take(&mut self.order) {
            if let Some(g) = self.groups.remove(&gid) {
                out.extend(g.jobs);
            }
        }
        self.groups.clear();
        self.by_content.clear();
        self.by_message.clear();
        self.jobs = 0;
        self.singles = 0;
        self.full_groups = 0;
        self.oldest = None;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::Message;
    use std::sync::Arc;

    const XIAOMI_LIKE: BatchRule = BatchRule {
        same_content: 1000,
        mixed_content: 100,
        same_kind: "regid",
        mixed_kind: "multi_messages",
    };
    const ONE_BY_ONE: BatchRule = BatchRule {
        same_content: 1,
        mixed_content: 1,
        same_kind: "send",
        mixed_kind: "send",
    };

    fn message(id: u64) -> Arc<Message> {
        Arc::new(Message {
            id,
            from: "f".into(),
            text: format!("text {id}"),
            title: None,
            desc: None,
            ext: None,
            push: Err(crate::registry::SkipReason::PushDisabled),
            accepted_at: Instant::now(),
        })
    }

    fn job(m: &Arc<Message>, token: String) -> PushJob {
        PushJob {
            cert: 1,
            token: Arc::from(token.as_str()),
            user: token.as_str().into(),
            device: "d".into(),
            message: m.clone(),
            attempt: 0,
            journal: None,
        }
    }

    /// `n` messages of distinct content, one recipient each.
    fn distinct(p: &mut Pending<String>, n: u64, now: Instant) {
        for i in 0..n {
            let m = message(i);
            p.add(job(&m, format!("t{i}")), now, 0, || format!("content {i}"));
        }
    }

    fn sizes(p: &mut Pending<String>) -> Vec<(&'static str, usize)> {
        std::iter::from_fn(|| p.cut())
            .map(|b| (b.kind, b.len()))
            .collect()
    }

    #[test]
    fn distinct_content_fills_mixed_requests_of_the_vendors_size() {
        let now = Instant::now();
        let mut p = Pending::new(XIAOMI_LIKE);
        distinct(&mut p, 250, now);
        assert_eq!(p.due_at(Duration::from_secs(9)), Some(now), "full: due now");
        assert_eq!(
            sizes(&mut p),
            [
                ("multi_messages", 100),
                ("multi_messages", 100),
                ("multi_messages", 50)
            ]
        );
        assert!(p.is_empty());
        assert_eq!(p.due_at(Duration::ZERO), None);
    }

    #[test]
    fn identical_content_goes_in_one_request_up_to_the_limit() {
        let now = Instant::now();
        let mut p = Pending::new(XIAOMI_LIKE);
        let m = message(1);
        let mut renders = 0;
        for i in 0..2500 {
            p.add(job(&m, format!("t{i}")), now, 0, || {
                renders += 1;
                "same".to_string()
            });
        }
        assert_eq!(renders, 1, "content is rendered once per message");
        // A second message with the same content joins the same group.
        p.add(job(&message(2), "x".into()), now, 0, || "same".to_string());
        assert_eq!(
            sizes(&mut p),
            [("regid", 1000), ("regid", 1000), ("regid", 501)]
        );
    }

    #[test]
    fn a_device_sent_two_messages_of_identical_content_is_named_once_per_request() {
        let now = Instant::now();
        let mut p: Pending<String> = Pending::new(XIAOMI_LIKE);
        let (m1, m2) = (message(1), message(2));
        for m in [&m1, &m2] {
            for t in ["t1", "t2"] {
                p.add(job(m, t.to_string()), now, 0, || "same".to_string());
            }
        }
        let mut requests = Vec::new();
        while let Some(b) = p.cut() {
            let jobs: Vec<(u64, String)> = b.parts[0]
                .1
                .iter()
                .map(|j| (j.message.id, j.token.to_string()))
                .collect();
            requests.push(jobs);
        }
        let pair = |m: u64| vec![(m, "t1".to_string()), (m, "t2".to_string())];
        assert_eq!(requests, vec![pair(1), pair(2)]);
    }

    #[test]
    fn a_lone_notification_is_an_identical_content_request_of_one() {
        let now = Instant::now();
        let mut p = Pending::new(XIAOMI_LIKE);
        distinct(&mut p, 1, now);
        let linger = Duration::from_millis(5);
        assert_eq!(
            p.due_at(linger),
            Some(now + linger),
            "not full: waits the linger"
        );
        assert_eq!(sizes(&mut p), [("regid", 1)]);
    }

    #[test]
    fn older_content_goes_first_and_nothing_is_lost() {
        let now = Instant::now();
        let mut p = Pending::new(XIAOMI_LIKE);
        distinct(&mut p, 3, now);
        let m = message(99);
        for i in 0..5 {
            p.add(job(&m, format!("g{i}")), now, 0, || "group".to_string());
        }
        distinct(&mut p, 2, now); // ids 0 and 1 again: the same messages, same groups
        assert_eq!(p.len(), 10);
        // The same message again joins its group, so 0 and 1 now hold two each.
        assert_eq!(
            sizes(&mut p),
            [("regid", 2), ("regid", 2), ("regid", 1), ("regid", 5)]
        );
        assert!(p.is_empty());
    }

    #[test]
    fn one_token_per_request_vendors_get_one_notification_per_request() {
        let now = Instant::now();
        let mut p = Pending::new(ONE_BY_ONE);
        distinct(&mut p, 3, now);
        let m = message(7);
        p.add(job(&m, "a".into()), now, 0, || "same".to_string());
        p.add(job(&m, "b".into()), now, 0, || "same".to_string());
        assert_eq!(p.due_at(Duration::from_secs(1)), Some(now));
        assert_eq!(sizes(&mut p), [("send", 1); 5]);
    }

    #[test]
    fn joining_while_waiting_fills_the_next_request() {
        // The defect this order fixes: requests cut before a token was granted stayed small.
        let now = Instant::now();
        let mut p = Pending::new(XIAOMI_LIKE);
        distinct(&mut p, 5, now);
        assert_eq!(p.cut().map(|b| b.len()), Some(5));
        for i in 5..400 {
            let m = message(i);
            p.add(job(&m, format!("t{i}")), now, 0, || format!("content {i}"));
        }
        assert_eq!(p.cut().map(|b| b.len()), Some(100));
        assert_eq!(p.len(), 295);
        p.drain();
        assert!(p.is_empty() && p.cut().is_none());
    }
}
