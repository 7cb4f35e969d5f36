//! The service-account key files two vendors issue — Google's for FCM (spec/vendors/fcm.md §2)
//! and AppGallery Connect's for Huawei (huawei.md §2.2): a JSON object of string members, one of
//! them `private_key`, an RSA key as PKCS#8 PEM. One reader serves both, so a bad member is
//! named the same way whichever vendor's file it is in (`service_account.private_key`), and no
//! message ever quotes the key.

use serde_json::{Map, Value};

use crate::domain::validate::FieldError;
use crate::providers::jwt::Rs256Key;

fn err(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        message: message.into(),
    }
}

/// A key file's JSON object, read member by member.
#[derive(Clone, Copy)]
pub struct KeyFile<'a>(&'a Map<String, Value>);

impl<'a> KeyFile<'a> {
    /// The file itself; anything but a JSON object is an error naming `field` (the
    /// certificate's `service_account`), saying what was expected (`what`).
    pub fn open(value: &'a Value, field: &'static str, what: &str) -> Result<Self, FieldError> {
        match value {
            Value::Object(obj) => Ok(KeyFile(obj)),
            _ => Err(err(field, format!("must be {what}"))),
        }
    }

    /// A member as it is, for the lenient reads (an optional id).
    pub fn get(&self, name: &str) -> Option<&'a Value> {
        self.0.get(name)
    }

    /// A required string member, trimmed; missing, null or blank: "is required".
    pub fn string(&self, name: &str, field: &'static str) -> Result<&'a str, FieldError> {
        match self.0.get(name) {
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim()),
            Some(Value::String(_)) | None | Some(Value::Null) => Err(err(field, "is required")),
            Some(_) => Err(err(field, "must be a string")),
        }
    }

    /// A string member that may be absent (or null); present, it must be a non-blank string.
    pub fn optional(&self, name: &str, field: &'static str) -> Result<Option<&'a str>, FieldError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.string(name, field).map(Some),
        }
    }

    /// The `private_key` member parsed as an RSA key (PKCS#8 PEM); errors name `field` and say
    /// what is wrong with the PEM without quoting it.
    pub fn rsa_key(&self, field: &'static str) -> Result<Rs256Key, FieldError> {
        let pem = self.string("private_key", field)?;
        Rs256Key::from_pem(pem).map_err(|e| {
            err(
                field,
                format!("must be the account's RSA key in PKCS#8 PEM ({e})"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn members_are_read_and_each_fault_named_without_the_key() {
        let pem = Rs256Key::generate_pem().unwrap();
        let file = json!({"id": " a1 ", "n": 3, "blank": " ", "none": null, "private_key": pem});
        let f = KeyFile::open(&file, "service_account", "a key file").unwrap();
        assert_eq!(f.string("id", "sa.id").unwrap(), "a1");
        let fault = |r: Result<&str, FieldError>| r.map_err(|e| (e.field, e.message)).unwrap_err();
        assert_eq!(
            fault(f.string("n", "sa.n")),
            ("sa.n", "must be a string".into())
        );
        assert_eq!(fault(f.string("blank", "sa.b")).1, "is required");
        assert_eq!(fault(f.string("none", "sa.x")).1, "is required");
        assert_eq!(fault(f.string("absent", "sa.y")).1, "is required");
        assert_eq!(f.optional("absent", "sa.y").unwrap(), None);
        assert_eq!(f.optional("none", "sa.y").unwrap(), None);
        assert_eq!(f.optional("blank", "sa.b").unwrap_err().field, "sa.b");
        assert!(f.rsa_key("sa.private_key").is_ok());

        let broken = json!({"private_key": "-----BEGIN PRIVATE KEY-----\nQUFBQQ==\n-----END PRIVATE KEY-----"});
        let e = KeyFile::open(&broken, "sa", "x")
            .unwrap()
            .rsa_key("sa.private_key")
            .err()
            .unwrap();
        assert_eq!(e.field, "sa.private_key");
        assert!(!e.message.contains("QUFBQQ"), "{}", e.message);
        let e = KeyFile::open(&json!([1]), "service_account", "the key file's JSON object")
            .err()
            .unwrap();
        assert_eq!(
            (e.field, e.message.as_str()),
            ("service_account", "must be the key file's JSON object")
        );
    }
}
