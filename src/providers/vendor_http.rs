//! The HTTP plumbing the OPPO, vivo and Meizu clients share: one kept-alive `reqwest` pool per
//! vendor, a checked base URL, and one POST that returns the status and body or a transport error
//! in words. Classification is each vendor's.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderName, HeaderValue, CONTENT_TYPE};

/// Why a vendor client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("base URL {url:?} is not an http(s) URL")]
    BaseUrl { url: String },
    #[error("building the HTTP client: {0}")]
    Build(#[from] reqwest::Error),
}

/// Connect timeout cap; the whole-request timeout is the caller's.
const CONNECT_TIMEOUT_MAX: Duration = Duration::from_secs(3);

pub const FORM: &str = "application/x-www-form-urlencoded;charset=UTF-8";
pub const JSON: &str = "application/json;charset=UTF-8";

/// `url` without a trailing slash, when it is an http(s) URL with a host.
pub fn base_url(url: &str) -> Result<String, ClientError> {
    let base = url.trim().trim_end_matches('/');
    let ok = reqwest::Url::parse(base)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
    if ok {
        Ok(base.to_owned())
    } else {
        Err(ClientError::BaseUrl {
            url: url.to_owned(),
        })
    }
}

pub fn build(timeout: Duration) -> Result<reqwest::Client, ClientError> {
    Ok(reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(CONNECT_TIMEOUT_MAX))
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .build()?)
}

/// A header whose value is a secret (vivo's `authToken`): kept out of any `Debug` output.
pub fn sensitive(name: &'static str, value: &str) -> Option<(HeaderName, HeaderValue)> {
    let mut v = HeaderValue::from_str(value).ok()?;
    v.set_sensitive(true);
    Some((HeaderName::from_static(name), v))
}

/// One POST; `Err` is a transport failure in words (never carries a secret).
pub async fn post(
    http: &reqwest::Client,
    url: &str,
    content_type: &'static str,
    header: Option<(HeaderName, HeaderValue)>,
    body: String,
) -> Result<(u16, Bytes), String> {
    let mut request = http.post(url).header(CONTENT_TYPE, content_type).body(body);
    if let Some((name, value)) = header {
        request = request.header(name, value);
    }
    let response = request.send().await.map_err(|e| transport(&e))?;
    let status = response.status().as_u16();
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("reading the reply (HTTP {status}): {}", transport(&e)))?;
    Ok((status, body))
}

/// A reqwest error in words, with its kind first (timeout / connect / …).
fn transport(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timeout"
    } else if err.is_connect() {
        "connect error"
    } else if err.is_body() || err.is_decode() {
        "body error"
    } else {
        "request error"
    };
    // reqwest's Display names the URL; no secret is ever part of one here.
    format!("{kind}: {err}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_checked() {
        assert_eq!(
            base_url("http://127.0.0.1:1/").ok().as_deref(),
            Some("http://127.0.0.1:1")
        );
        for bad in ["", "api.push.oppomobile.com", "ftp://x", "http://"] {
            assert!(base_url(bad).is_err(), "{bad}");
        }
    }
}
