//! Push-token report rules (spec/tim-offline-push.md §3.2, TIM error codes kept).

/// Tokens longer than this are refused (TIM 22004).
pub const MAX_TOKEN_BYTES: usize = 256;

/// Why a token report is refused. `tim_code` is Tencent's code for the same case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the device is not logged in; report the push token after login")]
    NotLoggedIn,
    #[error("no certificate with id {0}; add it in the console first")]
    UnknownCertificate(u64),
    #[error("the push token is empty")]
    Empty,
    #[error("the push token is {0} bytes; at most 256 are allowed")]
    TooLong(usize),
}

impl TokenError {
    pub fn tim_code(&self) -> u32 {
        match self {
            TokenError::NotLoggedIn => 21005,
            TokenError::UnknownCertificate(_) => 22001,
            TokenError::Empty => 22003,
            TokenError::TooLong(_) => 22004,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            TokenError::NotLoggedIn => "not_logged_in",
            TokenError::UnknownCertificate(_) => "unknown_certificate",
            TokenError::Empty => "empty_token",
            TokenError::TooLong(_) => "token_too_long",
        }
    }
}

/// Checks the token's own shape (the state and certificate checks need the registry).
pub fn check_token_shape(token: &str) -> Result<(), TokenError> {
    if token.trim().is_empty() {
        return Err(TokenError::Empty);
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::TooLong(token.len()));
    }
    Ok(())
}

/// A short, non-reversible rendering of a token for responses and logs: never the token in full.
pub fn redact(token: &str) -> String {
    let n = token.chars().count();
    if n <= 8 {
        return "…".to_string();
    }
    let head: String = token.chars().take(4).collect();
    let tail: String = token.chars().skip(n - 4).collect();
    format!("{head}…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_rules_and_codes() {
        assert_eq!(check_token_shape(""), Err(TokenError::Empty));
        assert_eq!(
            check_token_shape("   ").map_err(|e| e.tim_code()),
            Err(22003)
        );
        let long = "x".repeat(257);
        assert_eq!(check_token_shape(&long), Err(TokenError::TooLong(257)));
        assert_eq!(TokenError::TooLong(257).tim_code(), 22004);
        assert!(check_token_shape(&"x".repeat(256)).is_ok());
        assert_eq!(TokenError::NotLoggedIn.tim_code(), 21005);
        assert_eq!(TokenError::UnknownCertificate(1).tim_code(), 22001);
    }

    #[test]
    fn redaction_hides_the_middle() {
        assert_eq!(redact("abcdefghijkl"), "abcd…ijkl");
        assert_eq!(redact("short"), "…");
    }
}
