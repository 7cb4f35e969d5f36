//! Tencent's error codes used by the /v4 surface (spec/tim-offline-push.md §1.1, §1.2, §1.3,
//! §5.2), and the refusal that carries one.

/// Malformed URL or query, or not a POST.
pub const BAD_URL: u32 = 60002;
/// The body is not JSON.
pub const BODY_NOT_JSON: u32 = 60003;
/// `identifier` missing.
pub const BAD_ACCOUNT: u32 = 60004;
/// `usersig` missing.
pub const BAD_SIGNATURE: u32 = 60005;
/// `sdkappid` not this application's.
pub const BAD_SDKAPPID: u32 = 60006;
/// No such command.
pub const BAD_RESOURCE: u32 = 60009;
/// `identifier` is not an App admin.
pub const NEEDS_ADMIN: u32 = 60010;
/// `sdkappid` missing.
pub const MISSING_SDKAPPID: u32 = 60012;
/// The account was never seen by this gateway.
pub const ACCOUNT_NOT_FOUND: u32 = 70107;
/// Internal timeout (a bounded queue is full; retry).
pub const INTERNAL_TIMEOUT: u32 = 70169;
/// Invalid parameter (commands without a code of their own).
pub const INVALID_PARAMETER: u32 = 70402;
/// JSON body is not an object / does not parse as the command's request.
pub const JSON_PARSE: u32 = 90001;
/// MsgBody missing or an element not per the message format.
pub const MSG_BODY_INVALID: u32 = 90002;
/// To_Account missing or not a string.
pub const TO_ACCOUNT_INVALID: u32 = 90003;
/// MsgSeq not a uint32.
pub const MSG_SEQ_INVALID: u32 = 90004;
/// MsgRandom missing or not a uint32.
pub const MSG_RANDOM_INVALID: u32 = 90005;
/// MsgBody not an array.
pub const MSG_BODY_NOT_ARRAY: u32 = 90007;
/// From_Account not a valid account.
pub const FROM_ACCOUNT_INVALID: u32 = 90008;
/// Some other field not per the message format (OfflinePushInfo, lengths).
pub const BODY_INVALID: u32 = 90010;
/// More than 500 targets.
pub const TOO_MANY_TARGETS: u32 = 90011;
/// To_Account not registered.
pub const TO_ACCOUNT_NOT_REGISTERED: u32 = 90012;
/// MsgLifeTime beyond 7 days.
pub const LIFE_TIME_TOO_LONG: u32 = 90026;
/// SyncOtherMachine not an int.
pub const SYNC_OTHER_MACHINE_INVALID: u32 = 90031;
/// MsgLifeTime not an int.
pub const LIFE_TIME_NOT_INT: u32 = 90044;
/// Internal error.
pub const INTERNAL: u32 = 91000;
/// The message is larger than 12 KB.
pub const BODY_TOO_LARGE: u32 = 93000;

/// A refusal with Tencent's code and a message for `ErrorInfo`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{info}")]
pub struct TimError {
    pub code: u32,
    pub info: String,
}

impl TimError {
    pub fn new(code: u32, info: impl Into<String>) -> TimError {
        TimError {
            code,
            info: info.into(),
        }
    }
}
