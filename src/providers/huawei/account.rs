//! A Huawei service-account key (spec/vendors/huawei.md §2.2) and the JWT it signs: the key file
//! AppGallery Connect issues (`project_id`, `key_id`, `private_key` as PKCS#8 PEM,
//! `sub_account`, …), and `{"kid","typ":"JWT","alg":"PS256"}` over `{"iss":<sub_account>,
//! "aud":…,"iat","exp"}`. The JWT itself is the bearer token: no exchange call.
//!
//! The spec's source for this is the HarmonyOS v3 page; that v1/v2 take the same JWT, its
//! audience and its lifetime are not confirmed for v1/v2. Our defaults, documented in the
//! README: `aud` = [`JWT_AUDIENCE`] and a lifetime of [`JWT_LIFETIME_SECS`]. The emulator's
//! `HuaweiRules::{jwt_audience, jwt_max_validity_secs}` hold the other side of each choice.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::domain::validate::FieldError;
use crate::providers::jwt::{JwtError, Rs256Key};
use crate::providers::key_file::KeyFile;

/// `aud` of the JWT: the OAuth token URL, as the v3 page gives it (spec §2.2).
pub const JWT_AUDIENCE: &str = "https://oauth-login.cloud.huawei.com/oauth2/v3/token";
/// `exp − iat`: one hour as the spec's example; Huawei refuses more than a day (80300036).
pub const JWT_LIFETIME_SECS: u64 = 3600;

/// A parsed key file. The key is parsed once; `Debug` never prints it.
#[derive(Clone)]
pub struct ServiceAccount {
    pub project_id: String,
    /// The JWT header's `kid`.
    pub key_id: String,
    /// The JWT's `iss`.
    pub sub_account: String,
    key: Arc<Rs256Key>,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("project_id", &self.project_id)
            .field("key_id", &self.key_id)
            .field("sub_account", &self.sub_account)
            .field("private_key", &"<redacted>")
            .finish()
    }
}

/// An id that goes into a header or a URL: 1–128 visible ASCII characters without spaces.
fn check_id(value: &str, field: &'static str) -> Result<(), FieldError> {
    if value.len() > 128 || !value.chars().all(|c| c.is_ascii_graphic()) {
        return Err(FieldError {
            field,
            message: "must be at most 128 visible ASCII characters without spaces".into(),
        });
    }
    Ok(())
}

impl ServiceAccount {
    /// From the key file's JSON object. Errors name the field (`service_account.private_key`)
    /// and never quote the key.
    pub fn from_json(value: &Value) -> Result<ServiceAccount, FieldError> {
        let file = KeyFile::open(
            value,
            "service_account",
            "the service-account key file's JSON object",
        )?;
        let project_id = file.string("project_id", "service_account.project_id")?;
        check_id(project_id, "service_account.project_id")?;
        let key_id = file.string("key_id", "service_account.key_id")?;
        check_id(key_id, "service_account.key_id")?;
        let sub_account = file.string("sub_account", "service_account.sub_account")?;
        check_id(sub_account, "service_account.sub_account")?;
        let key = file.rsa_key("service_account.private_key")?;
        Ok(ServiceAccount {
            project_id: project_id.to_owned(),
            key_id: key_id.to_owned(),
            sub_account: sub_account.to_owned(),
            key: Arc::new(key),
        })
    }

    /// The key's public half (SubjectPublicKeyInfo PEM), what an emulator verifies with.
    pub fn public_pem(&self) -> Result<String, JwtError> {
        self.key.public_pem()
    }

    /// The bearer JWT, issued at `now` (Unix seconds), valid [`JWT_LIFETIME_SECS`].
    pub fn jwt(&self, now: u64) -> Result<String, JwtError> {
        let header = json!({ "kid": self.key_id, "typ": "JWT", "alg": "PS256" });
        let claims = json!({
            "iss": self.sub_account,
            "aud": JWT_AUDIENCE,
            "iat": now,
            "exp": now + JWT_LIFETIME_SECS,
        });
        self.key.sign_ps256(&header, &claims)
    }
}

/// A key file with a freshly made key, and its public half (PEM) for an emulator. For tests
/// and the sandbox only: the account exists nowhere but in an emulator.
pub fn sample_key_file(project_id: &str, key_id: &str) -> Result<(Value, String), String> {
    let pem = Rs256Key::generate_pem().map_err(|e| e.to_string())?;
    let public = Rs256Key::from_pem(&pem)
        .and_then(|k| k.public_pem())
        .map_err(|e| e.to_string())?;
    let file = json!({
        "project_id": project_id,
        "key_id": key_id,
        "private_key": pem,
        "sub_account": format!("{project_id}-sub"),
        "auth_uri": "https://oauth-login.cloud.huawei.com/oauth2/v3/authorize",
        "token_uri": JWT_AUDIENCE,
        "auth_provider_cert_uri": "https://oauth-login.cloud.huawei.com/oauth2/v3/certs",
        "client_cert_uri": "https://oauth-login.cloud.huawei.com/oauth2/v3/x509?client_id=",
    });
    Ok((file, public))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::jwt::{decode, Alg};

    #[test]
    fn the_jwt_carries_what_the_spec_lists_and_verifies_ps256() {
        let (file, public) = sample_key_file("736430079244623135", "kid-1").unwrap();
        let account = ServiceAccount::from_json(&file).unwrap();
        let jwt = account.jwt(1_700_000_000).unwrap();
        let d = decode(&jwt).unwrap();
        d.verify(Alg::Ps256, &public).unwrap();
        assert_eq!(d.header_str("alg"), Some("PS256"));
        assert_eq!(d.header_str("typ"), Some("JWT"));
        assert_eq!(d.header_str("kid"), Some("kid-1"));
        assert_eq!(d.claim_str("iss"), Some("736430079244623135-sub"));
        assert_eq!(d.claim_str("aud"), Some(JWT_AUDIENCE));
        assert_eq!(d.claim_i64("iat"), Some(1_700_000_000));
        assert_eq!(d.claim_i64("exp"), Some(1_700_003_600));
        assert!(!format!("{account:?}").contains("PRIVATE"));
    }

    #[test]
    fn a_bad_key_file_names_the_field() {
        let (file, _) = sample_key_file("1", "k").unwrap();
        let with = |name: &str, v: Value| {
            let mut f = file.clone();
            f[name] = v;
            ServiceAccount::from_json(&f).unwrap_err().field
        };
        assert_eq!(with("key_id", Value::Null), "service_account.key_id");
        assert_eq!(with("key_id", json!("a b")), "service_account.key_id");
        assert_eq!(with("sub_account", json!(7)), "service_account.sub_account");
        assert_eq!(with("project_id", json!("")), "service_account.project_id");
        let e = ServiceAccount::from_json(&{
            let mut f = file.clone();
            f["private_key"] =
                json!("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----");
            f
        })
        .unwrap_err();
        assert_eq!(e.field, "service_account.private_key");
        assert!(!e.message.contains("AAAA"));
        assert_eq!(
            ServiceAccount::from_json(&json!("text")).unwrap_err().field,
            "service_account"
        );
    }
}
