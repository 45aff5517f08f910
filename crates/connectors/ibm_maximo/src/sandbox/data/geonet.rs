//! The GeoNet equipment register as sites (networks), locations (stations and their
//! sensor positions), assets (every serial-numbered unit) and companies (the makes).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{code, column, read_csv, register_time, Context, LoadError, Records};
use crate::sandbox::derive::{below, time_value};

const ORG: &str = "GEONET";
/// Site of the units whose installs name no station (GNSS marks, camera mounts, places).
pub const DEPOT_SITE: &str = "GNS";
const ASSET_KINDS: &[&str] = &[
    "sensors",
    "recorders",
    "dataloggers",
    "receivers",
    "antennas",
    "cameras",
    "doases",
    "metsensors",
    "radomes",
];

struct Station {
    network: String,
}

struct Install {
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    station: Option<String>,
    location: Option<String>,
}

pub fn load(dir: &Path, context: &Context, records: &mut Records) -> Result<(), LoadError> {
    let root = dir.join("geonet-equipment-register");
    let stations = load_sites_and_locations(&root, context, records)?;
    let companies = load_assets(&root, context, &stations, records)?;

    for (index, (make, company)) in companies.iter().enumerate() {
        let identity = format!("company/{company}");
        let hash = context.hash(&identity, "company");
        records.push(
            "mxapivendor",
            json!({
                "company": company,
                "orgid": ORG,
                "companiesid": 100 + index,
                "name": make,
                "type": "M",
                "disabled": false,
                "currencycode": "NZD",
                "homepage": format!("https://www.{}.example", company.to_lowercase()),
                "phone": format!("+64 4 {:03} {:04}", below(hash, 1000), below(hash >> 12, 10_000)),
                "changeby": "MAXADMIN",
                "changedate": time_value(context.master_change(&identity, None)),
            }),
        );
    }
    Ok(())
}

fn load_sites_and_locations(
    root: &Path,
    context: &Context,
    records: &mut Records,
) -> Result<BTreeMap<String, Station>, LoadError> {
    let networks = read_csv(&root.join("network/networks.csv"))?;
    let station_rows = read_csv(&root.join("network/stations.csv"))?;
    let position_rows = read_csv(&root.join("network/sites.csv"))?;

    let mut site_ids = BTreeSet::new();
    for (index, row) in networks.iter().enumerate() {
        let Some(network) = column(row, "Network") else {
            continue;
        };
        site_ids.insert(network.to_owned());
        let restricted = column(row, "Restricted") == Some("true");
        records.push(
            "mxapisite",
            json!({
                "siteid": network,
                "orgid": ORG,
                "siteuid": index + 1,
                "description": column(row, "Description"),
                "active": true,
                "restricted": restricted,
                "changeby": "MAXADMIN",
                "changedate": time_value(context.master_change(&format!("site/{network}"), None)),
            }),
        );
    }
    records.push(
        "mxapisite",
        json!({
            "siteid": DEPOT_SITE,
            "orgid": ORG,
            "siteuid": 900,
            "description": "GeoNet field equipment depot",
            "active": true,
            "changeby": "MAXADMIN",
            "changedate": time_value(context.master_change("site/GNS", None)),
        }),
    );
    records.push(
        "mxapilocations",
        location(
            context,
            DEPOT_SITE,
            "DEPOT",
            "Equipment depot",
            "STOREROOM",
            None,
            None,
        ),
    );

    let mut stations = BTreeMap::new();
    for row in &station_rows {
        let (Some(station), Some(network)) = (column(row, "Station"), column(row, "Network"))
        else {
            continue;
        };
        if !site_ids.contains(network) {
            // A network that networks.csv does not list: serve it as a site all the same.
            site_ids.insert(network.to_owned());
            records.push(
                "mxapisite",
                json!({
                    "siteid": network, "orgid": ORG, "siteuid": 800 + site_ids.len(),
                    "description": format!("Network {network}"), "active": true,
                    "changedate": time_value(
                        context.master_change(&format!("site/{network}"), None)
                    ),
                }),
            );
        }
        let ended = register_time(column(row, "End Date"));
        let known = ended.or_else(|| register_time(column(row, "Start Date")));
        let mut record = location(
            context,
            network,
            station,
            column(row, "Name").unwrap_or(station),
            "OPERATING",
            None,
            known,
        );
        record["status"] = json!(if ended.is_some() {
            "DECOMMISSIONED"
        } else {
            "OPERATING"
        });
        record["latitudey"] = coordinate(column(row, "Latitude"));
        record["longitudex"] = coordinate(column(row, "Longitude"));
        record["elevation"] = coordinate(column(row, "Elevation"));
        records.push("mxapilocations", record);
        stations.insert(
            station.to_owned(),
            Station {
                network: network.to_owned(),
            },
        );
    }

    for row in &position_rows {
        let (Some(station), Some(position)) = (column(row, "Station"), column(row, "Location"))
        else {
            continue;
        };
        let Some(parent) = stations.get(station) else {
            continue;
        };
        let ended = register_time(column(row, "End Date"));
        let known = ended.or_else(|| register_time(column(row, "Start Date")));
        let description = format!("{station} position {position}");
        let mut record = location(
            context,
            &parent.network,
            &format!("{station}.{position}"),
            &description,
            "OPERATING",
            Some(station),
            known,
        );
        record["status"] = json!(if ended.is_some() {
            "DECOMMISSIONED"
        } else {
            "OPERATING"
        });
        record["latitudey"] = coordinate(column(row, "Latitude"));
        record["longitudex"] = coordinate(column(row, "Longitude"));
        records.push("mxapilocations", record);
    }
    Ok(stations)
}

/// Builds a location record; the mining sites use it too.
pub fn location(
    context: &Context,
    site: &str,
    code: &str,
    description: &str,
    location_type: &str,
    parent: Option<&str>,
    known_change: Option<DateTime<Utc>>,
) -> serde_json::Value {
    let identity = format!("location/{site}/{code}");
    json!({
        "location": code,
        "siteid": site,
        "locationsid": below(context.hash(&identity, "id"), 90_000_000) + 10_000_000,
        "description": description,
        "type": location_type,
        "status": "OPERATING",
        "parent": parent,
        "changeby": "MAXADMIN",
        "changedate": time_value(context.master_change(&identity, known_change)),
    })
}

fn coordinate(text: Option<&str>) -> serde_json::Value {
    text.and_then(|text| text.parse::<f64>().ok())
        .map_or(serde_json::Value::Null, |n| json!(n))
}

/// Loads every asset file; returns the companies (make → company code) it met.
fn load_assets(
    root: &Path,
    context: &Context,
    stations: &BTreeMap<String, Station>,
    records: &mut Records,
) -> Result<BTreeMap<String, String>, LoadError> {
    let mut companies: BTreeMap<String, String> = BTreeMap::new();
    let mut used_codes = HashSet::new();
    let mut generated = 0_u32;
    let mut used_numbers = HashSet::new();

    for kind in ASSET_KINDS {
        let installs = load_installs(&root.join("install").join(format!("{kind}.csv")))?;
        let singular = kind.trim_end_matches('s');
        for row in read_csv(&root.join("assets").join(format!("{kind}.csv")))? {
            let (Some(make), Some(model), Some(serial)) = (
                column(&row, "Make"),
                column(&row, "Model"),
                column(&row, "Serial"),
            ) else {
                continue;
            };
            let company = companies
                .entry(make.to_owned())
                .or_insert_with(|| unique_code(make, &mut used_codes))
                .clone();

            let number = column(&row, "Number").filter(|n| used_numbers.insert(n.to_string()));
            let assetnum = match number {
                Some(number) => number.to_owned(),
                None => {
                    generated += 1;
                    format!("GN{generated:06}")
                }
            };

            let history = installs.get(&(model.to_owned(), serial.to_owned()));
            let latest = history.and_then(|history| history.iter().max_by_key(|i| i.start));
            let installed_now = latest.is_some_and(|install| install.end.is_none());
            let station = latest.and_then(|install| install.station.as_deref());
            let placed = station.and_then(|code| stations.get(code).map(|s| (code, s)));
            let (site, location) = match placed {
                Some((code, station)) => {
                    let position = latest.and_then(|install| install.location.as_deref());
                    let location = match position {
                        Some(position) => format!("{code}.{position}"),
                        None => code.to_owned(),
                    };
                    (station.network.clone(), location)
                }
                None => (super::geonet::DEPOT_SITE.to_owned(), "DEPOT".to_owned()),
            };

            let notes = column(&row, "Notes");
            let retired = notes.is_some_and(|notes| {
                let notes = notes.to_lowercase();
                ["broken", "destroyed", "obsolete", "lost", "stolen"]
                    .iter()
                    .any(|w| notes.contains(w))
            });
            let status = match (retired, installed_now) {
                (true, _) => "DECOMMISSIONED",
                (false, true) => "OPERATING",
                (false, false) => "NOT READY",
            };
            let last_move = latest.and_then(|install| install.end.or(install.start));
            let identity = format!("asset/{kind}/{make}/{model}/{serial}");
            records.push(
                "mxapiasset",
                json!({
                    "assetnum": assetnum,
                    "siteid": site,
                    "orgid": ORG,
                    "assetuid": 1_000_000 + records.count("mxapiasset"),
                    "assettag": column(&row, "Number"),
                    "description": format!("{model} {singular}"),
                    "description_longdescription": notes,
                    "assettype": singular.to_uppercase(),
                    "manufacturer": company,
                    "vendor": company,
                    "serialnum": serial,
                    "status": status,
                    "location": location,
                    "isrunning": installed_now,
                    "installdate": latest.and_then(|install| install.start).map(time_value),
                    "installcount": history.map_or(0, Vec::len),
                    "priority": 1 + below(context.hash(&identity, "priority"), 5),
                    "changeby": "MAXADMIN",
                    "changedate": time_value(context.master_change(&identity, last_move)),
                }),
            );
        }
    }
    Ok(companies)
}

fn unique_code(make: &str, used: &mut HashSet<String>) -> String {
    let base = code(make, 12);
    let mut candidate = base.clone();
    let mut suffix = 2;
    while !used.insert(candidate.clone()) {
        candidate = format!("{}{suffix}", &base[..base.len().min(10)]);
        suffix += 1;
    }
    candidate
}

/// Reads an install file into the install history per (model, serial).
fn load_installs(path: &Path) -> Result<BTreeMap<(String, String), Vec<Install>>, LoadError> {
    let mut installs: BTreeMap<(String, String), Vec<Install>> = BTreeMap::new();
    for row in read_csv(path)? {
        let model = column(&row, "Model").or_else(|| column(&row, "Datalogger"));
        let (Some(model), Some(serial)) = (model, column(&row, "Serial")) else {
            continue;
        };
        installs
            .entry((model.to_owned(), serial.to_owned()))
            .or_default()
            .push(Install {
                start: register_time(column(&row, "Start Date")),
                end: register_time(column(&row, "End Date")),
                station: column(&row, "Station").map(str::to_owned),
                location: column(&row, "Location").map(str::to_owned),
            });
    }
    Ok(installs)
}
