//! Tryton's JSON encoding of the values plain JSON lacks: datetimes, dates, decimals and
//! durations travel as objects tagged with `__class__`.
//!
//! Tryton's datetimes are naive and in UTC (the server runs in UTC whatever the host's zone),
//! with microseconds; dates have no time; decimals are exact strings.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Timelike, Utc};
use serde_json::{json, Value};

/// Encodes an instant as a Tryton `datetime`, keeping its microseconds.
pub fn datetime(at: DateTime<Utc>) -> Value {
    let naive = at.naive_utc();
    json!({
        "__class__": "datetime",
        "year": naive.year(),
        "month": naive.month(),
        "day": naive.day(),
        "hour": naive.hour(),
        "minute": naive.minute(),
        "second": naive.second(),
        "microsecond": naive.nanosecond() / 1_000,
    })
}

/// Reads a Tryton `datetime` (naive UTC) as an instant; `None` for null or another shape.
pub fn read_datetime(value: &Value) -> Option<DateTime<Utc>> {
    if value.get("__class__")?.as_str()? != "datetime" {
        return None;
    }
    let part = |name: &str| value.get(name).and_then(Value::as_u64);
    let date = NaiveDate::from_ymd_opt(
        i32::try_from(value.get("year")?.as_i64()?).ok()?,
        u32::try_from(part("month")?).ok()?,
        u32::try_from(part("day")?).ok()?,
    )?;
    let time = date.and_hms_micro_opt(
        u32::try_from(part("hour").unwrap_or(0)).ok()?,
        u32::try_from(part("minute").unwrap_or(0)).ok()?,
        u32::try_from(part("second").unwrap_or(0)).ok()?,
        u32::try_from(part("microsecond").unwrap_or(0)).ok()?,
    )?;
    Some(NaiveDateTime::and_utc(&time))
}

/// Reads a Tryton `date`; `None` for null or another shape.
pub fn read_date(value: &Value) -> Option<NaiveDate> {
    if value.get("__class__")?.as_str()? != "date" {
        return None;
    }
    NaiveDate::from_ymd_opt(
        i32::try_from(value.get("year")?.as_i64()?).ok()?,
        u32::try_from(value.get("month")?.as_u64()?).ok()?,
        u32::try_from(value.get("day")?.as_u64()?).ok()?,
    )
}

/// Reads a date as the instant it starts, in UTC (Tryton's dates have no zone).
pub fn read_date_start(value: &Value) -> Option<DateTime<Utc>> {
    read_date(value)
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map(|start| start.and_utc())
}

/// Reads a number: a Tryton `Decimal` (exact text) or a plain JSON number.
pub fn read_number(value: &Value) -> Option<f64> {
    if let Some(number) = value.as_f64() {
        return Some(number);
    }
    if value.get("__class__")?.as_str()? != "Decimal" {
        return None;
    }
    value.get("decimal")?.as_str()?.trim().parse().ok()
}

/// Reads a Tryton `timedelta` as hours.
pub fn read_hours(value: &Value) -> Option<f64> {
    if value.get("__class__")?.as_str()? != "timedelta" {
        return None;
    }
    Some(value.get("seconds")?.as_f64()? / 3600.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn datetimes_round_trip_with_microseconds() {
        let at = Utc.with_ymd_and_hms(2026, 3, 8, 2, 30, 5).unwrap()
            + chrono::Duration::microseconds(123_456);
        let encoded = datetime(at);
        assert_eq!(encoded["microsecond"], 123_456);
        assert_eq!(encoded["hour"], 2);
        assert_eq!(read_datetime(&encoded), Some(at));
    }

    #[test]
    fn missing_time_parts_read_as_zero_and_wrong_shapes_as_none() {
        let midnight = json!({"__class__": "datetime", "year": 2025, "month": 1, "day": 2});
        assert_eq!(
            read_datetime(&midnight).unwrap().to_rfc3339(),
            "2025-01-02T00:00:00+00:00"
        );
        assert_eq!(read_datetime(&json!(null)), None);
        assert_eq!(read_datetime(&json!("2025-01-02T00:00:00")), None);
        let bad_month = json!({"__class__": "datetime", "year": 2025, "month": 13, "day": 2});
        assert_eq!(read_datetime(&bad_month), None);
    }

    #[test]
    fn decimals_dates_and_durations_are_read() {
        assert_eq!(
            read_number(&json!({"__class__": "Decimal", "decimal": "12.50"})),
            Some(12.5)
        );
        assert_eq!(read_number(&json!(3)), Some(3.0));
        assert_eq!(read_number(&json!("12.50")), None);
        let date = json!({"__class__": "date", "year": 2026, "month": 2, "day": 28});
        assert_eq!(read_date(&date), NaiveDate::from_ymd_opt(2026, 2, 28));
        assert_eq!(
            read_date_start(&date).unwrap().to_rfc3339(),
            "2026-02-28T00:00:00+00:00"
        );
        assert_eq!(
            read_hours(&json!({"__class__": "timedelta", "seconds": 5400.0})),
            Some(1.5)
        );
    }
}
