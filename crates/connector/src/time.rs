//! Time parsing shared by connectors: sources send offsets, naive local times, or UTC.

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};

/// Parses an RFC 3339 / ISO 8601 time with an offset into UTC.
pub fn parse_offset_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|time| time.with_timezone(&Utc))
}

/// Parses a time that may carry an offset; a naive one is read in `zone`.
///
/// A naive time that falls in a daylight-saving gap does not exist in `zone`; it is read with the
/// offset before the gap. One that falls in the repeated hour is read as the earlier instant.
pub fn parse_time_in<Tz: TimeZone>(text: &str, zone: &Tz) -> Option<DateTime<Utc>> {
    if let Some(time) = parse_offset_time(text) {
        return Some(time);
    }
    let naive = parse_naive(text)?;
    zone.from_local_datetime(&naive)
        .earliest()
        .or_else(|| {
            zone.from_local_datetime(&(naive + chrono::Duration::hours(1)))
                .earliest()
        })
        .map(|time| time.with_timezone(&Utc))
}

/// Parses a naive ISO 8601 time (`2024-01-02T03:04:05`, optional fraction).
pub fn parse_naive(text: &str) -> Option<NaiveDateTime> {
    let text = text.trim();
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f"))
        .ok()
}

/// Formats `time` in `offset` as ISO 8601 with the offset, e.g. `2024-01-02T03:04:05-05:00`.
pub fn format_in_offset(time: DateTime<Utc>, offset: FixedOffset) -> String {
    time.with_timezone(&offset)
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_and_naive_times_become_the_same_instant() {
        let zone = FixedOffset::west_opt(4 * 3600).unwrap();
        let with_offset = parse_time_in("2020-10-22T11:38:20-04:00", &zone).unwrap();
        let naive = parse_time_in("2020-10-22T11:38:20", &zone).unwrap();
        assert_eq!(with_offset, naive);
        assert_eq!(with_offset.to_rfc3339(), "2020-10-22T15:38:20+00:00");
    }

    #[test]
    fn sub_second_digits_are_kept() {
        let time = parse_offset_time("2024-01-01T00:00:00.123456+01:00").unwrap();
        assert_eq!(time.timestamp_subsec_micros(), 123_456);
    }
}
