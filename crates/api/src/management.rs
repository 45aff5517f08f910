//! The management API: the operator's catalogue, connections, runs and credits.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use millrace_model::{Connection, ConnectionStatus, Credits, Deployment, SyncRun, SystemInfo};
use millrace_store::ConnectionFilter;
use millrace_sync::ConnectRequest;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use crate::auth::Admin;
use crate::problem::{ApiError, ApiJson, ApiPath, ApiQuery, Problem};
use crate::records::{self, RecordPage};
use crate::AppState;

/// A list answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct DataList<T: ToSchema> {
    pub data: Vec<T>,
}

/// Lists the catalogue of systems.
#[utoipa::path(get, path = "/v1/systems", tag = "management",
    responses((status = 200, body = DataList<SystemInfo>)), security(("management_key" = [])))]
pub async fn systems(State(state): State<AppState>, _admin: Admin) -> Json<DataList<SystemInfo>> {
    let data = state
        .engine
        .registry()
        .iter()
        .map(|connector| connector.system().clone())
        .collect();
    Json(DataList { data })
}

/// The body of `POST /v1/connections`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConnection {
    pub customer_id: String,
    /// Catalogue id of the system, e.g. `ibm_maximo`.
    pub system: String,
    pub deployment: Deployment,
    /// The system's credential fields (see `GET /v1/systems`).
    #[schema(value_type = Object)]
    pub credentials: Map<String, Value>,
    pub name: Option<String>,
    /// Days of transactional data the initial sync reads (1 to 3650, default 30).
    pub lookback_days: Option<u32>,
    /// Seconds between scheduled syncs (60 to 604800, default 900).
    pub sync_interval_seconds: Option<u32>,
}

/// A new connection and its token, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct Created {
    pub connection: Connection,
    pub token: String,
}

/// Connects a system: checks the credentials live, reserves credits, returns the token once.
#[utoipa::path(post, path = "/v1/connections", tag = "management", request_body = CreateConnection,
    responses((status = 201, body = Created), (status = 409, body = Problem),
        (status = 422, body = Problem), (status = 502, body = Problem)),
    security(("management_key" = [])))]
pub async fn create(
    State(state): State<AppState>,
    _admin: Admin,
    ApiJson(body): ApiJson<CreateConnection>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let connected = state
        .engine
        .connect(ConnectRequest {
            customer_id: body.customer_id,
            system: body.system,
            deployment: body.deployment,
            credentials: body.credentials,
            name: body.name,
            lookback_days: body.lookback_days,
            sync_interval_seconds: body.sync_interval_seconds,
        })
        .await?;
    let created = Created {
        connection: connected.connection,
        token: connected.token,
    };
    Ok((StatusCode::CREATED, Json(created)))
}

/// Lists connections, newest first, filtered by `customer_id`, `system` and `status`.
#[utoipa::path(get, path = "/v1/connections", tag = "management",
    params(("customer_id" = Option<String>, Query), ("system" = Option<String>, Query),
        ("status" = Option<String>, Query)),
    responses((status = 200, body = DataList<Connection>)), security(("management_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    _admin: Admin,
    ApiQuery(params): ApiQuery<HashMap<String, String>>,
) -> Result<Json<DataList<Connection>>, ApiError> {
    if let Some(name) = params
        .keys()
        .find(|name| !["customer_id", "system", "status"].contains(&name.as_str()))
    {
        return Err(ApiError::invalid(format!(
            "unknown query parameter `{name}`; allowed: customer_id, system, status"
        )));
    }
    let status = params
        .get("status")
        .map(|status| {
            status
                .parse::<ConnectionStatus>()
                .map_err(ApiError::invalid)
        })
        .transpose()?;
    let filter = ConnectionFilter {
        customer_id: params.get("customer_id").cloned(),
        system: params.get("system").cloned(),
        status,
    };
    let data = state.engine.store().list_connections(&filter).await?;
    Ok(Json(DataList { data }))
}

/// Returns one connection with its streams.
#[utoipa::path(get, path = "/v1/connections/{id}", tag = "management",
    responses((status = 200, body = Connection), (status = 404, body = Problem)),
    security(("management_key" = [])))]
pub async fn get(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Connection>, ApiError> {
    Ok(Json(state.engine.connection(&id).await?))
}

/// Disconnects at once: token refused, running sync cancelled, credits returned, data kept.
#[utoipa::path(post, path = "/v1/connections/{id}/disconnect", tag = "management",
    responses((status = 200, body = Connection), (status = 404, body = Problem)),
    security(("management_key" = [])))]
pub async fn disconnect(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Connection>, ApiError> {
    state.engine.disconnect(&id).await?;
    Ok(Json(state.engine.connection(&id).await?))
}

/// Rotates the connection's token: the old one stops at once, the new one is shown once.
#[utoipa::path(post, path = "/v1/connections/{id}/token", tag = "management",
    responses((status = 200, description = "`{\"token\": ...}`"), (status = 409, body = Problem)),
    security(("management_key" = [])))]
pub async fn rotate(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let token = state.engine.rotate_token(&id).await?;
    Ok(Json(json!({ "token": token })))
}

/// Deletes the synced data of a connection that is not active (409 `connection_active` when it
/// is: disconnect first).
#[utoipa::path(delete, path = "/v1/connections/{id}/data", tag = "management",
    responses(
        (status = 200, description = "`{\"deleted_records\": n}`"),
        (status = 404, body = Problem),
        (status = 409, body = Problem),
    ),
    security(("management_key" = [])))]
pub async fn delete_data(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let deleted = state.engine.delete_data(&id).await?;
    Ok(Json(json!({ "deleted_records": deleted })))
}

/// Asks for a sync of a connection now.
#[utoipa::path(post, path = "/v1/connections/{id}/sync", tag = "management",
    responses((status = 202, description = "the sync is queued"), (status = 409, body = Problem)),
    security(("management_key" = [])))]
pub async fn sync_now(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    state.engine.sync_now(&id).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"status": "queued"}))))
}

/// Lists a connection's sync runs, newest first.
#[utoipa::path(get, path = "/v1/connections/{id}/runs", tag = "management",
    responses((status = 200, body = DataList<SyncRun>), (status = 404, body = Problem)),
    security(("management_key" = [])))]
pub async fn runs(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<DataList<SyncRun>>, ApiError> {
    state.engine.connection(&id).await?;
    let data = state.engine.store().runs(&id, 100).await?;
    Ok(Json(DataList { data }))
}

/// Lists any connection's records, disconnected ones included.
#[utoipa::path(get, path = "/v1/connections/{id}/{object}", tag = "management",
    params(("id" = String, Path), ("object" = String, Path)),
    responses((status = 200, body = RecordPage), (status = 404, body = Problem)),
    security(("management_key" = [])))]
pub async fn records(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath((id, object)): ApiPath<(String, String)>,
    ApiQuery(params): ApiQuery<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    state.engine.connection(&id).await?;
    let object = records::parse_object(&object)?;
    records::list(&state, &id, object, &params).await
}

/// Reads one record of any connection.
#[utoipa::path(get, path = "/v1/connections/{id}/{object}/{record_id}", tag = "management",
    params(("id" = String, Path), ("object" = String, Path), ("record_id" = String, Path)),
    responses((status = 200, description = "the record"), (status = 404, body = Problem)),
    security(("management_key" = [])))]
pub async fn record(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath((id, object, record_id)): ApiPath<(String, String, String)>,
    ApiQuery(params): ApiQuery<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    state.engine.connection(&id).await?;
    let object = records::parse_object(&object)?;
    records::get(&state, &id, object, &record_id, &params).await
}

/// Returns the credit pool and its ledger.
#[utoipa::path(get, path = "/v1/credits", tag = "management",
    responses((status = 200, body = Credits)), security(("management_key" = [])))]
pub async fn credits(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Json<Credits>, ApiError> {
    let pool = state.engine.config().credit_pool;
    Ok(Json(state.engine.store().credits(pool).await?))
}
