//! The HTTP API: the unified endpoints (connection tokens), the management endpoints (the
//! operator's key), the OpenAPI document with its reference page, health probes and Prometheus
//! metrics, the Link page and the operator's dashboard (module [`web`]).
//!
//! Only this crate knows HTTP. Handlers translate requests into engine and store calls and
//! never talk to a source; every error leaves through [`problem::ApiError`], the one place
//! that owns the mapping to statuses and problem codes.

pub mod auth;
pub mod cursor;
pub mod link;
pub mod management;
pub mod openapi;
pub mod ops;
pub mod problem;
pub mod records;
pub mod unified;
pub mod web;
pub mod webhooks;

use std::sync::Arc;

use axum::http::{HeaderName, Request};
use axum::routing::{delete, get, post};
use axum::Router;
use millrace_sync::Engine;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnFailure, TraceLayer};

use crate::auth::Limiter;
use crate::cursor::CursorCodec;

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// SHA-256 hex of the operator's management key (see `millrace_sync::hash_token`).
    pub admin_key_hash: String,
    /// Secret that signs list cursors.
    pub cursor_secret: Vec<u8>,
    /// Requests per second per caller (token or management key); 0 disables the limit.
    pub rate_limit_per_second: u32,
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub(crate) admin_key_hash: Arc<String>,
    pub(crate) cursors: Arc<CursorCodec>,
    pub(crate) limiter: Arc<Limiter>,
    pub(crate) metrics: Arc<ops::HttpMetrics>,
    pub(crate) webhooks: millrace_webhooks::Webhooks,
    pub(crate) web: Arc<web::Web>,
}

/// Builds the whole application router.
pub fn router(engine: Engine, config: &ApiConfig) -> Router {
    let state = AppState {
        admin_key_hash: Arc::new(config.admin_key_hash.clone()),
        cursors: Arc::new(CursorCodec::new(&config.cursor_secret)),
        limiter: Arc::new(Limiter::new(config.rate_limit_per_second)),
        metrics: Arc::new(ops::HttpMetrics::new()),
        webhooks: millrace_webhooks::Webhooks::new(
            engine.store().clone(),
            engine.secrets().clone(),
        ),
        web: Arc::new(web::Web::new(&config.cursor_secret, &config.admin_key_hash)),
        engine,
    };
    let request_id = HeaderName::from_static("x-request-id");

    let v1 = Router::new()
        .route("/systems", get(management::systems))
        .route("/credits", get(management::credits))
        .route(
            "/connections",
            post(management::create).get(management::list),
        )
        .route("/connections/{id}", get(management::get))
        .route("/connections/{id}/disconnect", post(management::disconnect))
        .route("/connections/{id}/token", post(management::rotate))
        .route("/connections/{id}/data", delete(management::delete_data))
        .route("/connections/{id}/sync", post(management::sync_now))
        .route("/connections/{id}/runs", get(management::runs))
        .route("/connections/{id}/{object}", get(management::records))
        .route(
            "/connections/{id}/{object}/{record_id}",
            get(management::record),
        )
        .route("/webhooks", post(webhooks::create).get(webhooks::list))
        .route(
            "/webhooks/{id}",
            get(webhooks::get).delete(webhooks::delete),
        )
        .route("/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .route("/webhooks/deliveries/{id}/retry", post(webhooks::retry))
        .route("/link-sessions", post(link::create).get(link::list))
        .route("/link-sessions/{id}", get(link::get))
        .route("/link/token", post(link::exchange))
        .route("/connection", get(unified::this_connection))
        .route("/connection/sync", post(unified::sync_now))
        .route("/{object}", get(unified::list))
        .route("/{object}/{id}", get(unified::get));

    let pages = Router::new()
        .route("/link/{secret}", get(web::link_page::systems))
        .route(
            "/link/{secret}/{system}",
            get(web::link_page::form).post(web::link_page::submit),
        )
        .route("/dashboard", get(web::dashboard::overview))
        .route("/dashboard/live", get(web::dashboard::overview_live))
        .route(
            "/dashboard/login",
            get(web::dashboard::login_page).post(web::dashboard::login),
        )
        .route("/dashboard/logout", post(web::dashboard::logout))
        .route(
            "/dashboard/connections/{id}",
            get(web::dashboard::connection),
        )
        .route(
            "/dashboard/connections/{id}/live",
            get(web::dashboard::connection_live),
        )
        .route(
            "/dashboard/connections/{id}/sync",
            post(web::dashboard::sync_now),
        )
        .route(
            "/dashboard/connections/{id}/rotate",
            post(web::dashboard::rotate),
        )
        .route(
            "/dashboard/connections/{id}/{action}",
            get(web::dashboard::confirm).post(web::dashboard::confirmed),
        )
        .route(
            "/dashboard/link-sessions",
            get(web::dashboard::link_sessions).post(web::dashboard::create_link_session),
        )
        .route("/dashboard/credits", get(web::dashboard::credits))
        .route("/dashboard/webhooks", get(web::dashboard::webhooks))
        .route(
            "/dashboard/webhooks/deliveries/{id}/retry",
            post(web::dashboard::retry_delivery),
        )
        .route("/assets/{name}", get(web::asset))
        .layer(axum::middleware::from_fn(web::security_headers));

    Router::new()
        .nest("/v1", v1)
        .merge(pages)
        .route("/openapi.json", get(openapi::document))
        .route("/docs", get(openapi::reference_page))
        .route("/healthz", get(ops::health))
        .route("/readyz", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .fallback(problem::no_such_route)
        .method_not_allowed_fallback(problem::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ops::count_requests,
        ))
        .with_state(state)
        .layer(axum::middleware::from_fn(problem::attach_request_id))
        .layer(
            TraceLayer::new_for_http()
                .on_failure(DefaultOnFailure::new().level(tracing::Level::WARN))
                .make_span_with(|request: &Request<_>| {
                    let request_id = request
                        .headers()
                        .get("x-request-id")
                        .and_then(|value| value.to_str().ok())
                        .unwrap_or_default();
                    tracing::info_span!(
                        "request",
                        method = %request.method(),
                        path = %loggable_path(request.uri().path()),
                        request_id = %request_id,
                    )
                }),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// Returns a request path fit for a log line: a Link page's path holds its session's secret,
/// which is replaced by `{secret}`.
fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    match path.strip_prefix("/link/") {
        Some(rest) => {
            let after_secret = rest.find('/').map_or("", |slash| &rest[slash..]);
            format!("/link/{{secret}}{after_secret}").into()
        }
        None => path.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::loggable_path;

    #[test]
    fn link_secrets_stay_out_of_logged_paths() {
        assert_eq!(
            loggable_path("/link/mrl_abc/ibm_maximo"),
            "/link/{secret}/ibm_maximo"
        );
        assert_eq!(loggable_path("/link/mrl_abc"), "/link/{secret}");
        assert_eq!(loggable_path("/v1/link/token"), "/v1/link/token");
    }
}
