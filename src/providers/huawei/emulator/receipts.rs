//! Message receipts the way Huawei posts them (spec §6, [H11]): a JSON body
//! `{"statuses":[{"biTag","appid","token","status","timestamp","requestId"}]}` of at most 100
//! statuses, POSTed to the callback address of a receipt configuration in AppGallery Connect,
//! with `X-HUAWEI-CALLBACK-ID` when the configuration has a user name and HMAC key.
//!
//! The configurations are the emulator's stand-in for AGC (`POST /_emulator/receipt_configs`):
//! a notification naming `android.receipt_id` uses that configuration of its app, one naming
//! none uses the app's default (a configuration without `receipt_id`); with neither, no receipt.
//! Which phone "receives" a notification is the emulator's to decide: every accepted token gets
//! status 0 (delivered), except tokens marked uninstalled (`POST /_emulator/uninstalled`), which
//! get 2 (app not installed), and tokens the marketing cap dropped, which get 102 (frequency
//! controlled). Knobs: `receipt_delay_ms`, `receipt_loss_ratio` (see `oauth_emulator::Knobs`).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::providers::huawei_receipt::{
    callback_value, CallbackAuth, CALLBACK_HEADER, MAX_STATUSES,
};
use crate::providers::oauth_emulator::state::{now_ms, random_id};
use crate::providers::receipt_poster::{Due, ReceiptPost, ReceiptQueue, ReceiptStats};

/// Status codes the emulator reports ([H11]).
pub const DELIVERED: i64 = 0;
pub const APP_NOT_INSTALLED: i64 = 2;
pub const FREQUENCY_CONTROLLED: i64 = 102;

/// Receipts due within this window share a POST per configuration.
const BATCH_WINDOW: Duration = Duration::from_millis(50);

/// A receipt configuration of AppGallery Connect. The HMAC key is a secret: `Debug` redacts it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptConfig {
    /// The app (the send URL's app id) it belongs to.
    pub app_id: String,
    /// The `android.receipt_id` that selects it; `None`: the app's default.
    #[serde(default)]
    pub receipt_id: Option<String>,
    /// Where Huawei posts the receipts.
    pub callback_url: String,
    /// With `hmac_key`, signs every POST with `X-HUAWEI-CALLBACK-ID`.
    #[serde(default)]
    pub user_name: Option<String>,
    #[serde(default)]
    pub hmac_key: Option<String>,
}

impl ReceiptConfig {
    fn auth(&self) -> Option<CallbackAuth> {
        Some(CallbackAuth {
            user_name: self.user_name.clone()?,
            key: self.hmac_key.clone()?,
        })
    }
}

impl std::fmt::Debug for ReceiptConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiptConfig")
            .field("app_id", &self.app_id)
            .field("receipt_id", &self.receipt_id)
            .field("callback_url", &self.callback_url)
            .field("user_name", &self.user_name)
            .field("hmac_key", &self.hmac_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// One status waiting for its time.
#[derive(Clone, Debug)]
pub(crate) struct PendingStatus {
    due_ms: u64,
    config: Arc<ReceiptConfig>,
    token: String,
    status: i64,
    request_id: String,
    bi_tag: Option<String>,
}

impl Due for PendingStatus {
    fn due_ms(&self) -> u64 {
        self.due_ms
    }
}

/// What one accepted send request reports later.
pub(crate) struct Accepted<'a> {
    pub app_id: &'a str,
    pub receipt_id: Option<&'a str>,
    pub request_id: &'a str,
    pub bi_tag: Option<&'a str>,
    /// Tokens the phone got.
    pub delivered: &'a [String],
    /// Tokens the marketing cap dropped.
    pub capped: &'a [String],
}

/// The emulator's receipt state: AGC's configurations, uninstalled apps, the queue.
pub(crate) struct Receipts {
    configs: Mutex<Vec<Arc<ReceiptConfig>>>,
    uninstalled: Mutex<HashSet<String>>,
    pub queue: Arc<ReceiptQueue<PendingStatus>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each critical section is a few infallible collection operations: still consistent after
    // a panic elsewhere.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Receipts {
    pub fn new(configs: Vec<ReceiptConfig>, max_pending: usize) -> Self {
        Receipts {
            configs: Mutex::new(configs.into_iter().map(Arc::new).collect()),
            uninstalled: Mutex::default(),
            queue: Arc::new(ReceiptQueue::new(max_pending)),
        }
    }

    /// Adds a configuration, replacing the app's one with the same `receipt_id`.
    pub fn add_config(&self, config: ReceiptConfig) {
        let mut configs = lock(&self.configs);
        configs.retain(|c| !(c.app_id == config.app_id && c.receipt_id == config.receipt_id));
        configs.push(Arc::new(config));
    }

    pub fn add_uninstalled(&self, tokens: Vec<String>) {
        lock(&self.uninstalled).extend(tokens);
    }

    fn config_for(&self, app_id: &str, receipt_id: Option<&str>) -> Option<Arc<ReceiptConfig>> {
        lock(&self.configs)
            .iter()
            .find(|c| c.app_id == app_id && c.receipt_id.as_deref() == receipt_id)
            .cloned()
    }

    /// Queues the statuses of an accepted request, if a configuration asks for them.
    pub fn accepted(&self, a: &Accepted<'_>, delay_ms: u64, loss_ratio: f64) {
        let Some(config) = self.config_for(a.app_id, a.receipt_id) else {
            return;
        };
        let due_ms = now_ms().saturating_add(delay_ms);
        let uninstalled = lock(&self.uninstalled).clone();
        let status = |token: &String, capped: bool| PendingStatus {
            due_ms,
            config: Arc::clone(&config),
            token: token.clone(),
            status: if capped {
                FREQUENCY_CONTROLLED
            } else if uninstalled.contains(token) {
                APP_NOT_INSTALLED
            } else {
                DELIVERED
            },
            request_id: a.request_id.to_owned(),
            bi_tag: a.bi_tag.map(str::to_owned),
        };
        let pending = a
            .delivered
            .iter()
            .map(|t| status(t, false))
            .chain(a.capped.iter().map(|t| status(t, true)))
            .collect();
        self.queue.queue(pending, loss_ratio);
    }
}

/// One POST: the statuses of one configuration, at most 100, signed when it has a key.
fn post(config: &ReceiptConfig, statuses: &[PendingStatus], now: u64) -> ReceiptPost {
    let body = json!({
        "statuses": statuses.iter().map(|s| json!({
            "biTag": s.bi_tag.as_deref().unwrap_or(""),
            "appid": config.app_id,
            "token": s.token,
            "status": s.status,
            "timestamp": s.due_ms,
            "requestId": s.request_id,
        })).collect::<Vec<_>>(),
    });
    let headers = config
        .auth()
        .map(|auth| {
            let (timestamp, nonce) = (now.to_string(), random_id(16));
            let value = callback_value(&auth, &timestamp, &nonce);
            vec![(
                CALLBACK_HEADER,
                format!("timestamp={timestamp};nonce={nonce};value={value}"),
            )]
        })
        .unwrap_or_default();
    ReceiptPost {
        url: config.callback_url.clone(),
        content_type: "application/json;charset=UTF-8",
        headers,
        body: body.to_string(),
        receipts: statuses.len() as u64,
    }
}

/// Due statuses grouped by configuration, 100 to a POST.
fn posts(due: Vec<PendingStatus>) -> Vec<ReceiptPost> {
    let now = now_ms();
    // One callback: same address, same signature.
    type Callback = (String, Option<String>, Option<String>);
    let mut groups: BTreeMap<Callback, (Arc<ReceiptConfig>, Vec<PendingStatus>)> = BTreeMap::new();
    for s in due {
        let c = &s.config;
        let key = (
            c.callback_url.clone(),
            c.user_name.clone(),
            c.hmac_key.clone(),
        );
        groups
            .entry(key)
            .or_insert_with(|| (Arc::clone(c), Vec::new()))
            .1
            .push(s);
    }
    groups
        .into_values()
        .flat_map(|(config, statuses)| {
            statuses
                .chunks(MAX_STATUSES)
                .map(|chunk| post(&config, chunk, now))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Posts due statuses until the emulator stops.
pub(crate) async fn run_poster(receipts: Arc<Receipts>) {
    let queue = Arc::clone(&receipts.queue);
    crate::providers::receipt_poster::run_poster("huawei", queue, BATCH_WINDOW, posts).await;
}

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/_emulator/receipt_configs").route(web::post().to(add_configs)))
        .service(web::resource("/_emulator/uninstalled").route(web::post().to(add_uninstalled)))
        .service(web::resource("/_emulator/receipts").route(web::get().to(stats)));
}

fn bad_request(message: impl Into<String>) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({ "error": message.into() }))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

/// `POST /_emulator/receipt_configs` with `{"app_id","receipt_id","callback_url","user_name",
/// "hmac_key"}` or an array of them.
async fn add_configs(vendor: web::Data<super::Vendor>, body: web::Bytes) -> HttpResponse {
    let configs = match serde_json::from_slice::<OneOrMany<ReceiptConfig>>(&body) {
        Ok(OneOrMany::One(c)) => vec![c],
        Ok(OneOrMany::Many(c)) => c,
        Err(_) => {
            return bad_request(
                "expected {\"app_id\":…,\"callback_url\":…,\"receipt_id\":…,\"user_name\":…,\
                 \"hmac_key\":…} or an array",
            )
        }
    };
    if configs
        .iter()
        .any(|c| c.app_id.is_empty() || !c.callback_url.starts_with("http"))
    {
        return bad_request("app_id must not be empty and callback_url must be an http(s) URL");
    }
    let n = configs.len();
    for c in configs {
        vendor.receipts.add_config(c);
    }
    HttpResponse::Ok().json(json!({ "added": n }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Uninstalled {
    tokens: Vec<String>,
}

/// `POST /_emulator/uninstalled` with `{"tokens":[…]}`: accepted, then status 2.
async fn add_uninstalled(vendor: web::Data<super::Vendor>, body: web::Bytes) -> HttpResponse {
    match serde_json::from_slice::<Uninstalled>(&body) {
        Ok(u) => {
            let n = u.tokens.len();
            vendor.receipts.add_uninstalled(u.tokens);
            HttpResponse::Ok().json(json!({ "uninstalled": n }))
        }
        Err(e) => bad_request(format!("expected {{\"tokens\":[…]}}: {e}")),
    }
}

/// `GET /_emulator/receipts`: statuses posted, lost and failed since start.
async fn stats(vendor: web::Data<super::Vendor>) -> HttpResponse {
    let s: ReceiptStats = vendor.receipts.queue.stats();
    HttpResponse::Ok().json(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::receipt::ReceiptKind;
    use crate::providers::huawei_receipt::{parse_statuses, verify_callback_id};

    fn config(user: Option<&str>) -> ReceiptConfig {
        ReceiptConfig {
            app_id: "10086".into(),
            receipt_id: Some("RCP1".into()),
            callback_url: "http://127.0.0.1:1/cb".into(),
            user_name: user.map(str::to_owned),
            hmac_key: user.map(|_| "k3y".to_owned()),
        }
    }

    fn receipts_for(r: &Receipts, delivered: &[&str], capped: &[&str]) -> Vec<PendingStatus> {
        let own = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        r.accepted(
            &Accepted {
                app_id: "10086",
                receipt_id: Some("RCP1"),
                request_id: "rid-1",
                bi_tag: None,
                delivered: &own(delivered),
                capped: &own(capped),
            },
            0,
            0.0,
        );
        r.queue.take_due(u64::MAX)
    }

    #[test]
    fn posts_are_what_our_own_parser_and_verifier_accept() {
        let r = Receipts::new(vec![config(Some("receipt-user"))], 1000);
        r.add_uninstalled(vec!["gone".into()]);
        let due = receipts_for(&r, &["t1", "gone"], &["capped"]);
        let posts = posts(due);
        assert_eq!(posts.len(), 1);
        let p = &posts[0];
        let header = p.headers.iter().find(|(k, _)| *k == CALLBACK_HEADER);
        let auth = config(Some("receipt-user")).auth().expect("auth");
        assert_eq!(
            verify_callback_id(header.map(|(_, v)| v.as_str()), &auth, now_ms()),
            Ok(())
        );
        let got: Vec<(String, ReceiptKind)> = parse_statuses(p.body.as_bytes(), "10086", 0)
            .expect("Huawei's shape")
            .into_iter()
            .map(|r| (r.token, r.kind))
            .collect();
        assert_eq!(
            got,
            [
                ("t1".to_owned(), ReceiptKind::Delivered),
                ("gone".to_owned(), ReceiptKind::InvalidToken),
                ("capped".to_owned(), ReceiptKind::Other),
            ]
        );
    }

    #[test]
    fn a_configuration_without_a_key_posts_unsigned_and_100_statuses_at_most() {
        let r = Receipts::new(vec![config(None)], 1000);
        let tokens: Vec<String> = (0..250).map(|i| format!("t{i}")).collect();
        let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
        let posts = posts(receipts_for(&r, &refs, &[]));
        let sizes: Vec<u64> = posts.iter().map(|p| p.receipts).collect();
        assert_eq!(sizes, [100, 100, 50]);
        assert!(posts.iter().all(|p| p.headers.is_empty()));
    }

    #[test]
    fn no_configuration_for_the_receipt_id_means_no_receipt() {
        let r = Receipts::new(vec![config(None)], 1000);
        r.accepted(
            &Accepted {
                app_id: "10086",
                receipt_id: None,
                request_id: "rid",
                bi_tag: None,
                delivered: &["t".to_owned()],
                capped: &[],
            },
            0,
            0.0,
        );
        assert!(r.queue.take_due(u64::MAX).is_empty());
    }

    #[test]
    fn debug_redacts_the_key() {
        assert!(!format!("{:?}", config(Some("u"))).contains("k3y"));
    }
}
