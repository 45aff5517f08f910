//! How the sandbox answers a collection query: `oslc.select`, `oslc.orderBy`, filtering,
//! sorting, and rendering members as lean or `spi:`-prefixed JSON in the server's zone.

use std::cmp::Ordering;

use base64::Engine;
use chrono_tz::Tz;
use serde_json::{Map, Value};

use super::table::{is_date_attr, Row, RowId, Table};
use super::where_clause::{parse_literal_time, parse_stored_time, Literal, Op, WhereClause};

/// Which attributes to render.
#[derive(Debug, Clone, PartialEq)]
pub enum Select {
    /// No `oslc.select`: Maximo answers members with their `href` only.
    HrefOnly,
    /// `*`: every attribute, children included.
    All,
    /// A list, where a child object may carry its own list (`woactivity{taskid,status}`).
    Some(Vec<(String, Select)>),
}

/// Parses `oslc.select`, e.g. `wonum,status,woactivity{taskid,description}`.
pub fn parse_select(text: &str) -> Result<Select, String> {
    let (select, rest) = parse_select_list(text.trim())?;
    if !rest.trim().is_empty() {
        return Err(format!("unexpected `{rest}` in oslc.select"));
    }
    Ok(select)
}

fn parse_select_list(mut text: &str) -> Result<(Select, &str), String> {
    let mut items = Vec::new();
    loop {
        text = text.trim_start();
        let end = text.find([',', '{', '}']).unwrap_or(text.len());
        let name = text[..end].trim().to_ascii_lowercase();
        text = &text[end..];
        let valid = name == "*"
            || (!name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.'));
        if !valid {
            return Err(format!("`{name}` is not an attribute name"));
        }
        if name == "*" {
            items.push((name, Select::All));
        } else if let Some(inner) = text.strip_prefix('{') {
            let (child, rest) = parse_select_list(inner)?;
            let Some(rest) = rest.strip_prefix('}') else {
                return Err("unclosed `{` in oslc.select".to_owned());
            };
            items.push((name, child));
            text = rest;
        } else {
            items.push((name, Select::All));
        }
        match text.chars().next() {
            Some(',') => text = &text[1..],
            _ => break,
        }
    }
    if items.iter().any(|(name, _)| name == "*") {
        return Ok((Select::All, text));
    }
    Ok((Select::Some(items), text))
}

/// One `oslc.orderBy` term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderTerm {
    pub attr: String,
    pub descending: bool,
}

/// Parses `oslc.orderBy`; every attribute needs a `+` or `-` prefix, as Maximo requires.
pub fn parse_order(text: &str) -> Result<Vec<OrderTerm>, String> {
    text.split(',')
        .map(|term| {
            let descending = match term.chars().next() {
                Some('+') => false,
                Some('-') => true,
                _ => {
                    return Err(format!(
                        "`{term}` in oslc.orderBy needs a + or - prefix (is the + URL-encoded?)"
                    ))
                }
            };
            let attr = term[1..].trim().to_ascii_lowercase();
            if attr.is_empty() || !attr.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("`{term}` is not a sortable attribute"));
            }
            Ok(OrderTerm { attr, descending })
        })
        .collect()
}

/// Returns the records of `table` matching `filter`, in `order` (key order breaks ties).
pub fn run(
    table: &Table,
    filter: Option<&WhereClause>,
    order: &[OrderTerm],
    zone: Tz,
) -> Vec<RowId> {
    let mut ids = table.ids();
    if let Some(filter) = filter {
        ids.retain(|id| filter.matches(&|name| table.attr(id, name), &is_date_attr, zone));
    }
    if order.is_empty() {
        return ids;
    }
    let mut keyed: Vec<(Vec<SortKey>, RowId)> = ids
        .into_iter()
        .map(|id| {
            let keys = order
                .iter()
                .map(|term| sort_key(table.attr(&id, &term.attr), &term.attr));
            (keys.collect(), id)
        })
        .collect();
    keyed.sort_by(|(left, _), (right, _)| {
        for ((a, b), term) in left.iter().zip(right).zip(order) {
            let ordering = a.cmp_nulls_last(b);
            let ordering = if term.descending {
                ordering.reverse()
            } else {
                ordering
            };
            if ordering != Ordering::Equal {
                return ordering;
            }
        }
        Ordering::Equal
    });
    keyed.into_iter().map(|(_, id)| id).collect()
}

/// A value as `oslc.orderBy` compares it: nulls last, times as instants.
#[derive(Debug, Clone, PartialEq)]
pub enum SortKey {
    Null,
    Number(f64),
    Time(i64),
    Text(String),
}

/// Returns the sort value of attribute `attr` holding `value`.
pub fn sort_key(value: Option<Value>, attr: &str) -> SortKey {
    match value {
        None | Some(Value::Null) => SortKey::Null,
        Some(Value::Number(number)) => SortKey::Number(number.as_f64().unwrap_or(0.0)),
        Some(Value::Bool(flag)) => SortKey::Number(f64::from(u8::from(flag))),
        Some(Value::String(text)) if is_date_attr(attr) => match parse_stored_time(&text) {
            Some(time) => SortKey::Time(time.timestamp_micros()),
            None => SortKey::Text(text),
        },
        Some(Value::String(text)) => SortKey::Text(text),
        Some(other) => SortKey::Text(other.to_string()),
    }
}

impl SortKey {
    /// Orders values ascending with nulls after everything else, as Oracle and Db2 do.
    fn cmp_nulls_last(&self, other: &SortKey) -> Ordering {
        match (self, other) {
            (SortKey::Null, SortKey::Null) => Ordering::Equal,
            (SortKey::Null, _) => Ordering::Greater,
            (_, SortKey::Null) => Ordering::Less,
            (SortKey::Number(a), SortKey::Number(b)) => a.total_cmp(b),
            (SortKey::Time(a), SortKey::Time(b)) => a.cmp(b),
            (SortKey::Text(a), SortKey::Text(b)) => a.cmp(b),
            (a, b) => format!("{a:?}").cmp(&format!("{b:?}")),
        }
    }
}

impl Eq for SortKey {}

impl PartialOrd for SortKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SortKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.cmp_nulls_last(other)
    }
}

/// Answers a query ordered by `+change,+<every key attribute>` whose where clause bounds the
/// change attribute (`>=`, `>`, `<`, `<=` a time, or `="*"`) from the table's change index:
/// the matching records in order, found by walking the bounded range of the index and testing
/// the whole where clause on each. The order and the matches are those of [`run`]; only the
/// cost differs (a seek plus what is read, instead of a scan and sort of the table). Returns
/// `None` when the query has another shape, or the index cannot answer it exactly (a record
/// whose change attribute is not a time); [`run`] answers those.
pub fn run_by_change<'a>(
    table: &'a Table,
    filter: Option<&'a WhereClause>,
    order: &[OrderTerm],
    zone: Tz,
) -> Option<impl Iterator<Item = RowId> + 'a> {
    let spec = table.spec();
    let ascending = |term: &OrderTerm, attr: &str| !term.descending && term.attr == attr;
    let by_change_then_keys = order.len() == 1 + spec.key_attrs.len()
        && ascending(&order[0], spec.change_attr)
        && order[1..]
            .iter()
            .zip(spec.key_attrs)
            .all(|(term, key)| ascending(term, key));
    if !by_change_then_keys {
        return None;
    }

    let filter = filter?;
    let (mut lower, mut upper, mut bounded) = (i64::MIN, i64::MAX, false);
    for clause in filter.clauses.iter().filter(|c| c.attr == spec.change_attr) {
        let literal = match clause.values.as_slice() {
            [Literal::Text(text)] => text,
            _ => continue,
        };
        if clause.op == Op::Eq && literal == "*" {
            bounded = true;
            continue;
        }
        if !matches!(clause.op, Op::Ge | Op::Gt | Op::Lt | Op::Le) {
            continue;
        }
        // Microseconds floor monotonically, so `t >= L` implies `µs(t) >= µs(L)` and `t <= L`
        // implies `µs(t) <= µs(L)`: the range holds every match; the filter decides exactly.
        let bound = parse_literal_time(literal, zone)?.timestamp_micros();
        match clause.op {
            Op::Ge | Op::Gt => lower = lower.max(bound),
            _ => upper = upper.min(bound),
        }
        bounded = true;
    }
    if !bounded {
        return None;
    }

    let range = table.change_range(lower, upper)?;
    Some(range.filter(move |id| filter.matches(&|name| table.attr(id, name), &is_date_attr, zone)))
}

/// Returns a member's `href`: the collection URL and the base64 of its natural key.
pub fn member_href(collection_url: &str, key: &str) -> String {
    let id = base64::engine::general_purpose::URL_SAFE.encode(key.as_bytes());
    format!("{collection_url}/_{id}")
}

/// Renders one record as a collection member.
pub fn render(row: &Row, href: String, select: &Select, lean: bool, zone: Tz) -> Value {
    let mut member = Map::new();
    let (href_name, rowstamp_name) = if lean {
        ("href", "_rowstamp")
    } else {
        ("rdf:about", "spi:_rowstamp")
    };
    member.insert(href_name.to_owned(), Value::String(href));
    if *select == Select::HrefOnly {
        return Value::Object(member);
    }
    member.insert(
        rowstamp_name.to_owned(),
        Value::String(row.rowstamp.to_string()),
    );
    render_attrs(&row.attrs, select, lean, zone, &mut member);
    Value::Object(member)
}

fn render_attrs(
    attrs: &Map<String, Value>,
    select: &Select,
    lean: bool,
    zone: Tz,
    out: &mut Map<String, Value>,
) {
    let mut put = |name: &str, value: &Value, child_select: &Select| {
        let rendered = match value {
            Value::Array(children) => Value::Array(
                children
                    .iter()
                    .map(|child| match child {
                        Value::Object(child_attrs) => {
                            let mut rendered = Map::new();
                            render_attrs(child_attrs, child_select, lean, zone, &mut rendered);
                            Value::Object(rendered)
                        }
                        other => other.clone(),
                    })
                    .collect(),
            ),
            Value::String(text) if is_date_attr(name) => Value::String(in_zone(text, zone)),
            Value::Null => return,
            other => other.clone(),
        };
        let name = if lean {
            name.to_owned()
        } else {
            format!("spi:{name}")
        };
        out.insert(name, rendered);
    };
    match select {
        Select::HrefOnly => {}
        Select::All => {
            for (name, value) in attrs {
                put(name, value, &Select::All);
            }
        }
        Select::Some(items) => {
            for (name, child_select) in items {
                if let Some(value) = attrs.get(name) {
                    put(name, value, child_select);
                }
            }
        }
    }
}

/// Renders a stored UTC time in the server's zone with its offset, e.g.
/// `2020-10-22T11:38:20-04:00`; a fraction of a second is kept when there is one.
pub fn in_zone(stored: &str, zone: Tz) -> String {
    match parse_stored_time(stored) {
        Some(time) => time
            .with_timezone(&zone)
            .fixed_offset()
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false),
        None => stored.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_lists_nest_child_objects() {
        let select = parse_select("wonum, status,woactivity{taskid,status}").unwrap();
        let Select::Some(items) = select else {
            panic!("expected a list")
        };
        assert_eq!(items[0].0, "wonum");
        assert_eq!(items[2].0, "woactivity");
        assert!(matches!(&items[2].1, Select::Some(children) if children.len() == 2));
        assert_eq!(parse_select("*").unwrap(), Select::All);
        assert!(parse_select("wonum,woactivity{taskid").is_err());
        assert!(parse_select("wonum,").is_err());
    }

    #[test]
    fn order_terms_need_a_sign() {
        let order = parse_order("+changedate,-wonum").unwrap();
        assert!(!order[0].descending && order[1].descending);
        assert!(parse_order(" changedate").is_err());
        assert!(parse_order("changedate").is_err());
    }

    #[test]
    fn times_render_with_the_zone_offset_of_their_date() {
        let zone: Tz = "America/New_York".parse().unwrap();
        assert_eq!(
            in_zone("2020-10-22T15:38:20Z", zone),
            "2020-10-22T11:38:20-04:00"
        );
        assert_eq!(
            in_zone("2020-12-22T15:38:20Z", zone),
            "2020-12-22T10:38:20-05:00"
        );
        assert_eq!(
            in_zone("2020-12-22T15:38:20.250Z", zone),
            "2020-12-22T10:38:20.250-05:00"
        );
    }
}
