//! The sandbox's in-memory records: one table per object structure, keyed by natural key.
//!
//! A table either stores its records (the real data sets) or generates them on demand from
//! their index (the synthetic benchmark work orders), with a small overlay for records the
//! control API created, changed or deleted. Reading a page never clones a whole table.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::query::{sort_key, SortKey};
use super::synthetic::SyntheticWorkOrders;
use super::where_clause::parse_stored_time;

/// A record's attributes, as lean JSON; times are stored as RFC 3339 UTC strings.
pub type Attrs = Map<String, Value>;

/// One stored record.
#[derive(Debug, Clone)]
pub struct Row {
    pub attrs: Attrs,
    /// Increases with every change, across the whole sandbox.
    pub rowstamp: u64,
}

/// A handle on one record of a table, cheap to copy into a stable-paging snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RowId {
    /// A generated record, by index.
    Index(u32),
    /// A stored record, by natural key.
    Key(Arc<str>),
}

/// What the sandbox knows about one object structure.
#[derive(Debug)]
pub struct StructureSpec {
    pub name: &'static str,
    /// Attributes whose values, joined by `/`, form the natural key.
    pub key_attrs: &'static [&'static str],
    /// The attribute that records the last change.
    pub change_attr: &'static str,
    /// A numeric unique id attribute the server assigns, such as `workorderid`.
    pub id_attr: Option<&'static str>,
    /// Prefix of generated key values for records created without one.
    pub generated_prefix: &'static str,
}

/// The structures the sandbox serves.
pub const STRUCTURES: &[StructureSpec] = &[
    spec("mxapisite", &["siteid"], "changedate", Some("siteuid"), "S"),
    spec(
        "mxapilocations",
        &["siteid", "location"],
        "changedate",
        Some("locationsid"),
        "L",
    ),
    spec(
        "mxapiasset",
        &["siteid", "assetnum"],
        "changedate",
        Some("assetuid"),
        "A",
    ),
    spec(
        "mxapiwodetail",
        &["siteid", "wonum"],
        "changedate",
        Some("workorderid"),
        "W",
    ),
    spec(
        "mxapisr",
        &["ticketid"],
        "changedate",
        Some("ticketuid"),
        "SR",
    ),
    spec(
        "mxapiitem",
        &["itemsetid", "itemnum"],
        "changedate",
        Some("itemid"),
        "I",
    ),
    spec(
        "mxapiinventory",
        &["siteid", "location", "itemnum"],
        "changedate",
        Some("inventoryid"),
        "I",
    ),
    spec(
        "mxapipo",
        &["siteid", "ponum", "revisionnum"],
        "changedate",
        Some("poid"),
        "PO",
    ),
    spec(
        "mxapivendor",
        &["orgid", "company"],
        "changedate",
        Some("companiesid"),
        "V",
    ),
    spec(
        "mxapiperson",
        &["personid"],
        "changedate",
        Some("personuid"),
        "P",
    ),
    spec(
        "mxapiassetmeter",
        &["siteid", "assetnum", "metername"],
        "changedate",
        Some("assetmeterid"),
        "M",
    ),
    spec(
        "mxapimeterreading",
        &["meterreadingid"],
        "enterdate",
        None,
        "",
    ),
];

/// The work order structure, which the synthetic benchmark table serves.
pub const WORK_ORDERS: &StructureSpec = &STRUCTURES[3];

const fn spec(
    name: &'static str,
    key_attrs: &'static [&'static str],
    change_attr: &'static str,
    id_attr: Option<&'static str>,
    generated_prefix: &'static str,
) -> StructureSpec {
    StructureSpec {
        name,
        key_attrs,
        change_attr,
        id_attr,
        generated_prefix,
    }
}

/// Returns the spec of a structure by its (case-insensitive) name.
pub fn structure(name: &str) -> Option<&'static StructureSpec> {
    STRUCTURES
        .iter()
        .find(|spec| spec.name.eq_ignore_ascii_case(name))
}

/// Attributes that hold times, in any structure or child object.
pub fn is_date_attr(name: &str) -> bool {
    matches!(
        name,
        "changedate"
            | "statusdate"
            | "reportdate"
            | "schedstart"
            | "schedfinish"
            | "targstartdate"
            | "targcompdate"
            | "actstart"
            | "actfinish"
            | "installdate"
            | "orderdate"
            | "requireddate"
            | "readingdate"
            | "enterdate"
            | "lastreadingdate"
            | "affecteddate"
    )
}

impl StructureSpec {
    /// Returns the natural key of a record, or `None` when a key attribute is missing.
    pub fn key_of(&self, attrs: &Attrs) -> Option<String> {
        let mut parts = Vec::with_capacity(self.key_attrs.len());
        for attr in self.key_attrs {
            match attrs.get(*attr) {
                Some(Value::String(text)) if !text.is_empty() => parts.push(text.clone()),
                Some(Value::Number(number)) => parts.push(number.to_string()),
                _ => return None,
            }
        }
        Some(parts.join("/"))
    }
}

/// A record's place in change order: its change time in microseconds (as `oslc.orderBy`
/// compares it), the sort values of its key attributes, its natural key.
pub type ChangePlace = (i64, Vec<SortKey>, Arc<str>);

/// The records of a table ordered by `+change,+<key attributes>`, kept up to date on every
/// write so that a change-ordered page is a seek and a short walk instead of a sort.
#[derive(Debug, Default)]
pub struct ChangeIndex {
    places: BTreeSet<ChangePlace>,
    /// Records whose change attribute holds something other than a time; while there are any,
    /// the index cannot place them as a sort would and queries take the general path.
    unplaced: usize,
}

impl ChangeIndex {
    /// Returns where a record sorts, `Ok(None)` when its change attribute is null, `Err` when
    /// it is not a time.
    pub fn place(
        spec: &StructureSpec,
        key: &str,
        attrs: &Attrs,
    ) -> Result<Option<ChangePlace>, ()> {
        let time = match attrs.get(spec.change_attr) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::String(text)) => parse_stored_time(text).ok_or(())?,
            Some(_) => return Err(()),
        };
        let keys = spec
            .key_attrs
            .iter()
            .map(|attr| sort_key(attrs.get(*attr).cloned(), attr))
            .collect();
        Ok(Some((time.timestamp_micros(), keys, Arc::from(key))))
    }

    pub fn insert(&mut self, spec: &StructureSpec, key: &str, attrs: &Attrs) {
        match Self::place(spec, key, attrs) {
            Ok(Some(place)) => {
                self.places.insert(place);
            }
            Ok(None) => {}
            Err(()) => self.unplaced += 1,
        }
    }

    pub fn remove(&mut self, spec: &StructureSpec, key: &str, attrs: &Attrs) {
        match Self::place(spec, key, attrs) {
            Ok(Some(place)) => {
                self.places.remove(&place);
            }
            Ok(None) => {}
            Err(()) => self.unplaced -= 1,
        }
    }

    /// Returns the places with a change time in `[lower, upper]` microseconds, in order; `None`
    /// when some record cannot be placed.
    pub fn range(&self, lower: i64, upper: i64) -> Option<impl Iterator<Item = &ChangePlace>> {
        if self.unplaced > 0 {
            return None;
        }
        let from: ChangePlace = (lower, Vec::new(), Arc::from(""));
        let places = self
            .places
            .range((Bound::Included(from), Bound::Unbounded))
            .take_while(move |place| place.0 <= upper);
        Some(places)
    }
}

/// The stored records of one structure, by natural key, with their change index.
#[derive(Debug)]
pub struct StoredRows {
    spec: &'static StructureSpec,
    rows: BTreeMap<Arc<str>, Row>,
    by_change: ChangeIndex,
}

/// The records of one structure.
#[derive(Debug)]
pub enum Table {
    Stored(StoredRows),
    Synthetic(SyntheticWorkOrders),
}

impl Table {
    /// Returns an empty stored table of `spec`.
    pub fn stored(spec: &'static StructureSpec) -> Self {
        Table::Stored(StoredRows {
            spec,
            rows: BTreeMap::new(),
            by_change: ChangeIndex::default(),
        })
    }

    /// Returns the structure the table holds.
    pub fn spec(&self) -> &'static StructureSpec {
        match self {
            Table::Stored(stored) => stored.spec,
            Table::Synthetic(synthetic) => synthetic.spec(),
        }
    }

    /// Returns the handles of every record, in key order.
    pub fn ids(&self) -> Vec<RowId> {
        match self {
            Table::Stored(stored) => stored
                .rows
                .keys()
                .map(|key| RowId::Key(key.clone()))
                .collect(),
            Table::Synthetic(synthetic) => synthetic.ids(),
        }
    }

    /// Returns the records whose change time lies in `[lower, upper]` microseconds, ordered by
    /// `+change,+<key attributes>`; `None` when the change index cannot answer exactly.
    pub fn change_range(
        &self,
        lower: i64,
        upper: i64,
    ) -> Option<Box<dyn Iterator<Item = RowId> + '_>> {
        match self {
            Table::Stored(stored) => {
                let places = stored.by_change.range(lower, upper)?;
                Some(Box::new(places.map(|place| RowId::Key(place.2.clone()))))
            }
            Table::Synthetic(synthetic) => synthetic.change_range(lower, upper),
        }
    }

    /// Returns one attribute of a record without building the whole record when avoidable.
    pub fn attr(&self, id: &RowId, name: &str) -> Option<Value> {
        match (self, id) {
            (Table::Stored(stored), RowId::Key(key)) => {
                stored.rows.get(key)?.attrs.get(name).cloned()
            }
            (Table::Synthetic(synthetic), _) => synthetic.attr(id, name),
            _ => None,
        }
    }

    /// Returns a record, borrowed when stored and built when generated.
    pub fn row(&self, id: &RowId) -> Option<Cow<'_, Row>> {
        match (self, id) {
            (Table::Stored(stored), RowId::Key(key)) => stored.rows.get(key).map(Cow::Borrowed),
            (Table::Synthetic(synthetic), _) => synthetic.row(id),
            _ => None,
        }
    }

    /// Returns the handle of the record with natural key `key`, if it exists.
    pub fn find(&self, key: &str) -> Option<RowId> {
        match self {
            Table::Stored(stored) => stored
                .rows
                .get_key_value(key)
                .map(|(key, _)| RowId::Key(key.clone())),
            Table::Synthetic(synthetic) => synthetic.find(key),
        }
    }

    /// Stores `row` under `key`, replacing any record there.
    pub fn put(&mut self, key: &str, row: Row) {
        match self {
            Table::Stored(stored) => {
                if let Some(old) = stored.rows.get(key) {
                    stored.by_change.remove(stored.spec, key, &old.attrs);
                }
                stored.by_change.insert(stored.spec, key, &row.attrs);
                stored.rows.insert(Arc::from(key), row);
            }
            Table::Synthetic(synthetic) => synthetic.put(key, row),
        }
    }

    /// Removes a record; returns whether it existed.
    pub fn remove(&mut self, key: &str) -> bool {
        match self {
            Table::Stored(stored) => match stored.rows.remove(key) {
                Some(old) => {
                    stored.by_change.remove(stored.spec, key, &old.attrs);
                    true
                }
                None => false,
            },
            Table::Synthetic(synthetic) => synthetic.remove(key),
        }
    }

    /// Returns the number of records.
    pub fn len(&self) -> usize {
        match self {
            Table::Stored(stored) => stored.rows.len(),
            Table::Synthetic(synthetic) => synthetic.len(),
        }
    }
}
