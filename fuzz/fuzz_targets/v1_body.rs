//! /v1 request bodies, decoded as the HTTP layer decodes them: JSON (serde_json) and
//! MessagePack (whole body, depth-limited), for each body type of the native API.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pushgate::api::codec::decode_msgpack;
use pushgate::api::v1::{ClearTokenBody, EventsBody, MessageBody, TokenBody};

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<EventsBody>(data);
    let _ = serde_json::from_slice::<TokenBody>(data);
    let _ = serde_json::from_slice::<ClearTokenBody>(data);
    let _ = serde_json::from_slice::<MessageBody>(data);
    let _ = decode_msgpack::<EventsBody>(data);
    let _ = decode_msgpack::<TokenBody>(data);
    let _ = decode_msgpack::<ClearTokenBody>(data);
    let _ = decode_msgpack::<MessageBody>(data);
});
