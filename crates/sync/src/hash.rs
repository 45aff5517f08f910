//! Content hashes: what makes two reads of one record "the same".

use millrace_connector::SourceRecord;
use sha2::{Digest, Sha256};

/// Returns the hash of everything in a record that counts as a change.
///
/// The raw `remote_data` is left out: what the model and `custom_fields` carry is what clients
/// see, and volatile transport details (links, row versions) would otherwise turn every re-read
/// of an unchanged record into a change. JSON maps serialise with sorted keys, so the hash does
/// not depend on the order the source sent its fields in.
pub fn content_hash(record: &SourceRecord) -> String {
    let mut hasher = Sha256::new();
    let times = [
        record.remote_created_at,
        record.remote_updated_at,
        record.remote_deleted_at,
    ];
    for time in times {
        let micros = time.map(|time| time.timestamp_micros());
        hasher.update(format!("{micros:?}\u{1f}").as_bytes());
    }
    hasher.update(serde_json::to_vec(&record.fields).unwrap_or_default());
    hasher.update(b"\x1f");
    hasher.update(serde_json::to_vec(&record.custom_fields).unwrap_or_default());
    hex::encode(&hasher.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(fields: serde_json::Value, raw: serde_json::Value) -> SourceRecord {
        SourceRecord {
            remote_id: "1".into(),
            remote_created_at: None,
            remote_updated_at: None,
            remote_deleted_at: None,
            fields: fields.as_object().unwrap().clone(),
            custom_fields: Default::default(),
            remote_data: raw,
        }
    }

    #[test]
    fn hash_ignores_raw_data_and_key_order_but_sees_field_changes() {
        let a = record(json!({"a": 1, "b": "x"}), json!({"_rowstamp": "1"}));
        let b = record(json!({"b": "x", "a": 1}), json!({"_rowstamp": "2"}));
        let c = record(json!({"a": 2, "b": "x"}), json!({"_rowstamp": "1"}));
        assert_eq!(content_hash(&a), content_hash(&b));
        assert_ne!(content_hash(&a), content_hash(&c));
    }

    #[test]
    fn hash_sees_a_deletion() {
        let live = record(json!({"a": 1}), json!({}));
        let mut deleted = live.clone();
        deleted.remote_deleted_at = Some(chrono::Utc::now());
        assert_ne!(content_hash(&live), content_hash(&deleted));
    }
}
