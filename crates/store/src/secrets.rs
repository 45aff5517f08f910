//! Sealing of secrets at rest (XChaCha20-Poly1305), and the key's life.
//!
//! A sealed secret is `version || nonce || ciphertext-with-tag`: one version byte (so the
//! format can change without guessing), a random 24-byte nonce (large enough that random
//! nonces never collide in practice), then the AEAD output. Any change to those bytes, or
//! opening with another key, fails with [`SecretError::Tampered`].

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

/// The format version written by [`SecretBox::seal`].
const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
/// The Poly1305 tag that ends every ciphertext.
const TAG_LEN: usize = 16;
/// Name of the key file inside the data folder.
pub const KEY_FILE: &str = "secret.key";

/// Why a key could not be loaded or a secret opened.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The key text is neither 64 hex characters nor base64 of 32 bytes. The text itself is
    /// never part of the message.
    #[error("invalid secret key{origin}: expected 64 hex characters or base64 of 32 bytes")]
    InvalidKey { origin: String },
    #[error("cannot {action} key file {}: {source}", path.display())]
    KeyFile {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("sealed secret is too short")]
    Truncated,
    #[error("sealed secret has unknown format version {0}")]
    UnknownVersion(u8),
    /// The bytes were altered, or were sealed with another key.
    #[error("sealed secret cannot be opened: altered, or sealed with another key")]
    Tampered,
}

/// Seals and opens secrets with the operator's 256-bit key.
#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretBox")
            .field("key", &"<redacted>")
            .finish()
    }
}

impl SecretBox {
    /// Returns a box sealing with `key`.
    pub fn new(key: [u8; 32]) -> SecretBox {
        SecretBox {
            cipher: XChaCha20Poly1305::new(&key.into()),
        }
    }

    /// Parses a key given as 64 hex characters or base64 of 32 bytes (surrounding whitespace
    /// ignored).
    pub fn from_key_text(key: &str) -> Result<SecretBox, SecretError> {
        parse_key(key)
            .map(SecretBox::new)
            .ok_or_else(|| SecretError::InvalidKey {
                origin: String::new(),
            })
    }

    /// Loads the key from `key` (64 hex chars or base64 of 32 bytes) when given, else from
    /// `data_dir/secret.key`, generating that file (mode 0600) on first start.
    pub fn load_or_create(key: Option<&str>, data_dir: &Path) -> Result<SecretBox, SecretError> {
        if let Some(key) = key {
            return SecretBox::from_key_text(key);
        }

        let path = data_dir.join(KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                warn_if_readable_by_others(&path);
                return parse_key(&text).map(SecretBox::new).ok_or_else(|| {
                    SecretError::InvalidKey {
                        origin: format!(" in {}", path.display()),
                    }
                });
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(SecretError::KeyFile {
                    action: "read",
                    path,
                    source,
                })
            }
        }

        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        match write_new_key_file(data_dir, &path, &key) {
            Ok(()) => {
                tracing::info!(path = %path.display(), "generated a new secret key");
                Ok(SecretBox::new(key))
            }
            // Another process created it first: use theirs, so both seal alike.
            Err(SecretError::KeyFile { source, .. })
                if source.kind() == std::io::ErrorKind::AlreadyExists =>
            {
                SecretBox::load_or_create(None, data_dir)
            }
            Err(err) => Err(err),
        }
    }

    /// Seals `plaintext` under a fresh random nonce.
    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(XNonce::from_slice(&nonce), plaintext)
            .expect("XChaCha20-Poly1305 encrypts any message that fits in memory");

        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        sealed.push(VERSION);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    /// Opens what [`SecretBox::seal`] sealed with the same key.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, SecretError> {
        let (&version, rest) = sealed.split_first().ok_or(SecretError::Truncated)?;
        if version != VERSION {
            return Err(SecretError::UnknownVersion(version));
        }
        if rest.len() < NONCE_LEN + TAG_LEN {
            return Err(SecretError::Truncated);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        self.cipher
            .decrypt(XNonce::from_slice(nonce), ciphertext)
            .map_err(|_| SecretError::Tampered)
    }
}

fn parse_key(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(text).ok()?
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .ok()?
    };
    bytes.try_into().ok()
}

/// Writes a new key file that only its owner can read; fails if it already exists.
fn write_new_key_file(data_dir: &Path, path: &Path, key: &[u8; 32]) -> Result<(), SecretError> {
    let file_error = |action| {
        let path = path.to_owned();
        move |source| SecretError::KeyFile {
            action,
            path,
            source,
        }
    };
    std::fs::create_dir_all(data_dir).map_err(file_error("create the folder of"))?;

    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(file_error("create"))?;
    writeln!(file, "{}", hex::encode(key)).map_err(file_error("write"))?;
    file.sync_all().map_err(file_error("write"))?;
    Ok(())
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(metadata) = std::fs::metadata(path) {
            if metadata.permissions().mode() & 0o077 != 0 {
                tracing::warn!(path = %path.display(), "secret key file is readable by others");
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_box() -> SecretBox {
        SecretBox::new([7u8; 32])
    }

    #[test]
    fn seals_and_opens() {
        let secrets = test_box();
        let sealed = secrets.seal(b"password");
        assert_eq!(sealed[0], VERSION);
        assert_eq!(sealed.len(), 1 + NONCE_LEN + b"password".len() + TAG_LEN);
        assert_eq!(secrets.open(&sealed).unwrap(), b"password");
        assert_ne!(
            secrets.seal(b"password"),
            sealed,
            "each seal takes a fresh nonce"
        );
    }

    #[test]
    fn refuses_altered_or_foreign_bytes() {
        let secrets = test_box();
        let sealed = secrets.seal(b"password");
        for index in [1, NONCE_LEN + 1, sealed.len() - 1] {
            let mut altered = sealed.clone();
            altered[index] ^= 1;
            assert!(matches!(secrets.open(&altered), Err(SecretError::Tampered)));
        }
        let other = SecretBox::new([8u8; 32]);
        assert!(matches!(other.open(&sealed), Err(SecretError::Tampered)));

        let mut versioned = sealed.clone();
        versioned[0] = 9;
        assert!(matches!(
            secrets.open(&versioned),
            Err(SecretError::UnknownVersion(9))
        ));
        assert!(matches!(
            secrets.open(&sealed[..10]),
            Err(SecretError::Truncated)
        ));
        assert!(matches!(secrets.open(&[]), Err(SecretError::Truncated)));
    }

    #[test]
    fn parses_hex_and_base64_keys() {
        let hex_key = "00".repeat(31) + "ff";
        let sealed = SecretBox::from_key_text(&hex_key).unwrap().seal(b"x");
        let base64_key =
            base64::engine::general_purpose::STANDARD.encode(hex::decode(&hex_key).unwrap());
        assert_eq!(
            SecretBox::from_key_text(&base64_key)
                .unwrap()
                .open(&sealed)
                .unwrap(),
            b"x"
        );

        for bad in ["", "abc", &"0".repeat(63), &"zz".repeat(32)] {
            assert!(matches!(
                SecretBox::from_key_text(bad),
                Err(SecretError::InvalidKey { .. })
            ));
        }
    }

    #[test]
    fn debug_hides_the_key() {
        let text = format!("{:?}", SecretBox::new([0xab; 32]));
        assert!(!text.contains("ab, ") && !text.contains("171") && text.contains("redacted"));
    }

    #[test]
    fn key_file_is_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let first = SecretBox::load_or_create(None, &data_dir).unwrap();
        let sealed = first.seal(b"credentials");

        let path = data_dir.join(KEY_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim().len(), 64);

        let second = SecretBox::load_or_create(None, &data_dir).unwrap();
        assert_eq!(second.open(&sealed).unwrap(), b"credentials");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            text,
            "the key file is not rewritten"
        );
    }

    #[test]
    fn a_given_key_wins_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let given = "11".repeat(32);
        let secrets = SecretBox::load_or_create(Some(&given), dir.path()).unwrap();
        assert!(!dir.path().join(KEY_FILE).exists());
        let sealed = secrets.seal(b"x");
        assert_eq!(SecretBox::new([0x11; 32]).open(&sealed).unwrap(), b"x");
    }
}
