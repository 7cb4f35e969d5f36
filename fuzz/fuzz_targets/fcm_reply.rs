//! FCM's answers: the send reply with its Retry-After header, and the token endpoint's.
//! Input: status / 4, the header's length (mod 32), the header, the body.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pushgate::providers::fcm::reply::{classify_token, parse_retry_after};
use pushgate::providers::fcm::{classify, FcmReply};

fuzz_target!(|data: &[u8]| {
    let (status, rest) = match data.split_first() {
        Some((s, rest)) => (u16::from(*s) * 4, rest),
        None => (200, data),
    };
    let (header, body) = match rest.split_first() {
        Some((n, rest)) => rest.split_at(usize::from(*n % 32).min(rest.len())),
        None => (&[][..], rest),
    };
    let header = String::from_utf8_lossy(header);
    let retry_after = parse_retry_after(Some(&header));
    let outcome = classify(&FcmReply::Http {
        status,
        retry_after,
        body: body.to_vec().into(),
    });
    let _ = outcome.class();
    let _ = outcome.unbinds();
    let _ = classify_token(status, body);
});
