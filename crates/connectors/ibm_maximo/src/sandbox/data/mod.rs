//! Loading the public data sets into Maximo-shaped records, and deriving what they lack.
//!
//! Each submodule turns one family of data sets into records of several object structures;
//! see the crate README for the table of structure, source and derived fields. Everything a
//! data set lacks is derived from the row's identity and the seed (see [`super::derive`]),
//! and times are placed relative to `now`, so the newest records are always recent.

mod geonet;
mod maintenance;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use super::derive::{below, hash};
use super::table::Attrs;

/// A failure to load the data sets.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "no data folder found; tried {}",
        tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    NotFound { tried: Vec<PathBuf> },
    #[error("cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
}

/// Finds the data folder: the given one, else `../shared/data` from the current folder or from
/// the workspace root this crate was built in.
pub fn find_data_dir(given: Option<&Path>) -> Result<PathBuf, LoadError> {
    let candidates: Vec<PathBuf> = match given {
        Some(dir) => vec![dir.to_path_buf()],
        None => {
            let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..");
            let mut candidates = vec![workspace.join("../shared/data")];
            if let Ok(current) = std::env::current_dir() {
                candidates.insert(0, current.join("../shared/data"));
            }
            candidates
        }
    };
    for candidate in &candidates {
        if candidate.join("excavator-mwo").is_dir() {
            return Ok(candidate
                .canonicalize()
                .unwrap_or_else(|_| candidate.clone()));
        }
    }
    Err(LoadError::NotFound { tried: candidates })
}

/// The records derived from the data sets, per structure name, before rowstamps are assigned.
#[derive(Default)]
pub struct Records {
    pub by_structure: BTreeMap<&'static str, Vec<Attrs>>,
}

impl Records {
    /// Adds a record, dropping null attributes as Maximo's lean JSON does.
    fn push(&mut self, structure: &'static str, value: Value) {
        let Value::Object(mut attrs) = value else {
            return;
        };
        attrs.retain(|_, value| !value.is_null());
        self.by_structure.entry(structure).or_default().push(attrs);
    }

    fn count(&self, structure: &str) -> usize {
        self.by_structure.get(structure).map_or(0, Vec::len)
    }
}

/// What derivation needs: the seed, the clock the times are placed against.
pub struct Context {
    pub seed: u64,
    pub now: DateTime<Utc>,
}

impl Context {
    fn hash(&self, identity: &str, salt: &str) -> u64 {
        hash(self.seed, identity, salt)
    }

    /// A last-change time for master data: within the last three years, never in the future.
    fn master_change(&self, identity: &str, known: Option<DateTime<Utc>>) -> DateTime<Utc> {
        let latest = self.now - Duration::minutes(5);
        if let Some(known) = known.filter(|time| *time <= latest) {
            if latest - known < Duration::days(3 * 365) {
                return known;
            }
        }
        let seconds = below(self.hash(identity, "changed"), 3 * 365 * 86_400);
        latest - Duration::seconds(seconds as i64)
    }
}

/// Loads every data set under `dir`.
pub fn load(dir: &Path, context: &Context) -> Result<Records, LoadError> {
    let mut records = Records::default();
    geonet::load(dir, context, &mut records)?;
    maintenance::load(dir, context, &mut records)?;
    tracing::info!(
        work_orders = records.count("mxapiwodetail"),
        assets = records.count("mxapiasset"),
        meter_readings = records.count("mxapimeterreading"),
        "sandbox data loaded"
    );
    Ok(records)
}

/// Reads a CSV file into rows of (header → value), reading backslash escapes as the
/// excavator files need.
fn read_csv(path: &Path) -> Result<Vec<BTreeMap<String, String>>, LoadError> {
    let error = |message: String| LoadError::Read {
        path: path.to_path_buf(),
        message,
    };
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .escape(Some(b'\\'))
        .from_path(path)
        .map_err(|err| error(err.to_string()))?;
    let headers = reader
        .headers()
        .map_err(|err| error(err.to_string()))?
        .clone();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|err| error(err.to_string()))?;
        let row = headers
            .iter()
            .zip(record.iter())
            .map(|(header, value)| (header.to_owned(), value.trim().to_owned()))
            .collect();
        rows.push(row);
    }
    Ok(rows)
}

/// Returns a column's value, treating empty and `NA` as missing.
fn column<'a>(row: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    row.get(name)
        .map(String::as_str)
        .filter(|value| !value.is_empty() && *value != "NA")
}

/// Parses a GeoNet time; the far-future `9999-01-01` marks "still installed" and reads as `None`.
fn register_time(text: Option<&str>) -> Option<DateTime<Utc>> {
    let time = millrace_connector::time::parse_offset_time(text?)?;
    (time.format("%Y").to_string() != "9999").then_some(time)
}

/// Makes a Maximo-style code: upper case, non-alphanumerics as `-`, at most `max` characters.
fn code(text: &str, max: usize) -> String {
    let mut code = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            code.push(c.to_ascii_uppercase());
        } else if !code.ends_with('-') && !code.is_empty() {
            code.push('-');
        }
    }
    let code: String = code.trim_end_matches('-').chars().take(max).collect();
    code.trim_end_matches('-').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_upper_case_and_bounded() {
        assert_eq!(code("Canterbury Seismic Instruments", 12), "CANTERBURY-S");
        assert_eq!(code("Grease System", 30), "GREASE-SYSTEM");
        assert_eq!(
            code("Allen Osborne Associates, Inc.", 40),
            "ALLEN-OSBORNE-ASSOCIATES-INC"
        );
    }

    #[test]
    fn the_register_far_future_means_still_installed() {
        assert_eq!(register_time(Some("9999-01-01T00:00:00Z")), None);
        assert!(register_time(Some("2014-06-15T00:00:00Z")).is_some());
    }
}
