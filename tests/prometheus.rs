//! The dashboard and the alert rules against a real Prometheus.
//!
//! Starts Debian's `prometheus` on 127.0.0.1 (temp storage, 1 s scrape and rule evaluation,
//! `config/alerts.yml` as its rule file) scraping a real gateway (the test harness, on
//! 127.0.0.1:0) while a small load runs: certificates (one the vendor refuses), push-online
//! devices, messages through the Xiaomi emulator with a bad regId, 5xx answers, an unknown user,
//! WebSocket sessions whose State.StateChange webhooks time out and overflow their queue. Then,
//! through Prometheus's HTTP API:
//!
//! - every alert rule Prometheus loaded from `config/alerts.yml` (as many as the file defines)
//!   has been evaluated with health `ok`;
//! - every alert expression is a valid query, and its measure returns series. Alert expressions
//!   are legitimately empty on a healthy gateway (`<measure> > <threshold>` selects nothing), so
//!   what must return series is the measure: each operand of a top-level `and` with its
//!   top-level threshold comparison removed. An alert whose measure is empty here can never fire
//!   (a misspelt metric or label, a label set that does not match across `/`).
//! - every PromQL expression of `config/grafana-dashboard.json` (panel targets, and the queries
//!   inside the template variables' `label_values(...)`) with Grafana's variables replaced
//!   (`$job`, `$instance` by `.*`, `$__rate_interval` by `1m`) is valid and returns series.
//!
//! Every wait is a bounded poll; the whole test takes about 10–15 s. Prometheus is killed when
//! the test ends, pass or fail. Without the `prometheus` binary the test fails, it does not
//! skip: `apt-get install -y prometheus` (scripts/test does).

mod common;

use common::webhook::{Reply, WebhookReceiver};
use common::{Harness, PACKAGE, SDKAPPID, USERSIG_KEY};
use futures_util::{SinkExt, StreamExt};
use pushgate::providers::xiaomi::emulator::Knobs;
use pushgate::usersig::UserSigKey;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Longest wait for Prometheus to start, and for the scrapes and rule evaluations after the load.
const PROMETHEUS_WAIT: Duration = Duration::from_secs(40);
/// Longest wait for the gateway to show the load's effects in /metrics.
const LOAD_WAIT: Duration = Duration::from_secs(20);
/// Replaces Grafana's `$__rate_interval`: wide enough to cover the whole run.
const RATE_INTERVAL: &str = "1m";

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn prometheus_binary() -> PathBuf {
    common::on_path("prometheus").unwrap_or_else(|| {
        panic!(
            "the prometheus server is not installed, so the dashboard and alert rules cannot be \
             checked; install it with `apt-get install -y prometheus` (Debian's package ships \
             /usr/bin/prometheus)"
        )
    })
}

fn unix_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A Prometheus server process; killed on drop.
struct Prometheus {
    child: Child,
    base: String,
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts Prometheus scraping `target` every second with config/alerts.yml loaded, and waits
    /// (bounded) until it is ready.
    async fn start(target: std::net::SocketAddr) -> Prometheus {
        let dir = tempfile::tempdir().expect("tempdir");
        // A free port: bind :0, note it, release it for Prometheus.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {rules:?}\n\
             scrape_configs:\n  - job_name: pushgate\n    metrics_path: /metrics\n    \
             static_configs:\n      - targets: [\"{target}\"]\n",
            rules = repo_file("config/alerts.yml").display().to_string(),
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write prometheus.yml");
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new(prometheus_binary())
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("prometheus starts");
        let mut prom = Prometheus {
            child,
            base: format!("http://127.0.0.1:{port}"),
            dir,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("http client"),
        };
        let t0 = Instant::now();
        loop {
            if let Ok(Some(status)) = prom.child.try_wait() {
                panic!("prometheus exited with {status}:\n{}", prom.log());
            }
            let ready = prom
                .http
                .get(format!("{}/-/ready", prom.base))
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if ready {
                return prom;
            }
            assert!(
                t0.elapsed() < PROMETHEUS_WAIT,
                "prometheus not ready within {PROMETHEUS_WAIT:?}:\n{}",
                prom.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    async fn api(&self, path: &str, query: Option<&str>) -> Result<Value, String> {
        let mut url = reqwest::Url::parse(&format!("{}{path}", self.base)).expect("api url");
        if let Some(q) = query {
            url.query_pairs_mut().append_pair("query", q);
        }
        let res = self.http.get(url).send().await.map_err(|e| e.to_string())?;
        let status = res.status();
        let body: Value = res.json().await.map_err(|e| e.to_string())?;
        if body["status"] != "success" {
            return Err(format!("HTTP {status}: {}", body["error"]));
        }
        Ok(body["data"].clone())
    }

    /// An instant query's result vector, or Prometheus's error (e.g. a parse error).
    async fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let data = self.api("/api/v1/query", Some(expr)).await?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }

    /// The value of a single-series instant query (None when empty or unparsable).
    async fn scalar(&self, expr: &str) -> Option<f64> {
        let result = self.query(expr).await.ok()?;
        result.first()?["value"][1].as_str()?.parse().ok()
    }
}

/// Splits `expr` at its top-level (outside brackets and strings) occurrences of `word`.
fn split_top_level_word<'a>(expr: &'a str, word: &str) -> Vec<&'a str> {
    let bytes = expr.as_bytes();
    let mut parts = Vec::new();
    let (mut depth, mut start, mut i) = (0i32, 0usize, 0usize);
    let mut quote: Option<u8> = None;
    while i < bytes.len() {
        let c = bytes[i];
        if let Some(q) = quote {
            if c == b'\\' {
                i += 1;
            } else if c == q {
                quote = None;
            }
        } else {
            match c {
                b'"' | b'\'' | b'`' => quote = Some(c),
                b'(' | b'[' | b'{' => depth += 1,
                b')' | b']' | b'}' => depth -= 1,
                _ if depth == 0
                    && expr[i..].starts_with(word)
                    && (i == 0
                        || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'))
                    && bytes
                        .get(i + word.len())
                        .is_none_or(|b| !b.is_ascii_alphanumeric() && *b != b'_') =>
                {
                    parts.push(&expr[start..i]);
                    i += word.len();
                    start = i;
                    continue;
                }
                _ => {}
            }
        }
        i += 1;
    }
    parts.push(&expr[start..]);
    parts
}

/// `expr` without its last top-level comparison (`>`, `<`, `>=`, `<=`, `==`, `!=`) and what
/// follows it; `expr` itself when it has none.
fn without_threshold(expr: &str) -> &str {
    let bytes = expr.as_bytes();
    let (mut depth, mut cut) = (0i32, None);
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if let Some(q) = quote {
            if c == b'\\' {
                i += 1;
            } else if c == q {
                quote = None;
            }
        } else {
            match c {
                b'"' | b'\'' | b'`' => quote = Some(c),
                b'(' | b'[' | b'{' => depth += 1,
                b')' | b']' | b'}' => depth -= 1,
                b'>' | b'<' if depth == 0 => {
                    cut = Some(i);
                    // `>=` / `<=`: one operator.
                    if bytes.get(i + 1) == Some(&b'=') {
                        i += 1;
                    }
                }
                b'=' | b'!' if depth == 0 && bytes.get(i + 1) == Some(&b'=') => {
                    cut = Some(i);
                    i += 1;
                }
                _ => {}
            }
        }
        i += 1;
    }
    match cut {
        Some(at) => expr[..at].trim(),
        None => expr.trim(),
    }
}

/// The measures of an alert expression: each top-level `and` operand without its threshold.
fn measures(expr: &str) -> Vec<String> {
    split_top_level_word(expr, "and")
        .into_iter()
        .map(|part| without_threshold(part).to_string())
        .collect()
}

/// A Grafana expression as Prometheus sees it with every variable set to "all".
fn grafana_to_promql(expr: &str) -> String {
    let mut q = expr.to_string();
    for (var, value) in [
        ("$__rate_interval", RATE_INTERVAL),
        ("${__rate_interval}", RATE_INTERVAL),
        ("$__interval", RATE_INTERVAL),
        ("${job}", ".*"),
        ("$job", ".*"),
        ("${instance}", ".*"),
        ("$instance", ".*"),
        ("${vendor}", ".*"),
        ("$vendor", ".*"),
    ] {
        q = q.replace(var, value);
    }
    assert!(
        !q.contains('$'),
        "the dashboard uses a Grafana variable this test does not know; teach \
         grafana_to_promql its value: {expr}"
    );
    q
}

/// Every PromQL expression of the dashboard: panel targets (nested rows too) and the series
/// queries inside template variables' `label_values(<query>, <label>)`, with where they are.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    fn panels(list: &Value, out: &mut Vec<(String, String)>) {
        for panel in list.as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or("(untitled)");
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push((format!("panel {title:?}"), expr.to_string()));
                }
            }
            panels(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    panels(&dashboard["panels"], &mut out);
    for var in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let name = var["name"].as_str().unwrap_or("?");
        let query = match &var["query"] {
            Value::String(s) => s.clone(),
            other => other["query"].as_str().unwrap_or_default().to_string(),
        };
        if let Some(inner) = query
            .strip_prefix("label_values(")
            .and_then(|rest| rest.strip_suffix(')'))
        {
            // `label_values(<series query>, <label>)`: the query before the last comma.
            let series = inner.rsplit_once(',').map_or(inner, |(q, _)| q);
            out.push((format!("variable ${name}"), series.trim().to_string()));
        }
    }
    out
}

/// Whether /metrics has a sample of `name` whose labels contain every one of `labels`
/// (e.g. `result="transient"`) with a value above zero.
fn has_sample(text: &str, name: &str, labels: &[&str]) -> bool {
    text.lines().filter(|l| !l.starts_with('#')).any(|l| {
        let Some((series, value)) = l.rsplit_once(' ') else {
            return false;
        };
        let named = series == name || series.starts_with(&format!("{name}{{"));
        named
            && labels.iter().all(|want| series.contains(want))
            && value.parse::<f64>().is_ok_and(|v| v > 0.0)
    })
}

/// Runs the load; returns once the gateway's /metrics shows every effect the queries need.
async fn load(h: &Harness) {
    use reqwest::Method;
    let cert = h.certificate(100).await;
    for i in 0..3 {
        h.push_online(&format!("u{i}"), "d1", cert, &format!("regid-u{i}"))
            .await;
    }
    h.emu.add_invalid_regids(["regid-gone"]);
    h.push_online("gone", "d1", cert, "regid-gone").await;
    // Delivered, one bad token (unbound), one unknown user (skipped).
    h.send(json!({"to": ["u0", "u1", "u2", "gone", "nobody"], "from": "carol", "text": "hi"}))
        .await;
    let received = h.wait_received(3, LOAD_WAIT).await;
    assert!(
        received >= 3,
        "{received} notifications reached the emulator, expected 3"
    );

    // Xiaomi answers 503 for a while: transient failures, retried once it recovers.
    h.emu.set_knobs(Knobs {
        error_5xx_ratio: 1.0,
        ..Knobs::default()
    });
    h.send(json!({"to": ["u0"], "from": "carol", "text": "during the outage"}))
        .await;
    wait_metrics(
        h,
        "pushgate_vendor_requests_total",
        &[r#"result="transient""#],
    )
    .await;
    h.emu.set_knobs(Knobs::default());

    // A certificate whose secret Xiaomi does not know: refused, marked broken.
    let (status, body) = h
        .admin(
            Method::POST,
            "/v1/certificates",
            Some(
                json!({"vendor": "xiaomi", "package_name": format!("{PACKAGE}.other"),
                        "app_id": "2882303761518", "app_secret": "bm90LWtub3du",
                        "click_action": {"type": "open_app"}, "qps": 10}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let refused = body["id"].as_u64().expect("certificate id");
    h.push_online("v0", "d1", refused, "regid-v0").await;
    h.send(json!({"to": ["v0"], "from": "carol", "text": "hi"}))
        .await;
    wait_metrics(h, "pushgate_certificates", &[r#"state="broken""#]).await;

    // WebSocket sessions: one message acked; logins and disconnects fire State.StateChange
    // webhooks at a receiver that never answers (timeouts) with a queue of one (drops).
    let key = UserSigKey::new(SDKAPPID, USERSIG_KEY);
    let mut sockets = Vec::new();
    for i in 0..4 {
        let user = format!("w{i}");
        let url = format!(
            "ws://{}/v1/ws?sdkappid={SDKAPPID}&identifier={user}&usersig={}&platform=Android&device=d1",
            h.server.addr,
            key.generate(&user, 3600)
        );
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket connects");
        sockets.push(ws);
    }
    h.send(json!({"to": ["w0"], "from": "carol", "text": "online"}))
        .await;
    let deadline = Instant::now() + LOAD_WAIT;
    let ws = &mut sockets[0];
    let id = loop {
        let frame = tokio::time::timeout_at(deadline.into(), ws.next())
            .await
            .expect("a message frame on the WebSocket in time")
            .expect("the WebSocket stays open")
            .expect("a frame");
        if let WsMessage::Text(text) = frame {
            let v: Value = serde_json::from_str(text.as_str()).expect("JSON frame");
            if v["type"] == "message" {
                break v["id"].clone();
            }
        }
    };
    ws.send(WsMessage::Text(
        json!({"type": "ack", "id": id}).to_string().into(),
    ))
    .await
    .expect("ack sent");
    wait_metrics(
        h,
        "pushgate_online_deliveries_total",
        &[r#"result="acked""#],
    )
    .await;
    for mut ws in sockets {
        let _ = ws.close(None).await;
    }
    wait_metrics(h, "pushgate_webhooks_total", &[r#"result="dropped""#]).await;
    wait_metrics(
        h,
        "pushgate_webhook_requests_total",
        &[r#"result="failed""#],
    )
    .await;

    // An unknown route, so an error status is a label value too.
    let (status, _) = h.api(Method::GET, "/v1/nothing", None).await;
    assert_eq!(status, 404);
}

/// Polls /metrics until `name` has a positive sample with `labels` (bounded).
async fn wait_metrics(h: &Harness, name: &str, labels: &[&str]) {
    let t0 = Instant::now();
    loop {
        let text = h.metrics().await;
        if has_sample(&text, name, labels) {
            return;
        }
        assert!(
            t0.elapsed() < LOAD_WAIT,
            "no {name} sample with {labels:?} within {LOAD_WAIT:?}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_and_alert_expressions_return_series_in_prometheus() {
    // Never answers: webhooks to it time out.
    let webhook = WebhookReceiver::start(Reply::Hang).await;
    let h = Harness::start_with(|c| {
        c.webhook_url = Some(webhook.url("/callback"));
        c.sessions.webhook_queue = 1;
        // Long enough that the first four callbacks still hang (the most in flight) when the
        // disconnects come, so those overflow the queue of one even on a slow machine; short
        // enough that the timeouts (failures) show up soon after.
        c.sessions.webhook_timeout_ms = 3_000;
    })
    .await;
    let prom = Prometheus::start(h.server.addr).await;
    load(&h).await;

    // At least three scrapes after the load, and a rule evaluation after the last of them.
    let loaded = unix_secs();
    let t0 = Instant::now();
    loop {
        let last_scrape = prom
            .scalar(r#"timestamp(up{job="pushgate"} == 1)"#)
            .await
            .unwrap_or(0.0);
        if last_scrape >= loaded + 3.0 {
            break;
        }
        assert!(
            t0.elapsed() < PROMETHEUS_WAIT,
            "prometheus did not scrape the gateway 3 times within {PROMETHEUS_WAIT:?} \
             (last successful scrape at {last_scrape}, load done at {loaded}); targets: {:?}\n{}",
            prom.api("/api/v1/targets", None).await,
            prom.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let evaluated_after = unix_secs();

    // Every rule of config/alerts.yml is loaded and evaluates without error.
    let rules_file = std::fs::read_to_string(repo_file("config/alerts.yml")).expect("alerts.yml");
    let defined = rules_file
        .lines()
        .filter(|l| l.trim_start().starts_with("- alert:"))
        .count();
    assert!(defined > 0, "config/alerts.yml defines no alert");
    let t0 = Instant::now();
    let rules = loop {
        let groups = prom.api("/api/v1/rules", None).await.expect("rules API");
        let rules: Vec<Value> = groups["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        // RFC 3339 evaluation times compare as strings only loosely; wait one more second
        // of evaluations instead, then require health "ok" from every rule.
        let all_evaluated = rules.iter().all(|r| r["health"] != "unknown");
        if all_evaluated && unix_secs() >= evaluated_after + 1.5 {
            break rules;
        }
        assert!(
            t0.elapsed() < PROMETHEUS_WAIT,
            "rules not evaluated within {PROMETHEUS_WAIT:?}: {rules:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        rules.len(),
        defined,
        "prometheus loaded {} rules, config/alerts.yml defines {defined}",
        rules.len()
    );

    let mut problems = Vec::new();
    let mut checked = 0;
    for rule in &rules {
        let name = rule["name"].as_str().unwrap_or("?");
        let expr = rule["query"].as_str().unwrap_or_default();
        if rule["health"] != "ok" {
            problems.push(format!(
                "rule {name}: health {} ({})",
                rule["health"], rule["lastError"]
            ));
        }
        if let Err(e) = prom.query(expr).await {
            problems.push(format!("rule {name}: invalid: {e}\n    {expr}"));
            continue;
        }
        for measure in measures(expr) {
            checked += 1;
            match prom.query(&measure).await {
                Ok(series) if series.is_empty() => problems.push(format!(
                    "rule {name}: its measure returns no series\n    {measure}"
                )),
                Ok(_) => {}
                Err(e) => {
                    problems.push(format!("rule {name}: measure invalid: {e}\n    {measure}"))
                }
            }
        }
    }

    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_file("config/grafana-dashboard.json"))
            .expect("grafana-dashboard.json"),
    )
    .expect("the dashboard is JSON");
    let queries = dashboard_queries(&dashboard);
    assert!(
        queries.len() > 10,
        "found only {} dashboard queries",
        queries.len()
    );
    for (place, expr) in &queries {
        checked += 1;
        let promql = grafana_to_promql(expr);
        match prom.query(&promql).await {
            Ok(series) if series.is_empty() => {
                problems.push(format!("{place}: returns no series\n    {promql}"))
            }
            Ok(_) => {}
            Err(e) => problems.push(format!("{place}: invalid: {e}\n    {promql}")),
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {checked} expressions failed against a real Prometheus:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn measures_drop_the_top_level_threshold_only() {
    assert_eq!(
        measures(r#"up{job="pushgate"} == 0"#),
        vec![r#"up{job="pushgate"}"#]
    );
    assert_eq!(
        measures(r#"sum by (a) (rate(x{r=~"a|b", s!="c"}[5m])) / sum by (a) (rate(x[5m])) > 0.05"#),
        vec![r#"sum by (a) (rate(x{r=~"a|b", s!="c"}[5m])) / sum by (a) (rate(x[5m]))"#]
    );
    assert_eq!(
        measures("a / b < 0.8\nand\nsum(rate(c[15m])) >= 0.1"),
        vec!["a / b", "sum(rate(c[15m]))"]
    );
    // Comparisons inside brackets belong to the measure; no comparison leaves it whole.
    assert_eq!(measures("count(x > 1) and y"), vec!["count(x > 1)", "y"]);
    assert_eq!(
        measures(r#"label_replace(x, "a", "b>c", "d", ".*")"#),
        vec![r#"label_replace(x, "a", "b>c", "d", ".*")"#]
    );
    assert_eq!(measures("brand_new_total > 0"), vec!["brand_new_total"]);
}

#[test]
fn grafana_variables_become_match_all() {
    assert_eq!(
        grafana_to_promql(r#"rate(x{job=~"$job", instance=~"$instance"}[$__rate_interval])"#),
        r#"rate(x{job=~".*", instance=~".*"}[1m])"#
    );
}
