//! WebSocket frames (contract.md, "WebSocket"): JSON objects in text frames, MessagePack maps
//! with named fields in binary frames, each with a `"type"` member.
//!
//! Client frames are decoded by hand rather than through serde's internally tagged enums, so that
//! every bad frame gets an error naming its problem (unknown type, which field, what was found)
//! and so that decoding neither buffers the frame nor allocates for anything but the token.
//! Unknown members are ignored, so clients may send fields a newer gateway understands.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

/// Largest frame we decode. The biggest legitimate client frame, `set_push_token`, is a few
/// hundred bytes (vendor tokens are under 200 characters); 16 KiB leaves room for growth while
/// bounding the work one frame can cause.
pub const MAX_FRAME_BYTES: usize = 16 * 1024;

/// Deepest nesting of MessagePack values we skip over (serde_json stops at 128 on its own).
const MAX_NESTING: usize = 32;

/// Longest unknown `type` echoed back in an error, so a hostile frame is not reflected in full.
const MAX_ECHOED_TYPE_CHARS: usize = 64;

/// Client → server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// Binds the vendor push token of this device under one of our certificates.
    SetPushToken {
        certificate_id: u64,
        token: String,
    },
    /// The app went to the background; `unread` is the badge count to start from.
    Background {
        #[serde(default)]
        unread: u32,
    },
    Foreground,
    Logout,
    /// The client received message `id`.
    Ack {
        id: u64,
    },
    Ping,
}

impl ClientFrame {
    /// The wire name of this frame's type.
    pub fn type_name(&self) -> &'static str {
        match self {
            ClientFrame::SetPushToken { .. } => "set_push_token",
            ClientFrame::Background { .. } => "background",
            ClientFrame::Foreground => "foreground",
            ClientFrame::Logout => "logout",
            ClientFrame::Ack { .. } => "ack",
            ClientFrame::Ping => "ping",
        }
    }

    /// Encodes the frame as a client would send it (for test clients and load tools).
    pub fn encode(&self, enc: Encoding) -> Encoded {
        encode_any(self, enc)
    }
}

/// Server → client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// A message for the user; the client answers with `ack {id}`.
    Message {
        id: u64,
        from: String,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        desc: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ext: Option<String>,
    },
    /// Another login took this device's place, or an admin kicked it; the server closes next.
    Kicked {
        reason: String,
    },
    Pong,
    Error {
        code: String,
        message: String,
    },
    /// A client request succeeded; `for` names the request type, e.g. `set_push_token`.
    Ok {
        #[serde(rename = "for", default, skip_serializing_if = "Option::is_none")]
        for_type: Option<String>,
    },
}

impl ServerFrame {
    /// The `ok` reply to `frame`.
    pub fn ok_for(frame: &ClientFrame) -> Self {
        ServerFrame::Ok {
            for_type: Some(frame.type_name().to_owned()),
        }
    }
}

impl From<&FrameError> for ServerFrame {
    fn from(err: &FrameError) -> Self {
        ServerFrame::Error {
            code: err.code().to_owned(),
            message: err.to_string(),
        }
    }
}

/// The encoding a connection speaks; a session answers in the encoding of the client's frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    #[default]
    Json,
    MsgPack,
}

/// An encoded frame, ready for a WebSocket text or binary message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encoded {
    Text(String),
    Binary(Vec<u8>),
}

/// Why a client frame was refused. The session answers with an `error` frame carrying
/// [`FrameError::code`] and this error's message, and keeps the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame is {len} bytes, more than the {max} allowed")]
    TooLarge { len: usize, max: usize },
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("unknown frame type `{0}`")]
    UnknownType(String),
    #[error("frame has no `type` member")]
    MissingType,
    #[error("bad field {0}")]
    BadField(String),
}

impl FrameError {
    /// snake_case code for the `error` frame.
    pub fn code(&self) -> &'static str {
        match self {
            FrameError::TooLarge { .. } => "frame_too_large",
            FrameError::Malformed(_) => "malformed_frame",
            FrameError::UnknownType(_) => "unknown_type",
            FrameError::MissingType => "missing_type",
            FrameError::BadField(_) => "bad_field",
        }
    }
}

/// Decodes a text (JSON) frame.
pub fn decode_text(s: &str) -> Result<ClientFrame, FrameError> {
    check_size(s.len())?;
    let raw: RawFrame<'_> =
        serde_json::from_str(s).map_err(|e| FrameError::Malformed(e.to_string()))?;
    raw.into_frame()
}

/// Decodes a binary (MessagePack) frame.
pub fn decode_binary(b: &[u8]) -> Result<ClientFrame, FrameError> {
    check_size(b.len())?;
    // A cursor rather than `from_slice`, so that trailing bytes can be refused as JSON refuses
    // them; it costs copying the short `type` string.
    let mut de = rmp_serde::Deserializer::new(std::io::Cursor::new(b));
    // Frames are flat; the default depth (1024) would let a 16 KiB frame of nested arrays
    // overflow a 2 MiB worker stack while skipping an unknown member.
    de.set_max_depth(MAX_NESTING);
    let raw = RawFrame::deserialize(&mut de).map_err(|e| FrameError::Malformed(e.to_string()))?;
    let consumed = de.position();
    if consumed != b.len() as u64 {
        return Err(FrameError::Malformed(format!(
            "{} trailing bytes after the frame",
            b.len() as u64 - consumed
        )));
    }
    raw.into_frame()
}

/// Encodes a server frame.
pub fn encode(frame: &ServerFrame, enc: Encoding) -> Encoded {
    encode_any(frame, enc)
}

fn encode_any<T: Serialize>(frame: &T, enc: Encoding) -> Encoded {
    // Frames are enums of strings and integers: neither serializer can fail on them (no maps
    // with non-string keys, no I/O). The empty fallbacks only keep this total.
    match enc {
        Encoding::Json => Encoded::Text(serde_json::to_string(frame).unwrap_or_default()),
        Encoding::MsgPack => Encoded::Binary(rmp_serde::to_vec_named(frame).unwrap_or_default()),
    }
}

fn check_size(len: usize) -> Result<(), FrameError> {
    if len > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge {
            len,
            max: MAX_FRAME_BYTES,
        });
    }
    Ok(())
}

/// The members we know, each kept as whatever scalar the client sent, so that type errors can
/// be reported per field after parsing.
#[derive(Default)]
struct RawFrame<'a> {
    ty: Option<Scalar<'a>>,
    certificate_id: Option<Scalar<'a>>,
    token: Option<Scalar<'a>>,
    unread: Option<Scalar<'a>>,
    id: Option<Scalar<'a>>,
}

impl<'a> RawFrame<'a> {
    fn into_frame(self) -> Result<ClientFrame, FrameError> {
        let ty = match self.ty {
            None | Some(Scalar::Null) => return Err(FrameError::MissingType),
            Some(Scalar::Str(s)) => s,
            Some(other) => {
                return Err(FrameError::BadField(format!(
                    "`type`: expected a string, got {}",
                    other.kind()
                )))
            }
        };
        let frame = match ty.as_ref() {
            "set_push_token" => ClientFrame::SetPushToken {
                certificate_id: required_u64(
                    "set_push_token",
                    "certificate_id",
                    self.certificate_id,
                )?,
                token: required_string("set_push_token", "token", self.token)?,
            },
            "background" => ClientFrame::Background {
                unread: match self.unread {
                    None | Some(Scalar::Null) => 0,
                    Some(v) => {
                        let n = as_u64("unread", v)?;
                        u32::try_from(n).map_err(|_| {
                            FrameError::BadField(format!(
                                "`unread`: {n} is larger than {}",
                                u32::MAX
                            ))
                        })?
                    }
                },
            },
            "foreground" => ClientFrame::Foreground,
            "logout" => ClientFrame::Logout,
            "ack" => ClientFrame::Ack {
                id: required_u64("ack", "id", self.id)?,
            },
            "ping" => ClientFrame::Ping,
            other => return Err(FrameError::UnknownType(truncate(other))),
        };
        Ok(frame)
    }
}

fn required_u64(
    frame: &str,
    field: &'static str,
    value: Option<Scalar<'_>>,
) -> Result<u64, FrameError> {
    match value {
        None | Some(Scalar::Null) => Err(missing(frame, field)),
        Some(v) => as_u64(field, v),
    }
}

/// Unsigned integers arrive as numbers, or as decimal strings from clients that keep 64-bit ids
/// out of JavaScript's doubles.
fn as_u64(field: &'static str, value: Scalar<'_>) -> Result<u64, FrameError> {
    match value {
        Scalar::U64(n) => Ok(n),
        Scalar::Str(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().map_err(|_| {
                FrameError::BadField(format!(
                    "`{field}`: {} does not fit in 64 bits",
                    truncate(&s)
                ))
            })
        }
        other => Err(FrameError::BadField(format!(
            "`{field}`: expected an unsigned integer, got {}",
            other.kind()
        ))),
    }
}

fn required_string(
    frame: &str,
    field: &'static str,
    value: Option<Scalar<'_>>,
) -> Result<String, FrameError> {
    match value {
        None | Some(Scalar::Null) => Err(missing(frame, field)),
        Some(Scalar::Str(s)) => Ok(s.into_owned()),
        Some(other) => Err(FrameError::BadField(format!(
            "`{field}`: expected a string, got {}",
            other.kind()
        ))),
    }
}

fn missing(frame: &str, field: &'static str) -> FrameError {
    FrameError::BadField(format!("`{field}`: missing, `{frame}` requires it"))
}

fn truncate(s: &str) -> String {
    match s.char_indices().nth(MAX_ECHOED_TYPE_CHARS) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

/// One member's value, as far as we care to know it.
enum Scalar<'a> {
    U64(u64),
    /// Only negative values land here; non-negative ones are `U64`.
    I64,
    F64,
    Str(Cow<'a, str>),
    Bool,
    Null,
    /// An object, array or byte string: its content was skipped.
    Nested(&'static str),
}

impl Scalar<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Scalar::U64(_) => "an unsigned integer",
            Scalar::I64 => "a negative integer",
            Scalar::F64 => "a fractional number",
            Scalar::Str(_) => "a string",
            Scalar::Bool => "a boolean",
            Scalar::Null => "null",
            Scalar::Nested(kind) => kind,
        }
    }
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Bool)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Scalar::U64(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(u64::try_from(v).map_or(Scalar::I64, Scalar::U64))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Scalar::F64)
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Self::Value, E> {
        Ok(Scalar::Nested("a byte string"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Nested("an array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Nested("an object"))
    }
}

/// The member names we know; anything else is skipped.
enum Member {
    Type,
    CertificateId,
    Token,
    Unread,
    Id,
    Other,
}

impl<'de> Deserialize<'de> for Member {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MemberVisitor;

        impl Visitor<'_> for MemberVisitor {
            type Value = Member;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Member, E> {
                Ok(match v {
                    "type" => Member::Type,
                    "certificate_id" => Member::CertificateId,
                    "token" => Member::Token,
                    "unread" => Member::Unread,
                    "id" => Member::Id,
                    _ => Member::Other,
                })
            }

            // MessagePack maps may have non-string keys; they are nobody's members.
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Member, E> {
                Ok(Member::Other)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Member, E> {
                Ok(Member::Other)
            }
            fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Member, E> {
                Ok(Member::Other)
            }
        }

        deserializer.deserialize_identifier(MemberVisitor)
    }
}

impl<'de> Deserialize<'de> for RawFrame<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FrameVisitor;

        impl<'de> Visitor<'de> for FrameVisitor {
            type Value = RawFrame<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a frame object (map) with a \"type\" member")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawFrame<'de>, A::Error> {
                let mut raw = RawFrame::default();
                while let Some(member) = map.next_key::<Member>()? {
                    let (slot, name) = match member {
                        Member::Type => (&mut raw.ty, "type"),
                        Member::CertificateId => (&mut raw.certificate_id, "certificate_id"),
                        Member::Token => (&mut raw.token, "token"),
                        Member::Unread => (&mut raw.unread, "unread"),
                        Member::Id => (&mut raw.id, "id"),
                        Member::Other => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    if slot.is_some() {
                        return Err(de::Error::duplicate_field(name));
                    }
                    *slot = Some(map.next_value()?);
                }
                Ok(raw)
            }
        }

        deserializer.deserialize_map(FrameVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all_client_frames() -> Vec<ClientFrame> {
        vec![
            ClientFrame::SetPushToken {
                certificate_id: 123,
                token: "AbC/regId+xyz==".into(),
            },
            ClientFrame::Background { unread: 7 },
            ClientFrame::Background { unread: 0 },
            ClientFrame::Foreground,
            ClientFrame::Logout,
            ClientFrame::Ack { id: u64::MAX },
            ClientFrame::Ping,
        ]
    }

    fn decode(enc: &Encoded) -> Result<ClientFrame, FrameError> {
        match enc {
            Encoded::Text(s) => decode_text(s),
            Encoded::Binary(b) => decode_binary(b),
        }
    }

    fn msgpack(v: &serde_json::Value) -> Vec<u8> {
        rmp_serde::to_vec_named(v).expect("msgpack")
    }

    /// Decodes the same document as JSON text and as MessagePack; both must agree.
    fn both(v: serde_json::Value) -> Result<ClientFrame, FrameError> {
        let text = decode_text(&v.to_string());
        let bin = decode_binary(&msgpack(&v));
        assert_eq!(text, bin, "JSON and MessagePack disagree on {v}");
        text
    }

    #[test]
    fn client_frames_round_trip_in_both_encodings() {
        for frame in all_client_frames() {
            for enc in [Encoding::Json, Encoding::MsgPack] {
                let wire = frame.encode(enc);
                assert_eq!(decode(&wire), Ok(frame.clone()), "{wire:?}");
            }
        }
    }

    #[test]
    fn wire_shapes_match_the_contract() {
        assert_eq!(
            decode_text(r#"{"type":"set_push_token","certificate_id":9,"token":"t"}"#),
            Ok(ClientFrame::SetPushToken {
                certificate_id: 9,
                token: "t".into()
            })
        );
        assert_eq!(
            decode_text(r#"{"type":"background"}"#),
            Ok(ClientFrame::Background { unread: 0 })
        );
        assert_eq!(
            decode_text(r#" { "unread" : 3 , "type" : "background" } "#),
            Ok(ClientFrame::Background { unread: 3 })
        );
        assert_eq!(
            decode_text(r#"{"type":"ack","id":"18446744073709551615"}"#),
            Ok(ClientFrame::Ack { id: u64::MAX })
        );
        // Unknown members are ignored, whatever they hold.
        assert_eq!(
            both(serde_json::json!({"type":"ping","v":2,"extra":{"a":[1,{"b":null}]}})),
            Ok(ClientFrame::Ping)
        );
        // Escaped strings are decoded.
        assert_eq!(
            decode_text(r#"{"type":"set_push_token","certificate_id":1,"token":"a\"b\u00e9"}"#),
            Ok(ClientFrame::SetPushToken {
                certificate_id: 1,
                token: "a\"bé".into()
            })
        );
        // MessagePack from clients that write integers as signed or narrow types.
        // {"type": "ack", "id": int32 5}
        let buf = b"\x82\xa4type\xa3ack\xa2id\xd2\x00\x00\x00\x05";
        assert_eq!(decode_binary(buf), Ok(ClientFrame::Ack { id: 5 }));
        // {"type": "ack", "id": int8 -1}
        let buf = b"\x82\xa4type\xa3ack\xa2id\xd0\xff";
        assert!(decode_binary(buf).is_err());
        // Trailing bytes after the map are refused, as in JSON.
        let buf = b"\x81\xa4type\xa4ping\xc0";
        assert!(matches!(decode_binary(buf), Err(FrameError::Malformed(_))));
    }

    #[test]
    fn server_frames_encode_as_specified() {
        let msg = ServerFrame::Message {
            id: 1,
            from: "carol".into(),
            text: "hi".into(),
            title: None,
            desc: Some("d".into()),
            ext: None,
        };
        assert_eq!(
            encode(&msg, Encoding::Json),
            Encoded::Text(
                r#"{"type":"message","id":1,"from":"carol","text":"hi","desc":"d"}"#.into()
            )
        );
        assert_eq!(
            encode(&ServerFrame::Pong, Encoding::Json),
            Encoded::Text(r#"{"type":"pong"}"#.into())
        );
        assert_eq!(
            encode(&ServerFrame::ok_for(&ClientFrame::Ping), Encoding::Json),
            Encoded::Text(r#"{"type":"ok","for":"ping"}"#.into())
        );
        assert_eq!(
            encode(&ServerFrame::Ok { for_type: None }, Encoding::Json),
            Encoded::Text(r#"{"type":"ok"}"#.into())
        );

        let frames = [
            msg,
            ServerFrame::Kicked {
                reason: "login_elsewhere".into(),
            },
            ServerFrame::Pong,
            ServerFrame::from(&FrameError::MissingType),
            ServerFrame::ok_for(&ClientFrame::Logout),
        ];
        for frame in frames {
            match encode(&frame, Encoding::MsgPack) {
                Encoded::Binary(b) => {
                    // Named fields: a map whose keys are the member names.
                    let generic: serde_json::Value = rmp_serde::from_slice(&b).expect("map");
                    assert!(generic.get("type").is_some(), "{generic}");
                    let back: ServerFrame = rmp_serde::from_slice(&b).expect("decode");
                    assert_eq!(back, frame);
                }
                other => panic!("{other:?}"),
            }
            match encode(&frame, Encoding::Json) {
                Encoded::Text(s) => {
                    let back: ServerFrame = serde_json::from_str(&s).expect("decode");
                    assert_eq!(back, frame);
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn too_large() {
        let big = format!(
            r#"{{"type":"ping","pad":"{}"}}"#,
            "x".repeat(MAX_FRAME_BYTES)
        );
        let err = decode_text(&big).expect_err("too large");
        assert!(matches!(
            err,
            FrameError::TooLarge {
                max: MAX_FRAME_BYTES,
                ..
            }
        ));
        assert_eq!(err.code(), "frame_too_large");
        let err = decode_binary(&vec![0u8; MAX_FRAME_BYTES + 1]).expect_err("too large");
        assert_eq!(
            err,
            FrameError::TooLarge {
                len: MAX_FRAME_BYTES + 1,
                max: MAX_FRAME_BYTES
            }
        );
    }

    #[test]
    fn malformed() {
        for text in [
            "",
            "{",
            "[]",
            r#"["ping"]"#,
            "42",
            "null",
            r#"{"type":"ping"} x"#,
        ] {
            let err = decode_text(text).expect_err(text);
            assert!(matches!(err, FrameError::Malformed(_)), "{text}: {err:?}");
            assert_eq!(err.code(), "malformed_frame");
        }
        let duplicate = decode_text(r#"{"type":"ping","type":"logout"}"#).expect_err("dup");
        assert!(duplicate.to_string().contains("type"), "{duplicate}");
        for bin in [&[][..], &[0xc1], &[0x91, 0xa4], &[0x2a], &[0x80, 0x00]] {
            let err = decode_binary(bin).expect_err("bad msgpack");
            assert!(matches!(err, FrameError::Malformed(_)), "{bin:?}: {err:?}");
        }
    }

    #[test]
    fn missing_and_unknown_type() {
        assert_eq!(both(serde_json::json!({})), Err(FrameError::MissingType));
        assert_eq!(
            both(serde_json::json!({"id": 1})),
            Err(FrameError::MissingType)
        );
        assert_eq!(
            both(serde_json::json!({"type": null})),
            Err(FrameError::MissingType)
        );
        let err = both(serde_json::json!({"type": "subscribe"})).expect_err("unknown");
        assert_eq!(err, FrameError::UnknownType("subscribe".into()));
        assert_eq!(err.code(), "unknown_type");
        assert_eq!(err.to_string(), "unknown frame type `subscribe`");
        // Types are case-sensitive, like every member name.
        assert_eq!(
            both(serde_json::json!({"type": "Ping"})),
            Err(FrameError::UnknownType("Ping".into()))
        );
        let long = "y".repeat(10_000);
        match both(serde_json::json!({ "type": long })) {
            Err(FrameError::UnknownType(echo)) => assert!(echo.chars().count() <= 65),
            other => panic!("{other:?}"),
        }
        let err = both(serde_json::json!({"type": 7})).expect_err("not a string");
        assert_eq!(err.code(), "bad_field");
        assert!(err.to_string().contains("`type`"), "{err}");
    }

    #[test]
    fn bad_fields_name_the_field() {
        let cases = [
            (serde_json::json!({"type":"ack"}), "`id`", "missing"),
            (
                serde_json::json!({"type":"ack","id":null}),
                "`id`",
                "missing",
            ),
            (
                serde_json::json!({"type":"ack","id":-1}),
                "`id`",
                "negative",
            ),
            (
                serde_json::json!({"type":"ack","id":1.5}),
                "`id`",
                "fractional",
            ),
            (
                serde_json::json!({"type":"ack","id":"12a"}),
                "`id`",
                "a string",
            ),
            (
                serde_json::json!({"type":"ack","id":[1]}),
                "`id`",
                "an array",
            ),
            (
                serde_json::json!({"type":"ack","id":"99999999999999999999"}),
                "`id`",
                "64 bits",
            ),
            (
                serde_json::json!({"type":"set_push_token","token":"t"}),
                "`certificate_id`",
                "missing",
            ),
            (
                serde_json::json!({"type":"set_push_token","certificate_id":true,"token":"t"}),
                "`certificate_id`",
                "a boolean",
            ),
            (
                serde_json::json!({"type":"set_push_token","certificate_id":1}),
                "`token`",
                "missing",
            ),
            (
                serde_json::json!({"type":"set_push_token","certificate_id":1,"token":{"a":1}}),
                "`token`",
                "an object",
            ),
            (
                serde_json::json!({"type":"background","unread":"x"}),
                "`unread`",
                "a string",
            ),
            (
                serde_json::json!({"type":"background","unread":u64::from(u32::MAX) + 1}),
                "`unread`",
                "larger",
            ),
        ];
        for (doc, field, problem) in cases {
            let err = both(doc.clone()).expect_err("bad field");
            assert!(matches!(err, FrameError::BadField(_)), "{doc}: {err:?}");
            assert_eq!(err.code(), "bad_field");
            let message = err.to_string();
            assert!(message.contains(field), "{doc}: {message}");
            assert!(message.contains(problem), "{doc}: {message}");
        }
    }

    #[test]
    fn error_frame_from_frame_error() {
        let err = FrameError::UnknownType("x".into());
        assert_eq!(
            ServerFrame::from(&err),
            ServerFrame::Error {
                code: "unknown_type".into(),
                message: "unknown frame type `x`".into()
            }
        );
    }

    #[test]
    fn deep_nesting_is_refused_or_skipped_without_overflow() {
        // An unknown member holding arrays nested as deep as the size cap allows.
        let depth = MAX_FRAME_BYTES - 32;
        let mut bin = vec![0x82, 0xa4];
        bin.extend_from_slice(b"type");
        bin.extend_from_slice(&[0xa4]);
        bin.extend_from_slice(b"ping");
        bin.extend_from_slice(&[0xa1, b'x']);
        bin.extend(std::iter::repeat_n(0x91u8, depth));
        bin.push(0xc0);
        assert!(decode_binary(&bin).is_err());

        // serde_json skips ignored values without recursing, so depth costs it nothing.
        let nested = format!("{}{}", "[".repeat(depth / 2), "]".repeat(depth / 2));
        let text = format!(r#"{{"type":"ping","x":{nested}}}"#);
        assert_eq!(decode_text(&text), Ok(ClientFrame::Ping));
        let text = format!(r#"{{"type":"ack","id":{nested}}}"#);
        assert!(matches!(decode_text(&text), Err(FrameError::BadField(_))));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_binary(&bytes);
            if let Ok(s) = std::str::from_utf8(&bytes) {
                let _ = decode_text(s);
            }
        }

        #[test]
        fn arbitrary_strings_never_panic(s in any::<String>()) {
            let _ = decode_text(&s);
        }

        #[test]
        fn arbitrary_json_objects_never_panic(
            ty in proptest::option::of(prop_oneof![
                Just("ack".to_owned()), Just("set_push_token".to_owned()),
                Just("background".to_owned()), any::<String>()]),
            id in proptest::option::of(any::<i64>()),
            token in proptest::option::of(any::<String>()),
            unread in proptest::option::of(any::<u64>()),
        ) {
            let mut doc = serde_json::Map::new();
            if let Some(ty) = ty { doc.insert("type".into(), ty.into()); }
            if let Some(id) = id {
                doc.insert("id".into(), id.into());
                doc.insert("certificate_id".into(), id.into());
            }
            if let Some(token) = token { doc.insert("token".into(), token.into()); }
            if let Some(unread) = unread { doc.insert("unread".into(), unread.into()); }
            let _ = both(serde_json::Value::Object(doc));
        }

        #[test]
        fn encoded_client_frames_always_decode(
            certificate_id in any::<u64>(), token in any::<String>(),
            unread in any::<u32>(), id in any::<u64>(),
        ) {
            for frame in [
                ClientFrame::SetPushToken { certificate_id, token: token.clone() },
                ClientFrame::Background { unread },
                ClientFrame::Ack { id },
            ] {
                for enc in [Encoding::Json, Encoding::MsgPack] {
                    prop_assert_eq!(decode(&frame.encode(enc)), Ok(frame.clone()));
                }
            }
        }
    }
}
