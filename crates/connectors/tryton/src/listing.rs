//! Reading Tryton models page by page in change order, with a keyset on
//! `(last_modified_at, id)`.
//!
//! Tryton leaves `write_date` empty until a record's first change, so a record's change time is
//! `coalesce(write_date, create_date)`, which Tryton itself offers as the searchable, sortable
//! `last_modified_at`. A listing from `since` asks for
//! `['OR', ('last_modified_at', '>=', since), ('last_modified_at', '=', None)]` ordered by
//! `last_modified_at ASC NULLS FIRST, id ASC`: records without any stamp come first on every
//! read (the engine's hashes absorb them), then the others oldest first. The continuation is
//! the last record's `(change time, id)`, never an offset, so records that change while the
//! listing runs move behind it instead of shifting it, and many records sharing one stamp (all
//! records created in one Tryton transaction do) are all read however the pages fall.

use chrono::{DateTime, SecondsFormat, Utc};
use millrace_connector::{ConnectorError, Credentials, IdPage, Page, PageRequest, Source};
use millrace_model::ObjectType;
use serde_json::{json, Value};

use crate::client::TrytonClient;
use crate::encoding;
use crate::mapping::{self, Related, WarehouseStock, CHANGE_FIELDS};

/// Most ids asked for per `search` when listing ids for reconciliation.
const ID_PAGE: u32 = 1000;

/// One connection's source: a JSON-RPC client and the connection's reading options.
pub struct TrytonSource {
    client: TrytonClient,
    /// When set, vendors are the parties of this party category only.
    vendor_category: Option<String>,
}

impl TrytonSource {
    /// Builds a source from a connection's credentials, without contacting the server.
    pub fn open(credentials: &Credentials) -> Result<Self, ConnectorError> {
        Ok(TrytonSource {
            client: TrytonClient::open(credentials)?,
            vendor_category: credentials.get("vendor_category").map(str::to_owned),
        })
    }

    /// The domain that selects `object`'s records among its model's, before any time filter.
    fn scope(&self, object: ObjectType) -> Vec<Value> {
        match object {
            ObjectType::Locations => vec![json!([
                "type",
                "in",
                ["warehouse", "storage", "production", "view"]
            ])],
            ObjectType::Parts => vec![json!(["type", "in", ["goods", "assets"]])],
            ObjectType::Vendors => match &self.vendor_category {
                Some(category) => vec![json!(["categories.name", "=", category])],
                None => Vec::new(),
            },
            ObjectType::WorkOrders => vec![json!(["type", "=", "task"])],
            // Archived records are read too: an archived lot, location or product is a
            // change, not a deletion.
            _ => Vec::new(),
        }
    }

    /// Archived records are part of the listing; Tryton hides them unless asked.
    fn with_archived(domain: Vec<Value>) -> Vec<Value> {
        let mut domain = domain;
        domain.push(json!(["OR", ["active", "=", true], ["active", "=", false]]));
        domain
    }

    async fn related(
        &self,
        object: ObjectType,
        records: &[Value],
    ) -> Result<Related, ConnectorError> {
        let ids: Vec<i64> = records
            .iter()
            .filter_map(|record| record["id"].as_i64())
            .collect();
        let mut related = Related::default();
        if ids.is_empty() {
            return Ok(related);
        }
        match object {
            ObjectType::PurchaseOrders => {
                let lines = self
                    .client
                    .call(
                        "model.purchase.line.search_read",
                        vec![
                            json!([["purchase", "in", ids]]),
                            json!(0),
                            Value::Null,
                            json!([["purchase", "ASC"], ["sequence", "ASC"], ["id", "ASC"]]),
                            json!([
                                "purchase",
                                "sequence",
                                "type",
                                "product",
                                "product.rec_name",
                                "description",
                                "quantity",
                                "actual_quantity",
                                "unit.symbol",
                                "unit_price",
                                "amount"
                            ]),
                        ],
                    )
                    .await?;
                for line in as_records(lines, "purchase.line")? {
                    if line["type"].as_str().is_some_and(|kind| kind != "line") {
                        continue;
                    }
                    if let Some(purchase) = line["purchase"].as_i64() {
                        related
                            .purchase_lines
                            .entry(purchase)
                            .or_default()
                            .push(line);
                    }
                }
            }
            ObjectType::Parts => {
                let warehouses = self
                    .client
                    .call(
                        "model.stock.location.search_read",
                        vec![
                            json!([["type", "=", "warehouse"]]),
                            json!(0),
                            Value::Null,
                            json!([["id", "ASC"]]),
                            json!(["code"]),
                        ],
                    )
                    .await?;
                for warehouse in as_records(warehouses, "stock.location")? {
                    let Some(warehouse_id) = warehouse["id"].as_i64() else {
                        continue;
                    };
                    // Quantities are computed per the context's locations, children included.
                    let quantities = self
                        .client
                        .call_in(
                            "model.product.product.search_read",
                            vec![
                                json!([["id", "in", ids]]),
                                json!(0),
                                Value::Null,
                                Value::Null,
                                json!(["quantity", "forecast_quantity"]),
                            ],
                            json!({"locations": [warehouse_id], "with_childs": true}),
                        )
                        .await?;
                    let mut stock = WarehouseStock {
                        warehouse_id,
                        warehouse_code: warehouse["code"].as_str().map(str::to_owned),
                        ..WarehouseStock::default()
                    };
                    for product in as_records(quantities, "product.product")? {
                        if let Some(id) = product["id"].as_i64() {
                            stock.quantities.insert(
                                id,
                                (
                                    encoding::read_number(&product["quantity"]),
                                    encoding::read_number(&product["forecast_quantity"]),
                                ),
                            );
                        }
                    }
                    related.stock.push(stock);
                }
            }
            _ => {}
        }
        Ok(related)
    }
}

/// Where a listing stands: the last record delivered, by change time (none for a record
/// without stamps) and id.
#[derive(Debug, Clone, PartialEq)]
struct Position {
    changed: Option<DateTime<Utc>>,
    id: i64,
}

impl Position {
    /// Encodes the position as a continuation: `<RFC 3339 time or ->@<id>`.
    fn encode(&self) -> String {
        let changed = self.changed.map_or_else(
            || "-".to_owned(),
            |changed| changed.to_rfc3339_opts(SecondsFormat::Micros, true),
        );
        format!("{changed}@{}", self.id)
    }

    fn decode(text: &str) -> Result<Position, ConnectorError> {
        let invalid = || ConnectorError::Malformed(format!("`{text}` is not a Tryton position"));
        let (changed, id) = text.rsplit_once('@').ok_or_else(invalid)?;
        let id = id.parse().map_err(|_| invalid())?;
        let changed = match changed {
            "-" => None,
            changed => Some(
                DateTime::parse_from_rfc3339(changed)
                    .map_err(|_| invalid())?
                    .with_timezone(&Utc),
            ),
        };
        Ok(Position { changed, id })
    }

    /// The domain of the records after this position in `last_modified_at, id` order, nulls
    /// first.
    fn after(&self) -> Value {
        match self.changed {
            None => json!([
                "OR",
                [["last_modified_at", "=", null], ["id", ">", self.id]],
                ["last_modified_at", "!=", null]
            ]),
            Some(changed) => {
                let changed = encoding::datetime(changed);
                json!([
                    "OR",
                    ["last_modified_at", ">", changed],
                    [["last_modified_at", "=", changed], ["id", ">", self.id]]
                ])
            }
        }
    }
}

#[async_trait::async_trait]
impl Source for TrytonSource {
    async fn check(&self) -> Result<(), ConnectorError> {
        self.client.ensure_session().await
    }

    async fn read_page(&self, request: &PageRequest) -> Result<Page, ConnectorError> {
        let spec = mapping::spec(request.object)
            .ok_or_else(|| ConnectorError::Unsupported(request.object.to_string()))?;
        let mut domain = self.scope(request.object);
        if let Some(since) = request.since {
            domain.push(json!([
                "OR",
                ["last_modified_at", ">=", encoding::datetime(since)],
                ["last_modified_at", "=", null]
            ]));
        }
        if let Some(page) = &request.page {
            domain.push(Position::decode(page)?.after());
        }
        if has_active(request.object) {
            domain = Self::with_archived(domain);
        }
        let mut fields: Vec<&str> = spec.fields.to_vec();
        fields.extend(CHANGE_FIELDS);
        let limit = request.page_size.max(1);
        let answer = self
            .client
            .call(
                &format!("model.{}.search_read", spec.model),
                vec![
                    json!(domain),
                    json!(0),
                    json!(limit),
                    json!([["last_modified_at", "ASC NULLS FIRST"], ["id", "ASC"]]),
                    json!(fields),
                ],
            )
            .await?;
        let raws = as_records(answer, spec.model)?;
        let next_page = match raws.last() {
            Some(last) if raws.len() as u32 >= limit => {
                let id = last["id"].as_i64().ok_or_else(|| {
                    ConnectorError::Malformed(format!("a {} record has no integer id", spec.model))
                })?;
                Some(
                    Position {
                        changed: mapping::change_time(last),
                        id,
                    }
                    .encode(),
                )
            }
            _ => None,
        };
        let related = self.related(request.object, &raws).await?;

        let mut page = Page {
            next_page,
            ordered_by_change: true,
            ..Page::default()
        };
        for raw in raws {
            match mapping::record(request.object, &request.connection_id, raw, &related) {
                Ok(record) => page.records.push(record),
                Err(rejected) => page.rejected.push(rejected),
            }
        }
        Ok(page)
    }

    async fn list_ids(
        &self,
        object: ObjectType,
        page: Option<&str>,
    ) -> Result<IdPage, ConnectorError> {
        let spec =
            mapping::spec(object).ok_or_else(|| ConnectorError::Unsupported(object.to_string()))?;
        let mut domain = self.scope(object);
        if let Some(page) = page {
            let after: i64 = page
                .parse()
                .map_err(|_| ConnectorError::Malformed(format!("`{page}` is not an id")))?;
            domain.push(json!(["id", ">", after]));
        }
        if has_active(object) {
            domain = Self::with_archived(domain);
        }
        let answer = self
            .client
            .call(
                &format!("model.{}.search", spec.model),
                vec![
                    json!(domain),
                    json!(0),
                    json!(ID_PAGE),
                    json!([["id", "ASC"]]),
                ],
            )
            .await?;
        let ids: Vec<i64> = answer
            .as_array()
            .ok_or_else(|| {
                ConnectorError::Malformed(format!("{} search answered {answer}", spec.model))
            })?
            .iter()
            .map(|id| {
                id.as_i64().ok_or_else(|| {
                    ConnectorError::Malformed(format!("{} search listed {id}", spec.model))
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(IdPage {
            next_page: (ids.len() as u32 >= ID_PAGE)
                .then(|| ids.last().map(i64::to_string))
                .flatten(),
            remote_ids: ids.iter().map(i64::to_string).collect(),
        })
    }
}

/// Whether `object`'s model has Tryton's `active` flag (archiving).
fn has_active(object: ObjectType) -> bool {
    matches!(
        object,
        ObjectType::Locations | ObjectType::Assets | ObjectType::Parts | ObjectType::Vendors
    )
}

fn as_records(answer: Value, model: &str) -> Result<Vec<Value>, ConnectorError> {
    match answer {
        Value::Array(records) => Ok(records),
        other => Err(ConnectorError::Malformed(format!(
            "{model} search_read answered {other}, not a list of records"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_with_microseconds_and_without_a_time() {
        let changed = DateTime::parse_from_rfc3339("2026-12-04T16:26:52.560723Z")
            .unwrap()
            .with_timezone(&Utc);
        for position in [
            Position {
                changed: Some(changed),
                id: 42,
            },
            Position {
                changed: None,
                id: 7,
            },
        ] {
            assert_eq!(Position::decode(&position.encode()).unwrap(), position);
        }
        assert_eq!(
            Position {
                changed: Some(changed),
                id: 42
            }
            .encode(),
            "2026-12-04T16:26:52.560723Z@42"
        );
        assert!(Position::decode("yesterday@1").is_err());
        assert!(Position::decode("-@x").is_err());
        assert!(Position::decode("42").is_err());
    }

    #[test]
    fn the_domain_after_a_position_breaks_ties_by_id() {
        let changed = DateTime::parse_from_rfc3339("2026-01-02T03:04:05.000006Z")
            .unwrap()
            .with_timezone(&Utc);
        let after = Position {
            changed: Some(changed),
            id: 9,
        }
        .after();
        assert_eq!(after[0], "OR");
        assert_eq!(after[1][1], ">");
        assert_eq!(after[2][0][1], "=");
        assert_eq!(after[2][0][2]["microsecond"], 6);
        assert_eq!(after[2][1], json!(["id", ">", 9]));

        let after_unstamped = Position {
            changed: None,
            id: 3,
        }
        .after();
        assert_eq!(
            after_unstamped[1][0],
            json!(["last_modified_at", "=", null])
        );
        assert_eq!(after_unstamped[2], json!(["last_modified_at", "!=", null]));
    }
}
