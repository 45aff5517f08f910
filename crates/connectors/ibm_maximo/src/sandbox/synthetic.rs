//! Generated work orders for benchmarks: any number, built on demand from their index.
//!
//! Record `i` is a pure function of `i` and the seed; only records the control API created,
//! changed or deleted are held in memory (the overlay). Change dates are distinct and ascend
//! with the index, spread over the 20 days before the sandbox started.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use super::derive::{below, mix, pick, time_value};
use super::query::SortKey;
use super::table::{Attrs, ChangeIndex, ChangePlace, Row, RowId, StructureSpec, WORK_ORDERS};

const SITE: &str = "PLANT1";
const WORDS: &[&str] = &[
    "replace",
    "inspect",
    "hydraulic",
    "pump",
    "seal",
    "leaking",
    "conveyor",
    "belt",
    "bearing",
    "motor",
    "noisy",
    "gearbox",
    "oil",
    "change",
    "filter",
    "valve",
    "sticking",
    "sensor",
    "fault",
    "calibrate",
    "guard",
    "damaged",
    "coupling",
    "alignment",
    "check",
    "vibration",
    "high",
    "temperature",
    "cooling",
    "fan",
    "electrical",
    "cabinet",
    "lube",
    "points",
];
const STATUSES: &[&str] = &["WAPPR", "APPR", "INPRG", "WMATL", "COMP", "CLOSE"];
const WORK_TYPES: &[&str] = &["CM", "PM", "EM", "CP"];

/// The generated work orders and the overlay of control-API changes.
#[derive(Debug)]
pub struct SyntheticWorkOrders {
    count: u32,
    seed: u64,
    start: DateTime<Utc>,
    step_millis: i64,
    /// Base records the control API changed (`Some`) or deleted (`None`).
    overlay: BTreeMap<u32, Option<Row>>,
    /// Records the control API created, by natural key.
    created: BTreeMap<Arc<str>, Row>,
    /// The change order of the records in `overlay` and `created`; generated records are in
    /// change order by index already.
    by_change: ChangeIndex,
}

impl SyntheticWorkOrders {
    /// Describes `count` work orders whose change dates end at `end`.
    pub fn new(count: u64, seed: u64, end: DateTime<Utc>) -> Self {
        let count = u32::try_from(count).unwrap_or(u32::MAX);
        let window = Duration::days(20);
        let step_millis = (window.num_milliseconds() / i64::from(count.max(1))).max(1000);
        let start = end - Duration::milliseconds(step_millis * i64::from(count));
        SyntheticWorkOrders {
            count,
            seed,
            start,
            step_millis,
            overlay: BTreeMap::new(),
            created: BTreeMap::new(),
            by_change: ChangeIndex::default(),
        }
    }

    pub fn spec(&self) -> &'static StructureSpec {
        WORK_ORDERS
    }

    /// Returns the rowstamp the first record after the generated ones should get.
    pub fn next_rowstamp(&self) -> u64 {
        u64::from(self.count) + 1
    }

    pub fn len(&self) -> usize {
        let deleted = self.overlay.values().filter(|row| row.is_none()).count();
        self.count as usize - deleted + self.created.len()
    }

    pub fn ids(&self) -> Vec<RowId> {
        let mut ids = Vec::with_capacity(self.len());
        ids.extend(
            (0..self.count)
                .filter(|index| !matches!(self.overlay.get(index), Some(None)))
                .map(RowId::Index),
        );
        ids.extend(self.created.keys().map(|key| RowId::Key(key.clone())));
        ids
    }

    pub fn find(&self, key: &str) -> Option<RowId> {
        if let Some((key, _)) = self.created.get_key_value(key) {
            return Some(RowId::Key(key.clone()));
        }
        let index = self.index_of(key)?;
        let deleted = matches!(self.overlay.get(&index), Some(None));
        (!deleted).then_some(RowId::Index(index))
    }

    fn index_of(&self, key: &str) -> Option<u32> {
        let wonum = key.strip_prefix(SITE)?.strip_prefix("/W")?;
        let index = wonum.parse::<u32>().ok()?.checked_sub(1)?;
        (index < self.count).then_some(index)
    }

    pub fn put(&mut self, key: &str, row: Row) {
        self.forget(key);
        self.by_change.insert(WORK_ORDERS, key, &row.attrs);
        match self.index_of(key) {
            Some(index) => {
                self.overlay.insert(index, Some(row));
            }
            None => {
                self.created.insert(Arc::from(key), row);
            }
        }
    }

    pub fn remove(&mut self, key: &str) -> bool {
        self.forget(key);
        if self.created.remove(key).is_some() {
            return true;
        }
        let Some(index) = self.index_of(key) else {
            return false;
        };
        let existed = !matches!(self.overlay.get(&index), Some(None));
        self.overlay.insert(index, None);
        existed
    }

    /// Takes the held record under `key`, if any, out of the change index.
    fn forget(&mut self, key: &str) {
        let held = match self.index_of(key) {
            Some(index) => self.overlay.get(&index).and_then(Option::as_ref),
            None => self.created.get(key),
        };
        if let Some(row) = held {
            self.by_change.remove(WORK_ORDERS, key, &row.attrs);
        }
    }

    /// Returns the records changed within `[lower, upper]` microseconds in change order: the
    /// generated ones found by binary search on their ascending change dates (skipping those
    /// the overlay changed or deleted), merged with the held ones from the change index.
    pub fn change_range(
        &self,
        lower: i64,
        upper: i64,
    ) -> Option<Box<dyn Iterator<Item = RowId> + '_>> {
        let mut held = self.by_change.range(lower, upper)?.peekable();
        let (mut low, mut high) = (0, self.count);
        while low < high {
            let middle = low + (high - low) / 2;
            if self.change_micros(middle) < lower {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        let mut generated = (low..self.count)
            .take_while(move |index| self.change_micros(*index) <= upper)
            .filter(|index| !self.overlay.contains_key(index))
            .map(|index| (self.place(index), index))
            .peekable();

        let merged = std::iter::from_fn(move || {
            let take_held = match (generated.peek(), held.peek()) {
                (None, None) => return None,
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some((place, _)), Some(other)) => *other < place,
            };
            if take_held {
                let place = held.next()?;
                Some(
                    self.find(&place.2)
                        .unwrap_or_else(|| RowId::Key(place.2.clone())),
                )
            } else {
                generated.next().map(|(_, index)| RowId::Index(index))
            }
        });
        Some(Box::new(merged))
    }

    fn change_micros(&self, index: u32) -> i64 {
        self.changedate(index).timestamp_micros()
    }

    /// Returns where generated record `index` sorts, as [`ChangeIndex::place`] would place it.
    fn place(&self, index: u32) -> ChangePlace {
        let wonum = wonum(index);
        let key = format!("{SITE}/{wonum}");
        let keys = vec![SortKey::Text(SITE.to_owned()), SortKey::Text(wonum)];
        (self.change_micros(index), keys, Arc::from(key))
    }

    pub fn row(&self, id: &RowId) -> Option<Cow<'_, Row>> {
        match id {
            RowId::Key(key) => self.created.get(key).map(Cow::Borrowed),
            RowId::Index(index) => match self.overlay.get(index) {
                Some(changed) => changed.as_ref().map(Cow::Borrowed),
                None => (*index < self.count).then(|| Cow::Owned(self.generate(*index))),
            },
        }
    }

    /// Returns one attribute, computing the ones queries filter and sort on without building
    /// the whole record.
    pub fn attr(&self, id: &RowId, name: &str) -> Option<Value> {
        if let RowId::Index(index) = id {
            if !self.overlay.contains_key(index) && *index < self.count {
                match name {
                    "changedate" => return Some(time_value(self.changedate(*index))),
                    "wonum" => return Some(Value::String(wonum(*index))),
                    "siteid" => return Some(Value::String(SITE.to_owned())),
                    "istask" => return Some(Value::Bool(false)),
                    "workorderid" => return Some(json!(u64::from(*index) + 1)),
                    _ => {}
                }
            }
        }
        self.row(id)?.attrs.get(name).cloned()
    }

    fn changedate(&self, index: u32) -> DateTime<Utc> {
        self.start + Duration::milliseconds(self.step_millis * (i64::from(index) + 1))
    }

    fn generate(&self, index: u32) -> Row {
        let h = |salt: u64| mix(self.seed, (u64::from(index) << 8) | salt);
        let changed = self.changedate(index);
        let reported = changed - Duration::hours(below(h(1), 240) as i64 + 1);
        let started = reported + Duration::hours(below(h(2), 48) as i64);
        let status = pick(h(3), STATUSES);
        let finished = matches!(status, "COMP" | "CLOSE").then(|| started + Duration::hours(4));
        let description: Vec<&str> = (0..6 + below(h(4), 5))
            .map(|n| pick(h(10 + n), WORDS))
            .collect();
        let long: Vec<&str> = (0..30 + below(h(5), 20))
            .map(|n| pick(h(40 + n), WORDS))
            .collect();
        let asset = format!("P{:05}", below(h(6), 2000));
        let tasks: Vec<Value> = (0..1 + below(h(7), 3))
            .map(|task| {
                json!({
                    "taskid": (task + 1) * 10,
                    "wonum": format!("{}-{}", wonum(index), task + 1),
                    "description": format!("{} {}", pick(h(90 + task), WORDS), asset),
                    "status": status,
                    "estdur": 0.5 + below(h(95 + task), 8) as f64 / 2.0,
                })
            })
            .collect();

        let mut attrs = Attrs::new();
        let mut set = |name: &str, value: Value| {
            attrs.insert(name.to_owned(), value);
        };
        set("wonum", Value::String(wonum(index)));
        set("workorderid", json!(u64::from(index) + 1));
        set("siteid", json!(SITE));
        set("orgid", json!("EAGLENA"));
        set("description", json!(description.join(" ")));
        set("description_longdescription", json!(long.join(" ")));
        set("status", json!(status));
        set("statusdate", time_value(changed));
        set("wopriority", json!(1 + below(h(8), 5)));
        set("worktype", json!(pick(h(9), WORK_TYPES)));
        set("assetnum", json!(asset));
        set("location", json!(format!("AREA-{:02}", below(h(6), 40))));
        set("reportdate", time_value(reported));
        set("schedstart", time_value(started));
        set("actstart", time_value(started));
        if let Some(finished) = finished {
            set("actfinish", time_value(finished));
        }
        set("estdur", json!(1 + below(h(11), 16)));
        set("actlabhrs", json!(below(h(12), 40) as f64 / 4.0));
        set("acttotalcost", json!(below(h(13), 500_000) as f64 / 100.0));
        set("lead", json!(format!("TECH{:02}", 1 + below(h(14), 8))));
        set("changeby", json!("MAXADMIN"));
        set("changedate", time_value(changed));
        set("istask", json!(false));
        set("woactivity", Value::Array(tasks));
        Row {
            attrs,
            rowstamp: u64::from(index) + 1,
        }
    }
}

fn wonum(index: u32) -> String {
    format!("W{:07}", u64::from(index) + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_change_dates_are_distinct_and_ascending() {
        let end = Utc::now();
        let synthetic = SyntheticWorkOrders::new(1_000_000, 7, end);
        let first = synthetic.changedate(0);
        let second = synthetic.changedate(1);
        let last = synthetic.changedate(999_999);
        assert!(first < second && second < last && last <= end);
        assert!(end - first <= Duration::days(20) + Duration::seconds(2));
        let row = synthetic.row(&RowId::Index(41)).unwrap();
        assert_eq!(row.attrs["wonum"], json!("W0000042"));
        assert_eq!(synthetic.find("PLANT1/W0000042"), Some(RowId::Index(41)));
        assert_eq!(
            synthetic.attr(&RowId::Index(41), "changedate"),
            Some(row.attrs["changedate"].clone())
        );
    }
}
