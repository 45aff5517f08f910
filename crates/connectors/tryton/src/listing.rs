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
//!
//! An object read from several models (purchase orders: purchases, then purchase requests) is
//! one listing in `(last_modified_at, model, id)` order: each page asks every model for its
//! next records after the position and keeps the first page-size of the merged answers.

use chrono::{DateTime, SecondsFormat, Utc};
use millrace_connector::{ConnectorError, Credentials, IdPage, Page, PageRequest, Source};
use millrace_model::ObjectType;
use serde_json::{json, Value};

use crate::client::TrytonClient;
use crate::encoding;
use crate::mapping::{self, Related, Spec, WarehouseStock, CHANGE_FIELDS};

/// Most ids asked for per `search` when listing ids for reconciliation.
const ID_PAGE: u32 = 1000;

/// One connection's source: a JSON-RPC client and the connection's reading options.
pub struct TrytonSource {
    client: TrytonClient,
    /// When set, vendors are the parties of this party category only.
    vendor_category: Option<String>,
    /// The warehouses, once read: parts report their stock per warehouse.
    warehouses: tokio::sync::Mutex<Option<Vec<Value>>>,
}

impl TrytonSource {
    /// Builds a source from a connection's credentials, without contacting the server.
    pub fn open(credentials: &Credentials) -> Result<Self, ConnectorError> {
        Ok(TrytonSource {
            client: TrytonClient::open(credentials)?,
            vendor_category: credentials.get("vendor_category").map(str::to_owned),
            warehouses: tokio::sync::Mutex::new(None),
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
            _ => Vec::new(),
        }
    }

    /// Archived records are part of the listing (archiving a lot, location or product is a
    /// change, not a deletion); Tryton hides them unless asked.
    fn with_archived(domain: Vec<Value>) -> Vec<Value> {
        let mut domain = domain;
        domain.push(json!(["OR", ["active", "=", true], ["active", "=", false]]));
        domain
    }

    /// The warehouses, read once per source (one sync run): stock is reported per warehouse.
    async fn warehouses(&self) -> Result<Vec<Value>, ConnectorError> {
        let mut warehouses = self.warehouses.lock().await;
        if let Some(known) = warehouses.as_ref() {
            return Ok(known.clone());
        }
        let answer = self
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
        let read = as_records(answer, "stock.location")?;
        *warehouses = Some(read.clone());
        Ok(read)
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
                for warehouse in self.warehouses().await? {
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
/// without stamps), the rank of its model among the object's models, and its Tryton id. An
/// object read from several models (purchases and purchase requests) is one listing in
/// `(change time, rank, id)` order.
#[derive(Debug, Clone, PartialEq)]
struct Position {
    changed: Option<DateTime<Utc>>,
    rank: usize,
    id: i64,
}

impl Position {
    /// Encodes the position as a continuation: `<RFC 3339 time, or ->@<rank>/<id>`.
    fn encode(&self) -> String {
        let changed = self.changed.map_or_else(
            || "-".to_owned(),
            |changed| changed.to_rfc3339_opts(SecondsFormat::Micros, true),
        );
        format!("{changed}@{}/{}", self.rank, self.id)
    }

    fn decode(text: &str) -> Result<Position, ConnectorError> {
        let invalid = || ConnectorError::Malformed(format!("`{text}` is not a Tryton position"));
        let (changed, key) = text.rsplit_once('@').ok_or_else(invalid)?;
        let (rank, id) = key.split_once('/').ok_or_else(invalid)?;
        let rank = rank.parse().map_err(|_| invalid())?;
        let id = id.parse().map_err(|_| invalid())?;
        let changed = match changed {
            "-" => None,
            changed => Some(
                DateTime::parse_from_rfc3339(changed)
                    .map_err(|_| invalid())?
                    .with_timezone(&Utc),
            ),
        };
        Ok(Position { changed, rank, id })
    }

    /// The domain of the records of the model of `rank` after this position in
    /// `(last_modified_at, rank, id)` order, records without a stamp first; `None` when every
    /// record of that model comes after it.
    fn after(&self, rank: usize) -> Option<Value> {
        let stamped = json!(["last_modified_at", "!=", null]);
        match self.changed {
            None if rank > self.rank => None,
            None if rank < self.rank => Some(stamped),
            None => Some(json!([
                "OR",
                [["last_modified_at", "=", null], ["id", ">", self.id]],
                stamped
            ])),
            Some(changed) => {
                let changed = encoding::datetime(changed);
                Some(if rank > self.rank {
                    json!(["last_modified_at", ">=", changed])
                } else if rank < self.rank {
                    json!(["last_modified_at", ">", changed])
                } else {
                    json!([
                        "OR",
                        ["last_modified_at", ">", changed],
                        [["last_modified_at", "=", changed], ["id", ">", self.id]]
                    ])
                })
            }
        }
    }
}

/// One record read, with its place in the listing's order.
struct Read {
    position: Position,
    raw: Value,
}

impl TrytonSource {
    /// Reads up to `limit` records of the model of `rank` after `position`, in listing order.
    async fn read_model(
        &self,
        request: &PageRequest,
        rank: usize,
        spec: &Spec,
        position: Option<&Position>,
        limit: u32,
    ) -> Result<Vec<Read>, ConnectorError> {
        let mut domain = if rank == 0 {
            self.scope(request.object)
        } else {
            Vec::new()
        };
        if let Some(since) = request.since {
            domain.push(json!([
                "OR",
                ["last_modified_at", ">=", encoding::datetime(since)],
                ["last_modified_at", "=", null]
            ]));
        }
        if let Some(after) = position.and_then(|position| position.after(rank)) {
            domain.push(after);
        }
        if rank == 0 && has_active(request.object) {
            domain = Self::with_archived(domain);
        }
        let mut fields: Vec<&str> = spec.fields.to_vec();
        fields.extend(CHANGE_FIELDS);
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
        as_records(answer, spec.model)?
            .into_iter()
            .map(|raw| {
                let id = raw["id"].as_i64().ok_or_else(|| {
                    ConnectorError::Malformed(format!("a {} record has no integer id", spec.model))
                })?;
                Ok(Read {
                    position: Position {
                        changed: mapping::change_time(&raw),
                        rank,
                        id,
                    },
                    raw,
                })
            })
            .collect()
    }
}

/// Orders positions as the listing does: records without a stamp first, then by change time,
/// model rank and id.
fn listing_order(a: &Position, b: &Position) -> std::cmp::Ordering {
    (a.changed, a.rank, a.id).cmp(&(b.changed, b.rank, b.id))
}

#[async_trait::async_trait]
impl Source for TrytonSource {
    async fn check(&self) -> Result<(), ConnectorError> {
        self.client.ensure_session().await
    }

    async fn read_page(&self, request: &PageRequest) -> Result<Page, ConnectorError> {
        let specs = mapping::specs(request.object);
        if specs.is_empty() {
            return Err(ConnectorError::Unsupported(request.object.to_string()));
        }
        let position = request.page.as_deref().map(Position::decode).transpose()?;
        let limit = request.page_size.max(1);

        // Each model's next records after the position, merged into one order: the page is
        // the first `limit` of them, and the listing goes on while any model has more.
        let mut reads = Vec::new();
        let mut more = false;
        for (rank, spec) in specs.iter().enumerate() {
            // One record more than a page tells whether the model has more, without a last
            // request that finds nothing.
            let read = self
                .read_model(request, rank, spec, position.as_ref(), limit + 1)
                .await?;
            more |= read.len() as u32 > limit;
            reads.extend(read);
        }
        reads.sort_by(|a, b| listing_order(&a.position, &b.position));
        if reads.len() > limit as usize {
            reads.truncate(limit as usize);
            more = true;
        }
        let next_page = match reads.last() {
            Some(last) if more => Some(last.position.encode()),
            _ => None,
        };

        let main: Vec<Value> = reads
            .iter()
            .filter(|read| read.position.rank == 0)
            .map(|read| read.raw.clone())
            .collect();
        let related = self.related(request.object, &main).await?;
        let mut page = Page {
            next_page,
            ordered_by_change: true,
            ..Page::default()
        };
        for read in reads {
            let spec = &specs[read.position.rank];
            match mapping::record(
                request.object,
                spec,
                &request.connection_id,
                read.raw,
                &related,
            ) {
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
        let specs = mapping::specs(object);
        if specs.is_empty() {
            return Err(ConnectorError::Unsupported(object.to_string()));
        }
        // The continuation is `<rank>/<last id>`: each model's ids in turn.
        let (rank, after) = match page {
            None => (0, None),
            Some(page) => {
                let invalid = || ConnectorError::Malformed(format!("`{page}` is not an id page"));
                let (rank, id) = page.split_once('/').ok_or_else(invalid)?;
                let rank: usize = rank.parse().map_err(|_| invalid())?;
                let id: i64 = id.parse().map_err(|_| invalid())?;
                (rank, Some(id))
            }
        };
        let spec = specs.get(rank).ok_or_else(|| {
            ConnectorError::Malformed(format!("`{}` names no model", page.unwrap_or_default()))
        })?;
        let mut domain = if rank == 0 {
            self.scope(object)
        } else {
            Vec::new()
        };
        if let Some(after) = after {
            domain.push(json!(["id", ">", after]));
        }
        if rank == 0 && has_active(object) {
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
        let next_page = match ids.last() {
            Some(last) if ids.len() as u32 >= ID_PAGE => Some(format!("{rank}/{last}")),
            _ if rank + 1 < specs.len() => Some(format!("{}/0", rank + 1)),
            _ => None,
        };
        Ok(IdPage {
            remote_ids: ids
                .iter()
                .map(|id| format!("{}{id}", spec.id_prefix))
                .collect(),
            next_page,
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

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn positions_round_trip_with_microseconds_and_without_a_time() {
        let changed = at("2026-12-04T16:26:52.560723Z");
        let stamped = Position {
            changed: Some(changed),
            rank: 0,
            id: 42,
        };
        let unstamped = Position {
            changed: None,
            rank: 1,
            id: 7,
        };
        for position in [stamped.clone(), unstamped] {
            assert_eq!(Position::decode(&position.encode()).unwrap(), position);
        }
        assert_eq!(stamped.encode(), "2026-12-04T16:26:52.560723Z@0/42");
        for bad in ["yesterday@0/1", "-@0/x", "-@1", "42"] {
            assert!(Position::decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_domain_after_a_position_breaks_ties_by_model_then_id() {
        let position = Position {
            changed: Some(at("2026-01-02T03:04:05.000006Z")),
            rank: 0,
            id: 9,
        };
        let same_model = position.after(0).unwrap();
        assert_eq!(same_model[0], "OR");
        assert_eq!(same_model[1][1], ">");
        assert_eq!(same_model[2][0][1], "=");
        assert_eq!(same_model[2][0][2]["microsecond"], 6);
        assert_eq!(same_model[2][1], json!(["id", ">", 9]));
        // A later model's records at the same instant come after; an earlier model's do not.
        assert_eq!(position.after(1).unwrap()[1], ">=");
        let later = Position {
            rank: 1,
            ..position
        };
        assert_eq!(later.after(0).unwrap()[1], ">");

        let unstamped = Position {
            changed: None,
            rank: 0,
            id: 3,
        };
        let after = unstamped.after(0).unwrap();
        assert_eq!(after[1][0], json!(["last_modified_at", "=", null]));
        assert_eq!(after[2], json!(["last_modified_at", "!=", null]));
        assert_eq!(
            unstamped.after(1),
            None,
            "every record of a later model comes after"
        );
    }

    #[test]
    fn the_listing_order_puts_unstamped_records_first_then_time_model_and_id() {
        let position = |changed: Option<&str>, rank, id| Position {
            changed: changed.map(at),
            rank,
            id,
        };
        let mut positions = [
            position(Some("2026-01-01T00:00:01Z"), 0, 1),
            position(Some("2026-01-01T00:00:00.5Z"), 1, 1),
            position(None, 1, 2),
            position(Some("2026-01-01T00:00:00.5Z"), 0, 8),
            position(None, 0, 5),
        ];
        positions.sort_by(listing_order);
        let keys: Vec<(usize, i64)> = positions.iter().map(|p| (p.rank, p.id)).collect();
        assert_eq!(keys, [(0, 5), (1, 2), (0, 8), (1, 1), (0, 1)]);
    }
}
