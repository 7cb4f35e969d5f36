//! The token-auth credentials of an APNs certificate (.p8 key, key id, team id, bundle id,
//! environment) and the ES256 provider token they sign (spec/vendors/apns.md §2).

use std::sync::{Arc, Mutex, PoisonError};

use serde_json::json;

use crate::providers::jwt::{Es256Key, JwtError};

/// Apple refuses a provider token older than one hour (`ExpiredProviderToken`) and a new token
/// more often than once per 20 minutes (`TooManyProviderTokenUpdates`). We sign a new one after
/// 50 minutes: inside the window with ten minutes to spare, and far from the 20-minute floor.
pub const RENEW_AFTER_SECS: u64 = 50 * 60;
pub const MIN_RENEW_SECS: u64 = 20 * 60;

/// Which APNs a certificate's tokens belong to (a sandbox token sent to production is
/// `BadDeviceToken`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Environment {
    Production,
    Sandbox,
}

impl Environment {
    pub fn parse(s: &str) -> Option<Environment> {
        match s {
            "production" => Some(Environment::Production),
            "sandbox" | "development" => Some(Environment::Sandbox),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Production => "production",
            Environment::Sandbox => "sandbox",
        }
    }

    /// Apple's host for this environment (spec §1).
    pub fn default_base_url(self) -> &'static str {
        match self {
            Environment::Production => "https://api.push.apple.com",
            Environment::Sandbox => "https://api.sandbox.push.apple.com",
        }
    }
}

/// A field that is missing or wrong; the message never quotes the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError {
    pub field: &'static str,
    pub message: String,
}

fn err(field: &'static str, message: impl Into<String>) -> KeyError {
    KeyError {
        field,
        message: message.into(),
    }
}

/// Apple's key and team ids are 10 characters, letters and digits.
fn apple_id(s: &str) -> bool {
    s.len() == 10 && s.chars().all(|c| c.is_ascii_alphanumeric())
}

/// The parsed credentials; `Debug` never prints the key.
#[derive(Clone)]
pub struct ApnsKey {
    pub key_id: String,
    pub team_id: String,
    /// `apns-topic`: the app's bundle id (the certificate's `package_name`).
    pub bundle_id: String,
    pub environment: Environment,
    key: Arc<Es256Key>,
}

impl std::fmt::Debug for ApnsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApnsKey")
            .field("key_id", &self.key_id)
            .field("team_id", &self.team_id)
            .field("bundle_id", &self.bundle_id)
            .field("environment", &self.environment)
            .field("private_key", &"<redacted>")
            .finish()
    }
}

/// The checks of the key's own fields (ids, environment, the .p8), the bundle id aside.
fn parse_fields(
    key_id: &str,
    team_id: &str,
    private_key: &str,
    environment: &str,
) -> Result<(Environment, Es256Key), KeyError> {
    let environment = check_ids(key_id, team_id, environment)?;
    if private_key.trim().is_empty() {
        return Err(err("private_key", "is required (the text of the .p8 file)"));
    }
    let key = Es256Key::from_pem(private_key).map_err(|e| {
        err(
            "private_key",
            format!("must be the .p8 file's text, a PKCS#8 P-256 key ({e})"),
        )
    })?;
    Ok((environment, key))
}

/// Whether a key id, team id, .p8 text and environment can sign provider tokens: what the
/// certificate's validation asks before anything is stored. `private_key` is `None` on an edit
/// that keeps the stored key (already checked when it was stored).
pub fn check_fields(
    key_id: &str,
    team_id: &str,
    private_key: Option<&str>,
    environment: &str,
) -> Result<(), KeyError> {
    check_ids(key_id, team_id, environment)?;
    match private_key {
        Some(pem) => parse_fields(key_id, team_id, pem, environment).map(|_| ()),
        None => Ok(()),
    }
}

fn check_ids(key_id: &str, team_id: &str, environment: &str) -> Result<Environment, KeyError> {
    if !apple_id(key_id.trim()) {
        return Err(err(
            "key_id",
            "must be the 10-character Key ID shown with the .p8 key",
        ));
    }
    if !apple_id(team_id.trim()) {
        return Err(err(
            "team_id",
            "must be the 10-character Team ID of the developer account",
        ));
    }
    Environment::parse(environment.trim())
        .ok_or_else(|| err("environment", "must be \"production\" or \"sandbox\""))
}

/// A bundle id: letters, digits, '.' and '-' (Apple's rule).
pub fn valid_bundle_id(bundle_id: &str) -> bool {
    !bundle_id.is_empty()
        && bundle_id.len() <= 255
        && bundle_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
}

impl ApnsKey {
    pub fn new(
        key_id: &str,
        team_id: &str,
        private_key: &str,
        environment: &str,
        bundle_id: &str,
    ) -> Result<ApnsKey, KeyError> {
        let (environment, key) = parse_fields(key_id, team_id, private_key, environment)?;
        let bundle_id = bundle_id.trim();
        if !valid_bundle_id(bundle_id) {
            return Err(err(
                "package_name",
                "must be the app's bundle id (letters, digits, '.', '-')",
            ));
        }
        Ok(ApnsKey {
            key_id: key_id.trim().to_owned(),
            team_id: team_id.trim().to_owned(),
            bundle_id: bundle_id.to_owned(),
            environment,
            key: Arc::new(key),
        })
    }

    /// `{"alg":"ES256","kid":…}.{"iss":team,"iat":now}` — nothing else (spec §2).
    pub fn sign(&self, iat: u64) -> Result<String, JwtError> {
        self.key.sign(
            &json!({ "alg": "ES256", "kid": self.key_id }),
            &json!({ "iss": self.team_id, "iat": iat }),
        )
    }
}

/// The provider token of one key, shared by all requests of its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderToken {
    pub jwt: Arc<str>,
    pub issued_at: u64,
}

/// Keeps one token per key within Apple's window: reused until [`RENEW_AFTER_SECS`], and never
/// replaced sooner than [`MIN_RENEW_SECS`] after it was made, even when APNs calls it expired
/// (a clock problem a new token would not fix, and re-signing would earn
/// `TooManyProviderTokenUpdates`).
#[derive(Default)]
pub struct TokenMemo {
    current: Mutex<Option<ProviderToken>>,
}

impl TokenMemo {
    /// The token to use at `now`, signing a new one when the old is due; `renew` asks for a new
    /// one (APNs answered `ExpiredProviderToken`), honoured only past the 20-minute floor.
    pub fn get(&self, key: &ApnsKey, now: u64, renew: bool) -> Result<ProviderToken, JwtError> {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(t) = current.as_ref() {
            let age = now.saturating_sub(t.issued_at);
            let due = age >= RENEW_AFTER_SECS || (renew && age >= MIN_RENEW_SECS);
            if !due {
                return Ok(t.clone());
            }
        }
        let token = ProviderToken {
            jwt: Arc::from(key.sign(now)?),
            issued_at: now,
        };
        *current = Some(token.clone());
        Ok(token)
    }
}

/// A test-only `.p8`-style key (generated on the spot) with ids in Apple's shape.
pub fn sample_key_pem() -> Result<String, JwtError> {
    Es256Key::generate_pem()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::jwt::{decode, Alg};

    fn key() -> (ApnsKey, String) {
        let pem = sample_key_pem().unwrap();
        let public = Es256Key::from_pem(&pem).unwrap().public_pem().unwrap();
        (
            ApnsKey::new(
                "ABC123DEFG",
                "DEF123GHIJ",
                &pem,
                "sandbox",
                "com.example.chat",
            )
            .unwrap(),
            public,
        )
    }

    #[test]
    fn provider_token_has_exactly_apples_fields() {
        let (k, public) = key();
        let d = decode(&k.sign(1_700_000_000).unwrap()).unwrap();
        d.verify(Alg::Es256, &public).unwrap();
        assert_eq!(d.header.len(), 2);
        assert_eq!(d.header_str("alg"), Some("ES256"));
        assert_eq!(d.header_str("kid"), Some("ABC123DEFG"));
        assert_eq!(d.claims.len(), 2);
        assert_eq!(d.claim_str("iss"), Some("DEF123GHIJ"));
        assert_eq!(d.claim_i64("iat"), Some(1_700_000_000));
        assert!(!format!("{k:?}").contains("PRIVATE"));
    }

    #[test]
    fn tokens_are_renewed_inside_apples_window() {
        let (k, _) = key();
        let memo = TokenMemo::default();
        let t0 = memo.get(&k, 1000, false).unwrap();
        assert_eq!(memo.get(&k, 1000 + 49 * 60, false).unwrap(), t0);
        // "Expired" 5 minutes after signing: not re-signed (20-minute floor).
        assert_eq!(memo.get(&k, 1000 + 5 * 60, true).unwrap(), t0);
        // Past 20 minutes a refusal gets a new token.
        let t1 = memo.get(&k, 1000 + 21 * 60, true).unwrap();
        assert_eq!(t1.issued_at, 1000 + 21 * 60);
        // And at 50 minutes of age it is renewed unasked, long before Apple's hour.
        let t2 = memo
            .get(&k, t1.issued_at + RENEW_AFTER_SECS, false)
            .unwrap();
        assert_eq!(t2.issued_at, t1.issued_at + RENEW_AFTER_SECS);
    }

    #[test]
    fn every_bad_field_is_named() {
        let pem = sample_key_pem().unwrap();
        let f = |kid: &str, team: &str, pem: &str, env: &str, bundle: &str| {
            ApnsKey::new(kid, team, pem, env, bundle).unwrap_err().field
        };
        assert_eq!(f("short", "DEF123GHIJ", &pem, "sandbox", "a.b"), "key_id");
        assert_eq!(
            f("ABC123DEFG", "DEF-23GHIJ", &pem, "sandbox", "a.b"),
            "team_id"
        );
        assert_eq!(
            f("ABC123DEFG", "DEF123GHIJ", &pem, "staging", "a.b"),
            "environment"
        );
        assert_eq!(
            f("ABC123DEFG", "DEF123GHIJ", &pem, "production", "a b"),
            "package_name"
        );
        assert_eq!(
            f("ABC123DEFG", "DEF123GHIJ", "", "production", "a.b"),
            "private_key"
        );
        let rsa = crate::providers::jwt::Rs256Key::generate_pem().unwrap();
        assert_eq!(
            f("ABC123DEFG", "DEF123GHIJ", &rsa, "production", "a.b"),
            "private_key"
        );
    }
}
