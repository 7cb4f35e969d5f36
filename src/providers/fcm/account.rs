//! The service-account JSON an FCM certificate holds, and the RS256 assertion it signs for the
//! OAuth exchange at its `token_uri` (spec/vendors/fcm.md §2).

use std::sync::Arc;

use serde_json::{json, Value};

use crate::domain::validate::FieldError;
use crate::providers::jwt::Rs256Key;
use crate::providers::key_file::KeyFile;

/// The OAuth scope FCM sends need (spec §2 step 2).
pub const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// Google's token endpoint, the `token_uri` of every real service account.
pub const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// Assertions live one hour, Google's maximum (spec §2 step 2).
pub const ASSERTION_LIFETIME_SECS: u64 = 3600;

/// A field of the service account that is missing or wrong: `field` is the path an operator
/// sees (`service_account.private_key`); the message never quotes a secret.
pub type AccountError = FieldError;

fn err(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        message: message.into(),
    }
}

/// A parsed service account. The key is parsed once; `Debug` never prints it.
#[derive(Clone)]
pub struct ServiceAccount {
    pub project_id: String,
    pub client_email: String,
    pub private_key_id: Option<String>,
    pub token_uri: String,
    key: Arc<Rs256Key>,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("project_id", &self.project_id)
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .field("private_key", &"<redacted>")
            .finish()
    }
}

/// A project id goes into the send URL's path: letters, digits and `-` (Google's rule), plus
/// `.` and `:` for domain-scoped projects (`example.com:my-app`).
fn valid_project_id(s: &str) -> bool {
    s.len() <= 100
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':' | '_'))
}

impl ServiceAccount {
    /// From the JSON object Google issues (the console's "Generate new private key").
    pub fn from_json(value: &Value) -> Result<ServiceAccount, AccountError> {
        let file = KeyFile::open(value, "service_account", "the service-account JSON object")?;
        if let Some(kind) = file.get("type") {
            if kind.as_str() != Some("service_account") {
                return Err(err(
                    "service_account.type",
                    "must be \"service_account\" (a user or API-key credential cannot send)",
                ));
            }
        }
        let project_id = file.string("project_id", "service_account.project_id")?;
        if !valid_project_id(project_id) {
            return Err(err(
                "service_account.project_id",
                "must be the project id (letters, digits, '-'), not a name",
            ));
        }
        let client_email = file.string("client_email", "service_account.client_email")?;
        if !client_email.contains('@') {
            return Err(err(
                "service_account.client_email",
                "must be an e-mail address",
            ));
        }
        let token_uri = file
            .optional("token_uri", "service_account.token_uri")?
            .unwrap_or(GOOGLE_TOKEN_URI);
        if !(token_uri.starts_with("https://") || token_uri.starts_with("http://")) {
            return Err(err("service_account.token_uri", "must be an http(s) URL"));
        }
        let key = file.rsa_key("service_account.private_key")?;
        let private_key_id = file
            .get("private_key_id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        Ok(ServiceAccount {
            project_id: project_id.to_owned(),
            client_email: client_email.to_owned(),
            private_key_id,
            token_uri: token_uri.to_owned(),
            key: Arc::new(key),
        })
    }

    /// The signed JWT for the `jwt-bearer` grant, issued at `now` (Unix seconds).
    pub fn assertion(&self, now: u64) -> Result<String, crate::providers::jwt::JwtError> {
        let mut header = json!({ "alg": "RS256", "typ": "JWT" });
        if let Some(kid) = &self.private_key_id {
            header["kid"] = json!(kid);
        }
        let claims = json!({
            "iss": self.client_email,
            "scope": SCOPE,
            "aud": self.token_uri,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_SECS,
        });
        self.key.sign(&header, &claims)
    }

    /// The form body of the token request (spec §2 step 3).
    pub fn token_form(assertion: &str) -> String {
        serde_urlencoded::to_string([
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", assertion),
        ])
        .unwrap_or_default()
    }
}

/// A service-account JSON for tests and the sandbox, with a freshly generated key. Test-only:
/// the key is made on the spot and the account exists nowhere but in an emulator.
pub fn sample_account_json(project_id: &str, token_uri: &str) -> Result<(Value, String), String> {
    let pem = Rs256Key::generate_pem().map_err(|e| e.to_string())?;
    let public = Rs256Key::from_pem(&pem)
        .and_then(|k| k.public_pem())
        .map_err(|e| e.to_string())?;
    let account = json!({
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": "emulator-key-1",
        "private_key": pem,
        "client_email": format!("pushgate@{project_id}.iam.gserviceaccount.com"),
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    });
    Ok((account, public))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::jwt::{decode, Alg};

    #[test]
    fn assertion_carries_the_claims_google_checks() {
        let (json, public) = sample_account_json("my-app-1234", GOOGLE_TOKEN_URI).unwrap();
        let account = ServiceAccount::from_json(&json).unwrap();
        let jwt = account.assertion(1_700_000_000).unwrap();
        let d = decode(&jwt).unwrap();
        d.verify(Alg::Rs256, &public).unwrap();
        assert_eq!(d.header_str("alg"), Some("RS256"));
        assert_eq!(d.header_str("typ"), Some("JWT"));
        assert_eq!(d.header_str("kid"), Some("emulator-key-1"));
        assert_eq!(
            d.claim_str("iss"),
            Some("pushgate@my-app-1234.iam.gserviceaccount.com")
        );
        assert_eq!(d.claim_str("scope"), Some(SCOPE));
        assert_eq!(d.claim_str("aud"), Some(GOOGLE_TOKEN_URI));
        assert_eq!(d.claim_i64("iat"), Some(1_700_000_000));
        assert_eq!(d.claim_i64("exp"), Some(1_700_003_600));
        let form = ServiceAccount::token_form("a.b.c");
        assert_eq!(
            form,
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=a.b.c"
        );
        assert!(!format!("{account:?}").contains("PRIVATE"));
    }

    #[test]
    fn every_bad_field_is_named() {
        let (good, _) = sample_account_json("p1", GOOGLE_TOKEN_URI).unwrap();
        let with = |k: &str, v: Value| {
            let mut j = good.clone();
            j[k] = v;
            ServiceAccount::from_json(&j).unwrap_err().field
        };
        assert_eq!(
            with("type", json!("authorized_user")),
            "service_account.type"
        );
        assert_eq!(with("project_id", json!("")), "service_account.project_id");
        assert_eq!(
            with("project_id", json!("My App/1")),
            "service_account.project_id"
        );
        assert_eq!(
            with("client_email", json!(3)),
            "service_account.client_email"
        );
        assert_eq!(
            with("client_email", json!("nobody")),
            "service_account.client_email"
        );
        assert_eq!(
            with("token_uri", json!("ftp://x")),
            "service_account.token_uri"
        );
        assert_eq!(
            with(
                "private_key",
                json!("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----")
            ),
            "service_account.private_key"
        );
        assert_eq!(
            ServiceAccount::from_json(&json!("text")).unwrap_err().field,
            "service_account"
        );
        // token_uri may be absent: Google's is meant.
        let mut j = good.clone();
        j.as_object_mut().unwrap().remove("token_uri");
        assert_eq!(
            ServiceAccount::from_json(&j).unwrap().token_uri,
            GOOGLE_TOKEN_URI
        );
    }
}
