//! The FCM and APNs credentials of a certificate, from what an operator submits: parsed by
//! their providers (a service account that does not parse, a .p8 that is not a P-256 key, is a
//! field error at once, not a broken certificate later). On edit, a secret left out keeps the
//! stored one.

use crate::domain::validate::{CertificateInput, FieldError};
use crate::domain::{Vendor, VendorCredentials};

use super::apns::ApnsKey;
use super::fcm::ServiceAccount;

fn bad(field: &'static str, message: &str) -> FieldError {
    FieldError {
        field,
        message: message.into(),
    }
}

/// The credentials to store for `input`; `stored` is the edited certificate's.
pub fn from_input(
    input: &CertificateInput,
    stored: Option<&VendorCredentials>,
) -> Result<VendorCredentials, FieldError> {
    match input.vendor {
        Vendor::Xiaomi => Ok(VendorCredentials::None),
        Vendor::Fcm => {
            let account = match (&input.service_account, stored.and_then(|s| s.fcm_service_account())) {
                (Some(given), _) => given.clone(),
                (None, Some(kept)) => kept.clone(),
                (None, None) => {
                    return Err(bad(
                        "service_account",
                        "the service-account JSON object is required (Firebase console → Project settings → Service accounts)",
                    ))
                }
            };
            ServiceAccount::from_json(&account).map_err(|e| FieldError {
                field: e.field,
                message: e.message,
            })?;
            Ok(VendorCredentials::Fcm {
                service_account: account,
            })
        }
        Vendor::Apns => {
            let old = stored.and_then(|s| s.apns_key());
            let pick = |given: &Option<String>, kept: Option<&str>, field: &'static str| {
                given
                    .clone()
                    .or_else(|| kept.map(str::to_owned))
                    .ok_or_else(|| bad(field, "is required"))
            };
            let key_id = pick(&input.key_id, old.map(|o| o.key_id), "key_id")?;
            let team_id = pick(&input.team_id, old.map(|o| o.team_id), "team_id")?;
            let private_key = pick(
                &input.private_key,
                old.map(|o| o.private_key),
                "private_key",
            )?;
            let environment = pick(
                &input.environment,
                old.map(|o| o.environment),
                "environment",
            )?;
            ApnsKey::new(
                &key_id,
                &team_id,
                &private_key,
                &environment,
                &input.package_name,
            )
            .map_err(|e| FieldError {
                field: e.field,
                message: e.message,
            })?;
            Ok(VendorCredentials::Apns {
                key_id: key_id.trim().to_owned(),
                team_id: team_id.trim().to_owned(),
                private_key,
                environment: environment.trim().to_owned(),
            })
        }
    }
}
