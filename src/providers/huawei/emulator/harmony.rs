//! HarmonyOS NEXT's v3 send endpoint, `POST /v3/{projectId}/messages:send` (spec §1), strict
//! about what a v3 request must carry: a service-account JWT as the bearer (an OAuth access
//! token is refused with 80200001: v3 takes JWTs only) whose account owns the project,
//! `push-type: 0`, a JSON body of `payload` / `target` / `pushOptions` and nothing else (a v1
//! body is refused), a notification with `category`, `title`, `body` and `clickAction`, 1–1000
//! tokens (80300010), at most 4096 bytes without the tokens (80300008), a `ttl` of at most
//! 15 days. Tokens, flow control, the marketing cap and the answers are v1's.
//!
//! Member names inside the body follow the v3 request sample the spec cites (see
//! `providers::huawei::harmony`); where the spec is silent the choice is a [`HuaweiRules`] field:
//! `v3_click_data` (whether `clickAction.data` is taken) and `test_message_max_tokens`.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest};
use serde_json::Value;

use super::push::{accepted, json_within_limits, respond, sort_tokens, text, Reject};
use super::{HuaweiRules, Vendor};
use crate::providers::huawei::harmony::{
    EXT_DATA_KEY, MAX_TTL_SECS, PUSH_TYPE_HEADER, PUSH_TYPE_NOTIFICATION,
};
use crate::providers::huawei::wire::CATEGORIES;
use crate::providers::oauth_emulator::{bearer, ReceivedNotification, Shared};

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v3/{project_id}/messages:send").route(web::post().to(
            |req: HttpRequest,
             path: web::Path<String>,
             body: web::Payload,
             shared: web::Data<Shared>,
             vendor: web::Data<Vendor>| async move {
                let project_id = path.into_inner();
                let (r, s, v) = (&req, &**shared, &**vendor);
                respond(r, s, move |now, rid| async move {
                    process(r, &project_id, body, s, v, now, &rid).await
                })
                .await
            },
        )),
    );
}

/// A v3 notification as the rules let it through.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CheckedV3 {
    pub tokens: Vec<String>,
    pub category: String,
    pub title: String,
    pub body: String,
    pub action_type: i64,
    pub action: Option<String>,
    /// `clickAction.data`, what the app receives with the click.
    pub data: Option<serde_json::Map<String, Value>>,
    pub bi_tag: Option<String>,
    /// The body without `target.token`.
    pub message: Value,
}

impl CheckedV3 {
    /// `Ext` as the app reads it: the `ext` member of `data`, or all of `data` as JSON text.
    fn ext(&self) -> Option<String> {
        let data = self.data.as_ref()?;
        match data.get(EXT_DATA_KEY) {
            Some(Value::String(ext)) if data.len() == 1 => Some(ext.clone()),
            _ => Some(Value::Object(data.clone()).to_string()),
        }
    }
}

async fn process(
    req: &HttpRequest,
    project_id: &str,
    body: web::Payload,
    shared: &Shared,
    vendor: &Vendor,
    now: u64,
    rid: &str,
) -> Result<(&'static str, String), Reject> {
    let rules = &vendor.rules;
    let refused = |why: &str| {
        Reject::new(
            rules.auth_error_status,
            "80200001",
            format!("Authentication Error: {why}"),
        )
    };
    // v3 takes the service-account JWT only (spec §1, §2.2): anything else is refused, an
    // OAuth access token included.
    let jwt = bearer(req)
        .filter(|t| t.split('.').count() == 3)
        .ok_or_else(|| refused("the v3 API takes only a service-account JWT as the bearer"))?;
    let kid = vendor
        .accounts
        .check(jwt, project_id, now / 1000, rules, shared.accept_any_app)?;
    let push_type = req
        .headers()
        .get(PUSH_TYPE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    match push_type {
        Some(PUSH_TYPE_NOTIFICATION) => {}
        Some(other) => {
            return Err(Reject::new(
                rules.bad_request_status,
                "80100001",
                format!("push-type {other:?} is not emulated: only 0 (notification)"),
            ))
        }
        None => {
            return Err(Reject::new(
                rules.bad_request_status,
                "80100001",
                "the push-type header is required",
            ))
        }
    }
    let (parsed, knobs) = json_within_limits(
        req,
        body,
        shared,
        rules,
        project_id,
        now,
        "Push message size is too long.",
    )
    .await?;
    let checked = validate_v3(&parsed, rules)?;
    let (valid, illegal) = sort_tokens(shared, project_id, &checked.tokens)?;
    let marketing = checked.category == "MARKETING";
    let delivered: Vec<&String> = valid
        .iter()
        .filter(|t| {
            !marketing || shared.admit_marketing(project_id, t, knobs.marketing_daily_cap, now)
        })
        .collect();
    let mut headers = BTreeMap::new();
    headers.insert("auth".to_owned(), format!("jwt {kid}"));
    headers.insert(
        PUSH_TYPE_HEADER.to_owned(),
        PUSH_TYPE_NOTIFICATION.to_owned(),
    );
    let ext = checked.ext();
    shared.record(
        delivered
            .into_iter()
            .map(|token| ReceivedNotification {
                seq: 0,
                endpoint: req.path().to_owned(),
                app_id: project_id.to_owned(),
                token: token.clone(),
                title: checked.title.clone(),
                body: checked.body.clone(),
                category: checked.category.clone(),
                importance: String::new(),
                click_type: checked.action_type,
                intent: checked.action.clone(),
                url: None,
                ext: ext.clone(),
                channel_id: None,
                notify_id: None,
                bi_tag: checked.bi_tag.clone(),
                request_id: rid.to_owned(),
                headers: headers.clone(),
                message: checked.message.clone(),
                received_at_ms: now,
            })
            .collect(),
    );
    Ok(accepted(valid.len(), illegal))
}

/// Checks a v3 body (module docs).
pub(crate) fn validate_v3(body: &Value, rules: &HuaweiRules) -> Result<CheckedV3, Reject> {
    let bad = |code: &'static str, msg: &str| Reject::new(rules.bad_request_status, code, msg);
    let Some(members) = body.as_object() else {
        return Err(bad(
            "80100003",
            "Illegal payload, the body must be an object",
        ));
    };
    if let Some(other) = members
        .keys()
        .find(|k| !matches!(k.as_str(), "payload" | "target" | "pushOptions"))
    {
        return Err(Reject::new(
            rules.bad_request_status,
            "80100003",
            format!("Illegal payload, unknown member {other:?} (a v3 body has payload, target and pushOptions)"),
        ));
    }
    let tokens = body
        .get("target")
        .and_then(|t| t.get("token"))
        .ok_or_else(|| bad("80100001", "target.token is required"))?;
    let tokens: Vec<String> = match tokens.as_array() {
        Some(items) => items
            .iter()
            .map(|t| t.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| bad("80100001", "target.token must hold strings"))?,
        None => return Err(bad("80100001", "target.token must be an array")),
    };
    if tokens.is_empty() || tokens.len() > rules.max_tokens {
        return Err(bad("80300010", "token count should within 1 and 1000"));
    }
    if tokens.iter().any(|t| t.trim().is_empty()) {
        return Err(bad("80100001", "target.token holds an empty token"));
    }
    let mut without_tokens = body.clone();
    if let Some(target) = without_tokens
        .get_mut("target")
        .and_then(Value::as_object_mut)
    {
        target.remove("token");
    }
    if without_tokens.to_string().len() > rules.payload_max_bytes {
        return Err(bad("80300008", "Push message size is too long."));
    }

    let options = match body.get("pushOptions") {
        None => None,
        Some(o) if o.is_object() => Some(o),
        Some(_) => {
            return Err(bad(
                "80100003",
                "Illegal payload, pushOptions must be an object",
            ))
        }
    };
    if let Some(ttl) = options.and_then(|o| o.get("ttl")) {
        if !ttl
            .as_u64()
            .is_some_and(|t| (1..=MAX_TTL_SECS).contains(&t))
        {
            return Err(bad(
                "80100001",
                "ttl must be an integer of 1 to 1296000 seconds",
            ));
        }
    }
    let test = match options.and_then(|o| o.get("testMessage")) {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad("80100001", "testMessage must be a boolean")),
    };
    if test && tokens.len() > rules.test_message_max_tokens {
        return Err(bad(
            "80300030",
            "When send test message, token count exceed limit.",
        ));
    }
    let bi_tag = match options.and_then(|o| o.get("biTag")) {
        None => None,
        Some(Value::String(t)) => Some(t.clone()),
        Some(_) => return Err(bad("80100001", "biTag must be a string")),
    };

    let n = body
        .get("payload")
        .and_then(|p| p.get("notification"))
        .filter(|n| n.is_object())
        .ok_or_else(|| {
            bad(
                "80100003",
                "Illegal payload, payload.notification is required",
            )
        })?;
    let category = text(n, "category")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            bad(
                "80100003",
                "Illegal payload, notification.category is required",
            )
        })?;
    if !CATEGORIES.contains(&category) {
        return Err(bad(
            "80100001",
            "notification.category is not a known classification",
        ));
    }
    if category == "PLAY_VOICE" {
        // Voice messages go with push-type 2 (the 80300007 reason notSupportPlayVoice).
        return Err(Reject::new(200, "80300007", "All the tokens are invalid"));
    }
    let (Some(title), Some(text_body)) = (
        text(n, "title").filter(|s| !s.trim().is_empty()),
        text(n, "body").filter(|s| !s.trim().is_empty()),
    ) else {
        return Err(bad(
            "80100003",
            "Illegal payload, notification.title and notification.body are required",
        ));
    };
    let click = n
        .get("clickAction")
        .filter(|c| c.is_object())
        .ok_or_else(|| {
            bad(
                "80100003",
                "Illegal payload, notification.clickAction is required",
            )
        })?;
    let action_type = click
        .get("actionType")
        .and_then(Value::as_i64)
        .ok_or_else(|| bad("80100001", "clickAction.actionType must be an integer"))?;
    let action = text(click, "action").filter(|a| !a.trim().is_empty());
    match action_type {
        0 => {}
        1 if action.is_some() || text(click, "uri").is_some_and(|u| !u.is_empty()) => {}
        1 => {
            return Err(bad(
                "80100001",
                "clickAction actionType 1 needs action or uri",
            ))
        }
        _ => return Err(bad("80100001", "clickAction.actionType must be 0 or 1")),
    }
    let data = match click.get("data") {
        None => None,
        Some(_) if !rules.v3_click_data => {
            return Err(bad(
                "80100003",
                "Illegal payload, clickAction.data is not taken",
            ))
        }
        Some(Value::Object(d)) => Some(d.clone()),
        Some(_) => return Err(bad("80100001", "clickAction.data must be a JSON object")),
    };
    Ok(CheckedV3 {
        tokens,
        category: category.to_owned(),
        title: title.to_owned(),
        body: text_body.to_owned(),
        action_type,
        action: action.map(str::to_owned),
        data,
        bi_tag,
        message: without_tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::huawei::harmony::harmony_body;
    use crate::providers::huawei::wire::{send_body, HuaweiMessage};
    use serde_json::json;

    fn msg() -> HuaweiMessage {
        HuaweiMessage {
            ext: Some("{\"c\":1}".into()),
            ..crate::providers::huawei::wire::tests::msg()
        }
    }

    fn n(b: &mut Value) -> &mut serde_json::Map<String, Value> {
        b["payload"]["notification"].as_object_mut().unwrap()
    }

    fn check(body: &Value) -> Result<CheckedV3, &'static str> {
        validate_v3(body, &HuaweiRules::default()).map_err(|r| r.code)
    }

    #[test]
    fn our_client_body_passes_and_a_v1_body_does_not() {
        let body: Value = serde_json::from_str(&harmony_body(&msg(), &["t1", "t2"])).unwrap();
        let c = check(&body).expect("valid");
        assert_eq!(c.tokens, ["t1", "t2"]);
        assert_eq!((c.category.as_str(), c.action_type), ("IM", 0));
        assert_eq!(c.ext().as_deref(), Some("{\"c\":1}"));
        assert!(c.message["target"].get("token").is_none());
        let v1: Value = serde_json::from_str(&send_body(&msg(), &["t1"])).unwrap();
        assert_eq!(check(&v1).err(), Some("80100003"));
    }

    #[test]
    fn the_v3_rules_are_enforced() {
        let good: Value = serde_json::from_str(&harmony_body(&msg(), &["t"])).unwrap();
        let with = |f: &dyn Fn(&mut Value)| {
            let mut b = good.clone();
            f(&mut b);
            check(&b).err()
        };

        assert_eq!(
            with(&|b| b["target"]["token"] = json!([])),
            Some("80300010")
        );
        let many: Vec<String> = (0..1001).map(|i| i.to_string()).collect();
        assert_eq!(
            with(&|b| b["target"]["token"] = json!(many)),
            Some("80300010")
        );
        assert_eq!(
            with(&|b| b["target"]["token"] = json!([""])),
            Some("80100001")
        );
        assert_eq!(with(&|b| b["target"] = json!({})), Some("80100001"));
        assert_eq!(
            with(&|b| {
                n(b).remove("category");
            }),
            Some("80100003")
        );
        assert_eq!(
            with(&|b| {
                n(b).insert("category".into(), json!("CHAT"));
            }),
            Some("80100001")
        );
        assert_eq!(
            with(&|b| {
                n(b).remove("clickAction");
            }),
            Some("80100003")
        );
        assert_eq!(
            with(&|b| {
                n(b).insert("title".into(), json!(" "));
            }),
            Some("80100003")
        );
        assert_eq!(
            with(&|b| {
                n(b).insert("clickAction".into(), json!({"actionType": 1}));
            }),
            Some("80100001")
        );
        assert_eq!(
            with(&|b| {
                n(b).insert("clickAction".into(), json!({"actionType": 2}));
            }),
            Some("80100001")
        );
        assert_eq!(
            with(&|b| {
                n(b).insert("body".into(), json!("x".repeat(4096)));
            }),
            Some("80300008")
        );
        assert_eq!(
            with(&|b| b["pushOptions"]["ttl"] = json!("86400s")),
            Some("80100001")
        );
        assert_eq!(
            with(&|b| b["pushOptions"]["ttl"] = json!(1_296_001)),
            Some("80100001")
        );
        assert_eq!(
            with(&|b| b["validate_only"] = json!(false)),
            Some("80100003")
        );
        let eleven: Vec<String> = (0..11).map(|i| i.to_string()).collect();
        assert_eq!(
            with(&|b| {
                b["pushOptions"]["testMessage"] = json!(true);
                b["target"]["token"] = json!(eleven);
            }),
            Some("80300030")
        );
        assert!(with(&|b| b["pushOptions"]["ttl"] = json!(1_296_000)).is_none());
        // The open choice: a Huawei that does not take clickAction.data.
        let strict = HuaweiRules {
            v3_click_data: false,
            ..HuaweiRules::default()
        };
        assert_eq!(
            validate_v3(&good, &strict).map_err(|r| r.code).err(),
            Some("80100003")
        );
    }
}
