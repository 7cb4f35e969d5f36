//! Service-account JWTs as the emulator checks them (spec §2.2): `{"kid","typ":"JWT",
//! "alg":"PS256"}` signed with the key whose public half was configured under that `kid`,
//! `iss` = the account's `sub_account`, `aud` = `HuaweiRules::jwt_audience`, and `exp` after
//! now but at most `HuaweiRules::jwt_max_validity_secs` after `iat` (80300036). Expired: 80200005.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::push::Reject;
use super::HuaweiRules;
use crate::providers::jwt::{self, Alg};

/// A service account the emulator knows: the public half of its key, never the key itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceAccountKey {
    /// The JWT header's `kid`.
    pub key_id: String,
    /// The JWT's `iss`.
    pub sub_account: String,
    /// SubjectPublicKeyInfo PEM (`PUBLIC KEY`) that verifies the account's signatures.
    pub public_key: String,
    /// App ids (and project ids) this account may send for in the URL.
    pub app_ids: Vec<String>,
}

/// The accounts, and the cut-off before which every JWT counts as expired.
#[derive(Default)]
pub(crate) struct Accounts {
    keys: Mutex<Vec<ServiceAccountKey>>,
    /// Unix seconds; a JWT with an older `iat` answers 80200005 (a test of renewal).
    not_before: AtomicU64,
}

impl Accounts {
    pub fn new(keys: Vec<ServiceAccountKey>) -> Self {
        Accounts {
            keys: Mutex::new(keys),
            not_before: AtomicU64::new(0),
        }
    }

    /// Adds an account, replacing one with the same `key_id`.
    pub fn add(&self, key: ServiceAccountKey) {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        keys.retain(|k| k.key_id != key.key_id);
        keys.push(key);
    }

    fn find(&self, key_id: &str) -> Option<ServiceAccountKey> {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|k| k.key_id == key_id)
            .cloned()
    }

    /// Every JWT issued before `unix_secs` expires now.
    pub fn expire_before(&self, unix_secs: u64) {
        self.not_before.store(unix_secs, Ordering::Relaxed);
    }

    /// Checks a bearer that is a JWT against the app id of the URL. `accept_any` takes an
    /// unknown `kid` on trust (the permissive emulator), still checking the claims.
    pub fn check(
        &self,
        token: &str,
        app_id: &str,
        now_secs: u64,
        rules: &HuaweiRules,
        accept_any: bool,
    ) -> Result<String, Reject> {
        let refused = |why: &str| {
            Reject::new(
                rules.auth_error_status,
                "80200001",
                format!("Oauth authentication error: {why}"),
            )
        };
        let decoded = jwt::decode(token).map_err(|e| refused(&e.to_string()))?;
        if decoded.header_str("alg") != Some("PS256") || decoded.header_str("typ") != Some("JWT") {
            return Err(refused("the JWT header must say alg PS256, typ JWT"));
        }
        let kid = decoded
            .header_str("kid")
            .ok_or_else(|| refused("the JWT header has no kid"))?;
        let account = self.find(kid);
        match &account {
            Some(a) => {
                decoded
                    .verify(Alg::Ps256, &a.public_key)
                    .map_err(|_| refused("the JWT signature does not verify"))?;
                if decoded.claim_str("iss") != Some(a.sub_account.as_str()) {
                    return Err(refused("iss is not the account's sub_account"));
                }
            }
            None if accept_any => {}
            None => return Err(refused("unknown kid")),
        }
        if decoded.claim_str("aud") != Some(rules.jwt_audience.as_str()) {
            return Err(refused("wrong aud"));
        }
        let (Some(iat), Some(exp)) = (decoded.claim_i64("iat"), decoded.claim_i64("exp")) else {
            return Err(refused("iat and exp must be integers"));
        };
        let (iat, exp) = (iat.max(0) as u64, exp.max(0) as u64);
        if exp.saturating_sub(iat) > rules.jwt_max_validity_secs {
            return Err(Reject::new(
                rules.auth_error_status,
                "80300036",
                "The validity period of the JWT token exceeds one day",
            ));
        }
        if exp <= now_secs || iat < self.not_before.load(Ordering::Relaxed) {
            return Err(Reject::new(
                rules.auth_error_status,
                "80200005",
                "Jwt token expired",
            ));
        }
        // Five minutes of clock skew, as JWT checkers commonly allow.
        if iat > now_secs + 300 {
            return Err(refused("iat is in the future"));
        }
        if let Some(a) = &account {
            if !a.app_ids.iter().any(|id| id == app_id) {
                return Err(refused("the service account does not own this app id"));
            }
        }
        Ok(kid.to_owned())
    }
}

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/_emulator/service_accounts")
            .route(web::get().to(list))
            .route(web::post().to(add)),
    );
}

async fn list(vendor: web::Data<super::Vendor>) -> HttpResponse {
    let keys = vendor
        .accounts
        .keys
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    HttpResponse::Ok().json(keys)
}

/// `POST /_emulator/service_accounts` with one account or an array of them.
async fn add(vendor: web::Data<super::Vendor>, body: web::Bytes) -> HttpResponse {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(ServiceAccountKey),
        Many(Vec<ServiceAccountKey>),
    }
    let keys = match serde_json::from_slice::<OneOrMany>(&body) {
        Ok(OneOrMany::One(k)) => vec![k],
        Ok(OneOrMany::Many(ks)) => ks,
        Err(err) => {
            return HttpResponse::BadRequest()
                .json(json!({ "error": format!("bad account: {err}") }))
        }
    };
    for k in &keys {
        if jwt::pem_decode(&k.public_key, "PUBLIC KEY").is_err() {
            return HttpResponse::BadRequest()
                .json(json!({ "error": "public_key must be a PUBLIC KEY PEM block" }));
        }
    }
    let n = keys.len();
    for k in keys {
        vendor.accounts.add(k);
    }
    HttpResponse::Ok().json(json!({ "added": n }))
}
