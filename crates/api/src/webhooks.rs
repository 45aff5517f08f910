//! The management API's webhooks: endpoints, their deliveries, and manual retry.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use millrace_model::{WebhookDelivery, WebhookEndpoint};
use millrace_webhooks::{EndpointRequest, WebhookError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Admin;
use crate::management::DataList;
use crate::problem::{ApiError, ApiJson, ApiPath, Problem};
use crate::AppState;

/// The body of `POST /v1/webhooks`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// Where events are POSTed: `http` or `https`, without credentials.
    pub url: String,
    /// Event types to deliver (`connection.created`, `connection.disconnected`,
    /// `connection.reauth_required`, `sync.completed`, `sync.failed`, `records.changed`);
    /// omitted: every type, including later ones.
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
}

/// A new endpoint and its signing secret, shown this once.
#[derive(Serialize, ToSchema)]
pub struct CreatedWebhook {
    pub endpoint: WebhookEndpoint,
    /// `whsec_...`: verify each delivery's `webhook-signature` with it (Standard Webhooks).
    pub secret: String,
}

impl From<WebhookError> for ApiError {
    fn from(err: WebhookError) -> Self {
        match err {
            WebhookError::InvalidRequest(detail) => ApiError::invalid(detail),
            WebhookError::EndpointNotFound(_) | WebhookError::DeliveryNotFound(_) => {
                ApiError::not_found(err.to_string())
            }
            WebhookError::Store(err) => ApiError::from(err),
        }
    }
}

/// Registers a webhook endpoint; answers its secret this once.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = CreateWebhook,
    responses((status = 201, body = CreatedWebhook), (status = 422, body = Problem)),
    security(("management_key" = [])))]
pub async fn create(
    State(state): State<AppState>,
    _admin: Admin,
    ApiJson(body): ApiJson<CreateWebhook>,
) -> Result<(StatusCode, Json<CreatedWebhook>), ApiError> {
    let created = state
        .webhooks
        .create_endpoint(EndpointRequest {
            url: body.url,
            events: body.events,
            description: body.description,
        })
        .await?;
    let answer = CreatedWebhook {
        endpoint: created.endpoint,
        secret: created.secret,
    };
    Ok((StatusCode::CREATED, Json(answer)))
}

/// Lists the webhook endpoints, newest first, with their status (`active` or `failing`).
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    responses((status = 200, body = DataList<WebhookEndpoint>)),
    security(("management_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Json<DataList<WebhookEndpoint>>, ApiError> {
    let data = state.webhooks.endpoints().await?;
    Ok(Json(DataList { data }))
}

/// Returns one webhook endpoint.
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks",
    responses((status = 200, body = WebhookEndpoint), (status = 404, body = Problem)),
    security(("management_key" = [])))]
pub async fn get(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<WebhookEndpoint>, ApiError> {
    Ok(Json(state.webhooks.endpoint(&id).await?))
}

/// Deletes a webhook endpoint and its deliveries; nothing more is sent to it.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks",
    responses((status = 204, description = "deleted"), (status = 404, body = Problem)),
    security(("management_key" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.webhooks.delete_endpoint(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lists an endpoint's latest 100 deliveries, newest first, each with every attempt (status
/// code, latency, error, time).
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks",
    responses((status = 200, body = DataList<WebhookDelivery>), (status = 404, body = Problem)),
    security(("management_key" = [])))]
pub async fn deliveries(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<DataList<WebhookDelivery>>, ApiError> {
    let data = state.webhooks.deliveries(&id).await?;
    Ok(Json(DataList { data }))
}

/// Queues a delivery again at once, whatever its status.
#[utoipa::path(post, path = "/v1/webhooks/deliveries/{id}/retry", tag = "webhooks",
    responses((status = 202, body = WebhookDelivery), (status = 404, body = Problem)),
    security(("management_key" = [])))]
pub async fn retry(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<WebhookDelivery>), ApiError> {
    let delivery = state.webhooks.retry_delivery(&id).await?;
    Ok((StatusCode::ACCEPTED, Json(delivery)))
}
