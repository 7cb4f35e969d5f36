//! Shared test harness: a real gateway on 127.0.0.1:0 with its store in a temp dir, a Xiaomi
//! emulator on another loopback port, and (in `webhook`) a receiver for the gateway's callbacks.
//!
//! ```ignore
//! let h = Harness::start().await;                                   // the defaults
//! let h = Harness::start_with(|c| c.push.linger_ms = 300).await;    // one config tweak
//! let hooks = WebhookReceiver::start(Reply::Ok).await;
//! let h = Harness::builder()
//!     .config(|c| c.sessions.heartbeat_timeout_secs = 1)
//!     .emulator(EmulatorConfig { daily_quota: Some(1), ..EmulatorConfig::default() })
//!     .webhook(hooks.url("/im/callback"))
//!     .certificate(cert_body(1000))
//!     .start()
//!     .await;
//! let h = h.restart().await;                     // same data dir, same emulator, same config
//! ```
#![allow(dead_code)]

pub mod process;
pub mod webhook;

use pushgate::config::Config;
use pushgate::providers::xiaomi::emulator::{
    self, EmulatorApp, EmulatorConfig, EmulatorHandle, ReceivedNotification,
};
use pushgate::server::{start, RunningServer};
use pushgate::usersig::UserSigKey;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

pub const ADMIN: &str = "admin-token-for-tests";
pub const API: &str = "api-token-for-tests";
pub const PACKAGE: &str = "com.example.chat";
pub const SECRET: &str = "c2VjcmV0LWZvci10ZXN0cw==";
pub const SDKAPPID: u64 = 1_400_000_000;
/// The UserSig key, as long as the keys Tencent's console issues (64 hex digits).
pub const USERSIG_KEY: &str = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";

/// How long the harness waits for something that should happen (a push, a state).
pub const WAIT: Duration = Duration::from_secs(5);

/// Polls `check` every 10 ms until it gives a value; fails the test naming `what` after `within`.
pub async fn wait_for<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let t0 = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(t0.elapsed() < within, "timed out after {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The gateway's settings for tests: the tokens and UserSig key above, a 2 ms linger so a test
/// does not wait for batches, and a vendor timeout short enough for hang tests.
pub fn config(data_dir: &Path, xiaomi: &str) -> Config {
    let mut c = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data_dir.to_path_buf(),
        admin_token: Some(ADMIN.into()),
        api_token: Some(API.into()),
        sdkappid: SDKAPPID,
        secret_key: Some(USERSIG_KEY.into()),
        xiaomi_base_url: xiaomi.to_string(),
        ..Default::default()
    };
    c.push.linger_ms = 2;
    c.push.vendor_timeout_ms = 2_000;
    c
}

/// An emulator on 127.0.0.1:0 with `config`'s knobs and apps.
pub fn emulator_with(config: EmulatorConfig) -> EmulatorHandle {
    emulator::start(config, "127.0.0.1:0".parse().unwrap()).expect("emulator starts")
}

/// An emulator that knows the test app (`PACKAGE` with `SECRET`).
pub fn emulator() -> EmulatorHandle {
    let e = emulator_with(EmulatorConfig::default());
    e.add_app(EmulatorApp::new(PACKAGE, SECRET));
    e
}

/// An HTTP client for tests. The timeout turns a server that never answers into a failed test
/// instead of a hung run; it is longer than any wait a test does on purpose.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client")
}

/// Where `tool` is on the PATH, if it is installed.
// Where a test looks for a tool is not a gateway setting (.clippy.toml bans env reads for those).
#[allow(clippy::disallowed_methods)]
pub fn on_path(tool: &str) -> Option<std::path::PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// The token a test device reports for `user` (long enough to look like a Xiaomi regId).
pub fn regid(user: &str) -> String {
    format!("regid-{user}-0123456789abcdef")
}

/// A change to the gateway's config, as a test writes it.
type Tweak<'a> = Box<dyn FnOnce(&mut Config) + 'a>;

/// The options the suites vary; `Harness::builder()` starts one with the defaults.
pub struct HarnessBuilder<'a> {
    tweaks: Vec<Tweak<'a>>,
    emulator: EmulatorConfig,
    data_dir: Option<tempfile::TempDir>,
    certificate: Option<Value>,
}

impl<'a> HarnessBuilder<'a> {
    /// A change to the gateway's config (applied in order, after `config`'s defaults).
    pub fn config(mut self, tweak: impl FnOnce(&mut Config) + 'a) -> Self {
        self.tweaks.push(Box::new(tweak));
        self
    }

    /// The emulator's knobs and rules; the test app is added to its apps.
    pub fn emulator(mut self, emulator: EmulatorConfig) -> Self {
        self.emulator = emulator;
        self
    }

    /// Another app the emulator accepts.
    pub fn app(mut self, package: &str, secret: &str) -> Self {
        self.emulator.apps.push(EmulatorApp::new(package, secret));
        self
    }

    /// State.StateChange callbacks go to `url` (a `webhook::WebhookReceiver`).
    pub fn webhook(self, url: impl Into<String>) -> Self {
        let url = url.into();
        self.config(move |c| c.webhook_url = Some(url))
    }

    /// Starts on an existing data dir (one prepared by the test) instead of an empty one.
    pub fn data_dir(mut self, dir: tempfile::TempDir) -> Self {
        self.data_dir = Some(dir);
        self
    }

    /// Creates this certificate once the gateway is up; `Harness::cert` is its id.
    pub fn certificate(mut self, body: Value) -> Self {
        self.certificate = Some(body);
        self
    }

    pub async fn start(self) -> Harness {
        let HarnessBuilder {
            tweaks,
            mut emulator,
            data_dir,
            certificate,
        } = self;
        emulator.apps.push(EmulatorApp::new(PACKAGE, SECRET));
        let emu = emulator_with(emulator);
        let dir = data_dir.unwrap_or_else(|| tempfile::tempdir().expect("tempdir"));
        let mut c = config(dir.path(), &emu.base_url());
        for tweak in tweaks {
            tweak(&mut c);
        }
        let mut h = Harness::on(c, emu, dir);
        if let Some(body) = certificate {
            let (s, v) = h
                .admin(reqwest::Method::POST, "/v1/certificates", Some(body))
                .await;
            assert_eq!(s, 201, "{v}");
            h.cert = v["id"].as_u64();
        }
        h
    }
}

pub struct Harness {
    pub server: RunningServer,
    pub emu: EmulatorHandle,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
    /// What the gateway was started with (`restart` starts it again with the same).
    pub config: Config,
    /// The certificate `HarnessBuilder::certificate` created.
    cert: Option<u64>,
}

impl Harness {
    pub fn builder<'a>() -> HarnessBuilder<'a> {
        HarnessBuilder {
            tweaks: Vec::new(),
            emulator: EmulatorConfig::default(),
            data_dir: None,
            certificate: None,
        }
    }

    pub async fn start() -> Harness {
        Self::builder().start().await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Harness {
        Self::builder().config(tweak).start().await
    }

    fn on(config: Config, emu: EmulatorHandle, dir: tempfile::TempDir) -> Harness {
        let server = start(config.clone()).expect("gateway starts");
        Harness {
            server,
            emu,
            dir,
            http: http(),
            config,
            cert: None,
        }
    }

    /// Stops the gateway gracefully and starts it again on the same data dir, emulator and
    /// config, as an operator's restart would.
    pub async fn restart(self) -> Harness {
        let Harness {
            server,
            emu,
            dir,
            config,
            cert,
            ..
        } = self;
        server.stop().await;
        Harness {
            cert,
            ..Harness::on(config, emu, dir)
        }
    }

    /// The id of the certificate the builder created.
    pub fn cert(&self) -> u64 {
        self.cert
            .expect("no certificate: start with Harness::builder().certificate(..)")
    }

    /// The key that signs UserSig tickets for this gateway.
    pub fn usersig_key(&self) -> UserSigKey {
        UserSigKey::new(
            self.config.sdkappid,
            self.config.secret_key.as_deref().expect("a secret key"),
        )
    }

    pub fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    pub async fn req(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut r = self.http.request(method, self.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap();
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        (status, v)
    }

    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.req(method, path, Some(ADMIN), body).await
    }

    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.req(method, path, Some(API), body).await
    }

    /// `GET /v1/certificates/{id}`, which must answer 200.
    pub async fn cert_view(&self, id: u64) -> Value {
        let (s, v) = self
            .admin(
                reqwest::Method::GET,
                &format!("/v1/certificates/{id}"),
                None,
            )
            .await;
        assert_eq!(s, 200, "{v}");
        v
    }

    /// The certificate's view once `sent` plus every failure adds up to at least `n`
    /// (accounting follows the vendor's record by a moment).
    pub async fn settled(&self, cert: u64, n: u64, within: Duration) -> Value {
        wait_for(
            &format!("{n} notifications accounted for"),
            within,
            || async {
                let (_, v) = self
                    .admin(
                        reqwest::Method::GET,
                        &format!("/v1/certificates/{cert}"),
                        None,
                    )
                    .await;
                let failed: u64 = v["stats"]["failed"]
                    .as_object()?
                    .values()
                    .filter_map(Value::as_u64)
                    .sum();
                (v["stats"]["sent"].as_u64()? + failed >= n).then_some(v)
            },
        )
        .await
    }

    /// `GET /v1/users/{user}/diagnosis`, which must answer 200.
    pub async fn diagnosis(&self, user: &str) -> Value {
        let (s, v) = self
            .api(
                reqwest::Method::GET,
                &format!("/v1/users/{user}/diagnosis"),
                None,
            )
            .await;
        assert_eq!(s, 200, "{v}");
        v
    }

    /// The class of the first device's last notification, once diagnosis has one.
    pub async fn last_class(&self, user: &str, within: Duration) -> String {
        wait_for(
            &format!("a last notification for {user}"),
            within,
            || async {
                self.diagnosis(user).await["devices"][0]["last_notification"]["class"]
                    .as_str()
                    .map(str::to_owned)
            },
        )
        .await
    }

    /// Whether the user's first device holds a bound push token.
    pub async fn token_bound(&self, user: &str) -> bool {
        let (_, v) = self
            .api(reqwest::Method::GET, &format!("/v1/users/{user}"), None)
            .await;
        v["devices"][0]["token_bound"]
            .as_bool()
            .unwrap_or_else(|| panic!("no token_bound for {user}: {v}"))
    }

    /// `openim/sendmsg` on the /v4 surface as the TIM administrator: one text message with
    /// `OfflinePushInfo`, which must answer ErrorCode 0.
    pub async fn tim_sendmsg(&self, from: &str, to: &str, text: &str, opi: Value) -> Value {
        let sig = self.usersig_key().generate("administrator", 3600);
        let q = serde_urlencoded::to_string([
            ("sdkappid", self.config.sdkappid.to_string()),
            ("identifier", "administrator".to_string()),
            ("usersig", sig),
            ("random", "1".to_string()),
            ("contenttype", "json".to_string()),
        ])
        .unwrap();
        let body = json!({"From_Account": from, "To_Account": to, "MsgRandom": 7,
            "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": text}}],
            "OfflinePushInfo": opi});
        let v: Value = self
            .http
            .post(self.url(&format!("/v4/openim/sendmsg?{q}")))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["ErrorCode"], 0, "{v}");
        v
    }

    /// Creates a Xiaomi certificate the emulator knows; returns its id.
    pub async fn certificate(&self, qps: u32) -> u64 {
        let (s, v) = self
            .admin(
                reqwest::Method::POST,
                "/v1/certificates",
                Some(cert_body(qps)),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        v["id"].as_u64().unwrap()
    }

    pub async fn event(&self, user: &str, device: &str, action: &str) -> Value {
        let (s, v) = self
            .api(
                reqwest::Method::POST,
                "/v1/sessions/events",
                Some(json!({"events":[{"user":user,"platform":"Android","device":device,"action":action}]})),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        v["results"][0].clone()
    }

    /// Posts several session events at once; every one must be accepted.
    pub async fn events(&self, events: Value) -> Value {
        let (s, v) = self
            .api(
                reqwest::Method::POST,
                "/v1/sessions/events",
                Some(json!({ "events": events })),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        for r in v["results"].as_array().expect("results") {
            assert_eq!(r["ok"], true, "{r}");
        }
        v["results"].clone()
    }

    pub async fn token(&self, user: &str, device: &str, cert: u64, token: &str) -> (u16, Value) {
        self.api(
            reqwest::Method::PUT,
            "/v1/push-tokens",
            Some(json!({"user":user,"platform":"Android","device":device,"certificate_id":cert,"token":token})),
        )
        .await
    }

    /// A user whose app was killed: logged in, token reported, connection lost.
    pub async fn push_online(&self, user: &str, device: &str, cert: u64, token: &str) {
        assert_eq!(self.event(user, device, "login").await["ok"], true);
        let (s, v) = self.token(user, device, cert, token).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(
            self.event(user, device, "disconnect").await["state"],
            "PushOnline"
        );
    }

    /// `push_online` with the builder's certificate and the token `regid(user)`.
    pub async fn killed(&self, user: &str, device: &str) {
        self.push_online(user, device, self.cert(), &regid(user))
            .await;
    }

    pub async fn send(&self, body: Value) -> Value {
        let (s, v) = self
            .api(reqwest::Method::POST, "/v1/messages", Some(body))
            .await;
        assert_eq!(s, 200, "{v}");
        v
    }

    pub async fn metrics(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Waits (bounded) until the emulator has received at least `n` notifications.
    pub async fn wait_received(&self, n: usize, within: Duration) -> usize {
        let t0 = Instant::now();
        loop {
            let got = self.emu.received().len();
            if got >= n || t0.elapsed() > within {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The notifications the emulator received for `regid`, once there are at least `n` or
    /// `WAIT` has passed (the caller asserts the count).
    pub async fn wait_pushes(&self, regid: &str, n: usize) -> Vec<ReceivedNotification> {
        let deadline = Instant::now() + WAIT;
        loop {
            let got: Vec<ReceivedNotification> = self
                .emu
                .received()
                .into_iter()
                .filter(|r| r.regid == regid)
                .collect();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

pub fn cert_body(qps: u32) -> Value {
    json!({
        "vendor": "xiaomi",
        "package_name": PACKAGE,
        "app_id": "2882303761517",
        "app_secret": SECRET,
        "click_action": {"type": "open_app"},
        "channel_id": "101556",
        "qps": qps
    })
}

/// `cert_body(qps)` with `patch`'s fields set (a null removes the field).
pub fn cert_body_with(qps: u32, patch: Value) -> Value {
    let mut body = cert_body(qps);
    for (k, v) in patch.as_object().expect("a JSON object") {
        if v.is_null() {
            body.as_object_mut().unwrap().remove(k);
        } else {
            body[k] = v.clone();
        }
    }
    body
}

/// The value of a Prometheus sample with exactly these labels (0 when absent).
pub fn metric(text: &str, name: &str, labels: &str) -> f64 {
    let want = if labels.is_empty() {
        name.to_string()
    } else {
        format!("{name}{{{labels}}}")
    };
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            (k == want).then(|| v.parse().ok()).flatten()
        })
        .unwrap_or(0.0)
}
