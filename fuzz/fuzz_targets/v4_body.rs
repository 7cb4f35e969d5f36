//! /v4 TIM REST bodies: the JSON object, then every parser the handlers run on it (the message,
//! its MsgBody and OfflinePushInfo, the recipients of sendmsg and batchsendmsg).
#![no_main]
use libfuzzer_sys::fuzz_target;
use pushgate::api::v4::message::{
    parse_msg_body, parse_offline_push_info, parse_to_account, parse_to_accounts, TimMessage,
};

fuzz_target!(|data: &[u8]| {
    let Ok(serde_json::Value::Object(body)) = serde_json::from_slice(data) else {
        return;
    };
    if let Ok(m) = TimMessage::parse(&body) {
        let _ = m.push_plan();
        let _ = m.dedupe_key("admin", "alice");
    }
    let _ = parse_msg_body(body.get("MsgBody"));
    let _ = parse_offline_push_info(body.get("OfflinePushInfo"));
    let _ = parse_to_account(&body);
    let _ = parse_to_accounts(&body, 90003);
});
