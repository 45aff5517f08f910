//! Health and readiness probes, and Prometheus metrics.

use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use millrace_model::{ConnectionStatus, StreamState};
use millrace_store::ConnectionFilter;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use serde_json::{json, Value};

use crate::problem::ApiError;
use crate::AppState;

/// Answers while the process serves requests.
pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Answers 200 when the store answers, 503 otherwise.
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match state.engine.store().ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable"})),
            )
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    status: u16,
}

/// Request counters kept by the HTTP layer.
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    durations: Histogram,
}

impl HttpMetrics {
    pub fn new() -> Self {
        HttpMetrics {
            requests: Family::default(),
            durations: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
        }
    }
}

impl Default for HttpMetrics {
    fn default() -> Self {
        HttpMetrics::new()
    }
}

/// Middleware that counts requests by method and status and times them.
pub async fn count_requests(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let labels = RequestLabels {
        method,
        status: response.status().as_u16(),
    };
    state.metrics.requests.get_or_create(&labels).inc();
    state
        .metrics
        .durations
        .observe(started.elapsed().as_secs_f64());
    response
}

/// Serves `/metrics` in the Prometheus text format: request counts and latencies, and gauges
/// of connections, streams and credits read from the store at scrape time.
pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let connections = state
        .engine
        .store()
        .list_connections(&ConnectionFilter::default())
        .await?;
    let credits = state
        .engine
        .store()
        .credits(state.engine.config().credit_pool)
        .await?;

    let by_status: Family<StatusLabel, Gauge> = Family::default();
    for status in [
        ConnectionStatus::Active,
        ConnectionStatus::ReauthRequired,
        ConnectionStatus::Disconnected,
    ] {
        let count = connections.iter().filter(|c| c.status == status).count();
        by_status
            .get_or_create(&StatusLabel {
                status: status.to_string(),
            })
            .set(count as i64);
    }
    let by_state: Family<StateLabel, Gauge> = Family::default();
    for stream_state in [
        StreamState::Pending,
        StreamState::Running,
        StreamState::Idle,
        StreamState::Failed,
        StreamState::Paused,
    ] {
        let count = connections
            .iter()
            .flat_map(|c| &c.streams)
            .filter(|stream| stream.state == stream_state)
            .count();
        by_state
            .get_or_create(&StateLabel {
                state: stream_state.to_string(),
            })
            .set(count as i64);
    }
    let used: Gauge = Gauge::default();
    used.set(credits.used.into());
    let total: Gauge = Gauge::default();
    total.set(credits.total.into());

    let mut registry = Registry::with_prefix("millrace");
    registry.register(
        "http_requests",
        "HTTP requests served",
        state.metrics.requests.clone(),
    );
    registry.register(
        "http_request_duration_seconds",
        "Time to answer HTTP requests",
        state.metrics.durations.clone(),
    );
    registry.register("connections", "Connections by status", by_status);
    registry.register("streams", "Streams by sync state", by_state);
    registry.register("credits_used", "Credits held by connections", used);
    registry.register("credits_total", "Size of the credit pool", total);

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).map_err(ApiError::internal)?;
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    Ok(([(header::CONTENT_TYPE, content_type)], text).into_response())
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}
