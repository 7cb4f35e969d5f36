//! Xiaomi's delivery receipts (spec §5.4): a form POST to `extra.callback` with one field
//! `data`, a JSON object keyed by message id:
//! `{"<msgId>": {"type": 1, "targets": "regA,regB", "timestamp": 1700000000000,
//!   "param": "<extra.callback.param>"}}`.
//!
//! Xiaomi signs nothing; what we can verify is `param`, which we set to the certificate's
//! receipt secret and Xiaomi echoes per entry (the `param` field name is UNCONFIRMED in the
//! spec; it is the name the callback parameter is sent under). One entry that does not carry
//! the secret refuses the whole request.

use crate::domain::receipt::{Receipt, ReceiptError, ReceiptKind, ReceiptSecret};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// Receipt types (spec §5.4): what a single receipt entry reports.
pub const TYPE_DELIVERED: i64 = 1;
pub const TYPE_CLICKED: i64 = 2;
pub const TYPE_INVALID_TARGET: i64 = 16;

/// One entry of `data`, as Xiaomi posts it.
#[derive(Debug, Deserialize)]
struct Entry {
    #[serde(rename = "type")]
    kind: i64,
    /// Comma-joined regIds (spec: `"targets":"<alias/regId list>"`); an array is accepted too.
    targets: Targets,
    #[serde(default)]
    timestamp: Option<u64>,
    #[serde(default)]
    param: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Targets {
    Joined(String),
    List(Vec<String>),
}

impl Targets {
    fn tokens(&self) -> Vec<String> {
        let split = |s: &str| {
            s.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        match self {
            Targets::Joined(s) => split(s),
            Targets::List(l) => l.iter().flat_map(|s| split(s)).collect(),
        }
    }
}

fn kind_of(t: i64) -> ReceiptKind {
    match t {
        TYPE_DELIVERED => ReceiptKind::Delivered,
        TYPE_CLICKED => ReceiptKind::Clicked,
        TYPE_INVALID_TARGET => ReceiptKind::InvalidToken,
        _ => ReceiptKind::Other,
    }
}

/// Parses and verifies one receipt request body. `now_ms` stands in for a missing timestamp.
pub fn parse_receipts(
    body: &[u8],
    secret: &ReceiptSecret,
    now_ms: u64,
) -> Result<Vec<Receipt>, ReceiptError> {
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(body).map_err(|_| {
        ReceiptError::malformed("data", "the body is not application/x-www-form-urlencoded")
    })?;
    let mut data = form.iter().filter(|(k, _)| k == "data").map(|(_, v)| v);
    let (Some(data), None) = (data.next(), data.next()) else {
        return Err(ReceiptError::malformed(
            "data",
            "exactly one form field `data` is required",
        ));
    };
    let entries: BTreeMap<String, Value> = serde_json::from_str(data).map_err(|e| {
        ReceiptError::malformed(
            "data",
            format!("not a JSON object keyed by message id: {e}"),
        )
    })?;
    let mut receipts = Vec::new();
    for (msg_id, raw) in entries {
        let entry: Entry = serde_json::from_value(raw)
            .map_err(|e| ReceiptError::malformed("data", format!("entry '{msg_id}': {e}")))?;
        if !entry.param.as_deref().is_some_and(|p| secret.matches(p)) {
            return Err(ReceiptError::Unverified(format!(
                "entry '{msg_id}' does not carry this certificate's callback.param"
            )));
        }
        let kind = kind_of(entry.kind);
        let at_ms = entry.timestamp.unwrap_or(now_ms);
        for token in entry.targets.tokens() {
            receipts.push(Receipt {
                kind,
                msg_id: Some(msg_id.clone()),
                token,
                at_ms,
            });
        }
    }
    Ok(receipts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(data: &str) -> Vec<u8> {
        serde_urlencoded::to_string([("data", data)])
            .unwrap_or_default()
            .into_bytes()
    }

    fn secret() -> ReceiptSecret {
        ReceiptSecret::for_tests("sec")
    }

    #[test]
    fn each_target_of_each_entry_is_one_receipt() {
        let data = r#"{"scm01":{"type":1,"targets":"regA,regB","timestamp":1700000000123,"param":"sec"},
                       "scm02":{"type":16,"targets":"regC","timestamp":5,"param":"sec","extra":{}},
                       "scm03":{"type":2,"targets":["regA"],"param":"sec"},
                       "scm04":{"type":64,"targets":"regD","param":"sec","jobkey":"x"}}"#;
        let r = parse_receipts(&body(data), &secret(), 9).expect("parses");
        let got: Vec<(&str, &str, ReceiptKind, u64)> = r
            .iter()
            .map(|r| {
                (
                    r.msg_id.as_deref().unwrap_or(""),
                    r.token.as_str(),
                    r.kind,
                    r.at_ms,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("scm01", "regA", ReceiptKind::Delivered, 1700000000123),
                ("scm01", "regB", ReceiptKind::Delivered, 1700000000123),
                ("scm02", "regC", ReceiptKind::InvalidToken, 5),
                ("scm03", "regA", ReceiptKind::Clicked, 9),
                ("scm04", "regD", ReceiptKind::Other, 9),
            ]
        );
    }

    #[test]
    fn one_entry_without_the_secret_refuses_the_whole_request() {
        for bad in [
            r#"{"a":{"type":1,"targets":"r","param":"sec"},"b":{"type":16,"targets":"r2","param":"nope"}}"#,
            r#"{"a":{"type":16,"targets":"r"}}"#,
            r#"{"a":{"type":16,"targets":"r","param":"se"}}"#,
        ] {
            assert!(
                matches!(
                    parse_receipts(&body(bad), &secret(), 0),
                    Err(ReceiptError::Unverified(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn malformed_bodies_name_the_field() {
        for bad in [
            b"data=%7Bnot json".to_vec(),
            b"other=1".to_vec(),
            body("[1,2]"),
            body(r#"{"a":{"targets":"r","param":"sec"}}"#),
            body(r#"{"a":{"type":"one","targets":"r","param":"sec"}}"#),
            b"data=%7B%7D&data=%7B%7D".to_vec(),
            vec![0xff, 0xfe],
        ] {
            match parse_receipts(&bad, &secret(), 0) {
                Err(ReceiptError::Malformed { field, .. }) => assert_eq!(field, "data"),
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(&bad)),
            }
        }
        assert_eq!(parse_receipts(&body("{}"), &secret(), 0), Ok(vec![]));
    }
}
