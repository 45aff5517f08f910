//! The sandbox's records: three sites (the three mining companies of the MaintNorm corpus) and
//! quality events of every kind whose texts are real maintenance work-order texts (MaintNorm
//! and the excavator work orders in `shared/data`). Statuses, severities and dates are derived
//! from the seed, spread over the last 120 days.

use std::path::{Path, PathBuf};

use chrono::{Duration as ChronoDuration, DurationRound, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};

use super::{salesforce_time, Row, Sandbox};
use crate::config::Mapping;

/// Quality events loaded per text source.
const PER_SOURCE: usize = 240;

/// A record to insert: object, values, and age in hours of its creation and last change.
pub(super) struct Seeded {
    object: String,
    values: Map<String, Value>,
    created_hours_ago: i64,
    changed_hours_ago: i64,
    /// Index into the sites, for quality events.
    site: Option<usize>,
}

/// Finds `shared/data`: the given folder, or `../shared/data` from the working directory or
/// from the workspace.
pub(super) fn find_data_dir(given: Option<&Path>) -> Result<PathBuf, String> {
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
    candidates
        .iter()
        .find(|dir| dir.join("maintnorm-mwo-text").is_dir())
        .cloned()
        .ok_or_else(|| format!("no data folder with maintnorm-mwo-text among {candidates:?}"))
}

/// Reads the texts and derives the records.
pub(super) fn load(dir: &Path, seed: u64) -> Result<Vec<Seeded>, String> {
    let mapping = Mapping::default();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut seeded = Vec::new();

    let site = &mapping.site;
    let sites = [
        ("Company A open-cut mine", "Pilbara, Western Australia"),
        (
            "Company B processing plant",
            "Goldfields, Western Australia",
        ),
        ("Company C coal operations", "Bowen Basin, Queensland"),
    ];
    for (name, address) in sites {
        let mut values = Map::new();
        values.insert("Name".into(), json!(name));
        if let Some(field) = &site.description {
            values.insert(
                field.clone(),
                json!(format!("{name}, quality records of the site")),
            );
        }
        if let Some(field) = &site.active {
            values.insert(field.clone(), json!(true));
        }
        if let Some(field) = &site.address {
            values.insert(field.clone(), json!(address));
        }
        if let Some(field) = &site.time_zone {
            values.insert(field.clone(), json!("Australia/Perth"));
        }
        seeded.push(Seeded {
            object: site.object.clone(),
            values,
            created_hours_ago: 24 * 400,
            changed_hours_ago: 24 * 200,
            site: None,
        });
    }

    let mut texts: Vec<(String, String, usize)> = Vec::new();
    let maintnorm = dir.join("maintnorm-mwo-text/maintnorm_texts.csv");
    let mut reader = csv::Reader::from_path(&maintnorm)
        .map_err(|err| format!("{}: {err}", maintnorm.display()))?;
    for (index, row) in reader.records().enumerate() {
        let row = row.map_err(|err| format!("{}: {err}", maintnorm.display()))?;
        if index % 50 != 0 || texts.len() >= PER_SOURCE {
            continue;
        }
        let company = match row.get(1) {
            Some("company_b") => 1,
            Some("company_c") => 2,
            _ => 0,
        };
        let raw = row.get(3).unwrap_or_default().trim().to_owned();
        let normalised = row.get(4).unwrap_or_default().trim().to_owned();
        texts.push((raw, normalised, company));
    }
    let excavators = dir.join("excavator-mwo/excavators-cleaned.csv");
    let mut reader = csv::Reader::from_path(&excavators)
        .map_err(|err| format!("{}: {err}", excavators.display()))?;
    let mut taken = 0;
    for (index, row) in reader.records().enumerate() {
        let row = row.map_err(|err| format!("{}: {err}", excavators.display()))?;
        if index % 20 != 0 || taken >= PER_SOURCE {
            continue;
        }
        taken += 1;
        let text = row.get(2).unwrap_or_default().trim().to_owned();
        let system = row.get(6).unwrap_or("NA").replace('_', " ");
        let asset = row.get(1).unwrap_or("?");
        let detail = format!("Excavator {asset}, {system}: {}", text.to_lowercase());
        texts.push((text, detail, index % 3));
    }

    let statuses = [
        "Open",
        "Under Investigation",
        "Pending Approval",
        "Implementation",
        "Closed",
        "Cancelled",
    ];
    let severities = ["Minor", "Major", "Critical"];
    for (index, (title, description, company)) in texts.into_iter().enumerate() {
        if title.is_empty() {
            continue;
        }
        let quality = &mapping.quality_events[index % mapping.quality_events.len()];
        let fields = &quality.fields;
        let opened_hours_ago: i64 = rng.gen_range(24..24 * 120);
        let changed_hours_ago = rng.gen_range(0..opened_hours_ago);
        let status = statuses[rng.gen_range(0..statuses.len())];
        let mut values = Map::new();
        let mut put = |field: &Option<String>, value: Value| {
            if let Some(field) = field {
                values.insert(field.clone(), value);
            }
        };
        let now = Utc::now()
            .duration_trunc(ChronoDuration::seconds(1))
            .unwrap_or_else(|_| Utc::now());
        let opened = now - ChronoDuration::hours(opened_hours_ago);
        put(
            &fields.number,
            json!(format!("{}-{:06}", prefix(&quality.event_type), index + 1)),
        );
        put(
            &fields.title,
            json!(title.chars().take(80).collect::<String>()),
        );
        put(&fields.description, json!(description));
        put(&fields.status, json!(status));
        put(
            &fields.severity,
            json!(severities[rng.gen_range(0..severities.len())]),
        );
        put(&fields.opened_at, json!(salesforce_time(opened)));
        put(
            &fields.due_at,
            json!((opened + ChronoDuration::days(30)).date_naive().to_string()),
        );
        let closed = (status == "Closed" || status == "Cancelled")
            .then(|| salesforce_time(now - ChronoDuration::hours(changed_hours_ago)));
        put(&fields.closed_at, json!(closed));
        seeded.push(Seeded {
            object: quality.object.clone(),
            values,
            created_hours_ago: opened_hours_ago,
            changed_hours_ago,
            site: Some(company),
        });
    }
    Ok(seeded)
}

fn prefix(event_type: &str) -> &'static str {
    match event_type {
        "deviation" => "DEV",
        "nonconformance" => "NC",
        "capa" => "CAPA",
        "complaint" => "CMP",
        "change_control" => "CC",
        _ => "AUD",
    }
}

/// Inserts the seeded records, giving each an id and linking quality events to their site.
pub(super) fn insert(sandbox: &Sandbox, seeded: Vec<Seeded>) {
    let now = sandbox.now();
    let site_field = Mapping::default().quality_events[0].fields.site.clone();
    let mut site_ids = Vec::new();
    for record in seeded {
        let prefix = match sandbox.lock_tables().get(&record.object) {
            Some(table) => table.prefix.clone(),
            None => continue,
        };
        let id = sandbox.new_id(&prefix);
        let mut values = record.values;
        match record.site {
            None => site_ids.push(id.clone()),
            Some(index) => {
                if let (Some(field), Some(site)) = (&site_field, site_ids.get(index)) {
                    values.insert(field.clone(), json!(site));
                }
            }
        }
        let mut tables = sandbox.lock_tables();
        if let Some(table) = tables.get_mut(&record.object) {
            table.rows.insert(
                id.clone(),
                Row {
                    id,
                    created: now - ChronoDuration::hours(record.created_hours_ago),
                    modstamp: now - ChronoDuration::hours(record.changed_hours_ago),
                    deleted: None,
                    values,
                },
            );
        }
    }
}
