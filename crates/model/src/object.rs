//! The object types of the unified model and what the sync engine needs to know about them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Whether an object type is master data (read whole) or transactional (read over a lookback).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    Master,
    Transactional,
}

macro_rules! object_types {
    ($($variant:ident => $slug:literal, $kind:ident;)*) => {
        /// One object type of the unified model, named in URLs by its plural kebab-case slug.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum ObjectType {
            $(#[serde(rename = $slug)] $variant,)*
        }

        impl ObjectType {
            /// Every object type, in the order the catalogue and the sync engine use.
            pub const ALL: &'static [ObjectType] = &[$(ObjectType::$variant,)*];

            /// Returns the slug used in paths and JSON, e.g. `work-orders`.
            pub fn slug(self) -> &'static str {
                match self { $(ObjectType::$variant => $slug,)* }
            }

            /// Returns whether the initial sync reads this type whole or over the lookback.
            pub fn kind(self) -> ObjectKind {
                match self { $(ObjectType::$variant => ObjectKind::$kind,)* }
            }
        }

        impl FromStr for ObjectType {
            type Err = UnknownObject;

            fn from_str(slug: &str) -> Result<Self, Self::Err> {
                match slug {
                    $($slug => Ok(ObjectType::$variant),)*
                    _ => Err(UnknownObject(slug.to_owned())),
                }
            }
        }
    };
}

object_types! {
    Sites => "sites", Master;
    Locations => "locations", Master;
    Assets => "assets", Master;
    Parts => "parts", Master;
    Vendors => "vendors", Master;
    Users => "users", Master;
    Meters => "meters", Master;
    PreventiveMaintenance => "preventive-maintenance", Master;
    Documents => "documents", Master;
    WorkOrders => "work-orders", Transactional;
    WorkRequests => "work-requests", Transactional;
    PurchaseOrders => "purchase-orders", Transactional;
    MeterReadings => "meter-readings", Transactional;
    AssetDowntimes => "asset-downtimes", Transactional;
    ProductionOrders => "production-orders", Transactional;
    QualityEvents => "quality-events", Transactional;
}

impl fmt::Display for ObjectType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.slug())
    }
}

/// A slug that names no object type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownObject(pub String);

impl fmt::Display for UnknownObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown object type `{}`", self.0)
    }
}

impl std::error::Error for UnknownObject {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_round_trip_through_from_str_and_serde() {
        for object in ObjectType::ALL {
            assert_eq!(object.slug().parse::<ObjectType>(), Ok(*object));
            let json = serde_json::to_string(object).unwrap();
            assert_eq!(json, format!("\"{}\"", object.slug()));
        }
        assert!("workorders".parse::<ObjectType>().is_err());
    }
}
