//! OAuth 2.0 client credentials, as Huawei (spec/vendors/huawei.md §2.1) and Honor (honor.md §2)
//! both do it: a form POST of `grant_type=client_credentials&client_id=…&client_secret=…`, a
//! bearer token and its lifetime back. Pure functions; the exchange is the client's.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

/// Huawei's documented lifetime, used when a reply has no `expires_in` (spec §2.1).
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// The form content type both token endpoints take.
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// An access token and how long the vendor said it lives.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    /// The bearer value; never logged (Debug redacts it).
    pub value: String,
    pub lifetime: Duration,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("value", &"<redacted>")
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

/// Why no token was granted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The credentials were refused (unknown client id, wrong secret): the certificate is broken.
    #[error("the token endpoint refused the credentials: {0}")]
    Refused(String),
    /// The endpoint was unreachable, busy or rate limited (HTTP 503, spec §2.1): retry later.
    #[error("the token endpoint failed: {0}")]
    Unavailable(String),
}

/// `grant_type=client_credentials&client_id=…&client_secret=…`, URL-encoded (secrets often hold
/// `/`, `+`, `=`).
pub fn token_form(client_id: &str, client_secret: &str) -> String {
    serde_urlencoded::to_string([
        ("grant_type", "client_credentials"),
        ("client_id", client_id),
        ("client_secret", client_secret),
    ])
    .unwrap_or_default()
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TokenReply {
    access_token: Option<String>,
    expires_in: Option<Value>,
    /// Huawei: an integer main code (1101); Keycloak-style endpoints: a string (`invalid_client`).
    error: Option<Value>,
    sub_error: Option<Value>,
    error_description: Option<String>,
}

fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A short printable excerpt of a body for diagnosis (never a request, so never a secret).
pub fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let mut cut: String = text.chars().take(200).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    cut
}

/// Classifies the token endpoint's answer.
pub fn parse_token_reply(status: u16, body: &[u8]) -> Result<AccessToken, TokenError> {
    let parsed = serde_json::from_slice::<TokenReply>(body).ok();
    if status == 200 {
        if let Some(reply) = &parsed {
            if let Some(token) = reply.access_token.as_deref().filter(|t| !t.is_empty()) {
                let lifetime = reply
                    .expires_in
                    .as_ref()
                    .and_then(as_u64)
                    .filter(|s| *s > 0)
                    .map_or(DEFAULT_LIFETIME, Duration::from_secs);
                return Ok(AccessToken {
                    value: token.to_owned(),
                    lifetime,
                });
            }
        }
    }
    // 429/503: "system rate limiting" of the token endpoint (1000 tokens / 5 min), 5xx: down.
    if status == 429 || status >= 500 {
        return Err(TokenError::Unavailable(format!(
            "HTTP {status}: {}",
            snippet(body)
        )));
    }
    match parsed {
        Some(reply) if reply.error.is_some() => {
            let mut code = reply.error.as_ref().map(show).unwrap_or_default();
            if let Some(sub) = &reply.sub_error {
                code = format!("{code}/{}", show(sub));
            }
            let description = reply.error_description.unwrap_or_default();
            Err(TokenError::Refused(
                format!("HTTP {status}, error {code}: {description}")
                    .trim_end_matches([':', ' '])
                    .to_owned(),
            ))
        }
        _ if matches!(status, 400 | 401 | 403) => Err(TokenError::Refused(format!(
            "HTTP {status}: {}",
            snippet(body)
        ))),
        _ => Err(TokenError::Unavailable(format!(
            "HTTP {status}, no access_token: {}",
            snippet(body)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_is_url_encoded() {
        assert_eq!(
            token_form("10086", "a/b+c=="),
            "grant_type=client_credentials&client_id=10086&client_secret=a%2Fb%2Bc%3D%3D"
        );
    }

    #[test]
    fn a_granted_token_carries_its_lifetime() {
        let t = parse_token_reply(
            200,
            br#"{"access_token":"CV7x","expires_in":3600,"token_type":"Bearer"}"#,
        )
        .expect("granted");
        assert_eq!(t.value, "CV7x");
        assert_eq!(t.lifetime, Duration::from_secs(3600));
        let t = parse_token_reply(200, br#"{"access_token":"x","expires_in":"86400"}"#)
            .expect("granted");
        assert_eq!(t.lifetime, Duration::from_secs(86400));
        let t = parse_token_reply(200, br#"{"access_token":"x"}"#).expect("granted");
        assert_eq!(t.lifetime, DEFAULT_LIFETIME);
        assert!(!format!("{t:?}").contains('x'));
    }

    #[test]
    fn refusals_and_outages_are_told_apart() {
        // Huawei's shape: 1101/12304 = wrong secret (spec §2.1).
        assert_eq!(
            parse_token_reply(
                400,
                br#"{"error":1101,"sub_error":12304,"error_description":"client secret invalid"}"#
            ),
            Err(TokenError::Refused(
                "HTTP 400, error 1101/12304: client secret invalid".into()
            ))
        );
        // Keycloak's shape (Honor's openid-connect endpoint).
        assert_eq!(
            parse_token_reply(401, br#"{"error":"invalid_client"}"#),
            Err(TokenError::Refused("HTTP 401, error invalid_client".into()))
        );
        assert!(matches!(
            parse_token_reply(503, b"busy"),
            Err(TokenError::Unavailable(_))
        ));
        assert!(matches!(
            parse_token_reply(200, b"not json"),
            Err(TokenError::Unavailable(_))
        ));
        assert!(matches!(
            parse_token_reply(403, b"<html>"),
            Err(TokenError::Refused(_))
        ));
        assert!(matches!(
            parse_token_reply(200, br#"{"access_token":""}"#),
            Err(TokenError::Unavailable(_))
        ));
    }
}
