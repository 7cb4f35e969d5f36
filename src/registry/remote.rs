//! The seam between the gateway and a registry that lives outside this process (cluster mode,
//! shared/cluster.md). The embedded registry is not behind it: the gateway keeps calling its
//! DashMap directly, so the embedded hot path is unchanged. A gateway built without a remote
//! directory (the default) never takes one of these calls; with one (`cluster.mode = "redis"`,
//! chosen at start), the operations below go through it instead of the local registry.

use crate::gateway::{DeviceView, EventResult, Gateway, GatewayError, SendRequest, SessionEvent};
use crate::push::{Message, RecipientResult};
use crate::registry::{ConnId, Device};
use crate::store::CommitTicket;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A device's record and the node incarnation holding its connection, if any.
pub type LocatedDevice = (Device, Option<String>);

/// The operations that change or read a user's devices, and the delivery bookkeeping of the
/// connections held here, when the registry is shared by several nodes.
pub trait RemoteDirectory: Send + Sync {
    /// A session event; `conn` is this node's connection it comes from (a WebSocket session).
    /// Answers once the change is acknowledged (written and replicated).
    fn session_event<'a>(
        &'a self,
        gw: &'a Gateway,
        ev: &'a SessionEvent,
        conn: Option<ConnId>,
    ) -> BoxFut<'a, Result<EventResult, GatewayError>>;

    /// `session_event` from a WebSocket session's synchronous path: runs in the background;
    /// the ticket resolves when the change is acknowledged.
    fn session_event_detached(&self, ev: SessionEvent, conn: ConnId) -> CommitTicket;

    /// `report_token` from a WebSocket session's synchronous path.
    fn report_token_detached(
        &self,
        user: String,
        device: String,
        cert: u64,
        token: String,
    ) -> CommitTicket;

    fn report_token<'a>(
        &'a self,
        gw: &'a Gateway,
        user: &'a str,
        device: &'a str,
        cert: u64,
        token: &'a str,
    ) -> BoxFut<'a, Result<DeviceView, GatewayError>>;

    fn clear_token<'a>(
        &'a self,
        gw: &'a Gateway,
        user: &'a str,
        device: &'a str,
    ) -> BoxFut<'a, Result<DeviceView, GatewayError>>;

    /// A vendor's delivery receipt says `token` is no longer valid: unbinds it if it is bound
    /// under `cert` (counted in `pushgate_tokens_unbound_total`), the same way as the owner's
    /// unbinding of a token a vendor's answer named invalid. The (user, device) it was bound
    /// to; answers once the change is acknowledged.
    fn unbind_invalid_token<'a>(
        &'a self,
        gw: &'a Gateway,
        cert: crate::domain::CertificateId,
        token: &'a str,
    ) -> BoxFut<'a, Result<Option<(String, String)>, GatewayError>>;

    /// The (user, device) `token` is bound to under `cert` now (a receipt's device).
    fn receipt_owner<'a>(
        &'a self,
        cert: crate::domain::CertificateId,
        token: &'a str,
    ) -> BoxFut<'a, Result<Option<(String, String)>, GatewayError>>;

    /// Notes what receipts said about some of `user`'s devices (device, receipt) where every
    /// node's diagnosis reads it. Noting the same receipts again changes nothing.
    fn note_receipts<'a>(
        &'a self,
        user: &'a str,
        receipts: &'a [(&'a str, &'a crate::domain::receipt::Receipt)],
    ) -> BoxFut<'a, Result<(), GatewayError>>;

    /// Counts the delivered and clicked receipts in `cert`'s figures of every node, each once
    /// within a bounded window however often the vendor posts it; per receipt, whether it was
    /// counted now.
    fn count_receipts<'a>(
        &'a self,
        cert: crate::domain::CertificateId,
        receipts: &'a [crate::domain::receipt::Receipt],
    ) -> BoxFut<'a, Result<Vec<bool>, GatewayError>>;

    /// What the receipts said last about each of `user`'s devices, whichever node they reached
    /// (diagnosis). Best effort: empty when it cannot be read.
    fn device_receipts<'a>(
        &'a self,
        _user: &'a str,
    ) -> BoxFut<'a, std::collections::HashMap<String, crate::push::outcomes::ReceiptsSeen>> {
        Box::pin(async { std::collections::HashMap::new() })
    }

    /// Kicks every logged-in device of `user`; how many.
    fn kick_user<'a>(
        &'a self,
        gw: &'a Gateway,
        user: &'a str,
    ) -> BoxFut<'a, Result<usize, GatewayError>>;

    fn user_devices<'a>(
        &'a self,
        gw: &'a Gateway,
        user: &'a str,
    ) -> BoxFut<'a, Result<Vec<DeviceView>, GatewayError>>;

    /// The user's devices as the registry's records, each with the node incarnation holding its
    /// connection (diagnosis: which node a device is connected to).
    fn user_records<'a>(
        &'a self,
        user: &'a str,
    ) -> BoxFut<'a, Result<Vec<LocatedDevice>, GatewayError>>;

    /// The TIM duplicate window shared by the nodes: each key is recorded with `value` for
    /// `window_ms` unless it is already there; per key, `None` when it was new, or the value it
    /// was first recorded with.
    fn dedupe_admit<'a>(
        &'a self,
        keys: &'a [u64],
        value: &'a str,
        window_ms: u64,
    ) -> BoxFut<'a, Result<Vec<Option<String>>, GatewayError>>;

    /// Forgets keys `dedupe_admit` recorded for a send that then failed, so a retry is not
    /// taken for a duplicate. Best effort.
    fn dedupe_forget<'a>(&'a self, keys: &'a [u64]) -> BoxFut<'a, ()>;

    /// A message id unique across the nodes.
    fn next_message_id(&self) -> BoxFut<'_, Result<u64, GatewayError>>;

    /// Routes a checked, built message to every recipient of `req`.
    fn send<'a>(
        &'a self,
        gw: &'a Gateway,
        req: &'a SendRequest,
        message: Arc<Message>,
    ) -> BoxFut<'a, Result<Vec<RecipientResult>, GatewayError>>;

    /// A certificate id unique across the nodes.
    fn next_certificate_id(&self) -> BoxFut<'_, Result<u64, GatewayError>>;

    /// Writes a created or edited certificate where every node reads it (acknowledged).
    fn put_certificate<'a>(
        &'a self,
        cert: &'a crate::domain::Certificate,
    ) -> BoxFut<'a, Result<(), GatewayError>>;

    /// Deletes a certificate for every node (acknowledged).
    fn delete_certificate(&self, id: u64) -> BoxFut<'_, Result<(), GatewayError>>;

    /// Graceful stop (§7.9): this node's devices turn PushOnline, its unfinished inbox entries
    /// go to push, and it leaves the cluster. The caller has stopped accepting.
    fn leave<'a>(&'a self, gw: &'a Gateway) -> BoxFut<'a, ()>;

    /// Whether this node may serve (its cluster lease is held); `/readyz` reflects it.
    fn is_ready(&self) -> bool;

    /// The client of `conn` acked message `id`.
    fn acked(&self, conn: ConnId, id: u64);

    /// A message delivered on `conn` and not acked: the connection is gone. The directory
    /// re-routes it (another connection of the device, or push) and then marks it done.
    fn fall_back(
        &self,
        gw: Arc<Gateway>,
        conn: ConnId,
        user: &str,
        device: &str,
        msg: Arc<Message>,
        already_pushed: bool,
    );

    /// The last notification of each of `user`'s devices as its certificate's owner recorded
    /// it, whichever node that was (diagnosis). Best effort: empty when it cannot be read.
    fn last_notifications<'a>(
        &'a self,
        _user: &'a str,
    ) -> BoxFut<'a, std::collections::HashMap<String, crate::push::outcomes::LastNotification>>
    {
        Box::pin(async { std::collections::HashMap::new() })
    }

    /// Brings the certificates' figures up to every node's together (the console's view):
    /// this node's new ones added, the totals read. Best effort: on failure the last totals
    /// read stay shown.
    fn refresh_certificate_figures<'a>(
        &'a self,
        _entries: &'a [Arc<crate::certs::CertEntry>],
    ) -> BoxFut<'a, ()> {
        Box::pin(async {})
    }
}
