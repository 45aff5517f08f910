//! The per-connection mapping of TrackWise Digital's object and field API names.
//!
//! TrackWise Digital is a managed package on the Salesforce platform. Its custom objects and
//! fields carry the package's namespace, differ between package releases, and installations
//! add their own; none of it is publicly documented. So every name the connector reads is
//! configuration: [`Mapping::default`] is a sensible guess in the package's naming style, and
//! the connection's `mapping` credential field (a JSON object) overrides any part of it.

use std::collections::BTreeMap;

use millrace_connector::ConnectorError;
use serde::{Deserialize, Serialize};

/// The package namespace the default names carry.
pub const NAMESPACE: &str = "CMPL123QMS__";

/// Which objects and fields of an installation hold sites and quality records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mapping {
    /// The object that holds the sites (plants) quality records belong to.
    pub site: SiteObject,
    /// The objects whose records become `quality-events`, read one after another.
    pub quality_events: Vec<QualityObject>,
    /// Remote status values mapped to the normalised `status` of a quality event (`open`,
    /// `in_progress`, `closed`, `cancelled`); matched without regard to case. Values not
    /// listed leave `status` null and keep `remote_status`.
    pub statuses: BTreeMap<String, String>,
}

/// The site object and its fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SiteObject {
    pub object: String,
    pub name: String,
    pub description: Option<String>,
    /// A checkbox field; a site with it unchecked is `inactive`.
    pub active: Option<String>,
    pub address: Option<String>,
    pub time_zone: Option<String>,
}

/// One object whose records are quality events of one kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualityObject {
    /// `deviation`, `nonconformance`, `capa`, `complaint`, `change_control` or `audit`.
    pub event_type: String,
    pub object: String,
    #[serde(default)]
    pub fields: QualityFields,
    /// More fields to read into `custom_fields`, by API name.
    #[serde(default)]
    pub extra_fields: Vec<String>,
}

/// The fields of a quality object, by API name; `None` leaves the unified field null. A
/// mapping that names `fields` names every field it wants; one that leaves `fields` out gets
/// the defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualityFields {
    pub number: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub status: Option<String>,
    pub severity: Option<String>,
    /// A lookup to the site object.
    pub site: Option<String>,
    pub opened_at: Option<String>,
    pub due_at: Option<String>,
    pub closed_at: Option<String>,
}

/// The six kinds of quality record and the default object of each.
pub const EVENT_TYPES: [(&str, &str); 6] = [
    ("deviation", "Deviation__c"),
    ("nonconformance", "Nonconformance__c"),
    ("capa", "CAPA__c"),
    ("complaint", "Complaint__c"),
    ("change_control", "Change_Control__c"),
    ("audit", "Audit__c"),
];

impl Default for SiteObject {
    fn default() -> Self {
        let field = |name: &str| Some(format!("{NAMESPACE}{name}"));
        SiteObject {
            object: format!("{NAMESPACE}Quality_Site__c"),
            name: "Name".to_owned(),
            description: field("Description__c"),
            active: field("Active__c"),
            address: field("Address__c"),
            time_zone: field("Time_Zone__c"),
        }
    }
}

impl Default for QualityFields {
    fn default() -> Self {
        let field = |name: &str| Some(format!("{NAMESPACE}{name}"));
        QualityFields {
            number: Some("Name".to_owned()),
            title: field("Short_Description__c"),
            description: field("Description__c"),
            status: field("Status__c"),
            severity: field("Severity__c"),
            site: field("Site__c"),
            opened_at: field("Date_Opened__c"),
            due_at: field("Due_Date__c"),
            closed_at: field("Date_Closed__c"),
        }
    }
}

impl Default for Mapping {
    fn default() -> Self {
        let quality_events = EVENT_TYPES
            .iter()
            .map(|(event_type, object)| QualityObject {
                event_type: (*event_type).to_owned(),
                object: format!("{NAMESPACE}{object}"),
                fields: QualityFields::default(),
                extra_fields: Vec::new(),
            })
            .collect();
        let statuses = [
            ("draft", "open"),
            ("new", "open"),
            ("open", "open"),
            ("opened", "open"),
            ("in progress", "in_progress"),
            ("under investigation", "in_progress"),
            ("investigation", "in_progress"),
            ("pending approval", "in_progress"),
            ("implementation", "in_progress"),
            ("effectiveness check", "in_progress"),
            ("closed", "closed"),
            ("closed - done", "closed"),
            ("completed", "closed"),
            ("cancelled", "cancelled"),
            ("canceled", "cancelled"),
            ("voided", "cancelled"),
        ]
        .into_iter()
        .map(|(remote, unified)| (remote.to_owned(), unified.to_owned()))
        .collect();
        Mapping {
            site: SiteObject::default(),
            quality_events,
            statuses,
        }
    }
}

impl Mapping {
    /// Reads the `mapping` credential field: absent means the defaults; a JSON object (or a
    /// string holding one) overrides the parts it names.
    pub fn from_credential(value: Option<&serde_json::Value>) -> Result<Mapping, ConnectorError> {
        let parsed = match value {
            None | Some(serde_json::Value::Null) => return Ok(Mapping::default()),
            Some(serde_json::Value::String(text)) if text.trim().is_empty() => {
                return Ok(Mapping::default())
            }
            Some(serde_json::Value::String(text)) => serde_json::from_str::<Mapping>(text),
            Some(other) => serde_json::from_value::<Mapping>(other.clone()),
        };
        let mapping = parsed.map_err(|err| {
            ConnectorError::InvalidCredentials(format!("the field `mapping` is not valid: {err}"))
        })?;
        mapping.validate()?;
        Ok(mapping)
    }

    /// Checks that every name can go into a SOQL statement and every kind is known.
    fn validate(&self) -> Result<(), ConnectorError> {
        let invalid = |what: String| ConnectorError::InvalidCredentials(what);
        // The connect-time check sends one composite batch, which holds 25 subrequests: the
        // site object and up to 24 quality objects.
        if self.quality_events.len() > 24 {
            return Err(invalid(
                "the field `mapping` names more than 24 quality_events objects".to_owned(),
            ));
        }
        if self.quality_events.is_empty() {
            return Err(invalid(
                "the field `mapping` names no quality_events objects".to_owned(),
            ));
        }
        let mut names = vec![&self.site.object, &self.site.name];
        names.extend(
            [
                &self.site.description,
                &self.site.active,
                &self.site.address,
                &self.site.time_zone,
            ]
            .into_iter()
            .flatten(),
        );
        for quality in &self.quality_events {
            if !EVENT_TYPES
                .iter()
                .any(|(kind, _)| *kind == quality.event_type)
            {
                return Err(invalid(format!(
                    "the mapping names an unknown event_type `{}`; known: {}",
                    quality.event_type,
                    EVENT_TYPES.map(|(kind, _)| kind).join(", ")
                )));
            }
            names.push(&quality.object);
            names.extend(quality.fields.all().into_iter().flatten());
            names.extend(quality.extra_fields.iter());
        }
        for unified in self.statuses.values() {
            if !["open", "in_progress", "closed", "cancelled"].contains(&unified.as_str()) {
                return Err(invalid(format!(
                    "the mapping maps a status to `{unified}`; use open, in_progress, closed or \
                     cancelled"
                )));
            }
        }
        match names.into_iter().find(|name| !is_api_name(name)) {
            Some(bad) => Err(invalid(format!(
                "`{bad}` in the mapping is not a Salesforce API name"
            ))),
            None => Ok(()),
        }
    }

    /// Returns the normalised status of a remote status value.
    pub fn status_of(&self, remote: &str) -> Option<String> {
        let wanted = remote.trim().to_lowercase();
        self.statuses
            .iter()
            .find(|(known, _)| known.to_lowercase() == wanted)
            .map(|(_, unified)| unified.clone())
    }
}

impl QualityFields {
    /// Every configured field, in a fixed order.
    pub fn all(&self) -> [&Option<String>; 9] {
        [
            &self.number,
            &self.title,
            &self.description,
            &self.status,
            &self.severity,
            &self.site,
            &self.opened_at,
            &self.due_at,
            &self.closed_at,
        ]
    }
}

/// Returns whether `name` is a Salesforce API name (letters, digits, underscores, starting
/// with a letter), which also makes it safe to put into a SOQL statement unquoted.
pub fn is_api_name(name: &str) -> bool {
    let mut chars = name.chars();
    let starts_with_letter = chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic());
    starts_with_letter && name.len() <= 80 && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_absent_mapping_gives_the_defaults_and_a_partial_one_overrides() {
        assert_eq!(Mapping::from_credential(None).unwrap(), Mapping::default());
        let partial = json!({"quality_events": [
            {"event_type": "deviation", "object": "TW__Deviation__c",
             "fields": {"title": "TW__Title__c"}}
        ]});
        let mapping = Mapping::from_credential(Some(&partial)).unwrap();
        assert_eq!(mapping.quality_events.len(), 1);
        assert_eq!(
            mapping.quality_events[0].fields.title.as_deref(),
            Some("TW__Title__c")
        );
        assert_eq!(mapping.quality_events[0].fields.status, None);
        assert_eq!(mapping.site, SiteObject::default());
        let as_text = Mapping::from_credential(Some(&json!(partial.to_string()))).unwrap();
        assert_eq!(as_text, mapping);
    }

    #[test]
    fn names_that_could_change_a_query_are_refused() {
        let injected = json!({"site": {"object": "Site__c WHERE Id != null"}});
        let err = Mapping::from_credential(Some(&injected)).unwrap_err();
        assert!(
            err.to_string().contains("not a Salesforce API name"),
            "{err}"
        );
        let unknown_kind = json!({"quality_events": [{"event_type": "recall", "object": "R__c"}]});
        let err = Mapping::from_credential(Some(&unknown_kind)).unwrap_err();
        assert!(err.to_string().contains("unknown event_type"), "{err}");
        let not_json = json!("{not json");
        assert!(Mapping::from_credential(Some(&not_json)).is_err());
    }

    #[test]
    fn statuses_match_without_case() {
        let mapping = Mapping::default();
        assert_eq!(
            mapping.status_of("Under Investigation").as_deref(),
            Some("in_progress")
        );
        assert_eq!(mapping.status_of("CLOSED").as_deref(), Some("closed"));
        assert_eq!(mapping.status_of("Awaiting QA"), None);
    }
}
