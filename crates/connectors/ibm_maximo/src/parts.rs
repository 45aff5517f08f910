//! The two-phase read of parts: items of `mxapiitem` changed since the watermark, then items
//! whose stock (`mxapiinventory`) changed, each joined to all its stock rows.

use std::collections::BTreeMap;

use millrace_connector::{ConnectorError, Page, PageRequest, RejectedRecord};
use millrace_model::ObjectType;
use serde_json::Value;

use crate::client::{
    structure_for, unsupported, where_literal, Collection, MaximoSource, HELPER_PAGE_SIZE,
};
use crate::mapping::{self, MapContext};

/// Stock per storeroom comes from this structure, joined to the items of `mxapiitem`.
const INVENTORY: &str = "mxapiinventory";
const INVENTORY_SELECT: &str = "itemnum,itemsetid,siteid,location,inventoryid,binnum,\
                                curbaltotal,reservedqty,avblbalance,minlevel,orderqty,avgcost,\
                                issueunit,status,changedate";

impl MaximoSource {
    /// Reads every page of `structure` matching `where_text`, for helper joins.
    async fn read_all(
        &self,
        structure: &str,
        select: &str,
        where_text: String,
    ) -> Result<Vec<Value>, ConnectorError> {
        let params = Self::first_page(select, vec![where_text], None, HELPER_PAGE_SIZE);
        let mut body = self.get(&self.collection_url(structure), &params).await?;
        let mut members = Vec::new();
        loop {
            let page = Collection::read(&body)?;
            members.extend(page.members);
            match page.next {
                Some(href) => body = self.follow(&href).await?,
                None => return Ok(members),
            }
        }
    }

    /// Reads the stock rows of `items`, keyed by `itemsetid/itemnum`.
    async fn stock_of(
        &self,
        items: &[Value],
    ) -> Result<BTreeMap<String, Vec<Value>>, ConnectorError> {
        let mut stock: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        let numbers: Vec<String> = items
            .iter()
            .filter_map(|item| item.get("itemnum").and_then(Value::as_str))
            .filter(|itemnum| !itemnum.contains('"'))
            .map(|itemnum| format!("\"{itemnum}\""))
            .collect();
        for chunk in numbers.chunks(200) {
            let where_text = format!("itemnum in [{}]", chunk.join(","));
            for row in self
                .read_all(INVENTORY, INVENTORY_SELECT, where_text)
                .await?
            {
                if let Some(key) = mapping::key_of(&row, &["itemsetid", "itemnum"]) {
                    stock.entry(key).or_default().push(row);
                }
            }
        }
        Ok(stock)
    }

    /// Parts: items changed since the watermark (each with all its stock), then, on an
    /// incremental read, the items whose stock changed since the watermark.
    ///
    /// Stock changes do not touch the item's own `changedate`, so a read of items alone would
    /// miss them; the second phase finds them through `mxapiinventory.changedate`. A part's
    /// `remote_updated_at` is the newest of its item's and its stock rows' change times, so the
    /// watermark covers both. Because the second phase restarts at older times, parts are not
    /// reported as ordered by change.
    ///
    /// A part read late carries its *current* item and stock times, which may be newer than an
    /// item change made after the items phase passed that item. So the first page reports the
    /// server's clock (its `Date` header) as the listing's start, and the engine never moves
    /// the watermark of a listing not ordered by change past that start: every change made
    /// while the listing ran is at or after it, and the next read sees it.
    pub(crate) async fn read_parts(
        &self,
        request: &PageRequest,
        context: &MapContext<'_>,
    ) -> Result<Page, ConnectorError> {
        let item_structure =
            structure_for(ObjectType::Parts).ok_or_else(|| unsupported(request.object))?;
        let cursor = PartsCursor::decode(request.page.as_deref())?;
        let mut listing_started_at = None;
        let (items, next, total) = match cursor {
            PartsCursor::Items(href) => {
                let followed = match &href {
                    Some(href) => self.follow_stable(href).await?,
                    None => None,
                };
                let body = match followed {
                    Some(body) => body,
                    None => {
                        let params = Self::first_page(
                            item_structure.select,
                            Self::conditions(item_structure, request.since),
                            Some(item_structure.change_attr),
                            request.page_size,
                        );
                        let url = self.collection_url(item_structure.name);
                        let (body, date) = self.get_dated(&url, &params).await?;
                        listing_started_at = date;
                        body
                    }
                };
                let page = Collection::read(&body)?;
                let next = match (page.next, request.since) {
                    (Some(href), _) => Some(PartsCursor::Items(Some(href))),
                    (None, Some(_)) => Some(PartsCursor::Stock(None)),
                    (None, None) => None,
                };
                (page.members, next, page.total)
            }
            PartsCursor::Stock(href) => {
                let followed = match &href {
                    Some(href) => self.follow_stable(href).await?,
                    None => None,
                };
                let body = match (followed, request.since) {
                    (Some(body), _) => body,
                    (None, since) => {
                        let params = Self::first_page(
                            "itemnum,itemsetid,changedate",
                            since
                                .map(|since| format!("changedate>=\"{}\"", where_literal(since)))
                                .into_iter()
                                .collect(),
                            Some("changedate"),
                            request.page_size,
                        );
                        self.get(&self.collection_url(INVENTORY), &params).await?
                    }
                };
                let page = Collection::read(&body)?;
                let mut numbers: Vec<String> = page
                    .members
                    .iter()
                    .filter_map(|row| row.get("itemnum").and_then(Value::as_str))
                    .filter(|itemnum| !itemnum.contains('"'))
                    .map(|itemnum| format!("\"{itemnum}\""))
                    .collect();
                numbers.sort();
                numbers.dedup();
                let items = if numbers.is_empty() {
                    Vec::new()
                } else {
                    let where_text = format!("itemnum in [{}]", numbers.join(","));
                    self.read_all(item_structure.name, item_structure.select, where_text)
                        .await?
                };
                (
                    items,
                    page.next.map(|href| PartsCursor::Stock(Some(href))),
                    None,
                )
            }
        };

        let stock = self.stock_of(&items).await?;
        let mut records = Vec::with_capacity(items.len());
        let mut rejected = Vec::new();
        for item in &items {
            let key = mapping::key_of(item, &["itemsetid", "itemnum"]);
            let rows = key
                .as_ref()
                .and_then(|key| stock.get(key))
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            match mapping::part(context, item, rows) {
                Ok(record) => records.push(record),
                Err(err) => rejected.push(RejectedRecord {
                    remote_id: key,
                    reason: err.to_string(),
                }),
            }
        }
        Ok(Page {
            records,
            next_page: next.map(|cursor| cursor.encode()),
            ordered_by_change: false,
            total,
            listing_started_at,
            rejected,
        })
    }
}

/// Where a parts listing stands: in its items phase or its stock phase, with the next link.
#[derive(Debug, PartialEq)]
enum PartsCursor {
    Items(Option<String>),
    Stock(Option<String>),
}

impl PartsCursor {
    fn decode(page: Option<&str>) -> Result<Self, ConnectorError> {
        let Some(page) = page else {
            return Ok(PartsCursor::Items(None));
        };
        let (phase, href) = page.split_once(' ').unwrap_or((page, ""));
        let href = (!href.is_empty()).then(|| href.to_owned());
        match phase {
            "items" => Ok(PartsCursor::Items(href)),
            "stock" => Ok(PartsCursor::Stock(href)),
            _ => Err(ConnectorError::Malformed(format!(
                "not a parts page cursor: {page}"
            ))),
        }
    }

    fn encode(&self) -> String {
        match self {
            PartsCursor::Items(href) => format!("items {}", href.as_deref().unwrap_or("")),
            PartsCursor::Stock(href) => format!("stock {}", href.as_deref().unwrap_or("")),
        }
        .trim_end()
        .to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cursors_round_trip() {
        for cursor in [
            PartsCursor::Items(Some("http://h/maximo/oslc/os/mxapiitem?pageno=2".into())),
            PartsCursor::Stock(None),
            PartsCursor::Stock(Some("http://h/x?a=b c".into())),
        ] {
            assert_eq!(PartsCursor::decode(Some(&cursor.encode())).unwrap(), cursor);
        }
        assert!(PartsCursor::decode(Some("nonsense")).is_err());
    }
}
