//! The pages Millrace serves to browsers: the Link page (a customer connects a system) and the
//! operator's dashboard.
//!
//! Pages render on the server from the minijinja templates under `templates/`, compiled into
//! the binary. Each page ships with its own stylesheet and small script from `/assets/`, and a
//! Content-Security-Policy that allows nothing from any other origin, no inline script or style
//! and no framing. Forms carry CSRF tokens: HMAC-SHA256 values bound to the dashboard session,
//! the pre-login cookie or the link session, under a key derived from the server's secrets.

pub mod dashboard;
pub mod link_page;

use axum::extract::{Path, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use minijinja::Environment;
use serde::Serialize;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The policy of every page: same-origin resources only, nothing inline, no framing.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../templates/base.html")),
    (
        "link_systems.html",
        include_str!("../../templates/link_systems.html"),
    ),
    (
        "link_form.html",
        include_str!("../../templates/link_form.html"),
    ),
    ("login.html", include_str!("../../templates/login.html")),
    (
        "dashboard.html",
        include_str!("../../templates/dashboard.html"),
    ),
    (
        "connections_live.html",
        include_str!("../../templates/connections_live.html"),
    ),
    (
        "connection.html",
        include_str!("../../templates/connection.html"),
    ),
    (
        "connection_live.html",
        include_str!("../../templates/connection_live.html"),
    ),
    ("confirm.html", include_str!("../../templates/confirm.html")),
    ("secret.html", include_str!("../../templates/secret.html")),
    (
        "link_sessions.html",
        include_str!("../../templates/link_sessions.html"),
    ),
    ("credits.html", include_str!("../../templates/credits.html")),
    (
        "webhooks.html",
        include_str!("../../templates/webhooks.html"),
    ),
];

/// What the pages share: the templates and the key that signs sessions and CSRF tokens.
pub struct Web {
    templates: Environment<'static>,
    key: Vec<u8>,
}

impl std::fmt::Debug for Web {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Web").finish_non_exhaustive()
    }
}

impl Web {
    /// Compiles the templates; the signing key is derived from the cursor secret and the
    /// management key's hash, so replacing the management key ends every dashboard session.
    pub fn new(cursor_secret: &[u8], admin_key_hash: &str) -> Web {
        let mut templates = Environment::new();
        for (name, source) in TEMPLATES {
            templates
                .add_template(name, source)
                .unwrap_or_else(|err| panic!("template {name} does not compile: {err}"));
        }
        templates.add_filter("when", when);
        let mut mac = HmacSha256::new_from_slice(cursor_secret).expect("HMAC takes any key");
        mac.update(b"millrace web key|");
        mac.update(admin_key_hash.as_bytes());
        Web {
            templates,
            key: mac.finalize().into_bytes().to_vec(),
        }
    }

    /// Renders a template to HTML text.
    pub(crate) fn render(&self, name: &str, context: impl Serialize) -> Result<String, PageError> {
        self.templates
            .get_template(name)
            .and_then(|template| template.render(context))
            .map_err(|err| PageError::internal(format!("template {name}: {err:#}")))
    }

    /// Renders a whole page with a status.
    pub(crate) fn page(
        &self,
        status: StatusCode,
        name: &str,
        context: impl Serialize,
    ) -> Result<Response, PageError> {
        Ok((status, Html(self.render(name, context)?)).into_response())
    }

    /// Returns the hex HMAC of `purpose` and `value` under the web key.
    pub(crate) fn sign(&self, purpose: &str, value: &str) -> String {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(purpose.as_bytes());
        mac.update(b"|");
        mac.update(value.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Checks in constant time that `signature` is [`Web::sign`] of `purpose` and `value`.
    pub(crate) fn verify(&self, purpose: &str, value: &str, signature: &str) -> bool {
        let Ok(bytes) = hex::decode(signature) else {
            return false;
        };
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(purpose.as_bytes());
        mac.update(b"|");
        mac.update(value.as_bytes());
        mac.verify_slice(&bytes).is_ok()
    }

    /// Returns the CSRF token of forms bound to `binding` (a session or link session).
    pub(crate) fn csrf_token(&self, binding: &str) -> String {
        self.sign("csrf", binding)
    }

    /// Checks a form's CSRF token against its binding.
    pub(crate) fn check_csrf(&self, binding: &str, token: &str) -> Result<(), PageError> {
        if self.verify("csrf", binding, token) {
            return Ok(());
        }
        Err(PageError::new(
            StatusCode::FORBIDDEN,
            "This form has expired",
            "The form was sent without its security token, or from another session. Reload the \
             page and send it again.",
        ))
    }
}

/// A page that failed: a status and a message a person can read.
#[derive(Debug)]
pub struct PageError {
    pub status: StatusCode,
    pub title: String,
    pub detail: String,
}

impl PageError {
    pub(crate) fn new(status: StatusCode, title: &str, detail: impl Into<String>) -> PageError {
        PageError {
            status,
            title: title.to_owned(),
            detail: detail.into(),
        }
    }

    /// Logs the cause and shows a generic page.
    pub(crate) fn internal(cause: impl std::fmt::Display) -> PageError {
        tracing::error!(error = %cause, "page failed");
        PageError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "Millrace could not show this page. Try again in a moment.",
        )
    }
}

impl From<crate::problem::ApiError> for PageError {
    fn from(err: crate::problem::ApiError) -> Self {
        if err.status.is_server_error() {
            return PageError::new(err.status, "Something went wrong", err.detail);
        }
        PageError::new(err.status, "This did not work", err.detail)
    }
}

impl From<millrace_store::StoreError> for PageError {
    fn from(err: millrace_store::StoreError) -> Self {
        PageError::internal(err)
    }
}

impl From<millrace_sync::SyncError> for PageError {
    fn from(err: millrace_sync::SyncError) -> Self {
        crate::problem::ApiError::from(err).into()
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let body = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{title} · Millrace</title>\
             <link rel=\"stylesheet\" href=\"/assets/millrace.css\"></head>\
             <body><main class=\"narrow\" id=\"main\"><h1>{title}</h1>\
             <p role=\"alert\">{detail}</p></main></body></html>",
            title = escape(&self.title),
            detail = escape(&self.detail),
        );
        (self.status, Html(body)).into_response()
    }
}

/// Escapes text for HTML (the one page not rendered from a template needs it).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
}

/// Adds the security headers every page carries, unless a handler set its own policy.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Link URLs and codes are secrets: no page sends its address on to another site.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// Form extractor whose rejections are readable pages.
#[derive(Debug, axum::extract::FromRequest)]
#[from_request(via(axum::Form), rejection(PageError))]
pub struct PageForm<T>(pub T);

impl From<axum::extract::rejection::FormRejection> for PageError {
    fn from(rejection: axum::extract::rejection::FormRejection) -> Self {
        PageError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "This form could not be read",
            format!(
                "{}. Go back, check the form and send it again.",
                rejection.body_text()
            ),
        )
    }
}

/// Serves the pages' stylesheet and scripts.
pub async fn asset(Path(name): Path<String>) -> Response {
    let (body, content_type) = match name.as_str() {
        "millrace.css" => (
            include_str!("../../assets/millrace.css"),
            "text/css; charset=utf-8",
        ),
        "link.js" => (
            include_str!("../../assets/link.js"),
            "text/javascript; charset=utf-8",
        ),
        "dashboard.js" => (
            include_str!("../../assets/dashboard.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// Template filter: an RFC 3339 time as `2024-03-01 12:34:56 UTC`, or `—` when absent.
fn when(value: Option<String>) -> String {
    value
        .and_then(|text| DateTime::parse_from_rfc3339(&text).ok())
        .map(|time| {
            time.with_timezone(&Utc)
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string()
        })
        .unwrap_or_else(|| "—".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles_and_signatures_verify() {
        let web = Web::new(b"secret", "hash");
        let token = web.csrf_token("session-1");
        assert!(web.check_csrf("session-1", &token).is_ok());
        assert!(web.check_csrf("session-2", &token).is_err());
        assert!(web.check_csrf("session-1", "not hex").is_err());
        let other_key = Web::new(b"secret", "another hash");
        assert!(other_key.check_csrf("session-1", &token).is_err());
    }

    #[test]
    fn times_read_well_and_absent_ones_show_a_dash() {
        assert_eq!(
            when(Some("2024-03-01T12:34:56.5+01:00".to_owned())),
            "2024-03-01 11:34:56 UTC"
        );
        assert_eq!(when(None), "—");
    }

    #[test]
    fn error_pages_escape_what_they_show() {
        assert_eq!(
            escape("<b>\"x\" & 'y'</b>"),
            "&lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/b&gt;"
        );
    }
}
