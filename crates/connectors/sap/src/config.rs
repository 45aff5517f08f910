//! A connection's settings: where the system is, how to log on, which OData version it speaks,
//! and which service and entity set serves each object type (the standard APIs by default,
//! overridable for ECC Gateway services and custom ones).

use std::collections::HashMap;

use chrono_tz::Tz;
use millrace_connector::{ConnectorError, Credentials};
use millrace_model::ObjectType;
use serde_json::Value;

use crate::odata::Version;

/// How requests authenticate.
#[derive(Clone)]
pub enum Auth {
    /// HTTP Basic with a communication user.
    Basic { user: String, password: String },
    /// OAuth 2.0 client credentials; the token goes out as a bearer token.
    ClientCredentials {
        token_url: String,
        client_id: String,
        client_secret: String,
        scope: Option<String>,
    },
}

/// Where one object type is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The service root's path below the base URL, without a trailing slash.
    pub service: String,
    pub entity_set: String,
}

/// How an object type is read, beyond its endpoint.
#[derive(Debug, Clone, Copy)]
pub struct ObjectSpec {
    pub object: ObjectType,
    /// The service's technical name, as in `/sap/opu/odata/sap/<NAME>`.
    pub service: &'static str,
    /// The V4 service root below `/sap/opu/odata4/sap/`, as S/4HANA publishes it.
    pub v4_service: &'static str,
    pub entity_set: &'static str,
    /// Key properties; the remote id is their values joined by `/`.
    pub keys: &'static [&'static str],
    /// Properties that must equal a date for the current row of time-dependent data.
    pub current_row: Option<(&'static str, (i32, u32, u32))>,
    /// The change time property; `None` reads the whole set every time.
    pub change_field: Option<&'static str>,
    /// A to-many navigation property read with `$expand`.
    pub expand: Option<&'static str>,
    /// The properties read with `$select`.
    pub select: &'static [&'static str],
}

/// The object types this connector reads and the standard API behind each.
pub const OBJECTS: [ObjectSpec; 9] = [
    ObjectSpec {
        object: ObjectType::Sites,
        service: "API_PLANT_SRV",
        v4_service: "api_plant/srvd_a2x/sap/plant/0001",
        entity_set: "A_Plant",
        keys: &["Plant"],
        current_row: None,
        change_field: None,
        expand: None,
        select: &["Plant", "PlantName", "CityName", "Country"],
    },
    ObjectSpec {
        object: ObjectType::Locations,
        service: "API_FUNCTIONALLOCATION",
        v4_service: "api_functionallocation/srvd_a2x/sap/functionallocation/0001",
        entity_set: "FunctionalLocation",
        keys: &["FunctionalLocation"],
        current_row: None,
        change_field: Some("LastChangeDateTime"),
        expand: None,
        select: &[
            "FunctionalLocation",
            "FunctionalLocationName",
            "FunctionalLocationCategory",
            "SuperiorFunctionalLocation",
            "MaintenancePlanningPlant",
            "FuncnlLocIsMarkedForDeletion",
            "FuncnlLocIsDeactivated",
            "CreationDate",
            "LastChangeDateTime",
        ],
    },
    ObjectSpec {
        object: ObjectType::Assets,
        service: "API_EQUIPMENT",
        v4_service: "api_equipment/srvd_a2x/sap/equipment/0001",
        entity_set: "Equipment",
        keys: &["Equipment"],
        // Equipment is time-dependent: the row valid today ends on 9999-12-31.
        current_row: Some(("ValidityEndDate", (9999, 12, 31))),
        change_field: Some("LastChangeDateTime"),
        expand: None,
        select: &[
            "Equipment",
            "ValidityEndDate",
            "EquipmentName",
            "EquipmentCategory",
            "TechnicalObjectType",
            "AssetManufacturerName",
            "ManufacturerPartTypeName",
            "SerialNumber",
            "MaintenancePlanningPlant",
            "FunctionalLocation",
            "SuperordinateEquipment",
            "ABCIndicator",
            "OperationStartDate",
            "EquipmentIsMarkedForDeletion",
            "EquipmentIsInactive",
            "CreationDate",
            "LastChangeDateTime",
        ],
    },
    ObjectSpec {
        object: ObjectType::WorkRequests,
        service: "API_MAINTNOTIFICATION",
        v4_service: "api_maintnotification/srvd_a2x/sap/maintenancenotification/0001",
        entity_set: "MaintenanceNotification",
        keys: &["MaintenanceNotification"],
        current_row: None,
        change_field: Some("LastChangeDateTime"),
        expand: None,
        select: &[
            "MaintenanceNotification",
            "NotificationText",
            "NotificationType",
            "MaintPriority",
            "NotifProcessingPhase",
            "Equipment",
            "FunctionalLocation",
            "MaintenancePlanningPlant",
            "MaintenanceOrder",
            "ReportedByUser",
            "NotificationCreationDate",
            "NotificationCreationTime",
            "IsDeleted",
            "LastChangeDateTime",
        ],
    },
    ObjectSpec {
        object: ObjectType::WorkOrders,
        service: "API_MAINTENANCEORDER",
        v4_service: "api_maintenanceorder/srvd_a2x/sap/maintenanceorder/0001",
        entity_set: "MaintenanceOrder",
        keys: &["MaintenanceOrder"],
        current_row: None,
        change_field: Some("LastChangeDateTime"),
        expand: Some("to_MaintenanceOrderOperation"),
        select: &[
            "MaintenanceOrder",
            "MaintenanceOrderType",
            "MaintenanceOrderDesc",
            "MaintPriority",
            "MaintenanceActivityType",
            "MaintOrdProcessPhaseCode",
            "Equipment",
            "FunctionalLocation",
            "MaintenanceNotification",
            "MainWorkCenter",
            "MaintenancePlanningPlant",
            "MaintOrdBasicStartDate",
            "MaintOrdBasicStartTime",
            "MaintOrdBasicEndDate",
            "MaintOrdBasicEndTime",
            "MaintOrdBasicStartDateTime",
            "EstimatedTotalCost",
            "ActualTotalCost",
            "Currency",
            "MaintOrderIsMarkedForDeletion",
            "CreationDate",
            "LastChangeDateTime",
        ],
    },
    ObjectSpec {
        object: ObjectType::Vendors,
        service: "API_BUSINESS_PARTNER",
        v4_service: "api_business_partner/srvd_a2x/sap/businesspartner/0001",
        entity_set: "A_Supplier",
        keys: &["Supplier"],
        current_row: None,
        change_field: None,
        expand: None,
        select: &[
            "Supplier",
            "SupplierName",
            "SupplierFullName",
            "Country",
            "CityName",
            "PurchasingIsBlocked",
            "DeletionIndicator",
            "CreationDate",
        ],
    },
    ObjectSpec {
        object: ObjectType::PurchaseOrders,
        service: "API_PURCHASEORDER_PROCESS_SRV",
        v4_service: "api_purchaseorder_2/srvd_a2x/sap/purchaseorder/0001",
        entity_set: "A_PurchaseOrder",
        keys: &["PurchaseOrder"],
        current_row: None,
        change_field: Some("LastChangeDateTime"),
        expand: Some("to_PurchaseOrderItem"),
        select: &[
            "PurchaseOrder",
            "PurchaseOrderType",
            "CompanyCode",
            "Supplier",
            "DocumentCurrency",
            "PurchaseOrderDate",
            "PurchasingProcessingStatus",
            "PurchasingDocumentDeletionCode",
            "CreationDate",
            "LastChangeDateTime",
        ],
    },
    // Measuring points carry a change date but no change time: the set is read whole.
    ObjectSpec {
        object: ObjectType::Meters,
        service: "API_MEASURINGPOINT",
        v4_service: "api_measuringpoint/srvd_a2x/sap/measuringpoint/0001",
        entity_set: "MeasuringPoint",
        keys: &["MeasuringPoint"],
        current_row: None,
        change_field: None,
        expand: None,
        select: &[
            "MeasuringPoint",
            "MeasuringPointDescription",
            "MeasuringPointCategory",
            "MeasuringPointIsCounter",
            "MeasurementRangeUnit",
            "Equipment",
            "FunctionalLocation",
            "MeasuringPointPositionNumber",
            "MeasuringPointIsInactive",
            "MultiLevelDeletionLogicStatus",
            "CreationDate",
            "LastChangeDate",
        ],
    },
    // Measurement documents are not changed once posted, only reversed, and carry no change
    // time: the set is read whole.
    ObjectSpec {
        object: ObjectType::MeterReadings,
        service: "API_MEASUREMENTDOCUMENT",
        v4_service: "api_measurementdocument/srvd_a2x/sap/measurementdocument/0001",
        entity_set: "MeasurementDocument",
        keys: &["MeasurementDocument"],
        current_row: None,
        change_field: None,
        expand: None,
        select: &[
            "MeasurementDocument",
            "MeasuringPoint",
            "MsmtRdngDate",
            "MsmtRdngTime",
            "MeasurementReadingInEntryUoM",
            "MeasurementReadingEntryUoM",
            "MeasurementCounterReading",
            "MsmtValuationCode",
            "MeasurementDocumentText",
            "MsmtRdngByUser",
            "MsmtRdngIsReversed",
        ],
    },
];

/// Returns how `object` is read, when this connector reads it.
pub fn spec(object: ObjectType) -> Option<&'static ObjectSpec> {
    OBJECTS.iter().find(|spec| spec.object == object)
}

/// A connection's settings, read from its credentials.
#[derive(Clone)]
pub struct Settings {
    /// Scheme, host and port, without a trailing slash.
    pub base_url: String,
    pub version: Version,
    /// The `sap-client` sent with every request, when set.
    pub sap_client: Option<String>,
    pub auth: Auth,
    /// The zone of the plant-local date and time fields (basic start and end, notification
    /// creation) when no UTC time stamp is given beside them.
    pub time_zone: Tz,
    /// Whether `$select` is sent; custom services without the standard properties turn it off.
    pub select: bool,
    endpoints: HashMap<ObjectType, Endpoint>,
}

impl Settings {
    /// Reads and validates a connection's credentials, without contacting the system.
    pub fn from_credentials(credentials: &Credentials) -> Result<Settings, ConnectorError> {
        let invalid = |text: String| ConnectorError::InvalidCredentials(text);
        let base_url = credentials
            .require("base_url")?
            .trim_end_matches('/')
            .to_owned();
        check_url("base_url", &base_url)?;

        let version = match credentials.get("odata_version") {
            None => Version::V2,
            Some(text) => Version::parse(text).ok_or_else(|| {
                invalid(format!(
                    "`odata_version` must be `v2` or `v4`, not `{text}`"
                ))
            })?,
        };

        let sap_client = credentials.get("sap_client").map(str::to_owned);
        if let Some(client) = &sap_client {
            if client.len() != 3 || !client.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid(format!(
                    "`sap_client` must be three digits, e.g. 100, not `{client}`"
                )));
            }
        }

        let auth = match (credentials.get("username"), credentials.get("client_id")) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "give either `username` and `password` (Basic) or `client_id` and \
                     `client_secret` (OAuth 2.0), not both"
                        .to_owned(),
                ))
            }
            (Some(user), None) => Auth::Basic {
                user: user.to_owned(),
                password: credentials.require("password")?.to_owned(),
            },
            (None, Some(client_id)) => {
                let token_url = credentials.require("token_url")?.to_owned();
                check_url("token_url", &token_url)?;
                Auth::ClientCredentials {
                    token_url,
                    client_id: client_id.to_owned(),
                    client_secret: credentials.require("client_secret")?.to_owned(),
                    scope: credentials.get("scope").map(str::to_owned),
                }
            }
            (None, None) => {
                return Err(invalid(
                    "the credential fields `username` and `password`, or `client_id`, \
                     `client_secret` and `token_url`, are required"
                        .to_owned(),
                ))
            }
        };

        let time_zone = match credentials.get("time_zone") {
            None => Tz::UTC,
            Some(name) => name
                .parse()
                .map_err(|_| invalid(format!("`time_zone` `{name}` is not an IANA time zone")))?,
        };

        let select = match credentials.fields().get("select") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(select)) => *select,
            // Forms send text.
            Some(Value::String(text)) if text.trim().eq_ignore_ascii_case("true") => true,
            Some(Value::String(text)) if text.trim().eq_ignore_ascii_case("false") => false,
            Some(other) => {
                return Err(invalid(format!(
                    "`select` must be true or false, not {other}"
                )))
            }
        };

        let mut endpoints: HashMap<ObjectType, Endpoint> = OBJECTS
            .iter()
            .map(|spec| (spec.object, default_endpoint(spec, version)))
            .collect();
        apply_overrides(&mut endpoints, credentials.fields().get("services"))?;

        Ok(Settings {
            base_url,
            version,
            sap_client,
            auth,
            time_zone,
            select,
            endpoints,
        })
    }

    /// Returns where `object` is read from.
    pub fn endpoint(&self, object: ObjectType) -> Option<&Endpoint> {
        self.endpoints.get(&object)
    }

    /// Returns the URL of `object`'s entity set.
    pub fn entity_set_url(&self, object: ObjectType) -> Option<String> {
        let endpoint = self.endpoint(object)?;
        Some(format!(
            "{}{}/{}",
            self.base_url, endpoint.service, endpoint.entity_set
        ))
    }
}

fn default_endpoint(spec: &ObjectSpec, version: Version) -> Endpoint {
    let service = match version {
        Version::V2 => format!("/sap/opu/odata/sap/{}", spec.service),
        Version::V4 => format!("/sap/opu/odata4/sap/{}", spec.v4_service),
    };
    Endpoint {
        service,
        entity_set: spec.entity_set.to_owned(),
    }
}

/// Applies the `services` credential: a JSON object (or its text) keyed by object slug, each
/// value either a service path or `{"service": ..., "entity_set": ...}`. A service given as a
/// bare name (no `/`) is read as a V2 Gateway service name under `/sap/opu/odata/sap/`.
fn apply_overrides(
    endpoints: &mut HashMap<ObjectType, Endpoint>,
    overrides: Option<&Value>,
) -> Result<(), ConnectorError> {
    let invalid = |text: String| ConnectorError::InvalidCredentials(text);
    let parsed;
    let overrides = match overrides {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::String(text)) if text.trim().is_empty() => return Ok(()),
        Some(Value::String(text)) => {
            parsed = serde_json::from_str::<Value>(text)
                .map_err(|err| invalid(format!("`services` is not JSON: {err}")))?;
            &parsed
        }
        Some(value) => value,
    };
    let Some(overrides) = overrides.as_object() else {
        return Err(invalid(
            "`services` must be a JSON object keyed by object type".to_owned(),
        ));
    };
    for (slug, value) in overrides {
        let object = OBJECTS
            .iter()
            .map(|spec| spec.object)
            .find(|object| object.slug() == slug)
            .ok_or_else(|| {
                let known: Vec<&str> = OBJECTS.iter().map(|spec| spec.object.slug()).collect();
                invalid(format!(
                    "`services` names `{slug}`, which this connector does not read (it reads {})",
                    known.join(", ")
                ))
            })?;
        let endpoint = endpoints
            .get_mut(&object)
            .expect("every object has a default");
        let (service, entity_set) = match value {
            Value::String(service) => (Some(service.as_str()), None),
            Value::Object(fields) => (
                fields.get("service").and_then(Value::as_str),
                fields.get("entity_set").and_then(Value::as_str),
            ),
            other => {
                return Err(invalid(format!(
                    "`services.{slug}` must be a service path or {{\"service\", \"entity_set\"}}, not {other}"
                )))
            }
        };
        if let Some(service) = service.map(str::trim).filter(|s| !s.is_empty()) {
            let service = service.trim_end_matches('/');
            endpoint.service = if service.contains('/') {
                format!("/{}", service.trim_start_matches('/'))
            } else {
                format!("/sap/opu/odata/sap/{service}")
            };
        }
        if let Some(entity_set) = entity_set.map(str::trim).filter(|s| !s.is_empty()) {
            endpoint.entity_set = entity_set.to_owned();
        }
    }
    Ok(())
}

fn check_url(name: &str, value: &str) -> Result<(), ConnectorError> {
    let parsed = url::Url::parse(value).map_err(|err| {
        ConnectorError::InvalidCredentials(format!("`{name}` is not a URL: {err}"))
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ConnectorError::InvalidCredentials(format!(
            "`{name}` must be an http or https URL"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(fields: Value) -> Result<Settings, ConnectorError> {
        Settings::from_credentials(&Credentials::new(fields.as_object().unwrap().clone()))
    }

    #[test]
    fn standard_services_are_the_defaults_per_version() {
        let v2 = settings(
            json!({"base_url": "https://s4.example/", "username": "COMM",
                                 "password": "x"}),
        )
        .unwrap();
        assert_eq!(
            v2.entity_set_url(ObjectType::WorkOrders).unwrap(),
            "https://s4.example/sap/opu/odata/sap/API_MAINTENANCEORDER/MaintenanceOrder"
        );
        let v4 = settings(json!({"base_url": "https://s4.example", "username": "COMM",
                                 "password": "x", "odata_version": "v4"}))
        .unwrap();
        assert_eq!(
            v4.endpoint(ObjectType::Assets).unwrap().service,
            "/sap/opu/odata4/sap/api_equipment/srvd_a2x/sap/equipment/0001"
        );
    }

    #[test]
    fn services_are_overridden_per_object() {
        let settings = settings(
            json!({"base_url": "https://ecc.example", "username": "COMM",
            "password": "x", "services": {
                "work-orders": "ZPM_ORDERS_SRV",
                "assets": {"service": "/odata/v4/equipment/", "entity_set": "Equipments"}}}),
        )
        .unwrap();
        assert_eq!(
            settings.entity_set_url(ObjectType::WorkOrders).unwrap(),
            "https://ecc.example/sap/opu/odata/sap/ZPM_ORDERS_SRV/MaintenanceOrder"
        );
        assert_eq!(
            settings.entity_set_url(ObjectType::Assets).unwrap(),
            "https://ecc.example/odata/v4/equipment/Equipments"
        );
    }

    #[test]
    fn bad_settings_say_what_is_wrong() {
        let base = json!({"base_url": "https://s4.example", "username": "COMM", "password": "x"});
        let with = |extra: Value| {
            let mut fields = base.clone();
            fields
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            settings(fields).err().unwrap().to_string()
        };
        assert!(with(json!({"sap_client": "10"})).contains("three digits"));
        assert!(with(json!({"odata_version": "3"})).contains("`v2` or `v4`"));
        assert!(with(json!({"services": {"parts": "X"}})).contains("does not read"));
        assert!(with(json!({"services": "{not json"})).contains("not JSON"));
        assert!(with(json!({"client_id": "a"})).contains("not both"));
        assert!(with(json!({"time_zone": "Mars/Olympus"})).contains("IANA"));
        assert!(with(json!({"select": "maybe"})).contains("true or false"));
        let missing = settings(json!({"base_url": "https://s4.example"}))
            .err()
            .unwrap();
        assert!(missing.to_string().contains("username"), "{missing}");
        let oauth = settings(json!({"base_url": "https://s4.example", "client_id": "a",
                                    "client_secret": "b"}))
        .err()
        .unwrap();
        assert!(oauth.to_string().contains("token_url"), "{oauth}");
    }
}
