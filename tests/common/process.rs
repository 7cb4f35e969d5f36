//! The `pushgate` binary as a child process: started on a data dir with a config file, driven
//! over HTTP, stopped with SIGTERM or killed.

use super::{ADMIN, API, SDKAPPID, USERSIG_KEY};
use futures_util::StreamExt;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// A gateway process.
pub struct Process {
    pub child: Child,
    pub addr: String,
}

/// Starts the binary on `dir` with `toml` as its config file; returns once it listens.
pub fn spawn(dir: &std::path::Path, xiaomi: &str, toml: &str) -> Process {
    let config = dir.join("pushgate.toml");
    std::fs::write(&config, toml).expect("config file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_pushgate"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("PUSHGATE_LISTEN", "127.0.0.1:0")
        .env("PUSHGATE_DATA_DIR", dir.join("data"))
        .env("PUSHGATE_ADMIN_TOKEN", ADMIN)
        .env("PUSHGATE_API_TOKEN", API)
        .env("PUSHGATE_SDKAPPID", SDKAPPID.to_string())
        .env("PUSHGATE_SECRET_KEY", USERSIG_KEY)
        .env("PUSHGATE_XIAOMI_BASE_URL", xiaomi)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("pushgate starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("pushgate printed its address")
            .expect("stdout line");
        if let Some(a) = line.strip_prefix("pushgate listening on ") {
            break a.trim().to_string();
        }
    };
    // Keep draining stdout so the process never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Process { child, addr }
}

impl Process {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Value,
    ) -> Value {
        let r = super::http()
            .request(method, self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = r.status();
        let v: Value = r.json().await.expect("json");
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }

    /// Adds the tests' Xiaomi certificate (`cert_body`) at `qps`; its id.
    pub async fn add_certificate(&self, qps: u32) -> u64 {
        self.call(
            reqwest::Method::POST,
            "/v1/certificates",
            ADMIN,
            super::cert_body(qps),
        )
        .await["id"]
            .as_u64()
            .expect("certificate id")
    }

    /// SIGTERM, then waits (bounded) for the exit; returns how long it took.
    pub async fn terminate(&mut self) -> Duration {
        let t0 = Instant::now();
        let pid = self.child.id().to_string();
        let ok = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(ok.success());
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "SIGTERM exits 0, got {status}");
                return t0.elapsed();
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "no exit after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn next(ws: &mut Ws) -> Option<Result<WsMessage, tokio_tungstenite::tungstenite::Error>> {
    tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("a frame within 5 s")
}

impl Process {
    /// `call` that returns the status and body instead of asserting success; `None` when the
    /// request failed (the process is gone).
    pub async fn try_call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Option<(u16, Value)> {
        let mut r = super::http()
            .request(method, self.url(path))
            .bearer_auth(token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.ok()?;
        let status = r.status().as_u16();
        let v: Value = r.json().await.ok()?;
        Some((status, v))
    }

    /// SIGKILL: no shutdown at all.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
