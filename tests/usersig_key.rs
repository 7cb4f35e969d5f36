//! Defect 1 of issue 10: an empty or short UserSig key must not start a gateway, whether it comes
//! from the config file, the environment, or a `Config` built in code — otherwise a ticket signed
//! with the empty key opens /v4 as an administrator.

use pushgate::config::Config;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn a_config_built_in_code_with_an_empty_key_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    for key in ["", "0123456789"] {
        let c = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().to_path_buf(),
            admin_token: Some("admin-token-for-tests".into()),
            api_token: Some("api-token-for-tests".into()),
            secret_key: Some(key.into()),
            ..Default::default()
        };
        match pushgate::server::start(c) {
            Ok(_) => panic!("a gateway started with the UserSig key {key:?}"),
            Err(e) => assert!(e.to_string().contains("secret_key"), "{e}"),
        }
    }
}

/// Runs `pushgate serve` with the given environment and config file; it must exit by itself
/// (with an error) within the bound, else the test fails.
// A plain #[test] polling a child process: no runtime or arbiter on this thread to block.
#[allow(clippy::disallowed_methods)]
fn serve_exits(envs: &[(&str, &str)], file: Option<&std::path::Path>) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pushgate"));
    cmd.arg("serve")
        .env_clear()
        .env("PUSHGATE_DATA_DIR", dir.path())
        .env("PUSHGATE_LISTEN", "127.0.0.1:0")
        .envs(envs.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(f) = file {
        cmd.arg("--config").arg(f);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status.success(), err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("pushgate serve kept running with an unusable UserSig key");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_refuses_an_empty_key_from_the_environment_and_from_the_file() {
    let (ok, err) = serve_exits(&[("PUSHGATE_SECRET_KEY", "")], None);
    assert!(!ok);
    assert!(err.contains("PUSHGATE_SECRET_KEY"), "stderr: {err}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pushgate.toml");
    std::fs::write(&file, "secret_key = \"\"\n").unwrap();
    let (ok, err) = serve_exits(&[], Some(&file));
    assert!(!ok);
    assert!(err.contains("secret_key"), "stderr: {err}");
}
