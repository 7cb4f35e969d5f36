//! UserSig compatibility with Tencent's official generator (PyPI `tls-sig-api-v2`, module
//! `TLSSigAPIv2`).
//!
//! Needs a Python with that module. CI installs it with:
//!
//!     python3 -m pip install tls-sig-api-v2==1.1
//!
//! or, in a virtualenv, `python3 -m venv /opt/venv-sig && /opt/venv-sig/bin/pip install
//! tls-sig-api-v2==1.1` and then `PUSHGATE_TLS_SIG_PYTHON=/opt/venv-sig/bin/python`.
//! The interpreter is `$PUSHGATE_TLS_SIG_PYTHON`, else `python3`. Without the module these tests
//! fail on purpose: a silent skip would let the compatibility promise rot.
//!
//! The official package only generates (1.1 has no verify function), so the other direction
//! decodes our ticket in Python step by step as spec/usersig-v2.md describes and recomputes the
//! HMAC there.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use pushgate::usersig::UserSigKey;

const APP: u64 = 1_400_000_000;
const KEY: &str = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";

/// Identifiers that exercise JSON escaping (Python's `json.dumps` writes non-ASCII as `\uXXXX`).
const IDENTIFIERS: &[&str] = &["alice", "user_01-x", "用户甲", "quote\"back\\slash", "a b"];

// The test's own knob (scripts/test points it at a venv), not a gateway setting.
#[allow(clippy::disallowed_methods)]
fn python() -> String {
    std::env::var("PUSHGATE_TLS_SIG_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// Runs `script` with `args`, returning stdout; fails the test with Python's stderr otherwise.
fn run_python(script: &str, args: &[&str]) -> String {
    let py = python();
    let out = Command::new(&py)
        .arg("-c")
        .arg(script)
        .args(args)
        .env("PYTHONIOENCODING", "utf-8")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {py:?}: {e}; set PUSHGATE_TLS_SIG_PYTHON"));
    assert!(
        out.status.success(),
        "{py} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

fn require_official_module() {
    let py = python();
    let ok = Command::new(&py)
        .args(["-c", "import TLSSigAPIv2"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "the official UserSig generator is missing: `{py} -c 'import TLSSigAPIv2'` failed. \
         Install it with `{py} -m pip install tls-sig-api-v2==1.1`, or point \
         PUSHGATE_TLS_SIG_PYTHON at a Python that has it."
    );
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

const OFFICIAL_GEN: &str = r#"
import sys, TLSSigAPIv2
api = TLSSigAPIv2.TLSSigAPIv2(int(sys.argv[1]), sys.argv[2])
ident, expire = sys.argv[3], int(sys.argv[4])
if len(sys.argv) > 5:
    print(api.gen_sig_with_userbuf(ident, expire, sys.argv[5].encode('utf-8')))
else:
    print(api.gen_sig(ident, expire))
"#;

#[test]
fn official_tickets_verify_here() {
    require_official_module();
    let key = UserSigKey::new(APP, KEY);
    for ident in IDENTIFIERS {
        let sig = run_python(OFFICIAL_GEN, &[&APP.to_string(), KEY, ident, "86400"]);
        let ticket = key
            .verify(sig.trim(), ident, now())
            .unwrap_or_else(|e| panic!("{ident:?}: {e}"));
        assert_eq!(ticket.identifier, *ident);
        assert_eq!(ticket.sdkappid, APP);
        assert_eq!(ticket.expire, 86400);
        assert!(ticket.time.abs_diff(now()) < 60);
        assert_eq!(ticket.userbuf, None);
    }

    let sig = run_python(
        OFFICIAL_GEN,
        &[&APP.to_string(), KEY, "alice", "600", "room-42"],
    );
    let ticket = key
        .verify(sig.trim(), "alice", now())
        .expect("userbuf ticket");
    assert_eq!(ticket.userbuf.as_deref(), Some(&b"room-42"[..]));

    // And it is really checked: another key or another user is refused.
    let sig = run_python(OFFICIAL_GEN, &[&APP.to_string(), KEY, "alice", "600"]);
    assert!(UserSigKey::new(APP, "other")
        .verify(sig.trim(), "alice", now())
        .is_err());
    assert!(key.verify(sig.trim(), "bob", now()).is_err());
}

/// Decodes a ticket exactly as spec/usersig-v2.md says and checks every member and the HMAC.
/// Prints the identifier it found, so the Rust side can compare it without shell quoting.
const SPEC_VERIFY: &str = r#"
import sys, json, zlib, base64, hmac, hashlib
sdkappid, key, sig = int(sys.argv[1]), sys.argv[2], sys.argv[3]
raw = sig.replace('*', '+').replace('-', '/').replace('_', '=')
doc = json.loads(zlib.decompress(base64.b64decode(raw)).decode('utf-8'))
assert doc['TLS.ver'] == '2.0', doc
assert isinstance(doc['TLS.sdkappid'], int) and doc['TLS.sdkappid'] == sdkappid, doc
assert isinstance(doc['TLS.time'], int) and isinstance(doc['TLS.expire'], int), doc
assert isinstance(doc['TLS.identifier'], str), doc
content = ('TLS.identifier:%s\nTLS.sdkappid:%d\nTLS.time:%d\nTLS.expire:%d\n'
           % (doc['TLS.identifier'], doc['TLS.sdkappid'], doc['TLS.time'], doc['TLS.expire']))
members = {'TLS.ver', 'TLS.identifier', 'TLS.sdkappid', 'TLS.expire', 'TLS.time', 'TLS.sig'}
if 'TLS.userbuf' in doc:
    content += 'TLS.userbuf:%s\n' % doc['TLS.userbuf']
    members.add('TLS.userbuf')
assert set(doc) == members, sorted(doc)
mac = base64.b64encode(hmac.new(key.encode('utf-8'), content.encode('utf-8'), hashlib.sha256).digest()).decode()
assert hmac.compare_digest(mac, doc['TLS.sig']), (mac, doc['TLS.sig'])
print(json.dumps({'identifier': doc['TLS.identifier'], 'time': doc['TLS.time'],
                  'expire': doc['TLS.expire'],
                  'userbuf': base64.b64decode(doc['TLS.userbuf']).hex() if 'TLS.userbuf' in doc else None}))
"#;

/// Our ticket through the official module's own decoding helper, to use its exact alphabet.
const OFFICIAL_DECODE: &str = r#"
import sys, zlib, json, TLSSigAPIv2
doc = json.loads(zlib.decompress(TLSSigAPIv2.base64_decode_url(sys.argv[1].encode())))
print(doc['TLS.identifier'])
"#;

#[test]
fn our_tickets_verify_there() {
    require_official_module();
    let key = UserSigKey::new(APP, KEY);
    let t = now();
    for ident in IDENTIFIERS {
        for userbuf in [None, Some(&b"\x00\x01binary\xff"[..])] {
            let sig = key.generate_at(ident, 86400, t, userbuf);
            let out = run_python(SPEC_VERIFY, &[&APP.to_string(), KEY, &sig]);
            let got: serde_json::Value = serde_json::from_str(out.trim()).expect("json line");
            assert_eq!(got["identifier"], *ident);
            assert_eq!(got["time"], t);
            assert_eq!(got["expire"], 86400);
            let hex = userbuf.map(|b| b.iter().map(|x| format!("{x:02x}")).collect::<String>());
            assert_eq!(got["userbuf"], serde_json::json!(hex));

            let out = run_python(OFFICIAL_DECODE, &[&sig]);
            assert_eq!(out.trim_end_matches('\n'), *ident);
        }
    }

    // The Python check is not a rubber stamp: a ticket signed with another key fails there.
    let forged = UserSigKey::new(APP, "not the key").generate_at("alice", 60, t, None);
    let py = python();
    let status = Command::new(&py)
        .arg("-c")
        .arg(SPEC_VERIFY)
        .args([&APP.to_string(), KEY, &forged])
        .output()
        .expect("run python");
    assert!(
        !status.status.success(),
        "forged ticket passed the Python check"
    );
}
