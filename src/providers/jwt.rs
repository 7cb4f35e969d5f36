//! The JSON Web Token pieces FCM (RS256, spec/vendors/fcm.md §2), APNs (ES256,
//! spec/vendors/apns.md §2) and Huawei's service accounts (PS256, huawei.md §2.2) need: PEM armour, base64url, compact signing, and the verification
//! their emulators do. Signing goes through aws-lc-rs, already in the tree under rustls.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair, RsaKeyPair, RsaSignatureEncoding, UnparsedPublicKey,
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_2048_8192_SHA256,
    RSA_PKCS1_SHA256, RSA_PSS_2048_8192_SHA256, RSA_PSS_SHA256,
};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::Value;

/// Why a key or token could not be used. The texts name the problem, never the key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("not a PEM block of type {0}")]
    NotPem(&'static str),
    #[error("the PEM body is not valid base64")]
    BadBase64,
    #[error("not a {0} private key in PKCS#8 form")]
    BadKey(&'static str),
    #[error("signing failed")]
    Signing,
    #[error("the token is not three base64url parts")]
    Malformed,
    #[error("the token header or claims are not JSON objects")]
    NotJson,
    #[error("the signature does not verify")]
    BadSignature,
}

/// The DER body of the first PEM block labelled `label` (`PRIVATE KEY`, `PUBLIC KEY`).
/// Accepts `\r\n` and the literal `\n` escapes a pasted JSON string may leave behind.
pub fn pem_decode(pem: &str, label: &'static str) -> Result<Vec<u8>, JwtError> {
    let pem = pem.replace("\\n", "\n");
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin).ok_or(JwtError::NotPem(label))? + begin.len();
    let stop = pem[start..].find(&end).ok_or(JwtError::NotPem(label))? + start;
    let body: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD.decode(body).map_err(|_| JwtError::BadBase64)
}

/// PEM armour around DER, 64 columns as OpenSSL writes it.
pub fn pem_encode(der: &[u8], label: &str) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `base64url(header).base64url(claims)`, the bytes a JWS signs.
fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    )
}

/// An RSA key that signs RS256 (RSASSA-PKCS1-v1_5 with SHA-256).
pub struct Rs256Key(RsaKeyPair);

impl Rs256Key {
    /// From the PKCS#8 PEM of a service account's `private_key`.
    pub fn from_pem(pem: &str) -> Result<Rs256Key, JwtError> {
        let der = pem_decode(pem, "PRIVATE KEY")?;
        RsaKeyPair::from_pkcs8(&der)
            .map(Rs256Key)
            .map_err(|_| JwtError::BadKey("RSA"))
    }

    /// A compact JWT `header.claims.signature`, signed RS256.
    pub fn sign(&self, header: &Value, claims: &Value) -> Result<String, JwtError> {
        self.sign_with(&RSA_PKCS1_SHA256, header, claims)
    }

    /// The same signed PS256 (RSASSA-PSS with SHA-256), as Huawei's service accounts sign.
    pub fn sign_ps256(&self, header: &Value, claims: &Value) -> Result<String, JwtError> {
        self.sign_with(&RSA_PSS_SHA256, header, claims)
    }

    fn sign_with(
        &self,
        encoding: &'static RsaSignatureEncoding,
        header: &Value,
        claims: &Value,
    ) -> Result<String, JwtError> {
        let input = signing_input(header, claims);
        let mut sig = vec![0; self.0.public_modulus_len()];
        self.0
            .sign(encoding, &SystemRandom::new(), input.as_bytes(), &mut sig)
            .map_err(|_| JwtError::Signing)?;
        Ok(format!("{input}.{}", b64url(&sig)))
    }

    /// A fresh 2048-bit key, PKCS#8 PEM, for tests and the sandbox (never for production).
    pub fn generate_pem() -> Result<String, JwtError> {
        let pair = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .map_err(|_| JwtError::Signing)?;
        let der = pair.as_der().map_err(|_| JwtError::Signing)?;
        Ok(pem_encode(der.as_ref(), "PRIVATE KEY"))
    }

    /// The public key as SubjectPublicKeyInfo PEM (`PUBLIC KEY`), what an emulator verifies with.
    pub fn public_pem(&self) -> Result<String, JwtError> {
        let der = self
            .0
            .public_key()
            .as_der()
            .map_err(|_| JwtError::Signing)?;
        Ok(pem_encode(der.as_ref(), "PUBLIC KEY"))
    }
}

/// A P-256 key that signs ES256 with the raw `r‖s` signature JWS wants (not DER).
pub struct Es256Key(EcdsaKeyPair);

impl Es256Key {
    /// From the PKCS#8 PEM of an APNs `.p8` file.
    pub fn from_pem(pem: &str) -> Result<Es256Key, JwtError> {
        let der = pem_decode(pem, "PRIVATE KEY")?;
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
            .map(Es256Key)
            .map_err(|_| JwtError::BadKey("P-256"))
    }

    pub fn sign(&self, header: &Value, claims: &Value) -> Result<String, JwtError> {
        let input = signing_input(header, claims);
        let sig = self
            .0
            .sign(&SystemRandom::new(), input.as_bytes())
            .map_err(|_| JwtError::Signing)?;
        Ok(format!("{input}.{}", b64url(sig.as_ref())))
    }

    /// A fresh key as `.p8`-style PKCS#8 PEM, for tests and the sandbox.
    pub fn generate_pem() -> Result<String, JwtError> {
        let doc =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| JwtError::Signing)?;
        Ok(pem_encode(doc.as_ref(), "PRIVATE KEY"))
    }

    /// The public key as SubjectPublicKeyInfo PEM.
    pub fn public_pem(&self) -> Result<String, JwtError> {
        let der = self
            .0
            .public_key()
            .as_der()
            .map_err(|_| JwtError::Signing)?;
        Ok(pem_encode(der.as_ref(), "PUBLIC KEY"))
    }
}

/// The signature algorithm an emulator checks a token against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Rs256,
    Es256,
    Ps256,
}

impl Alg {
    pub fn name(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
            Alg::Ps256 => "PS256",
        }
    }
}

/// A token split and decoded, not yet verified.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub header: serde_json::Map<String, Value>,
    pub claims: serde_json::Map<String, Value>,
    signing_input: String,
    signature: Vec<u8>,
}

/// Splits a compact JWT and decodes its header and claims.
pub fn decode(token: &str) -> Result<Decoded, JwtError> {
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };
    let part = |p: &str| URL_SAFE_NO_PAD.decode(p).map_err(|_| JwtError::Malformed);
    let object = |bytes: Vec<u8>| match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(JwtError::NotJson),
    };
    Ok(Decoded {
        header: object(part(h)?)?,
        claims: object(part(c)?)?,
        signing_input: format!("{h}.{c}"),
        signature: part(s)?,
    })
}

impl Decoded {
    /// Checks the signature with a SubjectPublicKeyInfo PEM (`PUBLIC KEY`).
    pub fn verify(&self, alg: Alg, public_pem: &str) -> Result<(), JwtError> {
        let der = pem_decode(public_pem, "PUBLIC KEY")?;
        let result = match alg {
            Alg::Rs256 => UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &der)
                .verify(self.signing_input.as_bytes(), &self.signature),
            Alg::Es256 => UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &der)
                .verify(self.signing_input.as_bytes(), &self.signature),
            Alg::Ps256 => UnparsedPublicKey::new(&RSA_PSS_2048_8192_SHA256, &der)
                .verify(self.signing_input.as_bytes(), &self.signature),
        };
        result.map_err(|_| JwtError::BadSignature)
    }

    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header.get(name).and_then(Value::as_str)
    }

    pub fn claim_str(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    pub fn claim_i64(&self, name: &str) -> Option<i64> {
        self.claims.get(name).and_then(Value::as_i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rs256_round_trip_and_tamper() {
        let pem = Rs256Key::generate_pem().unwrap();
        let key = Rs256Key::from_pem(&pem).unwrap();
        let public = key.public_pem().unwrap();
        let token = key
            .sign(&json!({"alg":"RS256","typ":"JWT"}), &json!({"iss":"a@b"}))
            .unwrap();
        let decoded = decode(&token).unwrap();
        assert_eq!(decoded.header_str("alg"), Some("RS256"));
        assert_eq!(decoded.claim_str("iss"), Some("a@b"));
        decoded.verify(Alg::Rs256, &public).unwrap();
        // Same header, other claims, old signature: refused.
        let mut parts: Vec<&str> = token.split('.').collect();
        let other = b64url(json!({"iss":"evil"}).to_string().as_bytes());
        parts[1] = &other;
        let forged = decode(&parts.join(".")).unwrap();
        assert_eq!(
            forged.verify(Alg::Rs256, &public),
            Err(JwtError::BadSignature)
        );
        // Another key's public half does not verify it either.
        let stranger = Rs256Key::from_pem(&Rs256Key::generate_pem().unwrap()).unwrap();
        assert_eq!(
            decoded.verify(Alg::Rs256, &stranger.public_pem().unwrap()),
            Err(JwtError::BadSignature)
        );
    }

    #[test]
    fn ps256_verifies_only_as_ps256() {
        let key = Rs256Key::from_pem(&Rs256Key::generate_pem().unwrap()).unwrap();
        let public = key.public_pem().unwrap();
        let header = json!({"alg":"PS256","typ":"JWT","kid":"k1"});
        let token = key.sign_ps256(&header, &json!({"iss":"sub"})).unwrap();
        let decoded = decode(&token).unwrap();
        decoded.verify(Alg::Ps256, &public).unwrap();
        assert_eq!(
            decoded.verify(Alg::Rs256, &public),
            Err(JwtError::BadSignature)
        );
        let rs = decode(&key.sign(&header, &json!({"iss":"sub"})).unwrap()).unwrap();
        assert_eq!(rs.verify(Alg::Ps256, &public), Err(JwtError::BadSignature));
    }

    #[test]
    fn es256_signature_is_raw_64_bytes_and_verifies() {
        let key = Es256Key::from_pem(&Es256Key::generate_pem().unwrap()).unwrap();
        let token = key
            .sign(
                &json!({"alg":"ES256","kid":"ABC123DEFG"}),
                &json!({"iss":"TEAM","iat":1}),
            )
            .unwrap();
        let decoded = decode(&token).unwrap();
        assert_eq!(decoded.signature.len(), 64, "JWS wants r||s, not DER");
        decoded
            .verify(Alg::Es256, &key.public_pem().unwrap())
            .unwrap();
        assert_eq!(decoded.claim_i64("iat"), Some(1));
    }

    #[test]
    fn pem_accepts_escaped_newlines_and_refuses_the_wrong_kind() {
        let pem = Es256Key::generate_pem().unwrap();
        let escaped = pem.replace('\n', "\\n");
        assert!(Es256Key::from_pem(&escaped).is_ok());
        assert_eq!(
            Rs256Key::from_pem(&pem).err(),
            Some(JwtError::BadKey("RSA"))
        );
        assert_eq!(
            Es256Key::from_pem("hello").err(),
            Some(JwtError::NotPem("PRIVATE KEY"))
        );
        assert_eq!(
            Es256Key::from_pem("-----BEGIN PRIVATE KEY-----\n!!\n-----END PRIVATE KEY-----").err(),
            Some(JwtError::BadBase64)
        );
    }

    #[test]
    fn malformed_tokens_are_refused() {
        assert_eq!(decode("a.b").err(), Some(JwtError::Malformed));
        assert_eq!(decode("a.b.c.d").err(), Some(JwtError::Malformed));
        assert_eq!(decode("!.b.c").err(), Some(JwtError::Malformed));
        let not_object = format!("{}.{}.", b64url(b"[]"), b64url(b"{}"));
        assert_eq!(decode(&not_object).err(), Some(JwtError::NotJson));
    }
}
