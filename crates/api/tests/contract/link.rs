//! Link sessions end to end over HTTP (the browser version is `tests/browser`): input checks,
//! the Link page's form against a Maximo sandbox, the one-time code exchange, refusals of a
//! second use and of another management key, and secrets kept out of pages and logs.

use millrace_api::ApiConfig;
use millrace_connector::SandboxOptions;
use millrace_sync::hash_token;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::receiver::Logs;
use crate::support::{Harness, ADMIN_KEY};

const REDIRECT: &str = "https://vendor.example/millrace/callback?tenant=7";

/// A client that shows redirects instead of following them, as a test of the Link page needs.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Returns the value of the hidden `csrf` input of a page.
fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("the page has a CSRF field") + marker.len();
    let end = start + html[start..].find('"').unwrap();
    html[start..end].to_owned()
}

async fn create_session(h: &Harness, body: Value) -> (Value, String) {
    let reply = h.admin(Method::POST, "/v1/link-sessions", Some(body)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let url = reply.body["url"].as_str().unwrap().to_owned();
    (reply.body["link_session"].clone(), url)
}

/// Submits the Link page's form for Maximo; returns the answer's status, `Location` and body.
async fn submit(url: &str, api_key: &str, base_url: &str) -> (StatusCode, Option<String>, String) {
    let client = browser();
    let form_url = format!("{url}/ibm_maximo");
    let page = client.get(&form_url).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    let answer = client
        .post(&form_url)
        .form(&[
            ("csrf", csrf_of(&html).as_str()),
            ("deployment", "cloud"),
            ("cred.base_url", base_url),
            ("cred.api_key", api_key),
        ])
        .send()
        .await
        .unwrap();
    let status = answer.status();
    let location = answer
        .headers()
        .get("location")
        .map(|value| value.to_str().unwrap().to_owned());
    (status, location, answer.text().await.unwrap())
}

async fn exchange(h: &Harness, key: &str, base: &str, code: &str) -> crate::support::Reply {
    let response = h
        .http
        .post(format!("{base}/v1/link/token"))
        .bearer_auth(key)
        .json(&json!({ "code": code }))
        .send()
        .await
        .unwrap();
    crate::support::Reply::read(response).await
}

pub async fn link_sessions_refuse_bad_input(h: &mut Harness) {
    for (body, code) in [
        (json!({"redirect_uri": REDIRECT}), "invalid_request"),
        (
            json!({"customer_id": " ", "redirect_uri": REDIRECT}),
            "invalid_request",
        ),
        (json!({"customer_id": "acme"}), "invalid_request"),
        (
            json!({"customer_id": "acme", "redirect_uri": "ftp://x/y"}),
            "invalid_request",
        ),
        (
            json!({"customer_id": "acme", "redirect_uri": "/relative"}),
            "invalid_request",
        ),
        (
            json!({"customer_id": "acme", "redirect_uri": "https://x.test/#frag"}),
            "invalid_request",
        ),
        (
            json!({"customer_id": "acme", "redirect_uri": "https://x.test/?code=1"}),
            "invalid_request",
        ),
        (
            json!({"customer_id": "acme", "redirect_uri": REDIRECT, "systems": []}),
            "invalid_request",
        ),
        (
            json!({"customer_id": "acme", "redirect_uri": REDIRECT, "systems": ["sap_r2"]}),
            "unknown_system",
        ),
        (
            json!({"customer_id": "acme", "redirect_uri": REDIRECT, "expires_in_seconds": 5}),
            "invalid_request",
        ),
        (
            json!({"customer_id": "acme", "redirect_uri": REDIRECT, "colour": "red"}),
            "invalid_request",
        ),
    ] {
        let reply = h
            .admin(Method::POST, "/v1/link-sessions", Some(body.clone()))
            .await;
        reply.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, code);
    }
    let listed = h.admin_get("/v1/link-sessions").await;
    assert_eq!(
        listed["data"],
        json!([]),
        "a refused request creates nothing"
    );

    let reply = h
        .call(None, Method::POST, "/v1/link-sessions", Some(json!({})))
        .await;
    reply.assert_problem(StatusCode::UNAUTHORIZED, "unauthorized");
    let reply = h
        .admin(
            Method::POST,
            "/v1/link/token",
            Some(json!({"code": "mrlc_nope"})),
        )
        .await;
    reply.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_code");
    let reply = h
        .admin(
            Method::POST,
            "/v1/link/token",
            Some(json!({"code": "nope"})),
        )
        .await;
    reply.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "invalid_code");

    let page = browser()
        .get(format!("{}/link/mrl_0000", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    assert!(page
        .text()
        .await
        .unwrap()
        .contains("This link is not valid"));
}

pub async fn a_link_code_is_exchanged_once_for_a_working_token(h: &mut Harness) {
    let logs = Logs::capture();
    let sandbox = h.sandbox(SandboxOptions::default()).await;
    let credentials = h.credentials(sandbox);
    let base_url = credentials["base_url"].as_str().unwrap().to_owned();
    let api_key = credentials["api_key"].as_str().unwrap().to_owned();

    let (session, url) = create_session(
        h,
        json!({"customer_id": "acme", "systems": ["ibm_maximo"], "redirect_uri": REDIRECT,
               "state": "s t&ate", "expires_in_seconds": 600}),
    )
    .await;
    assert_eq!(session["status"], "pending");
    assert_eq!(session["customer_id"], "acme");
    assert_eq!(session["systems"], json!(["ibm_maximo"]));
    assert_eq!(session["connection_id"], Value::Null);
    let url_secret = url.rsplit('/').next().unwrap().to_owned();
    assert!(url.starts_with(&h.base), "{url}");
    assert!(
        url_secret.starts_with("mrl_") && url_secret.len() == 68,
        "{url}"
    );
    let id = session["id"].as_str().unwrap();
    let fetched = h.admin_get(&format!("/v1/link-sessions/{id}")).await;
    assert_eq!(fetched, session);
    assert!(!fetched.to_string().contains(&url_secret));

    // One offered system: the catalogue goes straight to its form.
    let page = browser().get(&url).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");

    // A wrong key shows an error, keeps the URL, and echoes no secret.
    let (status, location, html) = submit(&url, "wrong-key-1234", &base_url).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(location, None);
    assert!(html.contains("refused these credentials"), "{html}");
    assert!(
        html.contains(&base_url.replace('/', "&#x2f;")),
        "the URL is kept"
    );
    assert!(!html.contains("wrong-key-1234"));
    let listed = h.admin_get("/v1/connections").await;
    assert_eq!(
        listed["data"],
        json!([]),
        "rejected credentials create nothing"
    );

    // The right key connects and sends the browser back with a code and the state.
    let (status, location, _) = submit(&url, &api_key, &base_url).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let location = reqwest::Url::parse(&location.unwrap()).unwrap();
    assert_eq!(location.host_str(), Some("vendor.example"));
    assert_eq!(location.path(), "/millrace/callback");
    let query: Vec<(String, String)> = location.query_pairs().into_owned().collect();
    assert_eq!(query[0], ("tenant".to_owned(), "7".to_owned()));
    assert_eq!(query[2], ("state".to_owned(), "s t&ate".to_owned()));
    let code = query[1].1.clone();
    assert_eq!(query[1].0, "code");
    assert!(code.starts_with("mrlc_"), "{code}");

    // The link is used up.
    let again = browser()
        .get(format!("{url}/ibm_maximo"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::GONE);
    let again = again.text().await.unwrap();
    assert!(again.contains("already used"));
    assert!(!again.contains(&api_key));
    let session = h.admin_get(&format!("/v1/link-sessions/{id}")).await;
    assert_eq!(session["status"], "completed");
    let connection_id = session["connection_id"].as_str().unwrap().to_owned();

    // A code is refused to another management key.
    let other = other_operator(h).await;
    let reply = exchange(h, "another-operators-key", &other, &code).await;
    reply.assert_problem(StatusCode::FORBIDDEN, "forbidden");

    // The exchange answers the connection and its token, once.
    let reply = exchange(h, ADMIN_KEY, &h.base, &code).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["connection"]["id"], connection_id);
    assert_eq!(reply.body["connection"]["customer_id"], "acme");
    let token = reply.body["token"].as_str().unwrap().to_owned();
    let this = h.token_get(&token, "/v1/connection").await;
    assert_eq!(this["id"], connection_id);
    let reply = exchange(h, ADMIN_KEY, &h.base, &code).await;
    reply.assert_problem(StatusCode::CONFLICT, "code_used");
    let session = h.admin_get(&format!("/v1/link-sessions/{id}")).await;
    assert!(session["exchanged_at"].is_string());
    h.wait_idle(&connection_id).await;

    // None of the secrets reached a log line.
    let text = logs.text();
    assert!(
        text.contains("link session completed"),
        "the capture holds the logs"
    );
    for (secret, what) in [
        (api_key.as_str(), "the API key"),
        (url_secret.as_str(), "the link URL's secret"),
        (code.as_str(), "the code"),
        (token.as_str(), "the token"),
        (ADMIN_KEY, "the management key"),
    ] {
        assert!(!text.contains(secret), "{what} appears in the logs");
    }
}

/// Serves the same engine under another management key; returns its base URL.
async fn other_operator(h: &Harness) -> String {
    let config = ApiConfig {
        admin_key_hash: hash_token("another-operators-key"),
        cursor_secret: b"another cursor secret".to_vec(),
        rate_limit_per_second: 0,
    };
    let app = millrace_api::router(h.engine().clone(), &config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}
