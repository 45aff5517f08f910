//! What differs between OData V2 (SAP Gateway) and V4: answer envelopes, next links, typed
//! filter literals, the JSON time formats and error bodies.

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use serde_json::Value;

/// The OData protocol version a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// OData V2: `{"d": {"results": [...], "__next": ...}}`, `/Date(ms)/` times.
    V2,
    /// OData V4: `{"value": [...], "@odata.nextLink": ...}`, ISO 8601 times.
    V4,
}

impl Version {
    /// Parses a credential value: `v2`, `2`, `v4` or `4`.
    pub fn parse(text: &str) -> Option<Version> {
        match text.trim().to_ascii_lowercase().as_str() {
            "v2" | "2" | "2.0" => Some(Version::V2),
            "v4" | "4" | "4.0" => Some(Version::V4),
            _ => None,
        }
    }

    /// Returns the rows of a collection answer, or `None` when the answer has no such array.
    pub fn rows<'a>(&self, body: &'a Value) -> Option<&'a Vec<Value>> {
        match self {
            // Gateway answers `d.results`; a few old services answer `d` as the array itself.
            Version::V2 => body["d"]["results"]
                .as_array()
                .or_else(|| body["d"].as_array()),
            Version::V4 => body["value"].as_array(),
        }
    }

    /// Returns the server's next link of a collection answer.
    pub fn next_link<'a>(&self, body: &'a Value) -> Option<&'a str> {
        let next = match self {
            Version::V2 => &body["d"]["__next"],
            Version::V4 => &body["@odata.nextLink"],
        };
        next.as_str().filter(|link| !link.is_empty())
    }

    /// Returns the rows of an expanded to-many navigation property of `row`.
    pub fn expanded<'a>(&self, row: &'a Value, navigation: &str) -> &'a [Value] {
        let value = &row[navigation];
        value["results"]
            .as_array()
            .or_else(|| value.as_array())
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Formats an `Edm.DateTimeOffset` filter literal: `datetimeoffset'...'` in V2, bare in V4.
    /// Sub-second digits are kept (milliseconds at least), so a filter never rounds a change
    /// time up past a record.
    pub fn datetimeoffset_literal(&self, time: DateTime<Utc>) -> String {
        let precision = if time.timestamp_subsec_nanos() % 1_000_000 == 0 {
            chrono::SecondsFormat::Millis
        } else {
            chrono::SecondsFormat::AutoSi
        };
        let text = time.to_rfc3339_opts(precision, true);
        match self {
            Version::V2 => format!("datetimeoffset'{text}'"),
            Version::V4 => text,
        }
    }

    /// Formats a date filter literal: `Edm.DateTime` (`datetime'...T00:00:00'`) in V2, where a
    /// date is a date-time at midnight, and `Edm.Date` (bare) in V4.
    pub fn date_literal(&self, date: NaiveDate) -> String {
        match self {
            Version::V2 => format!("datetime'{}T00:00:00'", date.format("%Y-%m-%d")),
            Version::V4 => date.format("%Y-%m-%d").to_string(),
        }
    }

    /// Reads an `Edm.DateTimeOffset` (or V2 `Edm.DateTime`) value as an instant.
    pub fn parse_instant(&self, value: &Value) -> Result<Option<DateTime<Utc>>, String> {
        let Some(text) = value.as_str() else {
            return if value.is_null() {
                Ok(None)
            } else {
                Err(format!("{value} is not a time"))
            };
        };
        if let Some(time) = parse_json_date(text) {
            return Ok(Some(time));
        }
        millrace_connector::time::parse_offset_time(text)
            .map(Some)
            .ok_or_else(|| format!("`{text}` is not a time"))
    }

    /// Reads a date value: `/Date(ms)/` in V2, `2024-04-11` in V4.
    pub fn parse_date(&self, value: &Value) -> Result<Option<NaiveDate>, String> {
        let Some(text) = value.as_str() else {
            return Ok(None);
        };
        if let Some(time) = parse_json_date(text) {
            return Ok(Some(time.date_naive()));
        }
        NaiveDate::parse_from_str(text.get(..10).unwrap_or(text), "%Y-%m-%d")
            .map(Some)
            .map_err(|_| format!("`{text}` is not a date"))
    }

    /// Reads a time of day: `Edm.Time` (`PT07H30M00S`) in V2, `Edm.TimeOfDay` (`07:30:00`) in V4.
    pub fn parse_time_of_day(&self, value: &Value) -> Result<Option<NaiveTime>, String> {
        let Some(text) = value.as_str() else {
            return Ok(None);
        };
        parse_duration_time(text)
            .or_else(|| NaiveTime::parse_from_str(text, "%H:%M:%S%.f").ok())
            .map(Some)
            .ok_or_else(|| format!("`{text}` is not a time of day"))
    }
}

/// Parses V2's JSON date, `/Date(1712829600000)/` or `/Date(1712829600000+0060)/`.
///
/// The milliseconds count from the epoch in UTC; the optional offset (in minutes) only says
/// in which zone the value was entered, so the instant does not depend on it.
pub fn parse_json_date(text: &str) -> Option<DateTime<Utc>> {
    let inner = text
        .trim()
        .trim_start_matches('\\')
        .strip_prefix("/Date(")?
        .strip_suffix(")/")?;
    let sign_at = inner
        .char_indices()
        .skip(1)
        .find(|(_, c)| *c == '+' || *c == '-')
        .map(|(index, _)| index);
    let (millis, offset) = match sign_at {
        Some(index) => inner.split_at(index),
        None => (inner, ""),
    };
    if !offset.is_empty() && offset[1..].parse::<u32>().is_err() {
        return None;
    }
    Utc.timestamp_millis_opt(millis.parse().ok()?).single()
}

/// Parses an ISO 8601 duration used as a time of day, `PT07H30M00S`.
fn parse_duration_time(text: &str) -> Option<NaiveTime> {
    let rest = text.strip_prefix("PT")?;
    let (mut hours, mut minutes, mut seconds) = (0u32, 0u32, 0f64);
    let mut number = String::new();
    for c in rest.chars() {
        match c {
            '0'..='9' | '.' => number.push(c),
            'H' => hours = std::mem::take(&mut number).parse().ok()?,
            'M' => minutes = std::mem::take(&mut number).parse().ok()?,
            'S' => seconds = std::mem::take(&mut number).parse().ok()?,
            _ => return None,
        }
    }
    if !number.is_empty() {
        return None;
    }
    let whole = seconds.trunc() as u32;
    let nanos = ((seconds - seconds.trunc()) * 1e9).round() as u32;
    NaiveTime::from_hms_nano_opt(hours, minutes, whole, nanos)
}

/// Quotes a string filter literal, doubling embedded quotes.
pub fn string_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Reads SAP's error bodies: V2 `{"error": {"code", "message": {"value"}, "innererror":
/// {"errordetails": [...]}}}` and V4 `{"error": {"code", "message", "details": [...]}}`.
///
/// The message comes first, then the code, then any detail messages that say more.
pub fn read_error(body: &Value) -> Option<String> {
    let error = body.get("error")?;
    let message = error["message"]["value"]
        .as_str()
        .or_else(|| error["message"].as_str())?;
    let mut text = message.to_owned();
    if let Some(code) = error["code"].as_str().filter(|code| !code.is_empty()) {
        text.push_str(&format!(" ({code})"));
    }
    let details = error["innererror"]["errordetails"]
        .as_array()
        .or_else(|| error["details"].as_array());
    for detail in details.into_iter().flatten() {
        let detail_message = detail["message"]["value"]
            .as_str()
            .or_else(|| detail["message"].as_str());
        if let Some(detail_message) = detail_message.filter(|m| *m != message) {
            text.push_str("; ");
            text.push_str(detail_message);
        }
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_dates_read_with_and_without_an_offset() {
        let plain = parse_json_date("/Date(1712829600000)/").unwrap();
        assert_eq!(plain.to_rfc3339(), "2024-04-11T10:00:00+00:00");
        // The offset says where the value was entered; the milliseconds are UTC already.
        assert_eq!(parse_json_date("/Date(1712829600000+0060)/"), Some(plain));
        assert_eq!(
            parse_json_date("/Date(1712829600123-0300)/")
                .unwrap()
                .timestamp_subsec_millis(),
            123
        );
        assert_eq!(
            parse_json_date("/Date(-86400000)/").unwrap().to_rfc3339(),
            "1969-12-31T00:00:00+00:00"
        );
        assert_eq!(parse_json_date("/Date(soon)/"), None);
        assert_eq!(parse_json_date("2024-04-11"), None);
    }

    #[test]
    fn filter_literals_are_typed_per_version() {
        let time = Utc.with_ymd_and_hms(2024, 4, 1, 0, 0, 0).unwrap()
            + chrono::Duration::milliseconds(250);
        assert_eq!(
            Version::V2.datetimeoffset_literal(time),
            "datetimeoffset'2024-04-01T00:00:00.250Z'"
        );
        assert_eq!(
            Version::V4.datetimeoffset_literal(time),
            "2024-04-01T00:00:00.250Z"
        );
        let finer = time + chrono::Duration::nanoseconds(1_200);
        assert_eq!(
            Version::V4.datetimeoffset_literal(finer),
            "2024-04-01T00:00:00.250001200Z"
        );
        let date = NaiveDate::from_ymd_opt(9999, 12, 31).unwrap();
        assert_eq!(
            Version::V2.date_literal(date),
            "datetime'9999-12-31T00:00:00'"
        );
        assert_eq!(Version::V4.date_literal(date), "9999-12-31");
        assert_eq!(string_literal("O'Brien"), "'O''Brien'");
    }

    #[test]
    fn dates_and_times_of_day_read_in_both_versions() {
        let v2 = Version::V2;
        assert_eq!(
            v2.parse_date(&json!("/Date(1728777600000)/")).unwrap(),
            NaiveDate::from_ymd_opt(2024, 10, 13)
        );
        assert_eq!(
            v2.parse_time_of_day(&json!("PT07H30M05S")).unwrap(),
            NaiveTime::from_hms_opt(7, 30, 5)
        );
        let v4 = Version::V4;
        assert_eq!(
            v4.parse_date(&json!("2024-10-13")).unwrap(),
            NaiveDate::from_ymd_opt(2024, 10, 13)
        );
        assert_eq!(
            v4.parse_time_of_day(&json!("07:30:05")).unwrap(),
            NaiveTime::from_hms_opt(7, 30, 5)
        );
        assert!(v4.parse_time_of_day(&json!("half past seven")).is_err());
        assert_eq!(
            v4.parse_instant(&json!("2024-10-13T18:00:00.5+02:00"))
                .unwrap()
                .unwrap()
                .to_rfc3339(),
            "2024-10-13T16:00:00.500+00:00"
        );
        assert!(v2.parse_instant(&json!("not a time")).is_err());
        assert_eq!(v2.parse_instant(&Value::Null).unwrap(), None);
    }

    #[test]
    fn envelopes_and_next_links_per_version() {
        let v2 = json!({"d": {"results": [{"a": 1}], "__next": "https://h/S/E?$skiptoken=20"}});
        assert_eq!(Version::V2.rows(&v2).unwrap().len(), 1);
        assert_eq!(
            Version::V2.next_link(&v2),
            Some("https://h/S/E?$skiptoken=20")
        );
        let v4 = json!({"value": [], "@odata.nextLink": "E?$skiptoken=20"});
        assert_eq!(Version::V4.rows(&v4).unwrap().len(), 0);
        assert_eq!(Version::V4.next_link(&v4), Some("E?$skiptoken=20"));
        assert!(Version::V4.rows(&v2).is_none());
    }

    #[test]
    fn error_bodies_of_both_versions_read_as_one_line() {
        let v2 = json!({"error": {"code": "/IWBEP/CM_MGW_RT/020", "message": {"lang": "en",
            "value": "Resource not found for segment 'Equipment'"}, "innererror": {"errordetails": [
            {"code": "X", "message": {"value": "Equipment 42 does not exist"}}]}}});
        assert_eq!(
            read_error(&v2).unwrap(),
            "Resource not found for segment 'Equipment' (/IWBEP/CM_MGW_RT/020); Equipment 42 does not exist"
        );
        let v4 = json!({"error": {"code": "400", "message": "Invalid filter", "details": [
            {"message": "Invalid filter"}]}});
        assert_eq!(read_error(&v4).unwrap(), "Invalid filter (400)");
        assert_eq!(read_error(&json!({"message": "x"})), None);
    }
}
