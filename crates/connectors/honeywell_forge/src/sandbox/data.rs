//! The sandbox's records, derived from the AI4I 2020 predictive maintenance data set
//! (`shared/data/ai4i2020`): 10,000 process records of milling runs, each with a product
//! quality variant (L, M, H) and five failure modes. The runs are spread over six machines of
//! two plants and the last 90 days. Every failure becomes an alarm. Every block of 50 runs on
//! a machine becomes a shift's production figures: runs produced, failed runs scrapped.

use std::path::{Path, PathBuf};

use chrono::{Duration as ChronoDuration, Utc};
use serde_json::json;

use super::{stamp, Sandbox};

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
        .find(|dir| dir.join("ai4i2020").is_dir())
        .cloned()
        .ok_or_else(|| format!("no data folder with ai4i2020 among {candidates:?}"))
}

const FAILURES: [(usize, &str); 5] = [
    (9, "Tool wear failure"),
    (10, "Heat dissipation failure"),
    (11, "Power failure"),
    (12, "Overstrain failure"),
    (13, "Random failure"),
];

/// Loads the data set into the sandbox.
pub(super) fn load(sandbox: &Sandbox, dir: &Path) -> Result<(), String> {
    let now = Utc::now();
    let sites = [
        ("Plant Nord machining", "Europe/Berlin"),
        ("Plant Süd machining", "Europe/Berlin"),
    ];
    let mut site_ids = Vec::new();
    for (name, zone) in sites {
        let id = sandbox.new_id("sites");
        sandbox.insert(
            "sites",
            json!({"id": id, "name": name, "description": format!("{name}, CNC milling"),
                   "status": "active", "timeZone": zone, "address": null,
                   "createdAt": stamp(now - ChronoDuration::days(900)),
                   "updatedAt": stamp(now - ChronoDuration::days(120))}),
        );
        site_ids.push(id);
    }
    let mut machines = Vec::new();
    for n in 0..6 {
        let id = sandbox.new_id("assets");
        let site = &site_ids[n % 2];
        sandbox.insert(
            "assets",
            json!({"id": id, "tag": format!("MILL-{:02}", n + 1), "name": format!("Milling centre {}", n + 1),
                   "description": "5-axis CNC milling centre", "type": "milling_machine",
                   "manufacturer": "DMG Mori", "model": "DMU 65", "serialNumber": format!("DMU65-{:05}", 31_000 + n),
                   "status": "running", "siteId": site, "parentId": null,
                   "createdAt": stamp(now - ChronoDuration::days(800)),
                   "updatedAt": stamp(now - ChronoDuration::days(100))}),
        );
        machines.push((id, site.clone()));
    }

    let path = dir.join("ai4i2020/ai4i2020.csv");
    let mut reader =
        csv::Reader::from_path(&path).map_err(|err| format!("{}: {err}", path.display()))?;
    let rows: Vec<csv::StringRecord> = reader
        .records()
        .collect::<Result<_, _>>()
        .map_err(|err| format!("{}: {err}", path.display()))?;
    let span_minutes = 90 * 24 * 60;
    let per_run = span_minutes / rows.len().max(1) as i64;
    let mut shift: Vec<(usize, bool, String)> = Vec::new();
    for (index, row) in rows.iter().enumerate() {
        let machine = index % machines.len();
        let at = now - ChronoDuration::minutes(span_minutes - per_run * index as i64);
        let failed = row.get(8) == Some("1");
        if failed {
            let reason = FAILURES
                .iter()
                .filter(|(column, _)| row.get(*column) == Some("1"))
                .map(|(_, name)| *name)
                .collect::<Vec<_>>()
                .join(", ");
            let wear: i64 = row.get(7).and_then(|wear| wear.parse().ok()).unwrap_or(30);
            let cleared = at + ChronoDuration::minutes(20 + wear % 90);
            let id = sandbox.new_id("alarms-events");
            sandbox.insert(
                "alarms-events",
                json!({"id": id, "kind": "alarm", "priority": "high", "state": "cleared",
                       "assetId": machines[machine].0, "category": "unplanned",
                       "message": if reason.is_empty() { "Machine failure".to_owned() } else { reason },
                       "raisedAt": stamp(at), "clearedAt": stamp(cleared),
                       "createdAt": stamp(at), "updatedAt": stamp(cleared)}),
            );
        }
        shift.push((machine, failed, row.get(2).unwrap_or("M").to_owned()));
        if shift.len() == 50 * machines.len() {
            for (machine, (asset, site)) in machines.iter().enumerate() {
                let runs: Vec<&(usize, bool, String)> =
                    shift.iter().filter(|(m, _, _)| *m == machine).collect();
                let scrapped = runs.iter().filter(|(_, failed, _)| *failed).count();
                let variant = &runs[0].2;
                let started = at - ChronoDuration::minutes(per_run * 50 * machines.len() as i64);
                let id = sandbox.new_id("production");
                sandbox.insert(
                    "production",
                    json!({"id": id, "orderNumber": format!("PO-{}", id.trim_start_matches("prod-")),
                           "product": format!("Shaft variant {variant}"), "status": "completed",
                           "siteId": site, "assetId": asset, "planned": runs.len(),
                           "produced": runs.len() - scrapped, "scrapped": scrapped, "unit": "pcs",
                           "startedAt": stamp(started), "endedAt": stamp(at), "shift": "rotating",
                           "createdAt": stamp(started), "updatedAt": stamp(at)}),
                );
            }
            shift.clear();
        }
    }
    Ok(())
}
