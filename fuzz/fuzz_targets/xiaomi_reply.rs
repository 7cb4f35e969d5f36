//! The Xiaomi reply parser: any body under any HTTP status.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pushgate::providers::xiaomi::classify;

fuzz_target!(|data: &[u8]| {
    let (status, body) = match data.split_first() {
        Some((s, rest)) => (u16::from(*s) * 4, rest),
        None => (200, data),
    };
    let reply = classify(status, body);
    let _ = reply.class();
    let _ = reply.retryable();
    let _ = reply.trace_id();
});
