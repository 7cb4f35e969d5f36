//! UserSig v2 tickets (spec/usersig-v2.md).
//!
//! A ticket is `base64'(zlib(json))` where `base64'` is standard base64 with `+ / =` replaced by
//! `* - _`, and the JSON carries the signed fields plus `TLS.sig`, an HMAC-SHA256 over
//! newline-terminated `TLS.<name>:<value>` lines. Tickets from Tencent's own generators (Python,
//! Go, Java, ...) verify here and ours verify there; `tests/usersig_compat.rs` checks that against
//! the official Python package.

use std::fmt;
use std::io::Read;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use flate2::Compression;
use hmac::{Hmac, Mac};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// How far in the future `TLS.time` may lie before a ticket is refused: issuers and pushgate
/// rarely share a clock, and a few minutes of NTP drift must not lock users out.
pub const DEFAULT_CLOCK_SKEW_SECS: u64 = 300;

/// Upper bound on the inflated JSON. A real ticket is 200–400 bytes (a TRTC PrivateMapKey
/// userbuf adds about a hundred); the cap keeps a zip bomb from allocating more than this.
pub const MAX_INFLATED_BYTES: usize = 4 * 1024;

/// Upper bound on the UserSig text itself. Go's generator stores the JSON uncompressed, so a
/// maximal legitimate ticket is about 4/3 of [`MAX_INFLATED_BYTES`] plus the zlib framing.
pub const MAX_USERSIG_CHARS: usize = 8 * 1024;

/// Decoder for the standard alphabet that accepts padded and unpadded input: some generators
/// and some transports drop the trailing `_`.
const LENIENT_STANDARD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Shortest UserSig secret key accepted (config refuses shorter ones at start; the verifier
/// treats a shorter key as no key). An empty key would let anyone sign tickets, administrators
/// included; Tencent's console issues 64-character keys.
pub const MIN_SECRET_KEY_BYTES: usize = 16;

/// The one ticket check every surface uses (WebSocket login, the /v4 admin envelope): the
/// application's key, or none, in which case every ticket is refused with `KeyNotFound`.
#[derive(Debug, Clone)]
pub struct TicketVerifier {
    /// `None` when no usable key is configured.
    key: Option<UserSigKey>,
}

impl TicketVerifier {
    /// A verifier for `sdkappid`. A missing, empty or too-short key refuses every ticket, so a
    /// `Config` built in code cannot open a surface that the config loader would refuse.
    pub fn new(sdkappid: u64, secret_key: Option<&str>) -> TicketVerifier {
        TicketVerifier {
            key: secret_key
                .filter(|k| k.len() >= MIN_SECRET_KEY_BYTES)
                .map(|k| UserSigKey::new(sdkappid, k)),
        }
    }

    /// Checks `usersig` for `identifier` at `now` (unix seconds).
    pub fn verify(
        &self,
        usersig: &str,
        identifier: &str,
        now: u64,
    ) -> Result<Ticket, UserSigError> {
        self.key
            .as_ref()
            .ok_or(UserSigError::KeyNotFound)?
            .verify(usersig, identifier, now)
    }
}

/// The secret of one IM application: its sdkappid and the key its tickets are signed with.
#[derive(Clone)]
pub struct UserSigKey {
    /// The application id every ticket must name.
    sdkappid: u64,
    /// HMAC state already keyed with the secret; cloned per ticket to skip the key schedule.
    mac: HmacSha256,
    /// Allowed lead of a ticket's issue time over our clock.
    clock_skew_secs: u64,
}

impl fmt::Debug for UserSigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserSigKey")
            .field("sdkappid", &self.sdkappid)
            .field("key", &"<redacted>")
            .field("clock_skew_secs", &self.clock_skew_secs)
            .finish()
    }
}

/// The verified content of a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub identifier: String,
    pub sdkappid: u64,
    /// Issue time, unix seconds.
    pub time: u64,
    /// Validity in seconds from `time`.
    pub expire: u64,
    pub userbuf: Option<Vec<u8>>,
}

/// Why a ticket was refused. Each case has Tencent's error code and a short snake_case reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserSigError {
    #[error("usersig expired")]
    Expired,
    #[error("usersig invalid: {0}")]
    Invalid(String),
    #[error("usersig signature check failed")]
    SignatureMismatch,
    #[error("usersig identifier does not match the user")]
    IdentifierMismatch,
    #[error("usersig sdkappid does not match the application")]
    SdkAppIdMismatch,
    #[error("usersig issue time lies in the future")]
    FutureTime,
    #[error("no key is configured for this sdkappid")]
    KeyNotFound,
}

impl UserSigError {
    /// Tencent IM's error code for this case (spec/usersig-v2.md).
    pub fn tim_code(&self) -> u32 {
        match self {
            UserSigError::Expired => 70001,
            // Tencent has no code of its own for a ticket from the future (its verifiers do not
            // check); "invalid ticket" is the closest and tells the client to get a new one.
            UserSigError::Invalid(_) | UserSigError::FutureTime => 70003,
            UserSigError::SignatureMismatch => 70009,
            UserSigError::IdentifierMismatch => 70013,
            UserSigError::SdkAppIdMismatch => 70014,
            UserSigError::KeyNotFound => 70016,
        }
    }

    /// Short snake_case name of the case, used as a WebSocket close reason.
    pub fn reason(&self) -> &'static str {
        match self {
            UserSigError::Expired => "usersig_expired",
            UserSigError::Invalid(_) => "usersig_invalid",
            UserSigError::SignatureMismatch => "usersig_signature_mismatch",
            UserSigError::IdentifierMismatch => "usersig_identifier_mismatch",
            UserSigError::SdkAppIdMismatch => "usersig_sdkappid_mismatch",
            UserSigError::FutureTime => "usersig_future_time",
            UserSigError::KeyNotFound => "usersig_key_not_found",
        }
    }
}

/// The JSON document as we write it. Field order follows Tencent's generators, although a
/// verifier must not depend on it.
#[derive(Serialize)]
struct WireOut<'a> {
    #[serde(rename = "TLS.ver")]
    ver: &'static str,
    #[serde(rename = "TLS.identifier")]
    identifier: &'a str,
    #[serde(rename = "TLS.sdkappid")]
    sdkappid: u64,
    #[serde(rename = "TLS.expire")]
    expire: u64,
    #[serde(rename = "TLS.time")]
    time: u64,
    #[serde(rename = "TLS.userbuf", skip_serializing_if = "Option::is_none")]
    userbuf: Option<&'a str>,
    #[serde(rename = "TLS.sig")]
    sig: String,
}

/// The JSON document as we read it. Unknown members are ignored.
#[derive(Deserialize)]
struct WireIn {
    #[serde(rename = "TLS.ver")]
    ver: String,
    #[serde(rename = "TLS.identifier")]
    identifier: String,
    #[serde(rename = "TLS.sdkappid")]
    sdkappid: Decimal,
    #[serde(rename = "TLS.expire")]
    expire: Decimal,
    #[serde(rename = "TLS.time")]
    time: Decimal,
    #[serde(rename = "TLS.sig")]
    sig: String,
    #[serde(rename = "TLS.userbuf", default)]
    userbuf: Option<String>,
}

/// A non-negative integer member, given as a JSON number (all official generators) or as a
/// string of decimal digits (hand-rolled generators that stringify everything). `text` is what
/// the signer put in its signed line, so the HMAC is recomputed over exactly that.
struct Decimal {
    value: u64,
    text: String,
}

impl<'de> Deserialize<'de> for Decimal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DecimalVisitor;

        impl Visitor<'_> for DecimalVisitor {
            type Value = Decimal;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative integer or a string of decimal digits")
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Decimal, E> {
                Ok(Decimal {
                    value,
                    text: value.to_string(),
                })
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Decimal, E> {
                u64::try_from(v)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
                    .and_then(|v| self.visit_u64(v))
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<Decimal, E> {
                let digits_only = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
                let value = if digits_only { s.parse().ok() } else { None };
                match value {
                    Some(value) => Ok(Decimal {
                        value,
                        text: s.to_owned(),
                    }),
                    None => Err(E::invalid_value(de::Unexpected::Str(s), &self)),
                }
            }
        }

        deserializer.deserialize_any(DecimalVisitor)
    }
}

impl UserSigKey {
    /// `key` is the application's secret key as shown in the console; its UTF-8 bytes are the
    /// HMAC key.
    pub fn new(sdkappid: u64, key: impl Into<String>) -> Self {
        let key = key.into();
        // HMAC accepts keys of any length, so this cannot fail.
        let mac = match HmacSha256::new_from_slice(key.as_bytes()) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
        };
        UserSigKey {
            sdkappid,
            mac,
            clock_skew_secs: DEFAULT_CLOCK_SKEW_SECS,
        }
    }

    /// Replaces the allowed lead of a ticket's issue time over our clock.
    pub fn with_clock_skew(mut self, secs: u64) -> Self {
        self.clock_skew_secs = secs;
        self
    }

    pub fn sdkappid(&self) -> u64 {
        self.sdkappid
    }

    /// A ticket for `identifier`, issued now and valid for `expire_secs`.
    pub fn generate(&self, identifier: &str, expire_secs: u64) -> String {
        self.generate_at(identifier, expire_secs, unix_now(), None)
    }

    /// A ticket issued at `time` (unix seconds), optionally carrying `userbuf`.
    pub fn generate_at(
        &self,
        identifier: &str,
        expire_secs: u64,
        time: u64,
        userbuf: Option<&[u8]>,
    ) -> String {
        let userbuf_b64 = userbuf.map(|b| STANDARD.encode(b));
        let sdkappid = self.sdkappid.to_string();
        let digest = self.sign(
            identifier,
            &sdkappid,
            &time.to_string(),
            &expire_secs.to_string(),
            userbuf_b64.as_deref(),
        );
        let doc = WireOut {
            ver: "2.0",
            identifier,
            sdkappid: self.sdkappid,
            expire: expire_secs,
            time,
            userbuf: userbuf_b64.as_deref(),
            sig: STANDARD.encode(digest),
        };
        // Serializing a struct of strings and integers into memory cannot fail, nor can
        // compressing into a Vec; the fallbacks only keep this function total.
        let json = serde_json::to_vec(&doc).unwrap_or_default();
        let mut z = ZlibEncoder::new(Vec::with_capacity(json.len()), Compression::default());
        let compressed = std::io::Write::write_all(&mut z, &json)
            .and_then(|()| z.finish())
            .unwrap_or_default();
        to_sig_alphabet(STANDARD.encode(compressed))
    }

    /// Checks `usersig` for `identifier` at `now` (unix seconds), in the order the spec gives:
    /// decoding, version, identifier, sdkappid, signature, expiry, issue time.
    pub fn verify(
        &self,
        usersig: &str,
        identifier: &str,
        now: u64,
    ) -> Result<Ticket, UserSigError> {
        let doc = decode(usersig)?;
        if doc.ver != "2.0" {
            return Err(UserSigError::Invalid(format!(
                "TLS.ver is {:?}, expected \"2.0\"",
                doc.ver
            )));
        }
        if doc.identifier != identifier {
            return Err(UserSigError::IdentifierMismatch);
        }
        if doc.sdkappid.value != self.sdkappid {
            return Err(UserSigError::SdkAppIdMismatch);
        }

        let expected = self.sign(
            &doc.identifier,
            &doc.sdkappid.text,
            &doc.time.text,
            &doc.expire.text,
            doc.userbuf.as_deref(),
        );
        let given = LENIENT_STANDARD
            .decode(doc.sig.as_bytes())
            .map_err(|_| UserSigError::SignatureMismatch)?;
        // `ct_eq` on slices of different lengths is false without looking at the contents.
        if !bool::from(given.as_slice().ct_eq(expected.as_slice())) {
            return Err(UserSigError::SignatureMismatch);
        }

        if doc.time.value.saturating_add(doc.expire.value) < now {
            return Err(UserSigError::Expired);
        }
        if doc.time.value > now.saturating_add(self.clock_skew_secs) {
            return Err(UserSigError::FutureTime);
        }

        let userbuf = match doc.userbuf {
            Some(b64) => Some(
                LENIENT_STANDARD
                    .decode(b64.as_bytes())
                    .map_err(|e| UserSigError::Invalid(format!("TLS.userbuf: {e}")))?,
            ),
            None => None,
        };
        Ok(Ticket {
            identifier: doc.identifier,
            sdkappid: doc.sdkappid.value,
            time: doc.time.value,
            expire: doc.expire.value,
            userbuf,
        })
    }

    /// HMAC-SHA256 over the signed lines, each value exactly as it appears in the ticket.
    fn sign(
        &self,
        identifier: &str,
        sdkappid: &str,
        time: &str,
        expire: &str,
        userbuf_b64: Option<&str>,
    ) -> [u8; 32] {
        let mut mac = self.mac.clone();
        for (name, value) in [
            ("TLS.identifier:", identifier),
            ("TLS.sdkappid:", sdkappid),
            ("TLS.time:", time),
            ("TLS.expire:", expire),
        ] {
            mac.update(name.as_bytes());
            mac.update(value.as_bytes());
            mac.update(b"\n");
        }
        if let Some(userbuf) = userbuf_b64 {
            mac.update(b"TLS.userbuf:");
            mac.update(userbuf.as_bytes());
            mac.update(b"\n");
        }
        mac.finalize().into_bytes().into()
    }
}

/// Steps 5 → 3 of the spec: UserSig alphabet → base64 → zlib → JSON, bounded at every step.
fn decode(usersig: &str) -> Result<WireIn, UserSigError> {
    let invalid = |what: String| UserSigError::Invalid(what);
    if usersig.is_empty() {
        return Err(invalid("empty".into()));
    }
    if usersig.len() > MAX_USERSIG_CHARS {
        return Err(invalid(format!(
            "{} characters, more than {MAX_USERSIG_CHARS}",
            usersig.len()
        )));
    }
    let b64: String = usersig
        .chars()
        .map(|c| match c {
            '*' => '+',
            '-' => '/',
            '_' => '=',
            c => c,
        })
        .collect();
    let compressed = LENIENT_STANDARD
        .decode(b64.as_bytes())
        .map_err(|e| invalid(format!("base64: {e}")))?;

    let mut json = Vec::with_capacity(512);
    // One byte past the cap tells "exactly at the cap" from "over it".
    ZlibDecoder::new(compressed.as_slice())
        .take(MAX_INFLATED_BYTES as u64 + 1)
        .read_to_end(&mut json)
        .map_err(|e| invalid(format!("zlib: {e}")))?;
    if json.len() > MAX_INFLATED_BYTES {
        return Err(invalid(format!(
            "inflates to more than {MAX_INFLATED_BYTES} bytes"
        )));
    }
    serde_json::from_slice(&json).map_err(|e| invalid(format!("json: {e}")))
}

fn to_sig_alphabet(b64: String) -> String {
    b64.chars()
        .map(|c| match c {
            '+' => '*',
            '/' => '-',
            '=' => '_',
            c => c,
        })
        .collect()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const APP: u64 = 1_400_000_000;
    const KEY: &str = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";
    const T0: u64 = 1_700_000_000;

    fn key() -> UserSigKey {
        UserSigKey::new(APP, KEY)
    }

    fn inflate(usersig: &str) -> serde_json::Value {
        let b64: String = usersig
            .chars()
            .map(|c| match c {
                '*' => '+',
                '-' => '/',
                '_' => '=',
                c => c,
            })
            .collect();
        let z = STANDARD.decode(b64).expect("base64");
        let mut json = String::new();
        ZlibDecoder::new(z.as_slice())
            .read_to_string(&mut json)
            .expect("zlib");
        serde_json::from_str(&json).expect("json")
    }

    /// Builds a ticket from an arbitrary JSON document, as a foreign generator would.
    fn seal(doc: &serde_json::Value) -> String {
        let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
        std::io::Write::write_all(&mut z, doc.to_string().as_bytes()).expect("write");
        to_sig_alphabet(STANDARD.encode(z.finish().expect("finish")))
    }

    fn hmac_b64(lines: &str) -> String {
        let mut mac = HmacSha256::new_from_slice(KEY.as_bytes()).expect("key");
        mac.update(lines.as_bytes());
        STANDARD.encode(mac.finalize().into_bytes())
    }

    #[test]
    fn worked_check_has_exactly_the_six_members() {
        let sig = key().generate_at("alice", 86400, T0, None);
        assert!(sig
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '*' | '-' | '_')));
        let doc = inflate(&sig);
        let obj = doc.as_object().expect("object");
        let mut names: Vec<&str> = obj.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "TLS.expire",
                "TLS.identifier",
                "TLS.sdkappid",
                "TLS.sig",
                "TLS.time",
                "TLS.ver"
            ]
        );
        assert_eq!(doc["TLS.ver"], "2.0");
        assert_eq!(doc["TLS.identifier"], "alice");
        assert_eq!(doc["TLS.sdkappid"], APP);
        assert_eq!(doc["TLS.expire"], 86400);
        assert_eq!(doc["TLS.time"], T0);
        let lines =
            format!("TLS.identifier:alice\nTLS.sdkappid:{APP}\nTLS.time:{T0}\nTLS.expire:86400\n");
        assert_eq!(doc["TLS.sig"], hmac_b64(&lines));

        let ticket = key().verify(&sig, "alice", T0 + 10).expect("verifies");
        assert_eq!(
            ticket,
            Ticket {
                identifier: "alice".into(),
                sdkappid: APP,
                time: T0,
                expire: 86400,
                userbuf: None
            }
        );
    }

    #[test]
    fn userbuf_is_signed_and_returned() {
        let sig = key().generate_at("bob", 600, T0, Some(b"abc\x00\xff"));
        let doc = inflate(&sig);
        assert_eq!(doc["TLS.userbuf"], STANDARD.encode(b"abc\x00\xff"));
        let lines = format!(
            "TLS.identifier:bob\nTLS.sdkappid:{APP}\nTLS.time:{T0}\nTLS.expire:600\nTLS.userbuf:{}\n",
            STANDARD.encode(b"abc\x00\xff")
        );
        assert_eq!(doc["TLS.sig"], hmac_b64(&lines));
        let ticket = key().verify(&sig, "bob", T0).expect("verifies");
        assert_eq!(ticket.userbuf.as_deref(), Some(&b"abc\x00\xff"[..]));

        // Dropping the userbuf from the document breaks the signature.
        let mut doc = doc;
        doc.as_object_mut().expect("object").remove("TLS.userbuf");
        assert_eq!(
            key().verify(&seal(&doc), "bob", T0),
            Err(UserSigError::SignatureMismatch)
        );
    }

    #[test]
    fn generate_uses_the_clock() {
        let sig = key().generate("carol", 60);
        let ticket = key().verify(&sig, "carol", unix_now()).expect("verifies");
        assert!(ticket.time.abs_diff(unix_now()) < 5);
    }

    #[test]
    fn expiry_boundary() {
        let sig = key().generate_at("alice", 100, T0, None);
        assert!(key().verify(&sig, "alice", T0 + 100).is_ok());
        assert_eq!(
            key().verify(&sig, "alice", T0 + 101),
            Err(UserSigError::Expired)
        );
    }

    #[test]
    fn future_time_within_and_beyond_skew() {
        let sig = key().generate_at("alice", 100, T0 + DEFAULT_CLOCK_SKEW_SECS, None);
        assert!(key().verify(&sig, "alice", T0).is_ok());
        let sig = key().generate_at("alice", 100, T0 + DEFAULT_CLOCK_SKEW_SECS + 1, None);
        assert_eq!(
            key().verify(&sig, "alice", T0),
            Err(UserSigError::FutureTime)
        );
        assert!(key()
            .with_clock_skew(DEFAULT_CLOCK_SKEW_SECS + 1)
            .verify(&sig, "alice", T0)
            .is_ok());
    }

    #[test]
    fn mismatches() {
        let sig = key().generate_at("alice", 100, T0, None);
        assert_eq!(
            key().verify(&sig, "mallory", T0),
            Err(UserSigError::IdentifierMismatch)
        );
        assert_eq!(
            UserSigKey::new(APP + 1, KEY).verify(&sig, "alice", T0),
            Err(UserSigError::SdkAppIdMismatch)
        );
        assert_eq!(
            UserSigKey::new(APP, "another key").verify(&sig, "alice", T0),
            Err(UserSigError::SignatureMismatch)
        );
    }

    #[test]
    fn tampered_fields_fail_the_signature() {
        let doc = inflate(&key().generate_at("alice", 100, T0, None));
        for (field, value) in [
            ("TLS.expire", serde_json::json!(1_000_000)),
            ("TLS.time", serde_json::json!(T0 + 1)),
            ("TLS.sig", serde_json::json!("not base64 at all!")),
            ("TLS.sig", serde_json::json!(STANDARD.encode([0u8; 32]))),
            ("TLS.sig", serde_json::json!("")),
        ] {
            let mut doc = doc.clone();
            doc[field] = value;
            assert_eq!(
                key().verify(&seal(&doc), "alice", T0),
                Err(UserSigError::SignatureMismatch),
                "{field}"
            );
        }
    }

    #[test]
    fn numbers_as_strings_are_accepted_and_signed_as_given() {
        let lines =
            format!("TLS.identifier:alice\nTLS.sdkappid:{APP}\nTLS.time:{T0}\nTLS.expire:86400\n");
        let doc = serde_json::json!({
            "TLS.ver": "2.0",
            "TLS.identifier": "alice",
            "TLS.sdkappid": APP.to_string(),
            "TLS.expire": "86400",
            "TLS.time": T0.to_string(),
            "TLS.sig": hmac_b64(&lines),
        });
        let ticket = key().verify(&seal(&doc), "alice", T0).expect("verifies");
        assert_eq!(
            (ticket.sdkappid, ticket.time, ticket.expire),
            (APP, T0, 86400)
        );
    }

    #[test]
    fn go_generator_shape_is_accepted() {
        // Tencent's Go generator stores the JSON uncompressed (zlib level 0), ends it with a
        // newline, orders members its own way and escapes HTML characters.
        let lines =
            format!("TLS.identifier:a<b>&c\nTLS.sdkappid:{APP}\nTLS.time:{T0}\nTLS.expire:60\n");
        let json = format!(
            "{{\"TLS.sig\":\"{}\",\"TLS.ver\":\"2.0\",\"TLS.identifier\":\"a\\u003cb\\u003e\\u0026c\",\
             \"TLS.sdkappid\":{APP},\"TLS.expire\":60,\"TLS.time\":{T0}}}\n",
            hmac_b64(&lines)
        );
        let mut z = ZlibEncoder::new(Vec::new(), Compression::none());
        std::io::Write::write_all(&mut z, json.as_bytes()).expect("write");
        let sig = to_sig_alphabet(STANDARD.encode(z.finish().expect("finish")));
        let ticket = key().verify(&sig, "a<b>&c", T0).expect("verifies");
        assert_eq!(ticket.identifier, "a<b>&c");
    }

    #[test]
    fn unpadded_usersig_is_accepted() {
        let sig = key().generate_at("alice", 100, T0, None);
        let trimmed = sig.trim_end_matches('_');
        assert!(key().verify(trimmed, "alice", T0).is_ok());
    }

    #[test]
    fn undecodable_tickets_are_invalid() {
        let valid = inflate(&key().generate_at("alice", 100, T0, None));
        let mut bad_docs = Vec::new();
        for (field, value) in [
            ("TLS.ver", serde_json::json!("1.0")),
            ("TLS.sdkappid", serde_json::json!(-1)),
            ("TLS.sdkappid", serde_json::json!(1.5)),
            ("TLS.time", serde_json::json!("12x")),
            ("TLS.time", serde_json::json!("")),
            ("TLS.expire", serde_json::json!(null)),
            ("TLS.identifier", serde_json::json!(42)),
        ] {
            let mut doc = valid.clone();
            doc[field] = value;
            bad_docs.push(seal(&doc));
        }
        let mut missing = valid.clone();
        missing.as_object_mut().expect("object").remove("TLS.sig");
        bad_docs.push(seal(&missing));
        bad_docs.push(seal(&serde_json::json!([1, 2, 3])));

        for sig in
            bad_docs
                .iter()
                .map(String::as_str)
                .chain(["", "!!!!", "abcd", "eJzLSM3JyQcABiwCFQ__"])
        {
            let err = key().verify(sig, "alice", T0).expect_err(sig);
            assert!(matches!(err, UserSigError::Invalid(_)), "{sig}: {err:?}");
            assert_eq!(err.tim_code(), 70003);
        }
    }

    #[test]
    fn zip_bomb_is_refused_without_inflating_it() {
        // 1 MiB of spaces deflates to about 1 KiB: short enough to pass the text cap, far past
        // the inflated cap.
        let mut z = ZlibEncoder::new(Vec::new(), Compression::best());
        std::io::Write::write_all(&mut z, &vec![b' '; 1 << 20]).expect("write");
        let bomb = to_sig_alphabet(STANDARD.encode(z.finish().expect("finish")));
        assert!(bomb.len() <= MAX_USERSIG_CHARS, "{}", bomb.len());
        match key().verify(&bomb, "alice", T0) {
            Err(UserSigError::Invalid(why)) => assert!(why.contains("inflates"), "{why}"),
            other => panic!("{other:?}"),
        }
        let long = "A".repeat(MAX_USERSIG_CHARS + 1);
        assert!(matches!(
            key().verify(&long, "alice", T0),
            Err(UserSigError::Invalid(_))
        ));
    }

    #[test]
    fn codes_and_reasons() {
        let cases = [
            (UserSigError::Expired, 70001, "usersig_expired"),
            (UserSigError::Invalid("x".into()), 70003, "usersig_invalid"),
            (
                UserSigError::SignatureMismatch,
                70009,
                "usersig_signature_mismatch",
            ),
            (
                UserSigError::IdentifierMismatch,
                70013,
                "usersig_identifier_mismatch",
            ),
            (
                UserSigError::SdkAppIdMismatch,
                70014,
                "usersig_sdkappid_mismatch",
            ),
            (UserSigError::FutureTime, 70003, "usersig_future_time"),
            (UserSigError::KeyNotFound, 70016, "usersig_key_not_found"),
        ];
        for (err, code, reason) in cases {
            assert_eq!(err.tim_code(), code, "{err:?}");
            assert_eq!(err.reason(), reason);
            // WebSocket close reasons are limited to 123 bytes.
            assert!(reason.len() <= 123);
            assert!(!err.to_string().is_empty());
        }
    }

    #[test]
    fn debug_redacts_the_key() {
        let shown = format!("{:?}", key());
        assert!(!shown.contains(KEY), "{shown}");
        assert!(shown.contains("1400000000"));
    }

    proptest! {
        #[test]
        fn generate_then_verify_round_trips(
            identifier in any::<String>(),
            expire in 0u64..=u32::MAX as u64,
            time in 0u64..=4_000_000_000,
            userbuf in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
        ) {
            let sig = key().generate_at(&identifier, expire, time, userbuf.as_deref());
            let ticket = key().verify(&sig, &identifier, time).expect("round trip");
            prop_assert_eq!(ticket, Ticket { identifier, sdkappid: APP, time, expire, userbuf });
        }

        #[test]
        fn arbitrary_input_never_panics(input in any::<String>()) {
            let _ = key().verify(&input, "alice", T0);
        }
    }
}
