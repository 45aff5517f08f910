//! The unified API: one connection's data, reached with that connection's token.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use millrace_model::Connection;
use serde_json::{json, Value};

use crate::auth::ConnectionToken;
use crate::problem::{ApiError, ApiPath, ApiQuery, Problem};
use crate::records::{self, RecordPage};
use crate::AppState;

/// Returns the caller's connection, its system and its sync state.
#[utoipa::path(get, path = "/v1/connection", tag = "unified",
    responses((status = 200, body = Connection), (status = 401, body = Problem)),
    security(("connection_token" = [])))]
pub async fn this_connection(
    State(state): State<AppState>,
    caller: ConnectionToken,
) -> Result<Json<Connection>, ApiError> {
    Ok(Json(state.engine.connection(&caller.connection_id).await?))
}

/// Asks for a sync of the caller's connection now.
#[utoipa::path(post, path = "/v1/connection/sync", tag = "unified",
    responses((status = 202, description = "the sync is queued"), (status = 401, body = Problem)),
    security(("connection_token" = [])))]
pub async fn sync_now(
    State(state): State<AppState>,
    caller: ConnectionToken,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    state.engine.sync_now(&caller.connection_id).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"status": "queued"}))))
}

/// Lists records of one object type in change order.
///
/// Keep the last `next_cursor` and poll with it later to see every later change exactly once.
/// Besides the parameters below, each object type takes equality filters (e.g. `status`,
/// `asset_id`); an unknown parameter is refused.
#[utoipa::path(get, path = "/v1/{object}", tag = "unified",
    params(
        ("object" = String, Path, description = "object type, e.g. `work-orders`"),
        ("limit" = Option<u32>, Query, description = "1 to 1000, default 100"),
        ("cursor" = Option<String>, Query, description = "opaque cursor from `next_cursor`"),
        ("modified_after" = Option<String>, Query, description = "RFC 3339 time"),
        ("include_deleted" = Option<bool>, Query),
        ("include_remote_data" = Option<bool>, Query),
    ),
    responses((status = 200, body = RecordPage), (status = 401, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("connection_token" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: ConnectionToken,
    ApiPath(object): ApiPath<String>,
    ApiQuery(params): ApiQuery<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let object = records::parse_object(&object)?;
    records::list(&state, &caller.connection_id, object, &params).await
}

/// Reads one record by its Millrace id.
#[utoipa::path(get, path = "/v1/{object}/{id}", tag = "unified",
    params(("object" = String, Path), ("id" = String, Path),
        ("include_remote_data" = Option<bool>, Query)),
    responses((status = 200, description = "the record"), (status = 404, body = Problem)),
    security(("connection_token" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: ConnectionToken,
    ApiPath((object, id)): ApiPath<(String, String)>,
    ApiQuery(params): ApiQuery<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let object = records::parse_object(&object)?;
    records::get(&state, &caller.connection_id, object, &id, &params).await
}
