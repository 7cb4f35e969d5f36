//! Xiaomi's reply envelope and ids (spec §4.1, §4.2).

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use rand::Rng;
use serde_json::{json, Map, Value};

pub(crate) const CODE_OK: i64 = 0;
pub(crate) const CODE_NO_VALID_TARGETS: i64 = 20301;
pub(crate) const CODE_BAD_SECRET: i64 = 21301;
pub(crate) const CODE_MISSING_PARAM: i64 = 10016;
pub(crate) const CODE_ILLEGAL_PARAM: i64 = 10017;
pub(crate) const CODE_REQUEST_TOO_LONG: i64 = 10018;
pub(crate) const CODE_API_NOT_FOUND: i64 = 10020;
pub(crate) const CODE_METHOD_NOT_SUPPORTED: i64 = 10021;
pub(crate) const CODE_CONTENT_TOO_LONG: i64 = 65009;
pub(crate) const CODE_EMPTY_TITLE: i64 = 65011;
pub(crate) const CODE_TOO_MANY_EXTRAS: i64 = 65014;
pub(crate) const CODE_EXTRAS_TOO_LONG: i64 = 65015;
pub(crate) const CODE_QUOTA: i64 = 200001;

/// The Chinese `description` Xiaomi sends with a code. Texts seen in captures are verbatim
/// (成功, 发送消息失败, 认证失败, 未提供参数); the rest translate the official code table (§4.3).
pub(crate) fn description(code: i64) -> &'static str {
    match code {
        0 => "成功",
        1 => "内部错误",
        10008 => "参数错误，请参考API文档",
        10016 => "缺少必选参数",
        10017 => "非法的参数值",
        10018 => "请求长度超过限制",
        10020 => "接口不存在",
        10021 => "请求的HTTP方法不支持",
        10027 => "应用的API调用太频繁",
        20301 => "发送消息失败",
        21301 => "认证失败",
        22022 => "非法的包名",
        65009 => "消息内容太长",
        65011 => "未提供参数",
        65014 => "键值对数目太多",
        65015 => "键值对总长度太长",
        200001 => "超出每日推送额度",
        _ => "错误",
    }
}

/// A refusal: Xiaomi's code and English reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reject {
    pub code: i64,
    pub reason: String,
}

impl Reject {
    pub fn new(code: i64, reason: impl Into<String>) -> Self {
        Reject {
            code,
            reason: reason.into(),
        }
    }
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A 22-char id shaped like Xiaomi's (`Xcm07b77488763663927bm`, `scm01b20510561935064bK`):
/// a kind letter, `cm`, two digits, `b`, fourteen digits, two alphanumerics.
pub(crate) fn xiaomi_id(kind: char) -> String {
    let mut rng = rand::rng();
    let a: u8 = rng.random_range(0..100);
    let b: u64 = rng.random_range(0..100_000_000_000_000);
    let c1 = char::from(ALNUM[rng.random_range(0..ALNUM.len())]);
    let c2 = char::from(ALNUM[rng.random_range(0..ALNUM.len())]);
    format!("{kind}cm{a:02}b{b:014}{c1}{c2}")
}

pub(crate) fn json_response(status: StatusCode, body: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json;charset=UTF-8")
        .body(body.to_string())
}

/// `{"result":"error","code":…,"description":…,"reason":…,"trace_id":…}`.
pub(crate) fn error_body(reject: &Reject, trace_id: &str) -> Value {
    json!({
        "result": "error",
        "code": reject.code,
        "description": description(reject.code),
        "reason": reject.reason,
        "trace_id": trace_id,
    })
}

/// `{"result":"ok","code":0,"description":"成功","info":"Received push messages for N REGID",…}`.
pub(crate) fn ok_body(trace_id: &str, accepted: usize, data: Map<String, Value>) -> Value {
    json!({
        "result": "ok",
        "code": CODE_OK,
        "description": description(CODE_OK),
        "info": format!("Received push messages for {accepted} REGID"),
        "trace_id": trace_id,
        "data": data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_look_like_xiaomi() {
        for _ in 0..100 {
            let id = xiaomi_id('X');
            assert_eq!(id.len(), 22, "{id}");
            assert!(id.starts_with("Xcm"));
            assert!(id.chars().all(|c| c.is_ascii_alphanumeric()));
        }
        assert!(xiaomi_id('s').starts_with("scm"));
    }
}
