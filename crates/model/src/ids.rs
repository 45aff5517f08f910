//! Millrace's record ids: derived from the connection, the object type and the remote id.
//!
//! Because the id is a pure function of those three, a connector can name the Millrace id of a
//! record it references before that record has been synced, and a re-read never mints a new id.

use uuid::Uuid;

use crate::ObjectType;

/// Namespace of the version 5 UUIDs used as record ids.
const RECORD_NAMESPACE: Uuid = Uuid::from_u128(0x6d69_6c6c_7261_6365_7265_636f_7264_7331);

/// Returns the stable Millrace id of a record.
pub fn record_id(connection_id: &str, object: ObjectType, remote_id: &str) -> String {
    let name = format!("{connection_id}\u{1f}{}\u{1f}{remote_id}", object.slug());
    Uuid::new_v5(&RECORD_NAMESPACE, name.as_bytes()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_ids_are_stable_and_scoped_by_connection_and_object() {
        let a = record_id("c1", ObjectType::Assets, "100");
        assert_eq!(a, record_id("c1", ObjectType::Assets, "100"));
        assert_ne!(a, record_id("c2", ObjectType::Assets, "100"));
        assert_ne!(a, record_id("c1", ObjectType::Locations, "100"));
    }
}
