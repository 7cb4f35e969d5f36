//! JSON or MessagePack (rmp-serde, named fields) bodies, chosen by `Content-Type` for requests
//! and by `Accept` for responses.

use super::error::ApiError;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::future::Future;
use std::pin::Pin;

pub const MSGPACK: &str = "application/msgpack";

fn is_msgpack(v: Option<&header::HeaderValue>) -> bool {
    v.and_then(|v| v.to_str().ok()).is_some_and(|s| {
        contains_ignoring_case(s, "application/msgpack")
            || contains_ignoring_case(s, "application/x-msgpack")
    })
}

/// Whether `haystack` contains `needle` (ASCII), case aside; no lower-cased copy (this runs
/// on every request's `Content-Type` and `Accept`).
fn contains_ignoring_case(haystack: &str, needle: &str) -> bool {
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// Whether the client asked for MessagePack answers.
pub fn wants_msgpack(req: &HttpRequest) -> bool {
    is_msgpack(req.headers().get(header::ACCEPT))
}

/// A request body decoded from JSON or MessagePack.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Body<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let content_type = req.headers().get(header::CONTENT_TYPE);
        let msgpack = is_msgpack(content_type);
        let ct = content_type.and_then(|v| v.to_str().ok()).unwrap_or("");
        // The lower-cased type is kept only for the refusal's message.
        let unsupported = (!msgpack && !ct.is_empty() && !contains_ignoring_case(ct, "json"))
            .then(|| ct.to_ascii_lowercase());
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            if let Some(ct) = unsupported {
                return Err(ApiError::new(
                    actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    format!("Content-Type '{ct}' is not supported; send application/json or application/msgpack"),
                ));
            }
            let bytes = bytes.await.map_err(|e| {
                let too_large = matches!(
                    e.as_error::<actix_web::error::PayloadError>(),
                    Some(actix_web::error::PayloadError::Overflow)
                );
                if too_large {
                    ApiError::new(
                        actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
                        "body_too_large",
                        "the request body is larger than the configured limit",
                    )
                } else {
                    ApiError::bad_request(
                        "unreadable_body",
                        format!("the request body could not be read: {e}"),
                    )
                }
            })?;
            if bytes.is_empty() {
                return Err(ApiError::bad_request(
                    "empty_body",
                    "the request body is empty",
                ));
            }
            let value = if msgpack {
                decode_msgpack(&bytes)?
            } else {
                serde_json::from_slice(&bytes).map_err(|e| {
                    let mut de = serde_json::Deserializer::from_slice(&bytes);
                    named(
                        format!("the JSON body is not valid: {e}"),
                        serde_path_to_error::deserialize::<_, T>(&mut de)
                            .err()
                            .map(|e| e.path().to_string()),
                    )
                })?
            };
            Ok(Body(value))
        })
    }
}

/// A body that does not decode, with the member at fault named in `field` (`events[0].unread`,
/// `to`) and the message. The path comes from decoding a second time with the path tracked, which
/// costs nothing on the way that succeeds; an error at the top level (bad syntax, a missing
/// member) has no path beyond `.` and names no field.
fn named(message: String, path: Option<String>) -> ApiError {
    let error = ApiError::bad_request("malformed_body", message);
    match path.filter(|p| p != ".") {
        Some(p) => {
            let message = format!("{} (at `{p}`)", error.detail.message);
            ApiError::bad_request("malformed_body", message).with_field(p)
        }
        None => error,
    }
}

/// JSON's nesting limit (serde_json refuses deeper than 128), so that a small MessagePack body of
/// nested arrays cannot overflow a worker's stack while an unknown member is skipped.
const MAX_MSGPACK_DEPTH: usize = 128;

/// Decodes one MessagePack value that must fill the whole body: trailing bytes are refused, as
/// JSON refuses them and as WebSocket frames do.
pub fn decode_msgpack<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let malformed = |detail: String| {
        ApiError::bad_request(
            "malformed_body",
            format!("the MessagePack body is not valid: {detail}"),
        )
    };
    let mut de = rmp_serde::Deserializer::new(std::io::Cursor::new(bytes));
    de.set_max_depth(MAX_MSGPACK_DEPTH);
    let value = T::deserialize(&mut de).map_err(|e| {
        let mut again = rmp_serde::Deserializer::new(std::io::Cursor::new(bytes));
        again.set_max_depth(MAX_MSGPACK_DEPTH);
        let path = serde_path_to_error::deserialize::<_, T>(&mut again)
            .err()
            .map(|e| e.path().to_string());
        named(format!("the MessagePack body is not valid: {e}"), path)
    })?;
    let consumed = de.position();
    if consumed != bytes.len() as u64 {
        return Err(malformed(format!(
            "{} trailing bytes after the value",
            bytes.len() as u64 - consumed
        )));
    }
    Ok(value)
}

/// Serializes `value` as JSON or MessagePack, as the request's `Accept` asks.
pub fn reply<T: Serialize>(
    req: &HttpRequest,
    status: actix_web::http::StatusCode,
    value: &T,
) -> HttpResponse {
    if wants_msgpack(req) {
        match rmp_serde::to_vec_named(value) {
            Ok(b) => HttpResponse::build(status).content_type(MSGPACK).body(b),
            Err(e) => ApiError::new(
                actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("encoding the answer failed: {e}"),
            )
            .into(),
        }
    } else {
        HttpResponse::build(status).json(value)
    }
}

/// Errors are built without the request (`ResponseError`), so they are JSON; this tells whether
/// an answer is such an error for a client that asked for MessagePack, to be turned into
/// MessagePack ([`error_as_msgpack`]): the same structure (`{"error":{"code","message",…}}`) as
/// every other answer it gets. `Accept` is read only for error answers.
pub fn wants_msgpack_error<B>(res: &ServiceResponse<B>) -> bool {
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return false;
    }
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    is_json && wants_msgpack(res.request())
}

/// A JSON error answer as MessagePack (see [`wants_msgpack_error`]); an answer that is not our
/// error shape after all stays as it was.
pub async fn error_as_msgpack(
    res: ServiceResponse<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let (req, res) = res.into_parts();
    let (mut res, body) = res.into_parts();
    let json = actix_web::body::to_bytes(body).await.map_err(|e| {
        let e: Box<dyn std::error::Error> = e.into();
        actix_web::error::ErrorInternalServerError(format!("reading an error body: {e}"))
    })?;
    let packed = serde_json::from_slice::<serde_json::Value>(&json)
        .ok()
        .and_then(|v| rmp_serde::to_vec_named(&v).ok());
    let res = match packed {
        Some(bytes) => {
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(MSGPACK),
            );
            res.set_body(BoxBody::new(bytes))
        }
        // Not our error shape after all: leave it as it was.
        None => res.set_body(BoxBody::new(json)),
    };
    Ok(ServiceResponse::new(req, res))
}

impl From<ApiError> for HttpResponse {
    fn from(e: ApiError) -> HttpResponse {
        actix_web::ResponseError::error_response(&e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Probe {
        user: String,
    }

    #[test]
    fn msgpack_is_recognised_in_any_case_and_among_other_types() {
        let v = |s: &'static str| header::HeaderValue::from_static(s);
        assert!(is_msgpack(Some(&v("application/msgpack"))));
        assert!(is_msgpack(Some(&v("Application/X-MsgPack; q=1"))));
        assert!(is_msgpack(Some(&v("text/html, APPLICATION/MSGPACK"))));
        assert!(!is_msgpack(Some(&v("application/json"))));
        assert!(!is_msgpack(Some(&v("application/msg"))));
        assert!(!is_msgpack(None));
    }

    #[test]
    fn a_msgpack_body_with_trailing_bytes_is_refused_like_a_websocket_frame() {
        let mut body = rmp_serde::to_vec_named(&serde_json::json!({"user": "alice"})).unwrap();
        let whole: Probe = decode_msgpack(&body).expect("one whole value");
        assert_eq!(whole.user, "alice");
        body.extend_from_slice(&[0xc0, 0xc0]);
        let e = decode_msgpack::<Probe>(&body).expect_err("trailing bytes");
        assert_eq!(e.detail.code, "malformed_body");
        assert!(
            e.detail.message.contains("2 trailing bytes"),
            "{}",
            e.detail.message
        );
    }

    #[test]
    fn deeply_nested_msgpack_is_refused_not_a_stack_overflow() {
        // {"user": [[[[ ... 100k deep: 0x91 = fixarray of one element.
        let mut body = vec![0x81, 0xa4, b'u', b's', b'e', b'r'];
        body.extend(std::iter::repeat_n(0x91, 100_000));
        body.push(0xc0);
        let e = decode_msgpack::<serde_json::Value>(&body).expect_err("too deep");
        assert_eq!(e.detail.code, "malformed_body");
    }
}
