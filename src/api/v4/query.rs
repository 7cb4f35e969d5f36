//! `openim/query_online_status` and its older name `openim/querystate` (spec §5.2).

use super::codes::{self as code, TimError};
use super::message::{parse_to_accounts, valid_account};
use super::Reply;
use crate::gateway::Gateway;
use serde_json::{json, Map, Value};

/// The per-user field name: the new API says `Status`, the old one `State` (Detail entries say
/// `Status` in both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Status,
    State,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Status => "Status",
            Field::State => "State",
        }
    }
}

/// Each known account's status: `Online` if any device is, else `PushOnline` if any device is,
/// else `Offline` (§5.1). With `IsNeedDetail: 1`, `Detail` lists every device the gateway knows
/// of the account — Offline ones included — as `{Platform, Status}`. Unknown accounts go to
/// `ErrorList` with 70107. In cluster mode the states come from the shared directory, so every
/// node answers the same.
pub async fn query(
    gw: &Gateway,
    body: &Map<String, Value>,
    field: Field,
) -> Result<Reply, TimError> {
    let to = parse_to_accounts(body, code::JSON_PARSE)?;
    let detail = match body.get("IsNeedDetail") {
        None | Some(Value::Null) => false,
        Some(v) => match v.as_u64() {
            Some(0) => false,
            Some(1) => true,
            _ => {
                return Err(TimError::new(
                    code::INVALID_PARAMETER,
                    "IsNeedDetail must be 0 or 1",
                ))
            }
        },
    };
    let mut results = Vec::with_capacity(to.len());
    let mut errors = Vec::new();
    let valid: Vec<String> = to.iter().filter(|u| valid_account(u)).cloned().collect();
    let mut found = gw
        .users_devices_any(&valid)
        .await
        .map_err(super::tim_error)?
        .into_iter();
    for u in to {
        let devices = if valid_account(&u) {
            found.next().unwrap_or_default()
        } else {
            Vec::new()
        };
        if devices.is_empty() {
            errors.push(json!({"To_Account": u, "ErrorCode": code::ACCOUNT_NOT_FOUND}));
            continue;
        }
        let status = crate::gateway::user_status(&devices);
        let mut entry = Map::new();
        entry.insert("To_Account".into(), u.into());
        entry.insert(field.name().into(), status.as_str().into());
        if detail {
            let list: Vec<Value> = devices
                .iter()
                .map(|d| json!({"Platform": d.platform, "Status": d.state.as_str()}))
                .collect();
            entry.insert("Detail".into(), list.into());
        }
        results.push(Value::Object(entry));
    }
    Ok(Reply::ok()
        .with("QueryResult", results)
        .with("ErrorList", errors))
}
