//! The Tencent IM compatible REST surface (spec/tim-offline-push.md §1.1, §8.2):
//! `POST /v4/{service}/{command}?sdkappid=&identifier=&usersig=&random=&contenttype=json`.
//!
//! Translation only: the envelope and its admin UserSig here, one command a file, the message
//! rules in `message`, the codes in `codes`, the duplicate window in `dedupe`, the routing in `gateway`. Every outcome is HTTP 200 with
//! `ActionStatus`, `ErrorCode`, `ErrorInfo` — malformed JSON and oversized bodies included, which
//! is why the body is read here as bytes with a limit of our own instead of an extractor's.

pub mod codes;
pub mod dedupe;
pub mod kick;
pub mod message;
pub mod query;
pub mod sendmsg;

use super::AppState;
use crate::config::Config;
use crate::domain::now_secs;
use crate::gateway::{ErrorCode, GatewayError};
use crate::usersig::TicketVerifier;
use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use codes::{self as code, TimError};
use futures_util::StreamExt;
use message::MAX_MESSAGE_BYTES;
use serde_json::{Map, Value};

/// Largest body read for the commands with account lists: 500 accounts of up to 128 bytes,
/// quoted and escaped, plus a 12 KB message. Past it: 93000.
pub const MAX_LIST_BODY_BYTES: usize = 128 * 1024;

/// Registers `/v4/...` (one line in `api::configure`).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/v4")
            .route("/{service}/{command}", web::route().to(command))
            .default_service(web::to(unknown_path)),
    );
}

/// The commands served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    SendMsg,
    BatchSendMsg,
    QueryOnlineStatus,
    /// The older name of the status query; answers `State` instead of `Status`.
    QueryState,
    Kick,
}

impl Command {
    pub fn parse(service: &str, command: &str) -> Option<Command> {
        Some(match (service, command) {
            ("openim", "sendmsg") => Command::SendMsg,
            ("openim", "batchsendmsg") => Command::BatchSendMsg,
            ("openim", "query_online_status") => Command::QueryOnlineStatus,
            ("openim", "querystate") => Command::QueryState,
            ("im_open_login_svc", "kick") => Command::Kick,
            _ => return None,
        })
    }

    /// Bytes read at most: a one-to-one message is all content, so 12 KB is its limit (§1.2).
    fn read_limit(self) -> usize {
        match self {
            Command::SendMsg => MAX_MESSAGE_BYTES,
            _ => MAX_LIST_BODY_BYTES,
        }
    }

    /// The code for a body that is JSON but not an object: the openim commands say 90001
    /// ("JSON parse failure", §1.2, §5.2); kick has no code of its own.
    fn not_object_code(self) -> u32 {
        match self {
            Command::Kick => code::INVALID_PARAMETER,
            _ => code::JSON_PARSE,
        }
    }
}

/// An answer: `ErrorCode` 0 is `ActionStatus: "OK"`, anything else `"FAIL"`; `fields` are the
/// command's own (MsgTime, MsgKey, ErrorList, QueryResult…), also on a FAIL when there are some.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub code: u32,
    pub info: String,
    pub fields: Map<String, Value>,
}

impl Reply {
    pub fn ok() -> Reply {
        Reply {
            code: 0,
            info: String::new(),
            fields: Map::new(),
        }
    }

    pub fn with(mut self, name: &str, v: impl Into<Value>) -> Reply {
        self.fields.insert(name.to_string(), v.into());
        self
    }

    pub fn to_json(&self) -> Value {
        let mut m = Map::with_capacity(3 + self.fields.len());
        let status = if self.code == 0 { "OK" } else { "FAIL" };
        m.insert("ActionStatus".into(), status.into());
        m.insert("ErrorInfo".into(), self.info.clone().into());
        m.insert("ErrorCode".into(), self.code.into());
        for (k, v) in &self.fields {
            m.insert(k.clone(), v.clone());
        }
        Value::Object(m)
    }
}

impl From<TimError> for Reply {
    fn from(e: TimError) -> Reply {
        Reply {
            code: e.code,
            info: e.info,
            fields: Map::new(),
        }
    }
}

fn respond(r: Reply) -> HttpResponse {
    HttpResponse::Ok().json(r.to_json())
}

/// The gateway's refusals in Tencent's codes.
pub fn tim_error(e: GatewayError) -> TimError {
    let info = e.to_string();
    let code = match &e {
        GatewayError::Invalid {
            code: ErrorCode::TooManyRecipients,
            ..
        } => code::TOO_MANY_TARGETS,
        GatewayError::Invalid { .. } => code::BODY_INVALID,
        GatewayError::NotFound { .. } => code::ACCOUNT_NOT_FOUND,
        GatewayError::Conflict { .. } => code::INVALID_PARAMETER,
        GatewayError::Busy { .. } | GatewayError::StoreUnavailable { .. } => code::INTERNAL_TIMEOUT,
        GatewayError::Internal { .. } => code::INTERNAL,
    };
    TimError::new(code, info)
}

enum BodyError {
    TooLarge,
    Broken(String),
}

async fn read_body(mut payload: web::Payload, limit: usize) -> Result<Vec<u8>, BodyError> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| BodyError::Broken(e.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Checks the query of the envelope; returns the admin identifier.
pub fn authenticate(
    query: &str,
    config: &Config,
    tickets: &TicketVerifier,
    now: u64,
) -> Result<String, TimError> {
    let params: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|_| TimError::new(code::BAD_URL, "the query string cannot be parsed"))?;
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let sdkappid = get("sdkappid")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| TimError::new(code::MISSING_SDKAPPID, "sdkappid is required"))?;
    if sdkappid.parse::<u64>().ok() != Some(config.sdkappid) {
        return Err(TimError::new(
            code::BAD_SDKAPPID,
            format!("sdkappid {sdkappid} is not this application's"),
        ));
    }
    let identifier = get("identifier")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| TimError::new(code::BAD_ACCOUNT, "identifier is required"))?;
    let usersig = get("usersig")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| TimError::new(code::BAD_SIGNATURE, "usersig is required"))?;
    if let Some(ct) = get("contenttype") {
        if ct != "json" {
            return Err(TimError::new(code::BAD_URL, "contenttype must be json"));
        }
    }
    if let Some(r) = get("random") {
        if r.parse::<u32>().is_err() {
            return Err(TimError::new(
                code::BAD_URL,
                "random must be an integer from 0 to 4294967295",
            ));
        }
    }
    tickets
        .verify(usersig, identifier, now)
        .map_err(|e| TimError::new(e.tim_code(), e.to_string()))?;
    if !config.tim_admins.iter().any(|a| a == identifier) {
        return Err(TimError::new(
            code::NEEDS_ADMIN,
            format!("identifier {identifier} is not an App admin"),
        ));
    }
    Ok(identifier.to_string())
}

async fn command(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (service, command) = path.into_inner();
    let cmd = Command::parse(&service, &command);
    let body = read_body(
        payload,
        cmd.map_or(MAX_LIST_BODY_BYTES, Command::read_limit),
    )
    .await;
    respond(match handle(&req, cmd, body, &state).await {
        Ok(r) => r,
        Err(e) => e.into(),
    })
}

async fn handle(
    req: &HttpRequest,
    cmd: Option<Command>,
    body: Result<Vec<u8>, BodyError>,
    state: &AppState,
) -> Result<Reply, TimError> {
    if req.method() != Method::POST {
        return Err(TimError::new(code::BAD_URL, "only POST is accepted"));
    }
    let gw = &state.gateway;
    let admin = authenticate(req.query_string(), &gw.config, &state.tickets, now_secs())?;
    let cmd = cmd.ok_or_else(|| {
        TimError::new(
            code::BAD_RESOURCE,
            format!("no command {} in /v4", req.path()),
        )
    })?;
    let body = match body {
        Ok(b) => b,
        Err(BodyError::TooLarge) => {
            return Err(TimError::new(
                code::BODY_TOO_LARGE,
                format!("the body is larger than {} bytes", cmd.read_limit()),
            ))
        }
        Err(BodyError::Broken(e)) => {
            return Err(TimError::new(
                60008,
                format!("the body could not be read: {e}"),
            ))
        }
    };
    let obj = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(o)) => o,
        Ok(_) => {
            return Err(TimError::new(
                cmd.not_object_code(),
                "the body must be a JSON object",
            ))
        }
        Err(e) => {
            return Err(TimError::new(
                code::BODY_NOT_JSON,
                format!("Fail to Parse json data of body, Please check it: {e}"),
            ))
        }
    };
    match cmd {
        Command::SendMsg => sendmsg::single(gw, &state.tim_dedupe, &admin, &obj).await,
        Command::BatchSendMsg => {
            sendmsg::batch(gw, &state.tim_dedupe, &admin, &obj, body.len()).await
        }
        Command::QueryOnlineStatus => query::query(gw, &obj, query::Field::Status).await,
        Command::QueryState => query::query(gw, &obj, query::Field::State).await,
        Command::Kick => kick::kick(gw, &obj).await,
    }
}

async fn unknown_path(req: HttpRequest) -> HttpResponse {
    respond(
        TimError::new(
            code::BAD_RESOURCE,
            format!("no command {} in /v4", req.path()),
        )
        .into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usersig::UserSigKey;

    fn config() -> Config {
        Config {
            sdkappid: 1_400_000_001,
            secret_key: Some("k".repeat(64)),
            tim_admins: vec!["administrator".into()],
            ..Config::default()
        }
    }

    fn q(c: &Config, ident: &str, sig: &str) -> String {
        format!(
            "sdkappid={}&identifier={ident}&usersig={}&random=99&contenttype=json",
            c.sdkappid,
            urlencode(sig)
        )
    }

    fn urlencode(s: &str) -> String {
        serde_urlencoded::to_string([("x", s)]).unwrap()[2..].to_string()
    }

    #[test]
    fn envelope_codes() {
        let c = config();
        let key = UserSigKey::new(c.sdkappid, c.secret_key.clone().unwrap());
        let tickets = TicketVerifier::new(c.sdkappid, c.secret_key.as_deref());
        let now = now_secs();
        let sig = key.generate("administrator", 3600);
        assert_eq!(
            authenticate(&q(&c, "administrator", &sig), &c, &tickets, now).unwrap(),
            "administrator"
        );
        let code_of = |query: &str| authenticate(query, &c, &tickets, now).unwrap_err().code;
        assert_eq!(code_of("identifier=a&usersig=b"), 60012);
        assert_eq!(code_of("sdkappid=1&identifier=a&usersig=b"), 60006);
        assert_eq!(code_of("sdkappid=abc&identifier=a&usersig=b"), 60006);
        assert_eq!(code_of("sdkappid=1400000001&usersig=b"), 60004);
        assert_eq!(code_of("sdkappid=1400000001&identifier=a"), 60005);
        assert_eq!(
            code_of(&q(&c, "administrator", &sig).replace("contenttype=json", "contenttype=xml")),
            60002
        );
        assert_eq!(
            code_of(&q(&c, "administrator", &sig).replace("random=99", "random=-1")),
            60002
        );
        // Expired: generated 2 h ago for 1 h.
        let old = key.generate_at("administrator", 3600, now - 7200, None);
        assert_eq!(code_of(&q(&c, "administrator", &old)), 70001);
        // A valid ticket of a user who is not an admin.
        let user = key.generate("alice", 3600);
        assert_eq!(code_of(&q(&c, "alice", &user)), 60010);
        // Someone else's ticket.
        assert_eq!(code_of(&q(&c, "alice", &sig)), 70013);
        let no_key = TicketVerifier::new(c.sdkappid, None);
        assert_eq!(
            authenticate(&q(&c, "administrator", &sig), &c, &no_key, now)
                .unwrap_err()
                .code,
            70016
        );
        // An empty key is no key: a ticket signed with "" does not open /v4 as an admin.
        let empty = TicketVerifier::new(c.sdkappid, Some(""));
        let forged = UserSigKey::new(c.sdkappid, "").generate("administrator", 3600);
        assert_eq!(
            authenticate(&q(&c, "administrator", &forged), &c, &empty, now)
                .unwrap_err()
                .code,
            70016
        );
    }

    #[test]
    fn reply_shape() {
        let v = Reply::ok().with("MsgTime", 5).to_json();
        assert_eq!(
            v,
            serde_json::json!({"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"MsgTime":5})
        );
        let v = Reply::from(TimError::new(90001, "bad")).to_json();
        assert_eq!(v["ActionStatus"], "FAIL");
        assert_eq!(v["ErrorCode"], 90001);
    }
}
