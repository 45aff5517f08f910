//! Who is calling: the operator's management key, or one connection's token.
//!
//! Both travel as `Authorization: Bearer ...`. Every request is also counted against its
//! caller's rate limit here.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use millrace_model::ConnectionStatus;
use millrace_sync::{hash_token, looks_like_token};
use std::num::NonZeroU32;

use crate::problem::ApiError;
use crate::AppState;

/// Per-caller request rate limiting.
pub struct Limiter {
    limiter: Option<DefaultKeyedRateLimiter<String>>,
}

impl Limiter {
    /// Allows `per_second` requests a second per caller, with bursts of twice that; 0 disables.
    pub fn new(per_second: u32) -> Self {
        let limiter = NonZeroU32::new(per_second).map(|rate| {
            let burst = rate.saturating_mul(NonZeroU32::new(2).expect("2 is not zero"));
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Limiter { limiter }
    }

    pub(crate) fn check(&self, caller: &str) -> Result<(), ApiError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check_key(&caller.to_owned()).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let mut error = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests; wait as Retry-After says",
            );
            error.retry_after = Some(wait.as_secs().max(1));
            error
        })
    }
}

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("send `Authorization: Bearer <token>`"))?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is not valid text"))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .ok_or_else(|| {
            ApiError::unauthorized("the Authorization header must be `Bearer <token>`")
        })?;
    Ok(token)
}

/// The operator, authenticated by the management key.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        let hash = hash_token(token);
        if hash == *state.admin_key_hash {
            state.limiter.check(&hash)?;
            return Ok(Admin);
        }
        if looks_like_token(token) && state.engine.store().token_lookup(&hash).await?.is_some() {
            return Err(ApiError::forbidden(
                "a connection token cannot use management endpoints; use the management key",
            ));
        }
        Err(ApiError::unauthorized("the management key is not valid"))
    }
}

/// A caller holding a valid token of one active connection.
#[derive(Debug, Clone)]
pub struct ConnectionToken {
    pub connection_id: String,
}

impl FromRequestParts<AppState> for ConnectionToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        let hash = hash_token(token);
        if hash == *state.admin_key_hash {
            return Err(ApiError::forbidden(
                "the management key reads connection data under /v1/connections/{id}/{object}",
            ));
        }
        let lookup = state
            .engine
            .store()
            .token_lookup(&hash)
            .await?
            .ok_or_else(|| ApiError::unauthorized("the token is not valid"))?;

        if lookup.connection_status == ConnectionStatus::Disconnected {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "token_revoked",
                "the token's connection was disconnected",
            ));
        }
        if lookup.revoked_at.is_some() {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "token_revoked",
                "the token was revoked by a rotation",
            ));
        }
        if lookup.connection_status == ConnectionStatus::ReauthRequired {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "reauth_required",
                "the source rejected this connection's credentials; the customer must reconnect",
            ));
        }
        state.limiter.check(&hash)?;
        Ok(ConnectionToken {
            connection_id: lookup.connection_id,
        })
    }
}
