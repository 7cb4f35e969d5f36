//! Meizu's answers: send (per-target `value` map) and the redirect it may answer with.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pushgate::providers::meizu::reply::{classify, redirect};

fuzz_target!(|data: &[u8]| {
    let (status, body) = match data.split_first() {
        Some((s, rest)) => (u16::from(*s) * 4, rest),
        None => (200, data),
    };
    let _ = classify(status, body).class();
    let _ = redirect(body);
});
