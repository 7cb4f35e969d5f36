//! vivo's answers: send, `saveListPayload` and the auth call.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pushgate::providers::vivo::reply::{classify, classify_auth, classify_list_payload};

fuzz_target!(|data: &[u8]| {
    let (status, body) = match data.split_first() {
        Some((s, rest)) => (u16::from(*s) * 4, rest),
        None => (200, data),
    };
    let _ = classify(status, body).class();
    let _ = classify_list_payload(status, body);
    let _ = classify_auth(status, body);
});
