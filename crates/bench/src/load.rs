//! The list-endpoint load: concurrent clients walking `GET /v1/work-orders` page by page.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Deserialize;

/// Longest a single request may take before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause after a failed request, so a server that refuses connections is not spun against.
const ERROR_PAUSE: Duration = Duration::from_millis(10);

/// How the load is shaped.
pub struct LoadPlan {
    pub base_url: String,
    pub token: String,
    pub clients: usize,
    pub page_size: u32,
    /// Requests before this are sent but not counted (connections open, caches warm).
    pub warmup: Duration,
    pub measured: Duration,
}

/// What the load measured over its counted window.
#[derive(Debug, Clone)]
pub struct LoadFigures {
    pub requests: u64,
    pub errors: u64,
    pub seconds: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Walks that reached the last page and started over.
    pub wraps: u64,
}

impl LoadFigures {
    pub fn requests_per_second(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
}

/// The part of a page a client needs to continue.
#[derive(Deserialize)]
struct PageEnd {
    next_cursor: String,
    has_more: bool,
}

/// One client's tally.
struct ClientTally {
    latencies_us: Histogram<u64>,
    errors: u64,
    wraps: u64,
}

/// Runs the load and returns its figures.
pub async fn run(plan: &LoadPlan) -> anyhow::Result<LoadFigures> {
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(plan.clients)
        .build()?;
    let start = Instant::now();
    let counted_from = start + plan.warmup;
    let deadline = counted_from + plan.measured;

    let clients = (0..plan.clients).map(|_| {
        let http = http.clone();
        let url = format!("{}/v1/work-orders", plan.base_url.trim_end_matches('/'));
        let token = plan.token.clone();
        let limit = plan.page_size.to_string();
        tokio::spawn(async move { walk(http, url, token, limit, counted_from, deadline).await })
    });
    let tallies = futures::future::try_join_all(clients).await?;

    let mut latencies_us = new_histogram()?;
    let (mut errors, mut wraps) = (0, 0);
    for tally in tallies {
        let tally = tally?;
        latencies_us.add(&tally.latencies_us)?;
        errors += tally.errors;
        wraps += tally.wraps;
    }
    let to_ms = |micros: u64| micros as f64 / 1000.0;
    Ok(LoadFigures {
        requests: latencies_us.len(),
        errors,
        seconds: plan.measured.as_secs_f64(),
        p50_ms: to_ms(latencies_us.value_at_quantile(0.50)),
        p99_ms: to_ms(latencies_us.value_at_quantile(0.99)),
        max_ms: to_ms(latencies_us.max()),
        wraps,
    })
}

/// One client: walks the cursor to the end and starts over, until the deadline. Counts the
/// latency (until the whole body is read) of successful requests sent after `counted_from`.
async fn walk(
    http: reqwest::Client,
    url: String,
    token: String,
    limit: String,
    counted_from: Instant,
    deadline: Instant,
) -> anyhow::Result<ClientTally> {
    let mut tally = ClientTally {
        latencies_us: new_histogram()?,
        errors: 0,
        wraps: 0,
    };
    let mut cursor = String::new();
    loop {
        let sent = Instant::now();
        if sent >= deadline {
            return Ok(tally);
        }
        let counted = sent >= counted_from;
        let mut query = vec![("limit", limit.as_str())];
        if !cursor.is_empty() {
            query.push(("cursor", cursor.as_str()));
        }
        let response = http
            .get(&url)
            .bearer_auth(&token)
            .query(&query)
            .send()
            .await;
        let body = match response {
            Ok(response) if response.status().is_success() => response.bytes().await.ok(),
            _ => None,
        };
        let elapsed = sent.elapsed();
        let page = body.and_then(|body| serde_json::from_slice::<PageEnd>(&body).ok());

        let Some(page) = page else {
            // A failed request starts the walk over, as a client would after an error.
            if counted {
                tally.errors += 1;
            }
            cursor.clear();
            tokio::time::sleep(ERROR_PAUSE).await;
            continue;
        };
        if counted {
            let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
            tally.latencies_us.saturating_record(micros.max(1));
        }
        if page.has_more {
            cursor = page.next_cursor;
        } else {
            cursor.clear();
            tally.wraps += 1;
        }
    }
}

/// A histogram of microseconds from 1 µs to 60 s with three significant digits.
fn new_histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 60_000_000, 3)?)
}
