//! The sandbox's parser and evaluator for the subset of `oslc.where` the connector relies on.
//!
//! Grammar: `clause ("and" clause)*`, where a clause is `attr op value` with `op` one of `=`,
//! `!=`, `>`, `>=`, `<`, `<=`, or `attr in [value, ...]`. Values are double-quoted strings (also
//! dates in ISO 8601), numbers, or `true`/`false`. As in Maximo, `attr="*"` means "not null",
//! `attr!="*"` means "null", and `%` in a quoted string compared with `=` is a LIKE wildcard.
//! Anything else (`or`, parentheses, unquoted words) is a syntax error the server answers
//! with 400.

use std::cmp::Ordering;
use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde_json::Value;

/// A parsed `oslc.where`: clauses joined by `and`.
#[derive(Debug, Clone, PartialEq)]
pub struct WhereClause {
    pub clauses: Vec<Clause>,
}

/// One comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    pub attr: String,
    pub op: Op,
    pub values: Vec<Literal>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    In,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Text(String),
    Number(f64),
    Bool(bool),
}

/// A where clause the sandbox cannot read, with the position of the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub position: usize,
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at position {}", self.message, self.position)
    }
}

/// Parses an `oslc.where` value.
pub fn parse(text: &str) -> Result<WhereClause, SyntaxError> {
    let mut parser = Parser { text, position: 0 };
    let mut clauses = vec![parser.clause()?];
    loop {
        parser.skip_spaces();
        if parser.at_end() {
            break;
        }
        let word = parser.word();
        match word.to_ascii_lowercase().as_str() {
            "and" => clauses.push(parser.clause()?),
            "or" => return Err(parser.error("`or` is not supported; use opmodeor instead")),
            _ => return Err(parser.error("expected `and` or the end of the clause")),
        }
    }
    Ok(WhereClause { clauses })
}

struct Parser<'a> {
    text: &'a str,
    position: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.text[self.position..]
    }

    fn at_end(&self) -> bool {
        self.rest().is_empty()
    }

    fn skip_spaces(&mut self) {
        let trimmed = self.rest().trim_start();
        self.position = self.text.len() - trimmed.len();
    }

    fn error(&self, message: &str) -> SyntaxError {
        SyntaxError {
            position: self.position,
            message: message.to_owned(),
        }
    }

    /// Reads an identifier (attribute name, `and`, `in`); empty when none starts here.
    fn word(&mut self) -> &str {
        self.skip_spaces();
        let start = self.position;
        let length = self
            .rest()
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .unwrap_or(self.rest().len());
        self.position += length;
        &self.text[start..self.position]
    }

    fn clause(&mut self) -> Result<Clause, SyntaxError> {
        let attr = self.word().to_ascii_lowercase();
        let attr_starts_well = attr.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
        if attr.is_empty() || !attr_starts_well {
            return Err(self.error("expected an attribute name"));
        }

        self.skip_spaces();
        let op = self.operator()?;
        if op == Op::In {
            return Ok(Clause {
                attr,
                op,
                values: self.list()?,
            });
        }
        Ok(Clause {
            attr,
            op,
            values: vec![self.literal()?],
        })
    }

    fn operator(&mut self) -> Result<Op, SyntaxError> {
        for (token, op) in [
            ("!=", Op::Ne),
            (">=", Op::Ge),
            ("<=", Op::Le),
            ("=", Op::Eq),
            (">", Op::Gt),
            ("<", Op::Lt),
        ] {
            if self.rest().starts_with(token) {
                self.position += token.len();
                return Ok(op);
            }
        }
        let before = self.position;
        if self.word().eq_ignore_ascii_case("in") {
            return Ok(Op::In);
        }
        self.position = before;
        Err(self.error("expected an operator (=, !=, >, >=, <, <=, in)"))
    }

    fn list(&mut self) -> Result<Vec<Literal>, SyntaxError> {
        self.skip_spaces();
        if !self.rest().starts_with('[') {
            return Err(self.error("expected `[` after `in`"));
        }
        self.position += 1;
        let mut values = Vec::new();
        loop {
            values.push(self.literal()?);
            self.skip_spaces();
            match self.rest().chars().next() {
                Some(',') => self.position += 1,
                Some(']') => {
                    self.position += 1;
                    return Ok(values);
                }
                _ => return Err(self.error("expected `,` or `]` in the list")),
            }
        }
    }

    fn literal(&mut self) -> Result<Literal, SyntaxError> {
        self.skip_spaces();
        let Some(first) = self.rest().chars().next() else {
            return Err(self.error("expected a value"));
        };
        if first == '"' {
            let body = &self.rest()[1..];
            let Some(end) = body.find('"') else {
                return Err(self.error("unterminated string"));
            };
            let text = body[..end].to_owned();
            self.position += end + 2;
            return Ok(Literal::Text(text));
        }
        if first == '\'' {
            return Err(self.error("strings must be in double quotes"));
        }

        let start = self.position;
        let length = self
            .rest()
            .find(|c: char| c.is_whitespace() || c == ',' || c == ']')
            .unwrap_or(self.rest().len());
        let token = &self.text[start..start + length];
        let literal = match token.to_ascii_lowercase().as_str() {
            "true" => Literal::Bool(true),
            "false" => Literal::Bool(false),
            _ => match token.parse::<f64>() {
                Ok(number) if number.is_finite() => Literal::Number(number),
                _ => return Err(self.error("expected a quoted string, a number, true or false")),
            },
        };
        self.position += length;
        Ok(literal)
    }
}

impl WhereClause {
    /// Returns whether a record matches, reading attributes through `attr`.
    ///
    /// Attributes named in `date_attrs` compare as instants; a literal without an offset is read
    /// in the server's `zone`.
    pub fn matches(
        &self,
        attr: &dyn Fn(&str) -> Option<Value>,
        is_date: &dyn Fn(&str) -> bool,
        zone: Tz,
    ) -> bool {
        self.clauses.iter().all(|clause| {
            let value = attr(&clause.attr);
            clause.matches(value.as_ref(), is_date(&clause.attr), zone)
        })
    }
}

impl Clause {
    fn matches(&self, value: Option<&Value>, is_date: bool, zone: Tz) -> bool {
        let value = value.filter(|value| !value.is_null());
        if let [Literal::Text(star)] = self.values.as_slice() {
            if star == "*" && matches!(self.op, Op::Eq | Op::Ne) {
                return (self.op == Op::Eq) == value.is_some();
            }
        }
        let Some(value) = value else {
            return false;
        };

        match self.op {
            Op::In => self
                .values
                .iter()
                .any(|literal| equals(value, literal, is_date, zone)),
            Op::Eq => equals(value, &self.values[0], is_date, zone),
            Op::Ne => !equals(value, &self.values[0], is_date, zone),
            Op::Gt | Op::Ge | Op::Lt | Op::Le => {
                let Some(ordering) = compare(value, &self.values[0], is_date, zone) else {
                    return false;
                };
                match self.op {
                    Op::Gt => ordering == Ordering::Greater,
                    Op::Ge => ordering != Ordering::Less,
                    Op::Lt => ordering == Ordering::Less,
                    _ => ordering != Ordering::Greater,
                }
            }
        }
    }
}

fn equals(value: &Value, literal: &Literal, is_date: bool, zone: Tz) -> bool {
    if let (Value::String(text), Literal::Text(pattern), false) = (value, literal, is_date) {
        if pattern.contains('%') {
            return like(text, pattern);
        }
    }
    compare(value, literal, is_date, zone) == Some(Ordering::Equal)
}

fn compare(value: &Value, literal: &Literal, is_date: bool, zone: Tz) -> Option<Ordering> {
    match (value, literal) {
        (Value::String(text), Literal::Text(other)) if is_date => {
            let left = parse_stored_time(text)?;
            let right = parse_literal_time(other, zone)?;
            Some(left.cmp(&right))
        }
        (Value::String(text), Literal::Text(other)) => Some(text.as_str().cmp(other.as_str())),
        (Value::Number(number), Literal::Number(other)) => number.as_f64()?.partial_cmp(other),
        (Value::Bool(flag), Literal::Bool(other)) => Some(flag.cmp(other)),
        (Value::Bool(flag), Literal::Number(other)) => {
            Some(f64::from(u8::from(*flag)).partial_cmp(other)?)
        }
        (Value::String(text), Literal::Number(other)) => {
            text.parse::<f64>().ok()?.partial_cmp(other)
        }
        _ => None,
    }
}

/// Matches `%` wildcards (any run of characters), case-insensitively as Maximo's QBE does.
fn like(text: &str, pattern: &str) -> bool {
    let text = text.to_lowercase();
    let pattern = pattern.to_lowercase();
    let parts: Vec<&str> = pattern.split('%').collect();
    let mut rest = text.as_str();
    for (index, part) in parts.iter().enumerate() {
        if index == 0 {
            let Some(stripped) = rest.strip_prefix(part) else {
                return false;
            };
            rest = stripped;
        } else if index == parts.len() - 1 {
            return part.is_empty() || rest.ends_with(part);
        } else {
            let Some(found) = rest.find(part) else {
                return false;
            };
            rest = &rest[found + part.len()..];
        }
    }
    rest.is_empty()
}

/// Parses a time the sandbox stores (RFC 3339, UTC).
pub fn parse_stored_time(text: &str) -> Option<DateTime<Utc>> {
    millrace_connector::time::parse_offset_time(text)
}

/// Parses a where-literal: with an offset it is that instant; without one it is a wall-clock
/// time in the server's zone, as Maximo reads it; a bare date is midnight in that zone.
pub fn parse_literal_time(text: &str, zone: Tz) -> Option<DateTime<Utc>> {
    if let Some(time) = millrace_connector::time::parse_time_in(text, &zone) {
        return Some(time);
    }
    let date = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").ok()?;
    let midnight = date
        .and_hms_opt(0, 0, 0)?
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    millrace_connector::time::parse_time_in(&midnight, &zone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(value: Value) -> impl Fn(&str) -> Option<Value> {
        move |name: &str| value.get(name).cloned()
    }

    fn is_date(name: &str) -> bool {
        name.ends_with("date")
    }

    fn matches(where_text: &str, value: Value, zone: Tz) -> bool {
        parse(where_text)
            .unwrap()
            .matches(&record(value), &is_date, zone)
    }

    #[test]
    fn parses_comparisons_joined_by_and() {
        let parsed = parse(r#"changedate>="2024-01-01T00:00:00" and siteid="BEDFORD""#).unwrap();
        assert_eq!(parsed.clauses.len(), 2);
        assert_eq!(parsed.clauses[0].op, Op::Ge);
        assert_eq!(
            parsed.clauses[1].values,
            vec![Literal::Text("BEDFORD".into())]
        );

        let parsed =
            parse(r#"status in ["APPR","INPRG"] and istask=0 and wopriority<=2.5"#).unwrap();
        assert_eq!(parsed.clauses[0].op, Op::In);
        assert_eq!(parsed.clauses[0].values.len(), 2);
        assert_eq!(parsed.clauses[1].values, vec![Literal::Number(0.0)]);
        assert_eq!(parsed.clauses[2].op, Op::Le);
    }

    #[test]
    fn rejects_what_it_does_not_support() {
        for bad in [
            "",
            "changedate>=",
            r#"status="APPR" or status="WAPPR""#,
            "status='APPR'",
            "status=APPR",
            r#"(status="APPR")"#,
            r#"status~"APPR""#,
            r#"status in ["APPR""#,
            r#"status="APPR"#,
            r#"status="APPR" siteid="X""#,
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn a_literal_without_offset_is_read_in_the_server_zone() {
        let zone: Tz = "America/New_York".parse().unwrap();
        let stored = json!({"changedate": "2024-07-01T16:00:00Z"});
        // 12:00 in New York in July is 16:00 UTC.
        assert!(matches(
            r#"changedate>="2024-07-01T12:00:00""#,
            stored.clone(),
            zone
        ));
        assert!(!matches(
            r#"changedate>"2024-07-01T12:00:00""#,
            stored.clone(),
            zone
        ));
        assert!(matches(
            r#"changedate>="2024-07-01T16:00:00+00:00""#,
            stored.clone(),
            zone
        ));
        assert!(!matches(
            r#"changedate>="2024-07-01T16:00:00.001Z""#,
            stored.clone(),
            zone
        ));
        assert!(matches(
            r#"changedate="2024-07-01T12:00:00-04:00""#,
            stored,
            zone
        ));
    }

    #[test]
    fn null_values_match_only_null_tests() {
        let zone: Tz = "UTC".parse().unwrap();
        let row = json!({"changedate": null, "status": "APPR"});
        assert!(!matches(r#"changedate>="2000-01-01""#, row.clone(), zone));
        assert!(matches(r#"changedate!="*""#, row.clone(), zone));
        assert!(matches(r#"status="*""#, row.clone(), zone));
        assert!(matches(r#"status="AP%""#, row.clone(), zone));
        assert!(!matches(r#"status="%X%""#, row, zone));
    }

    #[test]
    fn numbers_and_booleans_compare_by_value() {
        let zone: Tz = "UTC".parse().unwrap();
        let row = json!({"istask": false, "wopriority": 3});
        assert!(matches("istask=0 and wopriority>2", row.clone(), zone));
        assert!(matches(
            "istask=false and wopriority in [1,3]",
            row.clone(),
            zone
        ));
        assert!(!matches("wopriority!=3", row, zone));
    }
}
