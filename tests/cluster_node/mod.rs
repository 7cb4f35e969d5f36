//! A gateway node as a `pushgate serve` process (so kill -9 is real), in redis mode over a test
//! Redis Cluster or on embedded defaults, and the WebSocket and API helpers the cluster test
//! files share (tests/cluster_nodes.rs, cluster_reads.rs, cluster_reports.rs).

#![allow(dead_code)]

use crate::common::{cert_body, http, regid, ADMIN, API, SDKAPPID, USERSIG_KEY};
use crate::redis_cluster::RedisCluster;
use futures_util::StreamExt;
use pushgate::cluster::Cluster;
use pushgate::config::{ClusterConfig, ClusterMode};
use pushgate::domain::MultiDevicePolicy;
use pushgate::usersig::UserSigKey;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message as WsMessage;

pub use crate::redis_cluster::bounded;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The TIM administrator the nodes accept (the config's default `tim_admins`).
pub const TIM_ADMIN: &str = "administrator";

/// The test config's node and certificate lease (§13.2 uses 10 s / 2 s; shorter here to keep
/// the gateway kill tests short, still above the ~4 s failover those tests do not provoke).
pub const LEASE_MS: u64 = 6_000;

/// What a node's config and environment add to the defaults of `Gateway::start`.
pub struct Setup<'a> {
    /// More `[push]` settings.
    pub push: &'a str,
    /// More `[cluster]` settings.
    pub cluster: &'a str,
    /// More environment variables.
    pub env: &'a [(&'a str, &'a str)],
    /// `node_lease_ms` and `cert_lease_ms` (renewed every second).
    pub lease_ms: u64,
}

impl Default for Setup<'_> {
    fn default() -> Self {
        Setup {
            push: "",
            cluster: "",
            env: &[],
            lease_ms: LEASE_MS,
        }
    }
}

/// One `pushgate serve` process.
pub struct Gateway {
    pub child: Child,
    pub addr: String,
    pub name: String,
    pub data: PathBuf,
}

impl Gateway {
    /// Starts a gateway; `cluster` = the Redis seed URLs (None: embedded defaults).
    pub fn start(dir: &Path, name: &str, xiaomi: &str, cluster: Option<&[String]>) -> Gateway {
        Gateway::start_opts(dir, name, xiaomi, cluster, &Setup::default())
    }

    /// `start` with more `[push]` settings.
    pub fn start_with(
        dir: &Path,
        name: &str,
        xiaomi: &str,
        cluster: Option<&[String]>,
        push: &str,
    ) -> Gateway {
        let setup = Setup {
            push,
            ..Setup::default()
        };
        Gateway::start_opts(dir, name, xiaomi, cluster, &setup)
    }

    /// `start` with the config and environment `setup` says.
    pub fn start_opts(
        dir: &Path,
        name: &str,
        xiaomi: &str,
        cluster: Option<&[String]>,
        setup: &Setup,
    ) -> Gateway {
        let data = dir.join(name);
        std::fs::create_dir_all(&data).expect("data dir");
        let conf = data.join("pushgate.toml");
        let (push, cluster_conf, lease) = (setup.push, setup.cluster, setup.lease_ms);
        std::fs::write(
            &conf,
            format!(
                "[http]\nshutdown_timeout_secs = 2\n\n\
                 [push]\nlinger_ms = 2\nvendor_timeout_ms = 2000\n{push}\n[cluster]\n\
                 # A shared 2-core machine: a replica's ack can take longer than 50 ms.\n\
                 wait_timeout_ms = 2000\nnode_lease_ms = {lease}\nnode_renew_ms = 1000\n\
                 cert_lease_ms = {lease}\n{cluster_conf}\n"
            ),
        )
        .expect("config file");
        let log = std::fs::File::create(data.join("stderr.log")).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pushgate"));
        cmd.arg("serve")
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
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        cmd.envs(setup.env.iter().copied());
        if let Some(urls) = cluster {
            cmd.env("PUSHGATE_CLUSTER_MODE", "redis")
                .env("PUSHGATE_REDIS_URLS", urls.join(","))
                .env("PUSHGATE_NODE_NAME", name);
        }
        let mut child = cmd.spawn().expect("spawn pushgate");
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
        Gateway {
            child,
            addr,
            name: name.to_string(),
            data,
        }
    }

    /// The last lines the process logged (for failure messages).
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.data.join("stderr.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn ws_url(&self, user: &str, platform: &str, device: &str) -> String {
        let sig = UserSigKey::new(SDKAPPID, USERSIG_KEY).generate(user, 3600);
        format!(
            "ws://{}/v1/ws?sdkappid={SDKAPPID}&identifier={user}&usersig={sig}&platform={platform}&device={device}",
            self.addr
        )
    }

    /// A WebSocket login of (user, Android device) on this node.
    pub async fn connect(&self, user: &str, device: &str) -> Ws {
        self.connect_as(user, "Android", device).await
    }

    pub async fn connect_as(&self, user: &str, platform: &str, device: &str) -> Ws {
        let (ws, res) = tokio_tungstenite::connect_async(self.ws_url(user, platform, device))
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
        let token = if path.starts_with("/v1/certificates") {
            ADMIN
        } else {
            API
        };
        let send = || {
            let mut r = http()
                .request(method.clone(), self.url(path))
                .bearer_auth(token);
            if let Some(b) = &body {
                r = r.json(b);
            }
            r.send()
        };
        // Seen at load 12-15: the node answers 408 when a request does not follow its
        // connection within 5 s (the test process starved), which hyper may report as
        // `UnexpectedMessage` when the answer comes before the request went out. The node read
        // nothing, so even a POST is sent again (a few times, as a load balancer would). Any
        // other failure of a POST fails the test; an idempotent call is sent once more.
        let mut again = 0;
        let res = loop {
            match send().await {
                Ok(res) if res.status() == 408 && again < 3 => {}
                Ok(res) => break res,
                Err(e)
                    if again < 3
                        && (method != reqwest::Method::POST
                            || format!("{e:?}").contains("UnexpectedMessage")) =>
                {
                    eprintln!("{method} {path} on {}: {e:?}; sent again", self.name);
                }
                Err(e) => panic!("request: {e:?}"),
            }
            again += 1;
        };
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

    pub async fn send(&self, to: &str, from: &str, text: &str) -> Value {
        let (s, v) = self
            .api(
                reqwest::Method::POST,
                "/v1/messages",
                Some(json!({"to": [to], "from": from, "text": text})),
            )
            .await;
        assert_eq!(s, 200, "send through {}: {v}", self.name);
        v
    }

    /// Sends `text` from bob to `to` through this node until it is answered 200 `online`,
    /// retrying (every 300 ms, for up to `within`) while it is refused or `to` is not online.
    pub async fn send_until_online(&self, to: &str, text: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let (s, v) = self
                .api(
                    reqwest::Method::POST,
                    "/v1/messages",
                    Some(json!({"to": [to], "from": "bob", "text": text})),
                )
                .await;
            if s == 200 && v["results"][0]["outcome"] == "online" {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{text} to {to} through {}: {s} {v}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Certificate `id` as this node shows it (None: not found).
    pub async fn certificate(&self, id: u64) -> Option<Value> {
        let (s, v) = self
            .api(
                reqwest::Method::GET,
                &format!("/v1/certificates/{id}"),
                None,
            )
            .await;
        (s == 200).then_some(v)
    }

    /// A session event for (user, Android `device`) through this node; (status, body).
    pub async fn session_event(&self, user: &str, device: &str, action: &str) -> (u16, Value) {
        let event =
            json!({"user": user, "platform": "Android", "device": device, "action": action});
        self.api(
            reqwest::Method::POST,
            "/v1/sessions/events",
            Some(json!({ "events": [event] })),
        )
        .await
    }

    pub async fn metrics_text(&self) -> String {
        http()
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    }

    pub async fn user(&self, user: &str) -> Value {
        let (s, v) = self
            .api(reqwest::Method::GET, &format!("/v1/users/{user}"), None)
            .await;
        assert_eq!(s, 200, "{v}");
        v
    }

    /// SIGTERM, then waits (bounded) for the exit; whether it exited 0.
    pub async fn terminate(&mut self, within: Duration) -> bool {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            assert!(Instant::now() < deadline, "{} did not exit", self.name);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// kill -9 (Child::kill sends SIGKILL).
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The next `message` frame (id, text), answering nothing; None when the socket ends.
pub async fn next_message(ws: &mut Ws) -> Option<(u64, String)> {
    while let Some(frame) = ws.next().await {
        let Ok(WsMessage::Text(t)) = frame else {
            if matches!(frame, Ok(WsMessage::Close(_)) | Err(_)) {
                return None;
            }
            continue;
        };
        let v: Value = serde_json::from_str(&t).expect("JSON frame");
        if v["type"] == "message" {
            return Some((
                v["id"].as_u64().expect("id"),
                v["text"].as_str().unwrap_or_default().to_string(),
            ));
        }
    }
    None
}

/// Reads frames until a `kicked` one: whether it came within `within` (false: the socket
/// ended first, or nothing came).
pub async fn kicked_within(ws: &mut Ws, within: Duration) -> bool {
    tokio::time::timeout(within, async {
        while let Some(frame) = ws.next().await {
            match frame {
                Ok(WsMessage::Text(t)) => {
                    let v: Value = serde_json::from_str(&t).expect("JSON frame");
                    if v["type"] == "kicked" {
                        return true;
                    }
                }
                Ok(WsMessage::Close(_)) | Err(_) => return false,
                Ok(_) => {}
            }
        }
        false
    })
    .await
    .unwrap_or(false)
}

/// Reads until a `kicked` frame, which must come within `within`; how long after `since` it
/// arrived.
pub async fn wait_kicked(ws: &mut Ws, since: Instant, within: Duration) -> Duration {
    assert!(
        kicked_within(ws, within).await,
        "a kicked frame within {within:?}"
    );
    since.elapsed()
}

/// Logs (user, Android `device`) in through `via[0]`, reports its token for `cert` through
/// `via[1]` and disconnects it through `via[2]`: PushOnline with a token, held by no node.
pub async fn push_online(via: [&Gateway; 3], user: &str, device: &str, cert: u64) {
    let (s, v) = via[0].session_event(user, device, "login").await;
    assert_eq!((s, &v["results"][0]["ok"]), (200, &json!(true)), "{v}");
    let token =
        json!({"user": user, "device": device, "certificate_id": cert, "token": regid(user)});
    let (s, v) = via[1]
        .api(reqwest::Method::PUT, "/v1/push-tokens", Some(token))
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = via[2].session_event(user, device, "disconnect").await;
    assert_eq!(
        (s, &v["results"][0]["state"]),
        (200, &json!("PushOnline")),
        "{v}"
    );
}

/// Three gateways over one Redis Cluster, and a certificate created on node 1 (certificates
/// live in Redis: every node sees it).
pub async fn three_nodes(rc: &RedisCluster, dir: &Path, xiaomi: &str) -> (Vec<Gateway>, u64) {
    three_nodes_with(rc, dir, xiaomi, "", 1000).await
}

/// `three_nodes` with more `[push]` settings and the certificate's qps.
pub async fn three_nodes_with(
    rc: &RedisCluster,
    dir: &Path,
    xiaomi: &str,
    push: &str,
    qps: u32,
) -> (Vec<Gateway>, u64) {
    let urls = rc.urls();
    let mut nodes = Vec::new();
    for name in ["gw-1", "gw-2", "gw-3"] {
        nodes.push(Gateway::start_with(dir, name, xiaomi, Some(&urls), push));
    }
    let id = create_certificate(&nodes, qps).await;
    (nodes, id)
}

/// Creates a certificate at `qps` on the first node and waits until every node shows it; its
/// id.
pub async fn create_certificate(nodes: &[Gateway], qps: u32) -> u64 {
    let (s, v) = nodes[0]
        .api(
            reqwest::Method::POST,
            "/v1/certificates",
            Some(cert_body(qps)),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_u64().expect("id");
    for n in nodes {
        wait_certificate(n, id, |c| c["qps"] == qps).await;
    }
    id
}

/// Which node consumes `cert`'s queue (`pushgate_cert_owned`), once one does.
pub async fn owner_of(nodes: &[Gateway], cert: u64) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for (i, n) in nodes.iter().enumerate() {
            let m = n.metrics_text().await;
            if crate::common::metric(
                &m,
                "pushgate_cert_owned",
                &format!("certificate=\"{cert}\""),
            ) == 1.0
            {
                return i;
            }
        }
        assert!(Instant::now() < deadline, "no node owns certificate {cert}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits (bounded) until `node` shows certificate `id` as `want` says (Null: deleted).
pub async fn wait_certificate(node: &Gateway, id: u64, want: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let shown = node.certificate(id).await.unwrap_or(Value::Null);
        if want(&shown) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} shows certificate {id} as {shown}",
            node.name
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Of the acknowledged token reports (user, token) for device "d1" under `cert`, those whose
/// token is not bound there in Redis itself, where the user's hash and the token index must
/// agree; each as a line for a failure message. Read directly, not through a gateway: thousands
/// of GETs through debug gateways would take minutes.
pub async fn tokens_not_bound(
    rc: &RedisCluster,
    cert: u64,
    reported: Vec<(String, String)>,
) -> Vec<String> {
    let cfg = ClusterConfig {
        mode: ClusterMode::Redis,
        redis_nodes: rc.urls(),
        ..ClusterConfig::default()
    };
    let c = std::sync::Arc::new(
        Cluster::connect(&cfg, MultiDevicePolicy::Multi, 7 * 86_400)
            .await
            .expect("connect to the test cluster"),
    );
    futures_util::stream::iter(reported)
        .map(|(u, t)| {
            let c = c.clone();
            async move {
                let owner = c.token_owner(&t).await.expect("token index");
                let h = c.read_user(&u).await.expect("user hash");
                let bound = h.get("d1").and_then(|d| d.tok.clone());
                let ok = owner == Some((u.clone(), "d1".to_string())) && bound == Some((cert, t));
                (!ok).then(|| format!("{u}: index {owner:?}, record {bound:?}"))
            }
        })
        .buffer_unordered(256)
        .filter_map(std::future::ready)
        .collect()
        .await
}
