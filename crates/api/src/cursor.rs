//! Opaque list cursors: a position in one stream's change order, signed so it cannot be forged.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use millrace_model::ObjectType;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Where a client stands in a stream: after change `seq` of data epoch `epoch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    #[serde(rename = "c")]
    pub connection_id: String,
    #[serde(rename = "o")]
    pub object: ObjectType,
    #[serde(rename = "s")]
    pub seq: i64,
    #[serde(rename = "e")]
    pub epoch: i64,
}

/// Why a cursor was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    #[error("the cursor is malformed or was not issued by this server")]
    Forged,
    #[error("the cursor belongs to another connection or object type")]
    Elsewhere,
    #[error("the cursor is stale: the connection's data was deleted since it was issued")]
    Stale,
}

/// Encodes and checks cursors with a server-side HMAC key.
pub struct CursorCodec {
    key: Vec<u8>,
}

impl CursorCodec {
    /// Builds a codec from the server's cursor key.
    pub fn new(key: &[u8]) -> Self {
        CursorCodec { key: key.to_vec() }
    }

    /// Returns the opaque cursor for `position`.
    pub fn encode(&self, position: &Position) -> String {
        let payload = serde_json::to_vec(position).expect("a position always serialises");
        let tag = self.tag(&payload);
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// Checks a cursor's signature and that it points into the expected stream and epoch.
    pub fn decode(
        &self,
        cursor: &str,
        connection_id: &str,
        object: ObjectType,
        epoch: i64,
    ) -> Result<Position, CursorError> {
        let (payload, tag) = cursor.split_once('.').ok_or(CursorError::Forged)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| CursorError::Forged)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| CursorError::Forged)?;
        let mut mac = self.mac();
        mac.update(&payload);
        mac.verify_truncated_left(&tag)
            .map_err(|_| CursorError::Forged)?;
        if tag.len() < 16 {
            return Err(CursorError::Forged);
        }

        let position: Position =
            serde_json::from_slice(&payload).map_err(|_| CursorError::Forged)?;
        if position.connection_id != connection_id || position.object != object {
            return Err(CursorError::Elsewhere);
        }
        if position.epoch != epoch {
            return Err(CursorError::Stale);
        }
        Ok(position)
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes keys of any length")
    }

    fn tag(&self, payload: &[u8]) -> Vec<u8> {
        let mut mac = self.mac();
        mac.update(payload);
        mac.finalize().into_bytes()[..16].to_vec()
    }
}

/// Webhook deliveries carry cursors signed like those of list answers, so a `records.changed`
/// event's cursor is one `GET /v1/{object}?cursor=` takes.
impl millrace_webhooks::CursorSigner for CursorCodec {
    fn cursor(&self, connection_id: &str, position: &millrace_store::CursorPosition) -> String {
        self.encode(&Position {
            connection_id: connection_id.to_owned(),
            object: position.object,
            seq: position.after_seq,
            epoch: position.epoch,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position(seq: i64) -> Position {
        Position {
            connection_id: "c1".into(),
            object: ObjectType::WorkOrders,
            seq,
            epoch: 0,
        }
    }

    #[test]
    fn cursors_round_trip() {
        let codec = CursorCodec::new(b"key");
        for seq in [0, 1, 99, i64::MAX] {
            let cursor = codec.encode(&position(seq));
            assert_eq!(
                codec.decode(&cursor, "c1", ObjectType::WorkOrders, 0),
                Ok(position(seq))
            );
        }
    }

    #[test]
    fn forged_foreign_and_stale_cursors_are_refused() {
        let codec = CursorCodec::new(b"key");
        let cursor = codec.encode(&position(5));

        let other_key = CursorCodec::new(b"other").encode(&position(5));
        assert_eq!(
            codec.decode(&other_key, "c1", ObjectType::WorkOrders, 0),
            Err(CursorError::Forged)
        );

        let (payload, tag) = cursor.split_once('.').unwrap();
        let mut json = URL_SAFE_NO_PAD.decode(payload).unwrap();
        let last = json.len() - 2;
        json[last] = b'9';
        let tampered = format!("{}.{tag}", URL_SAFE_NO_PAD.encode(json));
        assert_eq!(
            codec.decode(&tampered, "c1", ObjectType::WorkOrders, 0),
            Err(CursorError::Forged)
        );

        for junk in ["", ".", "abc", "a.b", "%%%.###"] {
            assert_eq!(
                codec.decode(junk, "c1", ObjectType::WorkOrders, 0),
                Err(CursorError::Forged)
            );
        }
        assert_eq!(
            codec.decode(&cursor, "c2", ObjectType::WorkOrders, 0),
            Err(CursorError::Elsewhere)
        );
        assert_eq!(
            codec.decode(&cursor, "c1", ObjectType::Assets, 0),
            Err(CursorError::Elsewhere)
        );
        assert_eq!(
            codec.decode(&cursor, "c1", ObjectType::WorkOrders, 1),
            Err(CursorError::Stale)
        );
    }
}
