//! The HTTP client connectors share: timeouts, retries with backoff, and `Retry-After`.
//!
//! 429 and 503 answers are waited out for as long as `Retry-After` says (seconds or an HTTP
//! date), bounded by [`RetryPolicy::max_wait`]; other transient faults (5xx, refused or reset
//! connections, timeouts) are retried with exponential backoff and jitter. 401 and 403 become
//! [`ConnectorError::CredentialsRejected`]; other failures keep the source's own message.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use chrono::Utc;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::Value;

use crate::ConnectorError;

/// How hard the client tries before giving up on a request.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: usize,
    /// First backoff delay; it doubles each retry, with jitter.
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// The longest single `Retry-After` wait honoured; a longer one fails the request.
    pub max_wait: Duration,
    /// Timeout of one request, from sending to the end of the body.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
}

/// The policy [`RetryPolicy::configured`] returns, when the process set one.
static CONFIGURED: std::sync::RwLock<Option<RetryPolicy>> = std::sync::RwLock::new(None);

impl RetryPolicy {
    /// Returns the policy this process configured with [`RetryPolicy::configure`], else the
    /// default. Connectors build their clients with it, so an operator (or a test harness) can
    /// tighten timeouts and waits for every source at once.
    pub fn configured() -> RetryPolicy {
        CONFIGURED
            .read()
            .ok()
            .and_then(|policy| policy.clone())
            .unwrap_or_default()
    }

    /// Sets the policy of every source client built after this call in this process.
    pub fn configure(policy: RetryPolicy) {
        if let Ok(mut configured) = CONFIGURED.write() {
            *configured = Some(policy);
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 5,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            max_wait: Duration::from_secs(120),
            request_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Extracts a human message from a source's JSON error body.
pub type ErrorReader = fn(&Value) -> Option<String>;

/// An HTTP client for one source.
#[derive(Clone)]
pub struct SourceHttp {
    client: reqwest::Client,
    policy: RetryPolicy,
    read_error: ErrorReader,
}

impl SourceHttp {
    /// Builds a client with `policy`, reading error messages with `read_error`.
    pub fn new(policy: RetryPolicy, read_error: ErrorReader) -> Result<Self, ConnectorError> {
        let client = reqwest::Client::builder()
            .timeout(policy.request_timeout)
            .connect_timeout(policy.connect_timeout)
            .user_agent(concat!("millrace/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| {
                ConnectorError::Unreachable(format!("cannot build HTTP client: {err}"))
            })?;
        Ok(SourceHttp {
            client,
            policy,
            read_error,
        })
    }

    /// Returns the underlying client, to build requests with.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends the request `build` makes, retrying transient faults, and reads a JSON body.
    pub async fn get_json(
        &self,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Value, ConnectorError> {
        Ok(self.get_json_dated(build).await?.0)
    }

    /// Like [`SourceHttp::get_json`], also returning the source's clock from the `Date` header.
    ///
    /// The body is read inside the retried attempt: a connection dropped mid-body is a
    /// transient fault and retried like a reset. A body that arrives whole but is not JSON (cut
    /// short by the source, or an HTML error page) fails at once as [`ConnectorError::Malformed`].
    pub async fn get_json_dated(
        &self,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<(Value, Option<chrono::DateTime<Utc>>), ConnectorError> {
        let (date, body) = self
            .retrying(|| async {
                let response = self.send_once(&build).await?;
                let date = response
                    .headers()
                    .get(reqwest::header::DATE)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| chrono::DateTime::parse_from_rfc2822(value).ok())
                    .map(|date| date.with_timezone(&Utc));
                let body = response.bytes().await.map_err(|err| Attempt {
                    error: ConnectorError::Unreachable(format!(
                        "the answer was cut off: {}",
                        error_chain(&err)
                    )),
                    retry_after: None,
                })?;
                Ok((date, body))
            })
            .await?;
        let json = serde_json::from_slice(&body).map_err(|err| {
            ConnectorError::Malformed(format!(
                "the body is not valid JSON ({err}): {}",
                excerpt(&body)
            ))
        })?;
        Ok((json, date))
    }

    /// Sends the request `build` makes, retrying transient faults; returns a 2xx response.
    pub async fn send(
        &self,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response, ConnectorError> {
        self.retrying(|| self.send_once(&build)).await
    }

    /// Runs `attempt` until it succeeds, fails for good, or the policy's retries run out.
    async fn retrying<T, F, Fut>(&self, attempt: F) -> Result<T, ConnectorError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, Attempt>>,
    {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.policy.min_delay)
            .with_max_delay(self.policy.max_delay)
            .with_max_times(self.policy.max_retries)
            .with_jitter();
        let max_wait = self.policy.max_wait;
        attempt
            .retry(backoff)
            .when(|err: &Attempt| err.error.is_transient() && err.retry_after_within(max_wait))
            .adjust(|err: &Attempt, planned| match (planned, err.retry_after) {
                (Some(_), Some(wait)) => Some(wait),
                (planned, _) => planned,
            })
            .notify(|err: &Attempt, wait| {
                tracing::debug!(error = %err.error, ?wait, "retrying source request");
            })
            .await
            .map_err(|attempt| attempt.error)
    }

    async fn send_once(
        &self,
        build: &impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response, Attempt> {
        let response = build(&self.client).send().await.map_err(|err| Attempt {
            error: classify_transport_error(&err),
            retry_after: None,
        })?;

        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }

        let retry_after = retry_after(response.headers());
        let body = response.bytes().await.unwrap_or_default();
        let detail = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|json| (self.read_error)(&json))
            .unwrap_or_else(|| excerpt(&body));
        let error = match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                ConnectorError::CredentialsRejected(detail)
            }
            StatusCode::TOO_MANY_REQUESTS => ConnectorError::RateLimited { retry_after },
            _ => ConnectorError::Status {
                status: status.as_u16(),
                detail,
            },
        };
        Err(Attempt { error, retry_after })
    }
}

/// One failed attempt, with the wait the source asked for.
struct Attempt {
    error: ConnectorError,
    retry_after: Option<Duration>,
}

impl Attempt {
    fn retry_after_within(&self, max_wait: Duration) -> bool {
        self.retry_after.is_none_or(|wait| wait <= max_wait)
    }
}

fn classify_transport_error(err: &reqwest::Error) -> ConnectorError {
    let detail = error_chain(err);
    if err.is_timeout() {
        ConnectorError::Timeout(detail)
    } else if err.is_connect() || err.is_request() {
        ConnectorError::Unreachable(detail)
    } else if err.is_body() || err.is_decode() {
        ConnectorError::Malformed(detail)
    } else {
        ConnectorError::Unreachable(detail)
    }
}

/// Returns the error with its causes, which reqwest keeps out of `Display`.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Parses `Retry-After` as delta-seconds or as an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&Utc) - Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(empty body)".to_owned();
    }
    text.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));

        let later = (Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(
            wait <= Duration::from_secs(30) && wait >= Duration::from_secs(28),
            "{wait:?}"
        );

        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));

        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }
}
