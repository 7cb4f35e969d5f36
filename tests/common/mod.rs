//! Shared test harness: a real gateway on 127.0.0.1:0 with its store in a temp dir, and a
//! Xiaomi emulator on another loopback port.
#![allow(dead_code)]

use pushgate::config::Config;
use pushgate::providers::xiaomi::emulator::{self, EmulatorApp, EmulatorConfig, EmulatorHandle};
use pushgate::server::{start, RunningServer};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

pub const ADMIN: &str = "admin-token-for-tests";
pub const API: &str = "api-token-for-tests";
pub const PACKAGE: &str = "com.example.chat";
pub const SECRET: &str = "c2VjcmV0LWZvci10ZXN0cw==";
pub const SDKAPPID: u64 = 1_400_000_000;
pub const USERSIG_KEY: &str = "test-usersig-key";

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

pub fn emulator() -> EmulatorHandle {
    let e = emulator::start(EmulatorConfig::default(), "127.0.0.1:0".parse().unwrap()).unwrap();
    e.add_app(EmulatorApp::new(PACKAGE, SECRET));
    e
}

pub struct Harness {
    pub server: RunningServer,
    pub emu: EmulatorHandle,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

impl Harness {
    pub async fn start() -> Harness {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Harness {
        let emu = emulator();
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path(), &emu.base_url());
        tweak(&mut c);
        let server = start(c).unwrap();
        Harness {
            server,
            emu,
            dir,
            http: reqwest::Client::new(),
        }
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
