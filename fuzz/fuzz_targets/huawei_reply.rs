//! Huawei's replies: the send answer (with the illegal-token list inside `msg`), the OAuth token
//! answer (Honor's too) and the receipt body and callback header it posts to us.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pushgate::providers::huawei::auth::parse_token_reply;
use pushgate::providers::huawei::classify;
use pushgate::providers::huawei::reply::illegal_tokens;
use pushgate::providers::huawei_receipt::{parse_statuses, verify_callback_id, CallbackAuth};

fuzz_target!(|data: &[u8]| {
    let (status, body) = match data.split_first() {
        Some((s, rest)) => (u16::from(*s) * 4, rest),
        None => (200, data),
    };
    let reply = classify(status, body);
    let _ = reply.class();
    let _ = reply.request_id();
    let _ = parse_token_reply(status, body);
    let text = String::from_utf8_lossy(body);
    let _ = illegal_tokens(&text);
    let _ = parse_statuses(body, "10086", 1_700_000_000_000);
    let auth = CallbackAuth {
        user_name: "user".into(),
        key: "key".into(),
    };
    let _ = verify_callback_id(Some(&text), &auth, 1_700_000_000_000);
});
