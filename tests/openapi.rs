//! The OpenAPI document of /v1 (src/api/openapi.json, served at /v1/openapi.json) stays true:
//! its operations are exactly the routes src/api/mod.rs registers under /v1, and a property-based
//! run of schemathesis against a live gateway finds no 5xx and no answer the document does not
//! allow (status, content type, headers, body schema).
//!
//! schemathesis comes from PyPI: scripts/test installs it into target/venv-schemathesis. The
//! command is `$PUSHGATE_SCHEMATHESIS`, else that venv's `st`, else `st` on PATH; without it the
//! property test fails on purpose (a silent skip would let the document rot).

mod common;

use common::{Harness, ADMIN, API};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

fn document() -> Value {
    serde_json::from_str(pushgate::api::OPENAPI).expect("openapi.json is JSON")
}

/// (METHOD, path) of every operation in the document.
fn documented() -> BTreeSet<(String, String)> {
    let doc = document();
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, _) in item.as_object().expect("path item") {
            if method != "parameters" {
                out.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    out
}

/// (METHOD, path) of every route src/api/mod.rs registers in the /v1 scope, read from the
/// source (actix cannot list its routes), with `{user}`-style parameters as they are.
fn registered() -> BTreeSet<(String, String)> {
    let src =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/api/mod.rs"))
            .expect("src/api/mod.rs");
    let scope = src
        .split("web::scope(\"/v1\")")
        .nth(1)
        .expect("the /v1 scope");
    let scope = &scope[..scope.find(".configure(").expect("end of the /v1 scope")];
    let mut out = BTreeSet::new();
    // rustfmt puts a long route's arguments on their own lines: `.route(\n    "/path",`.
    for part in scope.split(".route(").skip(1) {
        let part = part.trim_start().strip_prefix('"').expect("route path");
        let (path, rest) = part.split_once('"').expect("route path");
        let method = rest
            .split_once("web::")
            .and_then(|(_, m)| m.split_once('('))
            .map(|(m, _)| m.to_ascii_uppercase())
            .expect("route method");
        out.insert((method, format!("/v1{path}")));
    }
    out
}

#[test]
fn the_document_lists_exactly_the_v1_routes() {
    let mut routes = registered();
    assert!(routes.len() >= 12, "parsed too few routes: {routes:?}");
    // The WebSocket upgrade is described in the README: OpenAPI 3.0 cannot describe its frames.
    assert!(routes.remove(&("GET".into(), "/v1/ws".into())));
    let documented = documented();
    let missing: Vec<_> = routes.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&routes).collect();
    assert!(
        missing.is_empty(),
        "routes not in the document: {missing:?}"
    );
    assert!(stale.is_empty(), "documented but not routed: {stale:?}");
}

#[test]
fn every_operation_documents_its_refusals() {
    let doc = document();
    for (method, path) in documented() {
        let op = &doc["paths"][&path][method.to_ascii_lowercase()];
        let responses = op["responses"].as_object().expect("responses");
        let public = op["security"].as_array().is_some_and(|s| s.is_empty());
        if !public {
            assert!(
                responses.contains_key("401"),
                "{method} {path} can answer 401"
            );
        }
        if op.get("requestBody").is_some() {
            for code in ["400", "413", "415"] {
                assert!(
                    responses.contains_key(code),
                    "{method} {path} can answer {code}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_serves_the_document_without_a_token() {
    let h = Harness::start().await;
    let res = h.http.get(h.url("/v1/openapi.json")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let served: Value = res.json().await.unwrap();
    assert_eq!(served, document());
}

// The test's own knob (scripts/test points it at a venv), not a gateway setting.
#[allow(clippy::disallowed_methods)]
fn schemathesis() -> PathBuf {
    if let Ok(p) = std::env::var("PUSHGATE_SCHEMATHESIS") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/venv-schemathesis/bin/st");
    if venv.exists() {
        return venv;
    }
    common::on_path("st").unwrap_or_else(|| {
        panic!("schemathesis not found: run scripts/test (it installs it) or set PUSHGATE_SCHEMATHESIS")
    })
}

/// Runs schemathesis against `h` for the operations tagged `tag`, with `token`: at most
/// `examples` cases per operation and at most `secs` seconds (its fuzzing phase stops there).
fn run_schemathesis(h: &Harness, tag: &str, token: &str, examples: u32, secs: u32) {
    let st = schemathesis();
    let schema = h.url("/v1/openapi.json");
    // Its caches (.schemathesis, .hypothesis) go to a scratch dir, not the repository.
    let scratch = tempfile::tempdir().expect("tempdir");
    let out = Command::new(&st)
        .current_dir(scratch.path())
        .args(["run", &schema])
        .args(["--url", &h.url("")])
        .args(["--include-tag", tag])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance",
        ])
        .args(["--max-examples", &examples.to_string()])
        .args(["--max-time", &secs.to_string()])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--seed", "14"])
        .args(["--workers", "1"])
        .args(["--request-timeout", "10"])
        .args(["--generation-database", "none", "--no-color"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", st.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis ({tag}) found answers that contradict the document:\n{stdout}\n{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn property_based_requests_get_only_documented_answers() {
    let h = Harness::builder()
        .certificate(common::cert_body(100))
        .start()
        .await;
    // A logged-in device with a token, so the generated requests also meet real state.
    h.killed("alice", "d1").await;
    let handle = tokio::task::spawn_blocking(move || {
        // About 600 requests in all on this 2-core machine, bounded to under 2 minutes.
        run_schemathesis(&h, "admin", ADMIN, 30, 30);
        run_schemathesis(&h, "api", API, 30, 45);
        run_schemathesis(&h, "meta", API, 3, 10);
        h
    });
    let h = handle.await.expect("schemathesis runs");
    let metrics = h.metrics().await;
    for line in metrics.lines() {
        if line.starts_with("pushgate_http_requests_total{") && line.contains("status=\"5") {
            panic!("the gateway answered 5xx: {line}");
        }
    }
}
