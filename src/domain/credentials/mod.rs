//! A certificate's vendor part: the credentials and vendor settings of one push service, tagged
//! by `vendor`. Stored records and API bodies stay flat JSON (`{"vendor":"xiaomi","app_id":…}`):
//! the enum is flattened into `Certificate`.
//!
//! Adding a vendor: a file here with its stored, input and view structs (secrets redacted in
//! `Debug`, never in a view), one arm in each enum below and in their `match`es.

mod meizu;
mod oppo;
mod vivo;
mod xiaomi;

pub use super::validate::FieldError;
pub use meizu::{MeizuCredentials, MeizuInput, MeizuView};
pub use oppo::{OppoCredentials, OppoInput, OppoView};
pub use vivo::{vivo_app_id, VivoCredentials, VivoInput, VivoView, VIVO_DEFAULT_CLASSIFICATION};
pub use xiaomi::{XiaomiCredentials, XiaomiInput, XiaomiView};

use super::certificate::Vendor;
use serde::{Deserialize, Serialize};

/// As stored; secrets included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "vendor", rename_all = "snake_case")]
pub enum Credentials {
    Xiaomi(XiaomiCredentials),
    Oppo(OppoCredentials),
    Vivo(VivoCredentials),
    Meizu(MeizuCredentials),
}

/// As an operator submits them (create, or edit with secrets optional).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "vendor", rename_all = "snake_case")]
pub enum CredentialsInput {
    Xiaomi(XiaomiInput),
    Oppo(OppoInput),
    Vivo(VivoInput),
    Meizu(MeizuInput),
}

/// As the API shows them: no secret, only whether it is set.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "vendor", rename_all = "snake_case")]
pub enum CredentialsView {
    Xiaomi(XiaomiView),
    Oppo(OppoView),
    Vivo(VivoView),
    Meizu(MeizuView),
}

impl Credentials {
    pub fn vendor(&self) -> Vendor {
        match self {
            Credentials::Xiaomi(_) => Vendor::Xiaomi,
            Credentials::Oppo(_) => Vendor::Oppo,
            Credentials::Vivo(_) => Vendor::Vivo,
            Credentials::Meizu(_) => Vendor::Meizu,
        }
    }

    pub fn view(&self) -> CredentialsView {
        match self {
            Credentials::Xiaomi(c) => CredentialsView::Xiaomi(c.into()),
            Credentials::Oppo(c) => CredentialsView::Oppo(c.into()),
            Credentials::Vivo(c) => CredentialsView::Vivo(c.into()),
            Credentials::Meizu(c) => CredentialsView::Meizu(c.into()),
        }
    }

    /// Xiaomi's part, if this is a Xiaomi certificate.
    pub fn xiaomi(&self) -> Option<&XiaomiCredentials> {
        match self {
            Credentials::Xiaomi(c) => Some(c),
            _ => None,
        }
    }

    pub fn oppo(&self) -> Option<&OppoCredentials> {
        match self {
            Credentials::Oppo(c) => Some(c),
            _ => None,
        }
    }

    pub fn vivo(&self) -> Option<&VivoCredentials> {
        match self {
            Credentials::Vivo(c) => Some(c),
            _ => None,
        }
    }

    pub fn meizu(&self) -> Option<&MeizuCredentials> {
        match self {
            Credentials::Meizu(c) => Some(c),
            _ => None,
        }
    }
}

impl CredentialsInput {
    pub fn vendor(&self) -> Vendor {
        match self {
            CredentialsInput::Xiaomi(_) => Vendor::Xiaomi,
            CredentialsInput::Oppo(_) => Vendor::Oppo,
            CredentialsInput::Vivo(_) => Vendor::Vivo,
            CredentialsInput::Meizu(_) => Vendor::Meizu,
        }
    }

    /// Checks every field, naming the culprit; secrets are required when `creating` (a new
    /// certificate, or an edit that changes the vendor).
    pub fn validate(&self, creating: bool) -> Result<(), FieldError> {
        match self {
            CredentialsInput::Xiaomi(i) => i.validate(creating),
            CredentialsInput::Oppo(i) => i.validate(creating),
            CredentialsInput::Vivo(i) => i.validate(creating),
            CredentialsInput::Meizu(i) => i.validate(creating),
        }
    }

    /// The credentials to store: a secret left out of an edit keeps `old`'s (same vendor only;
    /// `validate(true)` refuses a vendor change without secrets).
    pub fn into_credentials(self, old: Option<&Credentials>) -> Credentials {
        match self {
            CredentialsInput::Xiaomi(i) => {
                Credentials::Xiaomi(i.into_credentials(old.and_then(Credentials::xiaomi)))
            }
            CredentialsInput::Oppo(i) => {
                Credentials::Oppo(i.into_credentials(old.and_then(Credentials::oppo)))
            }
            CredentialsInput::Vivo(i) => {
                Credentials::Vivo(i.into_credentials(old.and_then(Credentials::vivo)))
            }
            CredentialsInput::Meizu(i) => {
                Credentials::Meizu(i.into_credentials(old.and_then(Credentials::meizu)))
            }
        }
    }
}

pub(crate) fn bad(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        message: message.into(),
    }
}

/// A secret: required when creating, never blank, at most 256 characters without spaces.
pub(crate) fn check_secret(
    field: &'static str,
    name: &str,
    value: Option<&str>,
    creating: bool,
) -> Result<(), FieldError> {
    match value {
        None if creating => Err(bad(field, format!("the {name} is required"))),
        Some(s) if s.trim().is_empty() => Err(bad(field, format!("the {name} is required"))),
        Some(s) if s.len() > 256 || s.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            Err(bad(
                field,
                format!("the {name} must be at most 256 characters without spaces"),
            ))
        }
        _ => Ok(()),
    }
}

/// An optional identifier-like setting (a channel id): 1 to `max` characters without spaces.
pub(crate) fn check_opt_token(
    field: &'static str,
    name: &str,
    value: Option<&str>,
    max: usize,
) -> Result<(), FieldError> {
    match value {
        Some(v)
            if v.is_empty()
                || v.len() > max
                || v.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            Err(bad(
                field,
                format!("the {name} must be 1 to {max} characters without spaces"),
            ))
        }
        _ => Ok(()),
    }
}
