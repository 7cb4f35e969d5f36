//! `im_open_login_svc/kick` (spec §1.5): every device of the account goes `Offline` (no more
//! pushes) and the live connections held here receive `kicked`.

use super::codes::{self as code, TimError};
use super::message::valid_account;
use super::{tim_error, Reply};
use crate::gateway::Gateway;
use serde_json::{Map, Value};

pub async fn kick(gw: &Gateway, body: &Map<String, Value>) -> Result<Reply, TimError> {
    let user = match body.get("UserID") {
        Some(Value::String(s)) if valid_account(s) => s,
        _ => {
            return Err(TimError::new(
                code::INVALID_PARAMETER,
                "UserID must be a non-empty string account",
            ))
        }
    };
    if !gw.has_user_any(user).await.map_err(tim_error)? {
        return Err(TimError::new(
            code::ACCOUNT_NOT_FOUND,
            format!("account {user} does not exist"),
        ));
    }
    gw.kick_user(user).await.map_err(tim_error)?;
    Ok(Reply::ok())
}
