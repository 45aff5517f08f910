//! A fault-injecting HTTP proxy to put between a connector and its source.
//!
//! Every HTTP connector meets the same transport faults: rate limits with `Retry-After` in
//! either form, 5xx answers, reset connections, stalls past the client's timeout, bodies cut
//! short and answers that are not JSON. The proxy injects them in front of any source, a
//! sandbox or a real server, so no sandbox has to implement them. It forwards everything else
//! unchanged, and records when each request arrived, so tests can measure the waits between
//! attempts.
//!
//! Each request gets its own connection (no keep-alive), so a fault hits exactly one request.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The form of a `Retry-After` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    /// `Retry-After: <seconds>`.
    Seconds(u64),
    /// `Retry-After: <HTTP date>`, this many seconds from when the answer is sent.
    HttpDate(u64),
}

/// One fault, applied to one request instead of forwarding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answers with this status (and `Retry-After` when given), without asking the source.
    Status {
        status: u16,
        retry_after: Option<RetryAfter>,
    },
    /// Closes the connection without answering.
    Reset,
    /// Waits this long before forwarding, so that a client with a shorter timeout gives up.
    Stall(Duration),
    /// Forwards, then sends the first half of the source's body with a matching length.
    Truncate,
    /// Answers 200 with an HTML page instead of the source's JSON.
    NotJson,
    /// Forwards after this delay (a slow page, not a failure).
    Slow(Duration),
}

/// A fault and which requests it hits.
#[derive(Debug, Clone)]
pub struct Rule {
    pub fault: Fault,
    /// Requests (matching `path_contains`) that pass untouched before the fault starts.
    pub after: u32,
    /// How many matching requests the fault hits, once started.
    pub times: u32,
    /// Only requests whose path and query contain this text count; all when `None`.
    pub path_contains: Option<String>,
}

impl Rule {
    /// A rule that hits the next `times` requests.
    pub fn next(fault: Fault, times: u32) -> Rule {
        Rule {
            fault,
            after: 0,
            times,
            path_contains: None,
        }
    }

    /// Lets `after` matching requests pass first.
    pub fn after(mut self, after: u32) -> Rule {
        self.after = after;
        self
    }

    /// Counts only requests whose path and query contain `text`.
    pub fn on(mut self, text: &str) -> Rule {
        self.path_contains = Some(text.to_owned());
        self
    }
}

/// Random faults for soak runs: each request is hit with these probabilities.
#[derive(Debug, Clone, Default)]
pub struct Chaos {
    pub seed: u64,
    /// Connection closed without an answer.
    pub reset: f64,
    /// 503 with `Retry-After: 1`.
    pub unavailable: f64,
    /// 429 with `Retry-After` as an HTTP date one second ahead.
    pub rate_limited: f64,
    /// 500 without `Retry-After`.
    pub server_error: f64,
    /// Forwarded after 50 to 300 ms.
    pub slow: f64,
}

/// One request the proxy saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    /// Path and query.
    pub target: String,
    /// The fault applied, `None` when forwarded unchanged.
    pub fault: Option<Fault>,
}

/// Called with the number of a request (from 1) and its path and query, before it is handled;
/// the harness changes the source from here to race a listing in progress.
pub type Hook = Arc<dyn Fn(u64, String) -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

#[derive(Default)]
struct State {
    rules: VecDeque<Rule>,
    seen: Vec<Seen>,
    chaos: Option<(Chaos, StdRng)>,
    injected: std::collections::BTreeMap<&'static str, u64>,
    hook: Option<Hook>,
}

/// A running proxy. Stops when dropped.
pub struct FaultProxy {
    /// The proxy's address, e.g. `http://127.0.0.1:4321`.
    pub origin: String,
    state: Arc<Mutex<State>>,
    shutdown: CancellationToken,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (scheme, host and port; paths are kept as sent).
    pub async fn start(upstream: &str) -> FaultProxy {
        let upstream = url::Url::parse(upstream).expect("the upstream is a URL");
        let upstream = upstream.origin().ascii_serialization();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address: SocketAddr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let shutdown = CancellationToken::new();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let context = Arc::new(Context {
            upstream,
            client,
            state: state.clone(),
        });
        let stopped = shutdown.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = stopped.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((stream, _)) = accepted else { continue };
                let context = context.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let context = context.clone();
                        async move { context.handle(request).await }
                    });
                    // A reset fault ends the connection with an error; nothing to report.
                    let _ = http1::Builder::new()
                        .keep_alive(false)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FaultProxy {
            origin: format!("http://{address}"),
            state,
            shutdown,
        }
    }

    /// Rewrites `url` (of the upstream) to go through the proxy.
    pub fn route(&self, url: &str) -> String {
        let mut parsed = url::Url::parse(url).expect("a URL");
        let origin = url::Url::parse(&self.origin).unwrap();
        parsed.set_port(origin.port()).unwrap();
        parsed.set_host(origin.host_str()).unwrap();
        parsed.to_string().trim_end_matches('/').to_owned()
    }

    /// Adds a rule after the ones already queued; rules apply one at a time, in order.
    pub fn push(&self, rule: Rule) {
        self.lock().rules.push_back(rule);
    }

    /// Removes every queued rule and stops chaos.
    pub fn clear(&self) {
        let mut state = self.lock();
        state.rules.clear();
        state.chaos = None;
    }

    /// Hits requests at random from now on.
    pub fn chaos(&self, chaos: Chaos) {
        let rng = StdRng::seed_from_u64(chaos.seed);
        self.lock().chaos = Some((chaos, rng));
    }

    /// Calls `hook` before each request.
    pub fn hook(&self, hook: Option<Hook>) {
        self.lock().hook = hook;
    }

    /// The requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.lock().seen.clone()
    }

    /// Forgets the requests seen so far.
    pub fn forget(&self) {
        self.lock().seen.clear();
    }

    /// Faults injected so far, by kind.
    pub fn injected(&self) -> std::collections::BTreeMap<&'static str, u64> {
        self.lock().injected.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the connection tasks share.
struct Context {
    upstream: String,
    client: reqwest::Client,
    state: Arc<Mutex<State>>,
}

/// The error that makes hyper drop a connection without answering.
#[derive(Debug)]
struct ResetConnection;

impl std::fmt::Display for ResetConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset by the fault proxy")
    }
}

impl std::error::Error for ResetConnection {}

type ProxyBody = Full<Bytes>;

fn kind(fault: &Fault) -> &'static str {
    match fault {
        Fault::Status { status: 429, .. } => "rate_limited_429",
        Fault::Status { status: 503, .. } => "unavailable_503",
        Fault::Status { .. } => "server_error",
        Fault::Reset => "connection_reset",
        Fault::Stall(_) => "timeout",
        Fault::Truncate => "truncated_body",
        Fault::NotJson => "not_json",
        Fault::Slow(_) => "slow_page",
    }
}

impl Context {
    /// Picks the fault for a request, if any, and records it.
    fn decide(&self, target: &str) -> (Option<Fault>, Option<Hook>, u64) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let number = state.seen.len() as u64 + 1;
        let mut fault = None;
        if let Some(rule) = state.rules.front_mut() {
            let matches = rule
                .path_contains
                .as_deref()
                .is_none_or(|text| target.contains(text));
            if matches {
                if rule.after > 0 {
                    rule.after -= 1;
                } else {
                    fault = Some(rule.fault.clone());
                    rule.times = rule.times.saturating_sub(1);
                    if rule.times == 0 {
                        state.rules.pop_front();
                    }
                }
            }
        }
        if fault.is_none() {
            if let Some((chaos, rng)) = state.chaos.as_mut() {
                let roll: f64 = rng.gen();
                let mut edge = 0.0;
                let mut pick = |probability: f64, fault: Fault| {
                    edge += probability;
                    (roll < edge).then_some(fault)
                };
                let slow = Duration::from_millis(rng.gen_range(50..300));
                fault = pick(chaos.reset, Fault::Reset)
                    .or_else(|| {
                        pick(
                            chaos.unavailable,
                            Fault::Status {
                                status: 503,
                                retry_after: Some(RetryAfter::Seconds(1)),
                            },
                        )
                    })
                    .or_else(|| {
                        pick(
                            chaos.rate_limited,
                            Fault::Status {
                                status: 429,
                                retry_after: Some(RetryAfter::HttpDate(1)),
                            },
                        )
                    })
                    .or_else(|| {
                        pick(
                            chaos.server_error,
                            Fault::Status {
                                status: 500,
                                retry_after: None,
                            },
                        )
                    })
                    .or_else(|| pick(chaos.slow, Fault::Slow(slow)));
            }
        }
        if let Some(fault) = &fault {
            *state.injected.entry(kind(fault)).or_default() += 1;
        }
        state.seen.push(Seen {
            at: Instant::now(),
            target: target.to_owned(),
            fault: fault.clone(),
        });
        (fault, state.hook.clone(), number)
    }

    async fn handle(
        &self,
        request: Request<Incoming>,
    ) -> Result<Response<ProxyBody>, ResetConnection> {
        let target = request
            .uri()
            .path_and_query()
            .map(|pq| pq.as_str().to_owned())
            .unwrap_or_else(|| "/".to_owned());
        let (fault, hook, number) = self.decide(&target);
        if let Some(hook) = hook {
            hook(number, target.clone()).await;
        }
        match fault {
            Some(Fault::Status {
                status,
                retry_after,
            }) => {
                let mut response = Response::builder()
                    .status(status)
                    .header("content-type", "application/json");
                match retry_after {
                    Some(RetryAfter::Seconds(seconds)) => {
                        response = response.header("retry-after", seconds.to_string());
                    }
                    Some(RetryAfter::HttpDate(seconds)) => {
                        let at = chrono::Utc::now() + chrono::Duration::seconds(seconds as i64);
                        response = response.header(
                            "retry-after",
                            at.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
                        );
                    }
                    None => {}
                }
                let body = format!(r#"{{"error":"injected fault: status {status}"}}"#);
                Ok(response.body(Full::new(Bytes::from(body))).unwrap())
            }
            Some(Fault::Reset) => Err(ResetConnection),
            Some(Fault::NotJson) => Ok(Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "text/html")
                .body(Full::new(Bytes::from_static(
                    b"<html><body><h1>Maintenance</h1><p>Back soon.</p></body></html>",
                )))
                .unwrap()),
            Some(Fault::Stall(wait)) | Some(Fault::Slow(wait)) => {
                tokio::time::sleep(wait).await;
                self.forward(request, false).await
            }
            Some(Fault::Truncate) => self.forward(request, true).await,
            None => self.forward(request, false).await,
        }
    }

    async fn forward(
        &self,
        request: Request<Incoming>,
        truncate: bool,
    ) -> Result<Response<ProxyBody>, ResetConnection> {
        let (parts, body) = request.into_parts();
        let target = parts
            .uri
            .path_and_query()
            .map(|pq| pq.as_str())
            .unwrap_or("/");
        let body = body
            .collect()
            .await
            .map_err(|_| ResetConnection)?
            .to_bytes();
        let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes())
            .map_err(|_| ResetConnection)?;
        let mut outgoing = self
            .client
            .request(method, format!("{}{target}", self.upstream));
        for (name, value) in &parts.headers {
            // The Host header stays: a source that builds links from it (as Maximo builds
            // `nextPage` links) then points them back through the proxy.
            if matches!(name.as_str(), "connection" | "content-length") {
                continue;
            }
            outgoing = outgoing.header(name.as_str(), value.as_bytes());
        }
        let answer = outgoing
            .body(body)
            .send()
            .await
            .map_err(|_| ResetConnection)?;
        let mut response = Response::builder().status(answer.status().as_u16());
        for (name, value) in answer.headers() {
            if matches!(
                name.as_str(),
                "content-length" | "transfer-encoding" | "connection"
            ) {
                continue;
            }
            response = response.header(name.as_str(), value.as_bytes());
        }
        let mut bytes = answer.bytes().await.map_err(|_| ResetConnection)?;
        if truncate {
            bytes = bytes.slice(..bytes.len() / 2);
        }
        Ok(response.body(Full::new(bytes)).unwrap())
    }
}
