//! Sealing of secrets at rest (XChaCha20-Poly1305), and the key's life.

/// Seals and opens secrets with the operator's 256-bit key.
pub struct SecretBox {}

// INTERFACE SKELETON:
// impl SecretBox {
//     /// Loads the key from `key` (64 hex chars or base64 of 32 bytes) when given, else from
//     /// `data_dir/secret.key`, generating that file (mode 0600) on first start.
//     pub fn load_or_create(key: Option<&str>, data_dir: &Path) -> Result<SecretBox, SecretError>;
//     pub fn seal(&self, plaintext: &[u8]) -> Vec<u8>;   // nonce || ciphertext, versioned
//     pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, SecretError>;
// }
