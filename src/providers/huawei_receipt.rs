//! Huawei Push Kit's message receipts (spec/vendors/huawei.md §6, [H11]), as pure functions:
//! the JSON body `{"statuses":[{"biTag","appid","token","status","timestamp","requestId"}]}`
//! (at most 100 statuses per callback), and the `X-HUAWEI-CALLBACK-ID` header that proves the
//! callback came from Huawei when the receipt is configured with a user name and HMAC key in
//! AppGallery Connect.
//!
//! The header is `timestamp=<ms>;nonce=<text>;value=<base64>`, where `value` is
//! base64(HMAC-SHA256(key, timestamp + nonce + user name)) — the three values concatenated
//! without separators ([H11]; Huawei's receipt doc, "X-HUAWEI-CALLBACK-ID"). The body is not
//! signed, so a captured header could be replayed with another body: the timestamp must be
//! within [`MAX_CLOCK_SKEW_MS`] of ours, which bounds that window.
//!
//! This module is the parser and verifier the Huawei push service's `read_receipts` calls; it
//! knows nothing of HTTP or certificates.

use crate::domain::receipt::{Receipt, ReceiptError, ReceiptKind};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

/// Statuses one callback carries at most ([H11]).
pub const MAX_STATUSES: usize = 100;

/// How far the header's timestamp may be from our clock (either way).
pub const MAX_CLOCK_SKEW_MS: u64 = 5 * 60 * 1000;

/// The header name, lower case as the HTTP layer hands it over.
pub const CALLBACK_HEADER: &str = "x-huawei-callback-id";

/// What the operator configured for the receipt in AppGallery Connect. The key is a secret:
/// never logged (`Debug` redacts it).
#[derive(Clone, PartialEq, Eq)]
pub struct CallbackAuth {
    pub user_name: String,
    pub key: String,
}

impl std::fmt::Debug for CallbackAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackAuth")
            .field("user_name", &self.user_name)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// The `value` Huawei computes for `timestamp` and `nonce`.
pub fn callback_value(auth: &CallbackAuth, timestamp: &str, nonce: &str) -> String {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for HMAC-SHA256.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(auth.key.as_bytes()) else {
        return String::new();
    };
    mac.update(timestamp.as_bytes());
    mac.update(nonce.as_bytes());
    mac.update(auth.user_name.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Checks `X-HUAWEI-CALLBACK-ID` against the certificate's receipt configuration.
pub fn verify_callback_id(
    header: Option<&str>,
    auth: &CallbackAuth,
    now_ms: u64,
) -> Result<(), ReceiptError> {
    let unverified = |why: &str| ReceiptError::Unverified(format!("X-HUAWEI-CALLBACK-ID: {why}"));
    let header = header.ok_or_else(|| unverified("missing"))?;
    let (mut timestamp, mut nonce, mut value) = (None, None, None);
    for part in header.split(';') {
        let Some((k, v)) = part.trim().split_once('=') else {
            continue;
        };
        match k.trim() {
            "timestamp" => timestamp = Some(v.trim()),
            "nonce" => nonce = Some(v.trim()),
            // base64 may end in '=': everything after the first '=' is the value.
            "value" => value = Some(v.trim()),
            _ => {}
        }
    }
    let (Some(timestamp), Some(nonce), Some(value)) = (timestamp, nonce, value) else {
        return Err(unverified("timestamp, nonce and value are all required"));
    };
    let at: u64 = timestamp
        .parse()
        .map_err(|_| unverified("timestamp is not Unix milliseconds"))?;
    if at.abs_diff(now_ms) > MAX_CLOCK_SKEW_MS {
        return Err(unverified("timestamp is more than 5 minutes from now"));
    }
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(value) else {
        return Err(unverified("value is not base64"));
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(auth.key.as_bytes()) else {
        return Err(unverified("no usable key"));
    };
    mac.update(timestamp.as_bytes());
    mac.update(nonce.as_bytes());
    mac.update(auth.user_name.as_bytes());
    // `verify_slice` compares in constant time.
    mac.verify_slice(&given)
        .map_err(|_| unverified("the HMAC does not match this certificate's receipt key"))
}

#[derive(Deserialize)]
struct Body {
    statuses: Vec<Status>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    token: String,
    status: i64,
    #[serde(default)]
    timestamp: Option<u64>,
    #[serde(default)]
    appid: Option<String>,
    #[serde(default)]
    request_id: Option<String>,
}

/// What a status code means for the token ([H11]): 0 delivered; 2 app not installed, 5 token
/// not for the current user, 6 notifications disabled, 10 device inactive ≥ 30 days, 201
/// sending controlled — Huawei recommends to stop pushing to those; 15 replaced, 27 cached,
/// 102 frequency-controlled change nothing.
pub fn kind_of(status: i64) -> ReceiptKind {
    match status {
        0 => ReceiptKind::Delivered,
        2 | 5 | 6 | 10 | 201 => ReceiptKind::InvalidToken,
        _ => ReceiptKind::Other,
    }
}

/// Parses a callback body; `app_id` is the certificate's, which every status naming an app
/// must match. `now_ms` stands in for a missing timestamp.
pub fn parse_statuses(
    body: &[u8],
    app_id: &str,
    now_ms: u64,
) -> Result<Vec<Receipt>, ReceiptError> {
    let body: Body = serde_json::from_slice(body)
        .map_err(|e| ReceiptError::malformed("statuses", format!("not Huawei's receipt: {e}")))?;
    if body.statuses.len() > MAX_STATUSES {
        return Err(ReceiptError::malformed(
            "statuses",
            format!(
                "{} statuses; Huawei sends at most {MAX_STATUSES} per callback",
                body.statuses.len()
            ),
        ));
    }
    body.statuses
        .into_iter()
        .map(|s| {
            if s.appid.as_deref().is_some_and(|a| a != app_id) {
                return Err(ReceiptError::Unverified(format!(
                    "a status names app {}, not this certificate's",
                    s.appid.unwrap_or_default()
                )));
            }
            if s.token.is_empty() {
                return Err(ReceiptError::malformed(
                    "statuses",
                    "a status without a token",
                ));
            }
            Ok(Receipt {
                kind: kind_of(s.status),
                msg_id: s.request_id,
                token: s.token,
                at_ms: s.timestamp.unwrap_or(now_ms),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_563_105_451_261;

    fn auth() -> CallbackAuth {
        CallbackAuth {
            user_name: "receipt-user".into(),
            key: "receipt-hmac-key".into(),
        }
    }

    fn header(ts: u64, nonce: &str, a: &CallbackAuth) -> String {
        let ts = ts.to_string();
        format!(
            "timestamp={ts};nonce={nonce};value={}",
            callback_value(a, &ts, nonce)
        )
    }

    #[test]
    fn the_value_is_hmac_sha256_of_timestamp_nonce_and_user_in_base64() {
        // Computed independently: printf '1563105451261:receipt-user' |
        //   openssl dgst -sha256 -hmac receipt-hmac-key -binary | base64
        let v = callback_value(&auth(), "1563105451261", ":");
        assert_eq!(v, "8RevtixBEMpXtW/t+m/Sie7mRhCK5MGuJ6mpTpG/qf0=");
        assert_eq!(v.len(), 44, "32 bytes in base64");
    }

    #[test]
    fn a_good_header_verifies_with_or_without_spaces() {
        let h = header(NOW, ":", &auth());
        assert_eq!(verify_callback_id(Some(&h), &auth(), NOW), Ok(()));
        let spaced = h.replace(';', "; ");
        assert_eq!(
            verify_callback_id(Some(&spaced), &auth(), NOW + 1000),
            Ok(())
        );
    }

    #[test]
    fn forged_stale_or_missing_headers_are_unverified() {
        let other = CallbackAuth {
            key: "another-key".into(),
            ..auth()
        };
        let other_user = CallbackAuth {
            user_name: "someone".into(),
            ..auth()
        };
        let good = header(NOW, "n1", &auth());
        for (what, h, now) in [
            ("another key", Some(header(NOW, "n1", &other)), NOW),
            ("another user", Some(header(NOW, "n1", &other_user)), NOW),
            (
                "nonce changed",
                Some(good.replace("nonce=n1", "nonce=n2")),
                NOW,
            ),
            ("stale", Some(good.clone()), NOW + MAX_CLOCK_SKEW_MS + 1),
            (
                "from the future",
                Some(good.clone()),
                NOW - MAX_CLOCK_SKEW_MS - 1,
            ),
            ("no value", Some(format!("timestamp={NOW};nonce=n1")), NOW),
            ("garbage", Some("value=%%%;timestamp=x;nonce=".into()), NOW),
            ("missing", None, NOW),
        ] {
            assert!(
                matches!(
                    verify_callback_id(h.as_deref(), &auth(), now),
                    Err(ReceiptError::Unverified(_))
                ),
                "{what}"
            );
        }
    }

    #[test]
    fn statuses_become_receipts_by_huawei_s_codes() {
        let body = br#"{"statuses":[
            {"biTag":"b","appid":"101","token":"t0","status":0,"timestamp":5,"requestId":"r1"},
            {"appid":"101","token":"t2","status":2,"timestamp":6,"requestId":"r1"},
            {"token":"t10","status":10},
            {"token":"t201","status":201},
            {"token":"t15","status":15},
            {"token":"t102","status":102}]}"#;
        let got: Vec<(String, ReceiptKind)> = parse_statuses(body, "101", 9)
            .expect("parses")
            .into_iter()
            .map(|r| (r.token, r.kind))
            .collect();
        use ReceiptKind::*;
        let want = [
            ("t0", Delivered),
            ("t2", InvalidToken),
            ("t10", InvalidToken),
            ("t201", InvalidToken),
            ("t15", Other),
            ("t102", Other),
        ];
        assert_eq!(got, want.map(|(t, k)| (t.to_string(), k)).to_vec(),);
        for code in [5, 6] {
            assert_eq!(kind_of(code), InvalidToken);
        }
        assert_eq!(kind_of(27), Other);
    }

    #[test]
    fn bad_bodies_are_refused_whole() {
        let another_app = br#"{"statuses":[{"appid":"101","token":"a","status":0},{"appid":"999","token":"b","status":2}]}"#;
        assert!(matches!(
            parse_statuses(another_app, "101", 0),
            Err(ReceiptError::Unverified(_))
        ));
        let too_many = format!(
            r#"{{"statuses":[{}]}}"#,
            vec![r#"{"token":"t","status":0}"#; MAX_STATUSES + 1].join(",")
        );
        for bad in [
            too_many.as_bytes(),
            b"{}".as_slice(),
            b"not json",
            br#"{"statuses":[{"status":0}]}"#,
            br#"{"statuses":[{"token":"","status":0}]}"#,
        ] {
            assert!(
                matches!(
                    parse_statuses(bad, "101", 0),
                    Err(ReceiptError::Malformed {
                        field: "statuses",
                        ..
                    })
                ),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(parse_statuses(br#"{"statuses":[]}"#, "101", 0), Ok(vec![]));
    }

    #[test]
    fn debug_redacts_the_key() {
        assert!(!format!("{:?}", auth()).contains("receipt-hmac-key"));
    }
}
