//! The maintenance data sets: excavator work orders (with their parts, purchase orders and
//! meters fed by AI4I 2020 process data) and the MaintNorm texts as service requests and work
//! orders at three mining sites, plus the generated people who work them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::{json, Value};

use super::geonet::location;
use super::{code, column, read_csv, Context, LoadError, Records};
use crate::sandbox::derive::{below, pick, time_value};

const ORG: &str = "MINING";
const MINE: &str = "MINE";
const ITEM_SET: &str = "SET1";
const EXCAVATORS: &[&str] = &["A", "B", "C", "D", "E"];
const STOREROOMS: &[&str] = &["CENTRAL", "FIELD"];
const SUPPLIERS: &[(&str, &str)] = &[
    ("SUP01", "Parts Supplier 01"),
    ("SUP02", "Parts Supplier 02"),
    ("SUP03", "Parts Supplier 03"),
];
const COMPANY_SITES: &[(&str, &str, &str)] = &[
    ("company_a", "MNA", "Mining company A"),
    ("company_b", "MNB", "Mining company B"),
    ("company_c", "MNC", "Mining company C"),
];
/// (person id, display name, title).
const PEOPLE: &[(&str, &str, &str)] = &[
    ("TECH01", "Technician 01", "Maintenance technician"),
    ("TECH02", "Technician 02", "Maintenance technician"),
    ("TECH03", "Technician 03", "Maintenance technician"),
    ("TECH04", "Technician 04", "Maintenance technician"),
    ("TECH05", "Technician 05", "Maintenance technician"),
    ("TECH06", "Technician 06", "Maintenance technician"),
    ("TECH07", "Technician 07", "Maintenance technician"),
    ("TECH08", "Technician 08", "Maintenance technician"),
    ("PLAN01", "Planner 01", "Maintenance planner"),
    ("PLAN02", "Planner 02", "Maintenance planner"),
    ("PLAN03", "Planner 03", "Maintenance planner"),
    ("SUPV01", "Supervisor 01", "Maintenance supervisor"),
];
const TECHNICIANS: &[&str] = &[
    "TECH01", "TECH02", "TECH03", "TECH04", "TECH05", "TECH06", "TECH07", "TECH08",
];
/// (meter, AI4I column, unit, meter type).
const METERS: &[(&str, &str, &str, &str)] = &[
    ("AIRTEMP", "Air temperature [K]", "K", "GAUGE"),
    ("PROCTEMP", "Process temperature [K]", "K", "GAUGE"),
    ("SPEED", "Rotational speed [rpm]", "RPM", "GAUGE"),
    ("TORQUE", "Torque [Nm]", "NM", "GAUGE"),
    ("TOOLWEAR", "Tool wear [min]", "MIN", "CONTINUOUS"),
];
/// How far back the AI4I rows are spread as meter readings.
const READING_WINDOW_DAYS: i64 = 60;
/// How far back the MaintNorm texts are spread.
const TEXT_WINDOW_DAYS: u64 = 4 * 365;

pub fn load(dir: &Path, context: &Context, records: &mut Records) -> Result<(), LoadError> {
    load_sites_people_and_suppliers(context, records);
    load_excavators(dir, context, records)?;
    load_texts(dir, context, records)?;
    load_meter_readings(dir, context, records)?;
    Ok(())
}

fn load_sites_people_and_suppliers(context: &Context, records: &mut Records) {
    let mut sites = vec![(MINE, "Excavator mine site")];
    sites.extend(COMPANY_SITES.iter().map(|(_, site, name)| (*site, *name)));
    for (index, (site, description)) in sites.iter().enumerate() {
        records.push(
            "mxapisite",
            json!({
                "siteid": site, "orgid": ORG, "siteuid": 950 + index, "description": description,
                "active": true, "changeby": "MAXADMIN",
                "changedate": time_value(context.master_change(&format!("site/{site}"), None)),
            }),
        );
        for (code, name, kind) in [
            ("PIT", "Open pit", "OPERATING"),
            ("WORKSHOP", "Workshop", "OPERATING"),
        ] {
            records.push(
                "mxapilocations",
                location(context, site, code, name, kind, None, None),
            );
        }
    }
    for storeroom in STOREROOMS {
        let name = format!("{} storeroom", storeroom.to_lowercase());
        records.push(
            "mxapilocations",
            location(context, MINE, storeroom, &name, "STOREROOM", None, None),
        );
    }

    for (index, (person, name, title)) in PEOPLE.iter().enumerate() {
        let (first, last) = name.split_once(' ').unwrap_or((name, ""));
        records.push(
            "mxapiperson",
            json!({
                "personid": person, "personuid": index + 1, "displayname": name,
                "firstname": first, "lastname": last, "title": title, "department": "MAINT",
                "primaryemail": format!("{}@mine.example", person.to_lowercase()),
                "primaryphone": format!("+61 8 9000 {:04}", 100 + index),
                "status": "ACTIVE", "locationsite": MINE, "locationorg": ORG,
                "changedate": time_value(context.master_change(&format!("person/{person}"), None)),
            }),
        );
    }
    for (index, (company, name)) in SUPPLIERS.iter().enumerate() {
        records.push(
            "mxapivendor",
            json!({
                "company": company, "orgid": ORG, "companiesid": 900 + index, "name": name,
                "type": "V", "disabled": false, "currencycode": "AUD",
                "changedate": time_value(
                    context.master_change(&format!("company/{company}"), None)
                ),
            }),
        );
    }
}

/// The excavator work orders, shifted so the newest is two days old.
fn load_excavators(dir: &Path, context: &Context, records: &mut Records) -> Result<(), LoadError> {
    let rows = read_csv(&dir.join("excavator-mwo/excavators-cleaned.csv"))?;
    let date_of = |row: &BTreeMap<String, String>| {
        column(row, "BscStartDate").and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
    };
    let newest = rows.iter().filter_map(date_of).max();
    let target = (context.now - Duration::days(2)).date_naive();
    let shift = newest.map_or(Duration::zero(), |newest| target - newest);

    let mut first_seen: BTreeMap<&str, DateTime<Utc>> = BTreeMap::new();
    let mut parts: BTreeMap<String, (String, f64, u32)> = BTreeMap::new();
    let mut po_count = 0_u32;

    for (index, row) in rows.iter().enumerate() {
        let Some(date) = date_of(row) else { continue };
        let excavator = column(row, "Asset").unwrap_or("A");
        let wonum = format!("EX{:05}", index + 1);
        let identity = format!("wo/{MINE}/{wonum}");
        let h = |salt: &str| context.hash(&identity, salt);

        let reported = (date + shift)
            .and_hms_opt(6, 0, 0)
            .map(|t| t.and_utc())
            .unwrap_or(context.now)
            + Duration::minutes(below(h("hour"), 12 * 60) as i64);
        let reported = reported.min(context.now - Duration::hours(1));
        first_seen
            .entry(excavator)
            .and_modify(|t| *t = (*t).min(reported))
            .or_insert(reported);
        let cost = column(row, "Cost").and_then(|c| c.parse::<f64>().ok());
        let work_type = match column(row, "PMType") {
            Some("PM01") => "CM",
            Some("PM02") => "PM",
            _ => "MISC",
        };
        let part_tokens: Vec<&str> = column(row, "Part")
            .map(|p| p.split('_').filter(|t| !t.is_empty()).collect())
            .unwrap_or_default();

        let timeline = Timeline::derive(context, &identity, reported, false);
        let tasks: Vec<Value> = if part_tokens.is_empty() {
            Vec::new()
        } else {
            let action = column(row, "Action")
                .unwrap_or("Service")
                .replace('_', " and ");
            [
                format!("Isolate excavator {excavator}"),
                format!("{action}: {}", part_tokens.join(", ")),
                "Test and return to service".to_owned(),
            ]
            .into_iter()
            .enumerate()
            .map(|(n, description)| {
                json!({
                    "taskid": (n + 1) * 10, "wonum": format!("{wonum}-{}", (n + 1) * 10),
                    "description": description, "status": timeline.status,
                    "estdur": 0.5 + below(h(&format!("task{n}")), 6) as f64 / 2.0,
                })
            })
            .collect()
        };

        records.push(
            "mxapiwodetail",
            json!({
                "wonum": wonum, "siteid": MINE, "orgid": ORG, "workorderid": index + 1,
                "description": column(row, "OriginalShorttext"),
                "description_longdescription": column(row, "Comments"),
                "status": timeline.status, "statusdate": time_value(timeline.changed),
                "wopriority": 1 + below(h("priority"), 5), "worktype": work_type,
                "assetnum": format!("EX-{excavator}"), "location": "PIT",
                "failurecode": column(row, "MajorSystem").map(|s| code(s, 20)),
                "problemcode": column(row, "FM").map(|s| code(s, 20)),
                "reportdate": time_value(reported), "reportedby": pick(h("by"), TECHNICIANS),
                "schedstart": time_value(reported + Duration::hours(2)),
                "schedfinish": time_value(reported + Duration::hours(10)),
                "actstart": timeline.started.map(time_value),
                "actfinish": timeline.finished.map(time_value),
                "estdur": 1 + below(h("estdur"), 12),
                "acttotalcost": if timeline.finished.is_some() {
                    cost.map(|c| json!(c))
                } else {
                    None
                },
                "esttotalcost": cost,
                "lead": pick(h("lead"), TECHNICIANS), "supervisor": "SUPV01",
                "istask": false, "woclass": "WORKORDER",
                "changeby": pick(h("changeby"), TECHNICIANS),
                "changedate": time_value(timeline.changed),
                "woactivity": tasks,
            }),
        );

        for token in &part_tokens {
            let entry = parts
                .entry(code(token, 30))
                .or_insert_with(|| (token.to_string(), 0.0, 0));
            entry.1 += cost.unwrap_or(0.0);
            entry.2 += 1;
        }
        if work_type == "PM" {
            po_count += 1;
            let line_parts: Vec<(String, String)> = part_tokens
                .iter()
                .map(|t| (code(t, 30), t.to_string()))
                .collect();
            records.push(
                "mxapipo",
                purchase_order(context, po_count, &wonum, row, reported, cost, &line_parts),
            );
        }
    }

    for (index, excavator) in EXCAVATORS.iter().enumerate() {
        let assetnum = format!("EX-{excavator}");
        let identity = format!("asset/{MINE}/{assetnum}");
        records.push(
            "mxapiasset",
            json!({
                "assetnum": assetnum, "siteid": MINE, "orgid": ORG, "assetuid": 500 + index,
                "description": format!("Hydraulic mining excavator {excavator}"),
                "assettype": "EXCAVATOR", "status": "OPERATING", "location": "PIT",
                "isrunning": true, "priority": 1,
                "installdate": first_seen
                    .get(excavator)
                    .map(|t| time_value(*t - Duration::days(30))),
                "changedate": time_value(context.master_change(&identity, None)),
            }),
        );
    }

    for (index, (itemnum, (name, total_cost, uses))) in parts.iter().enumerate() {
        let identity = format!("item/{itemnum}");
        let h = |salt: &str| context.hash(&identity, salt);
        let unit_cost = ((total_cost / f64::from(*uses)).max(5.0) * 100.0).round() / 100.0;
        records.push(
            "mxapiitem",
            json!({
                "itemnum": itemnum, "itemsetid": ITEM_SET, "itemid": index + 1,
                "description": name, "status": "ACTIVE", "orderunit": "EA", "issueunit": "EA",
                "rotating": false, "itemtype": "ITEM", "commoditygroup": "EXCAV",
                "changeby": "MAXADMIN",
                "changedate": time_value(context.master_change(&identity, None)),
            }),
        );
        for (store_index, storeroom) in STOREROOMS.iter().enumerate() {
            if store_index > 0 && below(h(storeroom), 2) == 0 {
                continue;
            }
            let stock = format!("{identity}/{storeroom}");
            let on_hand = below(context.hash(&stock, "qty"), 40) as f64;
            let reserved = below(context.hash(&stock, "reserved"), 4).min(on_hand as u64) as f64;
            records.push(
                "mxapiinventory",
                json!({
                    "itemnum": itemnum, "itemsetid": ITEM_SET, "siteid": MINE,
                    "location": storeroom, "inventoryid": (index + 1) * 10 + store_index,
                    "binnum": format!(
                        "{}-{:02}",
                        &storeroom[..1],
                        below(context.hash(&stock, "bin"), 60)
                    ),
                    "curbaltotal": on_hand, "reservedqty": reserved,
                    "avblbalance": on_hand - reserved,
                    "minlevel": 2 + below(context.hash(&stock, "min"), 5), "orderqty": 5,
                    "avgcost": unit_cost, "issueunit": "EA", "status": "ACTIVE",
                    "changedate": time_value(context.master_change(&stock, None)),
                }),
            );
        }
    }
    Ok(())
}

fn purchase_order(
    context: &Context,
    number: u32,
    wonum: &str,
    row: &BTreeMap<String, String>,
    needed: DateTime<Utc>,
    cost: Option<f64>,
    parts: &[(String, String)],
) -> Value {
    let ponum = format!("PO{:05}", 1000 + number);
    let identity = format!("po/{MINE}/{ponum}");
    let h = |salt: &str| context.hash(&identity, salt);
    let ordered = needed - Duration::days(1 + below(h("lead"), 10) as i64);
    let age = context.now - needed;
    let status = if age > Duration::days(30) {
        "CLOSE"
    } else {
        pick(h("status"), &["WAPPR", "APPR", "APPR", "INPRG"])
    };
    let received = status == "CLOSE";
    let total = cost.unwrap_or(0.0);
    let line_count = parts.len().max(1);
    let lines: Vec<Value> = (0..line_count)
        .map(|n| {
            let quantity = 1 + below(h(&format!("qty{n}")), 4);
            let line_cost = (total / line_count as f64 * 100.0).round() / 100.0;
            let (itemnum, description) = match parts.get(n) {
                Some((itemnum, name)) => (Some(itemnum.clone()), name.clone()),
                None => (None, format!("Replacement parts for {wonum}")),
            };
            json!({
                "polinenum": n + 1, "itemnum": itemnum, "description": description,
                "itemsetid": itemnum.as_ref().map(|_| ITEM_SET),
                "orderqty": quantity, "receivedqty": if received { quantity } else { 0 },
                "orderunit": "EA",
                "unitcost": (line_cost / quantity as f64 * 100.0).round() / 100.0,
                "linecost": line_cost, "refwo": wonum,
            })
        })
        .collect();
    let changed = if received {
        needed + Duration::days(2)
    } else {
        ordered + Duration::hours(3)
    };
    json!({
        "ponum": ponum, "revisionnum": 0, "siteid": MINE, "orgid": ORG, "poid": number,
        "description": format!(
            "Parts for {wonum}: {}",
            column(row, "OriginalShorttext").unwrap_or("")
        ),
        "status": status, "statusdate": time_value(changed),
        "vendor": pick(h("vendor"), SUPPLIERS).0,
        "orderdate": time_value(ordered), "requireddate": time_value(needed),
        "totalcost": total, "currencycode": "AUD", "purchaseagent": "PLAN01",
        "changedate": time_value(changed.min(context.now - Duration::minutes(1))),
        "poline": lines,
    })
}

/// Status and times of a derived work order or request, from its age.
struct Timeline {
    status: &'static str,
    started: Option<DateTime<Utc>>,
    finished: Option<DateTime<Utc>>,
    changed: DateTime<Utc>,
}

impl Timeline {
    fn derive(context: &Context, identity: &str, reported: DateTime<Utc>, request: bool) -> Self {
        let h = |salt: &str| context.hash(identity, salt);
        let age = context.now - reported;
        let status = match (request, age > Duration::days(21)) {
            (false, true) => match below(h("status"), 20) {
                0..=16 => "CLOSE",
                17 | 18 => "COMP",
                _ => "CAN",
            },
            (false, false) => pick(h("status"), &["WAPPR", "APPR", "INPRG", "WMATL", "COMP"]),
            (true, true) => pick(
                h("status"),
                &["CLOSED", "CLOSED", "CLOSED", "RESOLVED", "CANCELLED"],
            ),
            (true, false) => pick(
                h("status"),
                &["NEW", "QUEUED", "INPROG", "PENDING", "RESOLVED"],
            ),
        };
        let work_started = !matches!(
            status,
            "WAPPR" | "APPR" | "CAN" | "NEW" | "QUEUED" | "CANCELLED"
        );
        let work_done = matches!(status, "COMP" | "CLOSE" | "RESOLVED" | "CLOSED");
        let latest = context.now - Duration::minutes(1);
        let span = age.num_minutes().max(1) as u64;
        let started = work_started.then(|| {
            (reported + Duration::minutes(below(h("start"), 48 * 60.min(span)) as i64)).min(latest)
        });
        let finished = started.filter(|_| work_done).map(|start| {
            (start + Duration::minutes(30 + below(h("dur"), 11 * 60) as i64)).min(latest)
        });
        let last = finished.or(started).unwrap_or(reported);
        let changed = (last + Duration::minutes(below(h("changed"), 72 * 60) as i64)).min(latest);
        Timeline {
            status,
            started,
            finished,
            changed,
        }
    }
}

/// The MaintNorm texts: every text a service request; four in ten also a work order.
fn load_texts(dir: &Path, context: &Context, records: &mut Records) -> Result<(), LoadError> {
    let rows = read_csv(&dir.join("maintnorm-mwo-text/maintnorm_texts.csv"))?;
    let mut assets: BTreeSet<(&str, String)> = BTreeSet::new();
    let mut wo_number = 0_u32;

    for (index, row) in rows.iter().enumerate() {
        let Some(text_id) = column(row, "text_id") else {
            continue;
        };
        let company = column(row, "source_company").unwrap_or("company_a");
        let site = COMPANY_SITES
            .iter()
            .find(|(c, ..)| *c == company)
            .map_or("MNA", |(_, s, _)| *s);
        let raw = column(row, "raw_text").unwrap_or("");
        let identity = format!("text/{text_id}");
        let h = |salt: &str| context.hash(&identity, salt);

        let asset = raw
            .split_whitespace()
            .next()
            .filter(|token| looks_like_asset(token));
        if let Some(asset) = asset {
            assets.insert((site, asset.to_owned()));
        }
        let seconds = below(h("reported"), TEXT_WINDOW_DAYS * 86_400).max(3600);
        let reported = context.now - Duration::seconds(seconds as i64);
        let ticketid = format!("SR{:05}", index + 1);
        let timeline = Timeline::derive(context, &identity, reported, true);
        records.push(
            "mxapisr",
            json!({
                "ticketid": ticketid, "class": "SR", "ticketuid": index + 1, "siteid": site,
                "orgid": ORG, "description": raw,
                "description_longdescription": column(row, "normalised_text"),
                "status": timeline.status, "statusdate": time_value(timeline.changed),
                "reportedpriority": 1 + below(h("priority"), 4),
                "internalpriority": 1 + below(h("ipriority"), 4),
                "reportedby": pick(h("by"), PEOPLE).0, "reportdate": time_value(reported),
                "affecteddate": time_value(
                    reported - Duration::minutes(below(h("affected"), 600) as i64)
                ),
                "assetnum": asset, "assetsiteid": asset.map(|_| site), "location": "PIT",
                "actualfinish": timeline.finished.map(time_value),
                "externalrecid": text_id,
                "changeby": pick(h("changeby"), TECHNICIANS),
                "changedate": time_value(timeline.changed),
            }),
        );

        if below(h("becomes_wo"), 10) >= 4 {
            continue;
        }
        wo_number += 1;
        let wonum = format!("MN{wo_number:05}");
        let wo_identity = format!("wo/{site}/{wonum}");
        let wo_reported = timeline
            .started
            .unwrap_or(reported + Duration::minutes(30))
            .min(context.now - Duration::minutes(2));
        let wo_timeline = Timeline::derive(context, &wo_identity, wo_reported, false);
        let wh = |salt: &str| context.hash(&wo_identity, salt);
        records.push(
            "mxapiwodetail",
            json!({
                "wonum": wonum, "siteid": site, "orgid": ORG, "workorderid": 100_000 + wo_number,
                "description": raw, "status": wo_timeline.status,
                "statusdate": time_value(wo_timeline.changed),
                "wopriority": 1 + below(wh("priority"), 5),
                "worktype": pick(wh("type"), &["CM", "CM", "CM", "EM", "PM"]),
                "assetnum": asset, "location": "PIT",
                "origrecordid": ticketid, "origrecordclass": "SR",
                "reportdate": time_value(wo_reported), "reportedby": pick(h("by"), PEOPLE).0,
                "actstart": wo_timeline.started.map(time_value),
                "actfinish": wo_timeline.finished.map(time_value),
                "estdur": 1 + below(wh("estdur"), 8), "lead": pick(wh("lead"), TECHNICIANS),
                "istask": false, "woclass": "WORKORDER",
                "changeby": pick(wh("changeby"), TECHNICIANS),
                "changedate": time_value(wo_timeline.changed),
            }),
        );
    }

    for (index, (site, assetnum)) in assets.iter().enumerate() {
        let identity = format!("asset/{site}/{assetnum}");
        records.push(
            "mxapiasset",
            json!({
                "assetnum": assetnum, "siteid": site, "orgid": ORG, "assetuid": 2_000_000 + index,
                "description": format!("Mobile equipment {assetnum}"), "assettype": "MOBILE",
                "status": "OPERATING", "location": "PIT", "isrunning": true,
                "priority": 1 + below(context.hash(&identity, "priority"), 5),
                "changedate": time_value(context.master_change(&identity, None)),
            }),
        );
    }
    Ok(())
}

/// Whether a text's first token is one of the (masked) equipment ids, like `PH639`.
fn looks_like_asset(token: &str) -> bool {
    let letters = token.chars().take_while(char::is_ascii_uppercase).count();
    let digits = token.len() - letters;
    (1..=4).contains(&letters)
        && (2..=5).contains(&digits)
        && token[letters..].chars().all(|c| c.is_ascii_digit())
}

/// AI4I 2020 rows as readings of five meters on each excavator, evenly spaced.
fn load_meter_readings(
    dir: &Path,
    context: &Context,
    records: &mut Records,
) -> Result<(), LoadError> {
    let rows = read_csv(&dir.join("ai4i2020/ai4i2020.csv"))?;
    let start = context.now - Duration::days(READING_WINDOW_DAYS);
    let spacing = Duration::days(READING_WINDOW_DAYS).num_milliseconds() / rows.len().max(1) as i64;
    let mut last: BTreeMap<(usize, usize), (f64, DateTime<Utc>)> = BTreeMap::new();
    let mut reading_id = 0_u64;

    for (index, row) in rows.iter().enumerate() {
        let excavator = index % EXCAVATORS.len();
        let read_at = start + Duration::milliseconds(spacing * (index as i64 + 1));
        let read_at = read_at.min(context.now - Duration::minutes(1));
        let identity = format!("ai4i/{index}");
        let inspector = pick(context.hash(&identity, "inspector"), TECHNICIANS);
        for (meter_index, (meter, source_column, _, _)) in METERS.iter().enumerate() {
            let Some(value) = column(row, source_column).and_then(|v| v.parse::<f64>().ok()) else {
                continue;
            };
            reading_id += 1;
            let entered =
                read_at + Duration::seconds(below(context.hash(&identity, meter), 300) as i64);
            let entered = entered.min(context.now - Duration::seconds(30));
            records.push(
                "mxapimeterreading",
                json!({
                    "meterreadingid": reading_id,
                    "assetnum": format!("EX-{}", EXCAVATORS[excavator]),
                    "siteid": MINE, "orgid": ORG, "metername": meter, "reading": value,
                    "readingdate": time_value(read_at), "enterdate": time_value(entered),
                    "enterby": inspector, "inspector": inspector, "readingsource": "AI4I",
                    "remarks": format!(
                        "UDI {} product {}",
                        column(row, "UDI").unwrap_or("?"),
                        column(row, "Product ID").unwrap_or("?")
                    ),
                }),
            );
            last.insert((excavator, meter_index), (value, read_at));
        }
    }

    for (excavator_index, excavator) in EXCAVATORS.iter().enumerate() {
        for (meter_index, (meter, _, unit, meter_type)) in METERS.iter().enumerate() {
            let latest = last.get(&(excavator_index, meter_index));
            let identity = format!("meter/{excavator}/{meter}");
            records.push(
                "mxapiassetmeter",
                json!({
                    "assetnum": format!("EX-{excavator}"), "siteid": MINE, "orgid": ORG,
                    "metername": meter, "assetmeterid": excavator_index * 10 + meter_index + 1,
                    "metertype": meter_type, "measureunitid": unit, "active": true,
                    "lastreading": latest.map(|(value, _)| *value),
                    "lastreadingdate": latest.map(|(_, at)| time_value(*at)),
                    "changedate": time_value(latest.map_or_else(
                        || context.master_change(&identity, None),
                        |(_, at)| *at
                    )),
                }),
            );
        }
    }
    Ok(())
}
