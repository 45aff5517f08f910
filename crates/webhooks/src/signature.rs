//! Standard Webhooks signing: `whsec_` secrets and the `v1` HMAC-SHA256 signature.
//!
//! The signed content is `{webhook-id}.{webhook-timestamp}.{body}`; the signature header is
//! `v1,` followed by the base64 of its HMAC-SHA256 under the secret's bytes. The scheme is small
//! enough that a dedicated crate would add more (a second `base64` major, a time library) than
//! it saves; the tests check every delivery with an independent implementation (the Python
//! `standardwebhooks` package).

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// The prefix Standard Webhooks gives secrets in their text form.
pub const SECRET_PREFIX: &str = "whsec_";

/// Bytes of a generated secret (the scheme asks for 24 to 64).
const SECRET_LEN: usize = 32;

/// An endpoint's signing secret. Its `Debug` shows no byte of it.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(Vec<u8>);

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(<redacted>)")
    }
}

impl SigningSecret {
    /// Returns a new random secret.
    pub fn generate() -> SigningSecret {
        let mut bytes = vec![0u8; SECRET_LEN];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        SigningSecret(bytes)
    }

    /// Returns a secret of the given bytes (as stored, after opening).
    pub fn from_bytes(bytes: Vec<u8>) -> SigningSecret {
        SigningSecret(bytes)
    }

    /// Returns the secret's bytes, to seal them.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Returns the text form an endpoint's owner configures: `whsec_` and base64.
    pub fn to_text(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.0))
    }

    /// Returns the `webhook-signature` header value for a message.
    pub fn sign(&self, message_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(message_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_have_the_standard_text_form_and_hide_from_debug() {
        let secret = SigningSecret::generate();
        let text = secret.to_text();
        let encoded = text.strip_prefix(SECRET_PREFIX).unwrap();
        assert_eq!(STANDARD.decode(encoded).unwrap(), secret.as_bytes());
        assert_ne!(SigningSecret::generate(), secret, "each secret is random");
        assert!(!format!("{secret:?}").contains(encoded));
    }

    #[test]
    fn signatures_cover_id_timestamp_and_body() {
        let secret = SigningSecret::from_bytes(b"0123456789abcdef0123456789abcdef".to_vec());
        let signature = secret.sign("msg_1", 1_700_000_000, b"{}");
        let tag = STANDARD
            .decode(signature.strip_prefix("v1,").unwrap())
            .unwrap();
        assert_eq!(tag.len(), 32);
        assert_eq!(signature, secret.sign("msg_1", 1_700_000_000, b"{}"));
        for other in [
            secret.sign("msg_2", 1_700_000_000, b"{}"),
            secret.sign("msg_1", 1_700_000_001, b"{}"),
            secret.sign("msg_1", 1_700_000_000, b"{ }"),
            SigningSecret::generate().sign("msg_1", 1_700_000_000, b"{}"),
        ] {
            assert_ne!(signature, other);
        }
    }
}
