//! Honor's send answer: any body under any HTTP status.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pushgate::providers::honor::classify;

fuzz_target!(|data: &[u8]| {
    let (status, body) = match data.split_first() {
        Some((s, rest)) => (u16::from(*s) * 4, rest),
        None => (200, data),
    };
    let reply = classify(status, body);
    let _ = reply.class();
    let _ = reply.request_id();
});
