//! A gateway node as a `pushgate serve` process in redis mode (so kill -9 is real), for the
//! cluster test files that came after tests/cluster_nodes.rs (which has its own copy).

#![allow(dead_code)]

use crate::common::{cert_body, http, ADMIN, API, SDKAPPID, USERSIG_KEY};
use crate::redis_cluster::RedisCluster;
use pushgate::usersig::UserSigKey;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The TIM administrator the nodes accept (the config's default `tim_admins`).
pub const TIM_ADMIN: &str = "administrator";

pub struct Node {
    pub child: Child,
    pub addr: String,
    pub name: String,
    pub data: PathBuf,
}

impl Node {
    /// Starts node `name` over the cluster at `urls`; `extra` is appended to the config file.
    pub fn start(dir: &Path, name: &str, xiaomi: &str, urls: &[String], extra: &str) -> Node {
        let data = dir.join(name);
        std::fs::create_dir_all(&data).expect("data dir");
        let conf = data.join("pushgate.toml");
        std::fs::write(
            &conf,
            format!(
                "[http]\nshutdown_timeout_secs = 2\n\n\
                 [push]\nlinger_ms = 2\nvendor_timeout_ms = 2000\n\n[cluster]\n\
                 # A shared 2-core machine: a replica's ack can take longer than 50 ms.\n\
                 wait_timeout_ms = 2000\nnode_lease_ms = 6000\nnode_renew_ms = 1000\n\
                 cert_lease_ms = 6000\n{extra}\n"
            ),
        )
        .expect("config file");
        let log = std::fs::File::create(data.join("stderr.log")).expect("log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_pushgate"))
            .arg("serve")
            .arg("--config")
            .arg(&conf)
            .env_clear()
            .env("PUSHGATE_LISTEN", "127.0.0.1:0")
            .env("PUSHGATE_DATA_DIR", &data)
            .env("PUSHGATE_ADMIN_TOKEN", ADMIN)
            .env("PUSHGATE_API_TOKEN", API)
            .env("PUSHGATE_SDKAPPID", SDKAPPID.to_string())
            .env("PUSHGATE_SECRET_KEY", USERSIG_KEY)
            .env("PUSHGATE_XIAOMI_BASE_URL", xiaomi)
            .env("PUSHGATE_CLUSTER_MODE", "redis")
            .env("PUSHGATE_REDIS_URLS", urls.join(","))
            .env("PUSHGATE_NODE_NAME", name)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn pushgate");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(a) = line.strip_prefix("pushgate listening on ") {
                    let _ = tx.send(a.trim().to_string());
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                let log = std::fs::read_to_string(data.join("stderr.log")).unwrap_or_default();
                panic!("{name} did not start:\n{log}");
            }
        };
        Node {
            child,
            addr,
            name: name.to_string(),
            data,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A WebSocket login of (user, device) on this node.
    pub async fn connect(&self, user: &str, device: &str) -> Ws {
        let sig = UserSigKey::new(SDKAPPID, USERSIG_KEY).generate(user, 3600);
        let url = format!(
            "ws://{}/v1/ws?sdkappid={SDKAPPID}&identifier={user}&usersig={sig}&platform=Android&device={device}",
            self.addr
        );
        let (ws, res) = tokio_tungstenite::connect_async(url)
            .await
            .unwrap_or_else(|e| panic!("websocket to {}: {e}", self.name));
        assert_eq!(res.status(), 101);
        ws
    }

    /// A /v1 call with the right token; (status, body).
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut r = http().request(method, self.url(path)).bearer_auth(
            if path.starts_with("/v1/certificates") {
                ADMIN
            } else {
                API
            },
        );
        if let Some(b) = body {
            r = r.json(&b);
        }
        let res = r.send().await.expect("request");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// A /v4 command as the TIM administrator; the envelope (HTTP 200 always).
    pub async fn v4(&self, command: &str, body: Value) -> Value {
        let sig = UserSigKey::new(SDKAPPID, USERSIG_KEY).generate(TIM_ADMIN, 86_400);
        let q = serde_urlencoded::to_string([
            ("sdkappid", SDKAPPID.to_string()),
            ("identifier", TIM_ADMIN.to_string()),
            ("usersig", sig),
            ("random", "4242".to_string()),
            ("contenttype", "json".to_string()),
        ])
        .expect("query");
        let res = http()
            .post(self.url(&format!("/v4/{command}?{q}")))
            .json(&body)
            .send()
            .await
            .expect("v4 request");
        assert_eq!(res.status(), 200, "/v4 answers 200 with an envelope");
        res.json().await.expect("v4 JSON")
    }

    /// The last lines the process logged (for failure messages).
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.data.join("stderr.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// kill -9 (Child::kill sends SIGKILL).
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Runs `f` on a 2-thread runtime, failing the test after `secs`.
pub fn bounded<F: std::future::Future<Output = ()>>(secs: u64, f: F) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(secs), f)
            .await
            .expect("the test ran out of time");
    });
}

/// Three nodes over one Redis Cluster and a certificate created on node 1, known to all three.
pub async fn three_nodes(
    rc: &RedisCluster,
    dir: &Path,
    xiaomi: &str,
    extra: &str,
) -> (Vec<Node>, u64) {
    let urls = rc.urls();
    let nodes: Vec<Node> = ["gw-1", "gw-2", "gw-3"]
        .iter()
        .map(|n| Node::start(dir, n, xiaomi, &urls, extra))
        .collect();
    let (s, v) = nodes[0]
        .api(
            reqwest::Method::POST,
            "/v1/certificates",
            Some(cert_body(1000)),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_u64().expect("id");
    for n in &nodes {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (s, _) = n
                .api(
                    reqwest::Method::GET,
                    &format!("/v1/certificates/{id}"),
                    None,
                )
                .await;
            if s == 200 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} never saw certificate {id}",
                n.name
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    (nodes, id)
}
