//! Conversions between Rust values and their stored form (times in microseconds, enums as text).

use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::StoreError;

/// Returns a time as stored: microseconds since the Unix epoch.
pub(crate) fn micros(time: DateTime<Utc>) -> i64 {
    time.timestamp_micros()
}

pub(crate) fn opt_micros(time: Option<DateTime<Utc>>) -> Option<i64> {
    time.map(micros)
}

/// Reads a stored time back.
pub(crate) fn time(micros: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| StoreError::Corrupt(format!("time {micros} out of range")))
}

pub(crate) fn opt_time(micros: Option<i64>) -> Result<Option<DateTime<Utc>>, StoreError> {
    micros.map(time).transpose()
}

/// Parses a stored enum value (status, state, kind, object slug).
pub(crate) fn parse<T>(text: &str) -> Result<T, StoreError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|err: T::Err| StoreError::Corrupt(err.to_string()))
}

/// Reads a stored count or amount that must not be negative.
pub(crate) fn unsigned<T: TryFrom<i64>>(value: i64) -> Result<T, StoreError> {
    T::try_from(value).map_err(|_| StoreError::Corrupt(format!("count {value} out of range")))
}

/// Counts as stored; saturates instead of wrapping (a `u64` count over `i64::MAX` is fiction).
pub(crate) fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Reads stored JSON text.
pub(crate) fn json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|err| StoreError::Corrupt(format!("stored JSON: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_at_microsecond_precision() {
        let at = DateTime::parse_from_rfc3339("2024-03-01T12:34:56.123456Z")
            .unwrap()
            .to_utc();
        assert_eq!(time(micros(at)).unwrap(), at);
        assert!(unsigned::<u32>(-1).is_err());
        assert_eq!(signed(u64::MAX), i64::MAX);
    }
}
