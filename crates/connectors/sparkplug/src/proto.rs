//! The Sparkplug B payload: the protobuf messages of `sparkplug_b.proto` that Millrace reads,
//! declared by hand with `prost` (no `protoc` at build time), and their metric values.
//!
//! Only the fields Millrace uses are declared. Protobuf skips undeclared fields when decoding,
//! so data sets, templates, property sets and extensions pass through a decode unharmed and
//! show up as a metric without a value ([`MetricValue::Unsupported`]).

use prost::Message as _;

/// A Sparkplug B payload, as every `NBIRTH`, `NDATA`, `DBIRTH`, ... carries it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Payload {
    /// When the message was sent, in milliseconds since the Unix epoch.
    #[prost(uint64, optional, tag = "1")]
    pub timestamp: Option<u64>,
    #[prost(message, repeated, tag = "2")]
    pub metrics: Vec<Metric>,
    /// The message's sequence number (0 to 255, wrapping); absent on `NDEATH`.
    #[prost(uint64, optional, tag = "3")]
    pub seq: Option<u64>,
    #[prost(string, optional, tag = "4")]
    pub uuid: Option<String>,
    #[prost(bytes = "vec", optional, tag = "5")]
    pub body: Option<Vec<u8>>,
}

/// One metric of a payload: a name (in births) or an alias, a type and a value.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Metric {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(uint64, optional, tag = "2")]
    pub alias: Option<u64>,
    /// When the value was sampled, in milliseconds since the Unix epoch.
    #[prost(uint64, optional, tag = "3")]
    pub timestamp: Option<u64>,
    #[prost(uint32, optional, tag = "4")]
    pub datatype: Option<u32>,
    #[prost(bool, optional, tag = "5")]
    pub is_historical: Option<bool>,
    #[prost(bool, optional, tag = "6")]
    pub is_transient: Option<bool>,
    #[prost(bool, optional, tag = "7")]
    pub is_null: Option<bool>,
    #[prost(oneof = "Value", tags = "10, 11, 12, 13, 14, 15, 16")]
    pub value: Option<Value>,
}

/// The scalar value fields of a metric.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Value {
    #[prost(uint32, tag = "10")]
    Int(u32),
    #[prost(uint64, tag = "11")]
    Long(u64),
    #[prost(float, tag = "12")]
    Float(f32),
    #[prost(double, tag = "13")]
    Double(f64),
    #[prost(bool, tag = "14")]
    Boolean(bool),
    #[prost(string, tag = "15")]
    String(String),
    #[prost(bytes = "vec", tag = "16")]
    Bytes(Vec<u8>),
}

/// Sparkplug B data type codes (the `DataType` enumeration of the specification).
pub mod datatype {
    pub const INT8: u32 = 1;
    pub const INT16: u32 = 2;
    pub const INT32: u32 = 3;
    pub const INT64: u32 = 4;
    pub const UINT8: u32 = 5;
    pub const UINT16: u32 = 6;
    pub const UINT32: u32 = 7;
    pub const UINT64: u32 = 8;
    pub const FLOAT: u32 = 9;
    pub const DOUBLE: u32 = 10;
    pub const BOOLEAN: u32 = 11;
    pub const STRING: u32 = 12;
    pub const DATETIME: u32 = 13;
    pub const TEXT: u32 = 14;
    pub const UUID: u32 = 15;

    /// Returns the specification's name of a data type code, for people.
    pub fn name(code: u32) -> &'static str {
        match code {
            INT8 => "Int8",
            INT16 => "Int16",
            INT32 => "Int32",
            INT64 => "Int64",
            UINT8 => "UInt8",
            UINT16 => "UInt16",
            UINT32 => "UInt32",
            UINT64 => "UInt64",
            FLOAT => "Float",
            DOUBLE => "Double",
            BOOLEAN => "Boolean",
            STRING => "String",
            DATETIME => "DateTime",
            TEXT => "Text",
            UUID => "UUID",
            16 => "DataSet",
            17 => "Bytes",
            18 => "File",
            19 => "Template",
            20 => "PropertySet",
            21 => "PropertySetList",
            22..=34 => "Array",
            _ => "Unknown",
        }
    }
}

/// A metric's value, read according to its data type.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricValue {
    /// A number: integers of every width, floats, doubles, and date-times (milliseconds).
    Number(f64),
    Boolean(bool),
    Text(String),
    /// The metric says its value is null.
    Null,
    /// A type Millrace does not read (bytes, arrays, data sets, templates); named for people.
    Unsupported(&'static str),
}

/// Decodes a payload, with an error a person can act on when the bytes are not one.
pub fn decode(bytes: &[u8]) -> Result<Payload, String> {
    Payload::decode(bytes).map_err(|err| format!("not a Sparkplug B payload: {err}"))
}

/// Encodes a payload.
pub fn encode(payload: &Payload) -> Vec<u8> {
    payload.encode_to_vec()
}

impl Metric {
    /// Reads the value according to `datatype` (the metric's own, or the one its birth
    /// declared when a data message leaves it out).
    ///
    /// Signed integers travel as unsigned two's complement, some publishers in the type's own
    /// width and some sign-extended to 32 or 64 bits; taking the type's low bits reads both.
    pub fn value_as(&self, datatype: u32) -> Result<MetricValue, String> {
        if self.is_null == Some(true) {
            return Ok(MetricValue::Null);
        }
        let Some(value) = &self.value else {
            return match datatype {
                16..=34 => Ok(MetricValue::Unsupported(datatype::name(datatype))),
                _ => Ok(MetricValue::Null),
            };
        };
        let number = |n: f64| Ok(MetricValue::Number(n));
        match (datatype, value) {
            (datatype::INT8, Value::Int(raw)) => number(f64::from(*raw as u8 as i8)),
            (datatype::INT16, Value::Int(raw)) => number(f64::from(*raw as u16 as i16)),
            (datatype::INT32, Value::Int(raw)) => number(f64::from(*raw as i32)),
            (datatype::INT64, Value::Long(raw)) => number(*raw as i64 as f64),
            (datatype::UINT8 | datatype::UINT16 | datatype::UINT32, Value::Int(raw)) => {
                number(f64::from(*raw))
            }
            (datatype::UINT32 | datatype::UINT64 | datatype::DATETIME, Value::Long(raw)) => {
                number(*raw as f64)
            }
            (datatype::FLOAT, Value::Float(raw)) => number(f64::from(*raw)),
            (datatype::DOUBLE, Value::Double(raw)) => number(*raw),
            (datatype::BOOLEAN, Value::Boolean(raw)) => Ok(MetricValue::Boolean(*raw)),
            (datatype::STRING | datatype::TEXT | datatype::UUID, Value::String(raw)) => {
                Ok(MetricValue::Text(raw.clone()))
            }
            (17..=34, Value::Bytes(_)) => Ok(MetricValue::Unsupported(datatype::name(datatype))),
            (other, value) => Err(format!(
                "a {} metric carries a {} value",
                datatype::name(other),
                value_field_name(value)
            )),
        }
    }
}

fn value_field_name(value: &Value) -> &'static str {
    match value {
        Value::Int(_) => "int_value",
        Value::Long(_) => "long_value",
        Value::Float(_) => "float_value",
        Value::Double(_) => "double_value",
        Value::Boolean(_) => "boolean_value",
        Value::String(_) => "string_value",
        Value::Bytes(_) => "bytes_value",
    }
}

/// Returns the `NCMD` payload that asks an edge node to publish its births again.
pub fn rebirth_request(now_ms: u64) -> Payload {
    Payload {
        timestamp: Some(now_ms),
        metrics: vec![Metric {
            name: Some(REBIRTH_METRIC.to_owned()),
            timestamp: Some(now_ms),
            datatype: Some(datatype::BOOLEAN),
            value: Some(Value::Boolean(true)),
            ..Metric::default()
        }],
        ..Payload::default()
    }
}

/// The metric an `NCMD` sets to ask for a rebirth.
pub const REBIRTH_METRIC: &str = "Node Control/Rebirth";

/// The metric that ties an `NBIRTH` to the `NDEATH` registered as its will.
pub const BD_SEQ_METRIC: &str = "bdSeq";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_round_trips_and_reads_signed_values_in_both_encodings() {
        let payload = Payload {
            timestamp: Some(1_700_000_000_000),
            seq: Some(7),
            metrics: vec![
                Metric {
                    name: Some("a".into()),
                    datatype: Some(datatype::INT8),
                    value: Some(Value::Int(0xff)),
                    ..Metric::default()
                },
                Metric {
                    alias: Some(3),
                    value: Some(Value::Int(0xffff_ffff)),
                    ..Metric::default()
                },
            ],
            ..Payload::default()
        };
        let decoded = decode(&encode(&payload)).unwrap();
        assert_eq!(decoded, payload);
        let in_width = decoded.metrics[0].value_as(datatype::INT8).unwrap();
        let extended = decoded.metrics[1].value_as(datatype::INT8).unwrap();
        assert_eq!(in_width, MetricValue::Number(-1.0));
        assert_eq!(extended, MetricValue::Number(-1.0));
        assert_eq!(
            decoded.metrics[1].value_as(datatype::INT32).unwrap(),
            MetricValue::Number(-1.0)
        );
        assert_eq!(
            decoded.metrics[1].value_as(datatype::UINT32).unwrap(),
            MetricValue::Number(4_294_967_295.0)
        );
    }

    #[test]
    fn garbage_is_an_error_and_a_mismatched_value_names_both_sides() {
        assert!(decode(&[0xff, 0xff, 0xff])
            .unwrap_err()
            .contains("not a Sparkplug B"));
        let metric = Metric {
            value: Some(Value::String("x".into())),
            ..Metric::default()
        };
        let err = metric.value_as(datatype::DOUBLE).unwrap_err();
        assert_eq!(err, "a Double metric carries a string_value value");
        let null = Metric {
            is_null: Some(true),
            ..Metric::default()
        };
        assert_eq!(null.value_as(datatype::DOUBLE).unwrap(), MetricValue::Null);
    }
}
