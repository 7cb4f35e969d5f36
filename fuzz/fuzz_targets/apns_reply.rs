//! APNs' answer: status, `apns-id`, Retry-After and the JSON reason body.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pushgate::providers::apns::{classify, ApnsReply};
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    let (status, rest) = match data.split_first() {
        Some((s, rest)) => (u16::from(*s) * 4, rest),
        None => (200, data),
    };
    let (retry, body) = match rest.split_first() {
        Some((r, rest)) => (*r, rest),
        None => (0, rest),
    };
    let outcome = classify(&ApnsReply::Http {
        status,
        apns_id: (retry & 1 == 1).then(|| "0A1B2C3D-0000-0000-0000-000000000000".to_owned()),
        retry_after: (retry > 1).then(|| Duration::from_secs(u64::from(retry))),
        body: body.to_vec().into(),
    });
    let _ = outcome.class();
    let _ = outcome.unbinds();
});
