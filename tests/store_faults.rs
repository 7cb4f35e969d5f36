//! The store's disk full or read-only (issue 14, fault injection): the data dir is a small tmpfs
//! mounted for the test, filled up, then remounted read-only. While the disk refuses writes,
//! every durable operation answers 503 `store_unavailable` with Retry-After and acknowledges
//! nothing, `/readyz` is not ready, `pushgate_store_write_failures_total` counts the refusals,
//! and the process keeps serving; once the disk takes writes again, so does the gateway,
//! without a restart, and what memory kept meanwhile reaches the disk.
//!
//! Mounting needs root (the test runs as root here and in CI). Without it the test fails and
//! says so: it never passes without having tried.

mod common;

use common::{cert_body, regid, Harness, ADMIN, API};
use reqwest::Method;
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmpfs of `size` mounted on a fresh directory, unmounted (lazily: the gateway may still
/// hold files in it) when dropped, whatever the test's end.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let uid = Command::new("id").arg("-u").output().expect("id -u");
        assert_eq!(
            String::from_utf8_lossy(&uid.stdout).trim(),
            "0",
            "tests/store_faults.rs mounts a tmpfs to fill it and remount it read-only: run it as \
             root (as CI does); it cannot test the store's disk faults otherwise"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tmpfs",
                path(dir.path()),
            ],
        );
        Tmpfs { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    fn remount(&self, mode: &str) {
        run(
            "mount",
            &["-o", &format!("remount,{mode}"), path(self.dir.path())],
        );
    }

    /// Remounts read-only, retrying while a file is open for writing (the kernel refuses the
    /// remount then); true once it went through.
    async fn remount_read_only(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            let ok = Command::new("mount")
                .args(["-o", "remount,ro", path(self.dir.path())])
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .args(["-l", path(self.dir.path())])
            .status();
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temp path")
}

fn run(cmd: &str, args: &[&str]) {
    let status = Command::new(cmd).args(args).status().expect(cmd);
    assert!(status.success(), "{cmd} {args:?}: {status}");
}

/// Writes a file until the file system is full; returns its path.
fn fill(dir: &Path) -> PathBuf {
    let filler = dir.join("filler");
    let mut f = std::fs::File::create(&filler).expect("filler");
    let chunk = vec![0x5au8; 64 * 1024];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                assert_eq!(
                    e.raw_os_error(),
                    Some(28),
                    "filling stopped on {e}, not ENOSPC"
                );
                break;
            }
        }
    }
    // The last partial chunk, byte by byte, so not even the filler's own page has room.
    while f.write(&[0x5a]).is_ok_and(|n| n == 1) {}
    filler
}

/// One request, with its status, Retry-After header and JSON body.
async fn call(h: &Harness, method: Method, path: &str, token: &str, body: Value) -> Answer {
    let resp = h
        .http
        .request(method, h.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("the gateway answers");
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = resp.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        retry_after,
        body,
    }
}

#[derive(Debug)]
struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: Value,
}

impl Answer {
    /// A refusal because of the store: 503, Retry-After, the code and the reason named.
    fn assert_store_refused(&self, what: &str, reason: &str) {
        assert_eq!(self.status, 503, "{what}: {self:?}");
        assert!(
            self.retry_after.is_some(),
            "{what}: no Retry-After: {self:?}"
        );
        assert_eq!(
            self.body["error"]["code"], "store_unavailable",
            "{what}: {self:?}"
        );
        let message = self.body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(reason),
            "{what}: the message does not say '{reason}': {self:?}"
        );
    }
}

async fn token(h: &Harness, user: &str, cert: u64, token: &str) -> Answer {
    call(
        h,
        Method::PUT,
        "/v1/push-tokens",
        API,
        json!({"user": user, "platform": "Android", "device": "d1", "certificate_id": cert, "token": token}),
    )
    .await
}

async fn readyz(h: &Harness) -> (u16, String) {
    let r = h.http.get(h.url("/readyz")).send().await.expect("readyz");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

/// Waits (bounded) for `/readyz` to answer `status`.
async fn wait_ready(h: &Harness, status: u16, within: Duration) -> (u16, String) {
    let deadline = Instant::now() + within;
    loop {
        let r = readyz(h).await;
        if r.0 == status || Instant::now() > deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn metric(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Token reports until the disk refuses one (the journal file's last page may still take a
/// few small writes after the file system is full). Every acknowledged one is on disk.
async fn report_until_refused(h: &Harness, cert: u64, users: &[String]) -> (Vec<String>, Answer) {
    let mut acked = Vec::new();
    for u in users {
        let a = token(h, u, cert, &format!("{}-full", regid(u))).await;
        if a.status != 200 {
            return (acked, a);
        }
        acked.push(u.clone());
    }
    panic!("the disk took every write: it never filled");
}

/// Per user, what the disk must keep of its device: its token (as hinted) and whether it is
/// logged in (a restart turns `Online` into `PushOnline`, so both count as logged in).
async fn views(h: &Harness, users: &[String]) -> Vec<(String, Value, Value)> {
    let mut out = Vec::new();
    for u in users {
        let (s, v) = h.api(Method::GET, &format!("/v1/users/{u}"), None).await;
        assert_eq!(s, 200, "{v}");
        let d = &v["devices"][0];
        let logged_in = d["state"] == "Online" || d["state"] == "PushOnline";
        out.push((
            format!("{u} logged in: {logged_in}"),
            d["token_bound"].clone(),
            d["token_hint"].clone(),
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_or_read_only_disk_refuses_durable_changes_with_503_and_recovers_without_restart() {
    let fs = Tmpfs::mount("6m");
    let data = fs.path().join("data");
    let data_for_config = data.clone();
    let h = Harness::builder()
        .config(move |c| c.data_dir = data_for_config)
        .certificate(cert_body(1000))
        .start()
        .await;
    let cert = h.cert();
    let users: Vec<String> = (0..300).map(|i| format!("u{i}")).collect();
    let mut events = Vec::new();
    for u in &users {
        events.push(json!({"user": u, "platform": "Android", "device": "d1", "action": "login"}));
    }
    h.events(Value::Array(events)).await;
    assert_eq!(token(&h, "u0", cert, &regid("u0")).await.status, 200);

    // --- Disk full.
    let filler = fill(&fs.path());
    let (acked, refused) = report_until_refused(&h, cert, &users[1..]).await;
    refused.assert_store_refused("a token report on a full disk", "disk is full");
    let (s, body) = wait_ready(&h, 503, Duration::from_secs(2)).await;
    assert_eq!(s, 503, "/readyz while the disk is full: {body}");
    assert!(body.contains("disk_full"), "{body}");

    // Every durable operation is refused the same way, and nothing is acknowledged.
    let again = token(&h, "u299", cert, "regid-refused").await;
    again.assert_store_refused("another token report", "disk is full");
    let ev = call(
        &h,
        Method::POST,
        "/v1/sessions/events",
        API,
        json!({"events": [{"user": "u298", "platform": "Android", "device": "d1", "action": "disconnect"}]}),
    )
    .await;
    ev.assert_store_refused("a session event", "disk is full");
    assert_eq!(ev.body["results"][0]["ok"], false, "{ev:?}");
    assert_eq!(
        ev.body["results"][0]["error"]["code"], "store_unavailable",
        "{ev:?}"
    );
    let created = call(&h, Method::POST, "/v1/certificates", ADMIN, cert_body(10)).await;
    created.assert_store_refused("a certificate", "disk is full");
    let sent = call(
        &h,
        Method::POST,
        "/v1/messages",
        API,
        json!({"to": ["u0"], "from": "carol", "text": "not journaled"}),
    )
    .await;
    sent.assert_store_refused(
        "a message whose notification cannot be journaled",
        "disk is full",
    );

    // The process is alive and answers what needs no write.
    let (s, _) = h.api(Method::GET, "/v1/users/u0", None).await;
    assert_eq!(s, 200);
    let r = h.http.get(h.url("/healthz")).send().await.expect("healthz");
    assert_eq!(r.status().as_u16(), 200);
    let m = h.metrics().await;
    assert!(
        metric(
            &m,
            "pushgate_store_write_failures_total{reason=\"disk_full\"}"
        ) >= 1.0,
        "the refusals are counted:\n{}",
        m.lines()
            .filter(|l| l.contains("pushgate_store"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(metric(&m, "pushgate_store_writable "), 0.0);
    let (certs_status, certs) = h.admin(Method::GET, "/v1/certificates", None).await;
    assert_eq!(certs_status, 200);
    assert_eq!(
        certs["certificates"].as_array().map(Vec::len),
        Some(1),
        "the refused certificate does not exist: {certs}"
    );

    // --- Space returns: ready again without a restart, and writes succeed.
    std::fs::remove_file(&filler).expect("remove filler");
    let (s, body) = wait_ready(&h, 200, Duration::from_secs(10)).await;
    assert_eq!(s, 200, "/readyz after space returned: {body}");
    let ok = token(&h, "u299", cert, "regid-after-full").await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert!(h
        .metrics()
        .await
        .lines()
        .any(|l| l == "pushgate_store_writable 1"));
    let created = call(&h, Method::POST, "/v1/certificates", ADMIN, cert_body(10)).await;
    assert_eq!(created.status, 201, "{created:?}");

    // --- Read-only: the same promises, with the reason named. A file system with a file open
    // for writing cannot be remounted read-only, so the disk is filled first: the store closes
    // its files when a write fails and reopens them only when it can, and the remount goes
    // through in between.
    let filler = fill(&fs.path());
    let (more_acked, refused) = report_until_refused(&h, cert, &users[150..]).await;
    refused.assert_store_refused("a token report on a full disk, again", "disk is full");
    assert!(
        fs.remount_read_only(Duration::from_secs(10)).await,
        "the store kept a file open for writing: the remount read-only never went through"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let ro = loop {
        let a = token(&h, "u297", cert, "regid-read-only").await;
        let named = a.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("read-only"));
        if named || Instant::now() > deadline {
            break a;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    ro.assert_store_refused("a token report on a read-only disk", "read-only");
    let (s, body) = wait_ready(&h, 503, Duration::from_secs(2)).await;
    assert_eq!(s, 503, "{body}");
    assert!(body.contains("read_only"), "{body}");
    assert!(
        metric(
            &h.metrics().await,
            "pushgate_store_write_failures_total{reason=\"read_only\"}"
        ) >= 1.0
    );
    fs.remount("rw");
    std::fs::remove_file(&filler).expect("remove filler");
    let (s, body) = wait_ready(&h, 200, Duration::from_secs(10)).await;
    assert_eq!(s, 200, "/readyz after the remount read-write: {body}");
    assert_eq!(token(&h, "u296", cert, "regid-after-ro").await.status, 200);

    // Refused changes that memory kept were written once the disk took writes again (the
    // store's resync, every second): after a restart, the disk shows what memory showed.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let checked: Vec<String> = ["u0", "u296", "u297", "u298", "u299"]
        .iter()
        .map(|s| s.to_string())
        .chain(acked.iter().cloned())
        .chain(more_acked.iter().cloned())
        .collect();
    let before = views(&h, &checked).await;
    let h = h.restart().await;
    let after = views(&h, &checked).await;
    assert_eq!(before, after, "memory before the restart = disk after it");
    let (_, v) = h.api(Method::GET, "/v1/users/u296", None).await;
    assert_eq!(v["devices"][0]["token_bound"], true, "{v}");
    let (certs_status, certs) = h.admin(Method::GET, "/v1/certificates", None).await;
    assert_eq!(certs_status, 200);
    assert_eq!(
        certs["certificates"].as_array().map(Vec::len),
        Some(2),
        "{certs}"
    );
    drop(h);
    drop(fs);
}
