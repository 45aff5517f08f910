//! Connection tokens: random, prefixed, stored only as a hash.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// Prefix of every connection token, so a leaked one is recognisable.
pub const TOKEN_PREFIX: &str = "mrc_";

/// Returns a new token with 256 bits of entropy.
pub(crate) fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", hex::encode(bytes))
}

/// Returns the hash under which a token is stored and looked up.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Returns whether a string has the shape of a connection token.
pub fn looks_like_token(candidate: &str) -> bool {
    candidate
        .strip_prefix(TOKEN_PREFIX)
        .is_some_and(|rest| rest.len() == 64 && rest.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_prefixed_and_recognised() {
        let first = new_token();
        let second = new_token();
        assert_ne!(first, second);
        assert!(looks_like_token(&first));
        assert!(!looks_like_token("mrc_short"));
        assert_ne!(hash_token(&first), first);
        assert_eq!(hash_token(&first), hash_token(&first));
    }
}
