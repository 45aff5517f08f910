//! Deterministic derivation: values the data sets lack are picked by hashing a row's identity
//! with the sandbox seed, so every start with the same seed serves the same records.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

/// Mixes `seed` and `value` into a well-spread 64-bit number (SplitMix64 finaliser).
pub fn mix(seed: u64, value: u64) -> u64 {
    let mut z = seed ^ value.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Hashes a text identity (FNV-1a) and mixes it with `seed` and a `salt` naming the purpose.
pub fn hash(seed: u64, identity: &str, salt: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in identity.bytes().chain([0xff]).chain(salt.bytes()) {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    mix(seed, h)
}

/// Picks one of `choices` by a hash.
pub fn pick<T: Copy>(hash: u64, choices: &[T]) -> T {
    choices[(hash % choices.len() as u64) as usize]
}

/// Picks a number in `0..bound`.
pub fn below(hash: u64, bound: u64) -> u64 {
    hash % bound.max(1)
}

/// Renders a stored time: RFC 3339 in UTC, with the fraction only when there is one.
pub fn time_value(time: DateTime<Utc>) -> Value {
    Value::String(time.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_stable_and_depend_on_seed_and_salt() {
        assert_eq!(hash(1, "WO1", "status"), hash(1, "WO1", "status"));
        assert_ne!(hash(1, "WO1", "status"), hash(2, "WO1", "status"));
        assert_ne!(hash(1, "WO1", "status"), hash(1, "WO1", "priority"));
        assert!(below(hash(1, "x", "y"), 5) < 5);
    }
}
