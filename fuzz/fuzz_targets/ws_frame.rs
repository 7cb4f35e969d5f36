//! The WebSocket frame decoder: text frames as JSON, binary frames as MessagePack.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pushgate::session::frame::{decode_binary, decode_text};

fuzz_target!(|data: &[u8]| {
    let _ = decode_binary(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = decode_text(s);
    }
});
