//! Tryton's JSON-RPC: one POST per call to `<server>/<database>/rpc/`, a session opened by
//! `common.db.login` and sent as `Authorization: Session base64(login:user id:session)`, and
//! errors either as HTTP statuses (401 for a refused login or an ended session, 404 for an
//! unknown database) or as `{"error": [name, arguments]}` in a 200 answer.
//!
//! Each call's method is repeated in the query string (`?method=model.stock.lot.search_read`).
//! Tryton reads only the body; the query makes every call recognisable in access logs and to
//! HTTP proxies, which see no bodies.

use std::time::Duration;

use base64::Engine as _;
use millrace_connector::http::{RetryPolicy, SourceHttp};
use millrace_connector::{ConnectorError, Credentials};
use serde_json::{json, Value};

/// The longest a login may take, when the retry policy allows less. Tryton verifies passwords
/// with argon2, which is slow on purpose (half a second of CPU on a small server), and a busy
/// server takes longer: a login gets more time than a data call.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(30);

/// One connection's JSON-RPC client: the server, the database and the user's session.
pub struct TrytonClient {
    http: SourceHttp,
    server: String,
    database: String,
    rpc_url: String,
    login: String,
    password: String,
    login_timeout: Duration,
    /// The open session; held across a login so that requests meeting an ended session
    /// together log in once.
    session: tokio::sync::Mutex<Option<Session>>,
}

/// An open session: the header that authenticates with it and the user's context (company,
/// language), which Tryton's own clients send with every call.
#[derive(Clone, PartialEq)]
struct Session {
    header: String,
    context: Value,
}

impl TrytonClient {
    /// Builds a client from a connection's credentials, without contacting the server.
    pub fn open(credentials: &Credentials) -> Result<Self, ConnectorError> {
        Self::with_policy(credentials, RetryPolicy::configured())
    }

    /// Like [`TrytonClient::open`], with its own timeouts and retries.
    pub fn with_policy(
        credentials: &Credentials,
        policy: RetryPolicy,
    ) -> Result<Self, ConnectorError> {
        let server = credentials
            .require("base_url")?
            .trim_end_matches('/')
            .to_owned();
        let parsed = url::Url::parse(&server).map_err(|err| {
            ConnectorError::InvalidCredentials(format!("`base_url` is not a URL: {err}"))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ConnectorError::InvalidCredentials(
                "`base_url` must be an http or https URL".to_owned(),
            ));
        }
        let database = credentials.require("database")?.to_owned();
        if database.contains(['/', '?', '#']) {
            return Err(ConnectorError::InvalidCredentials(
                "`database` is a database name, without `/`, `?` or `#`".to_owned(),
            ));
        }
        let login = credentials.require("username")?.to_owned();
        let password = credentials.require("password")?.to_owned();
        let encoded_database: String = url::form_urlencoded::byte_serialize(database.as_bytes())
            .collect::<String>()
            .replace('+', "%20");
        Ok(TrytonClient {
            login_timeout: LOGIN_TIMEOUT.max(policy.request_timeout),
            http: SourceHttp::new(policy, read_error)?,
            rpc_url: format!("{server}/{encoded_database}/rpc/"),
            server,
            database,
            login,
            password,
            session: tokio::sync::Mutex::new(None),
        })
    }

    /// Logs in, unless a session is open.
    pub async fn ensure_session(&self) -> Result<(), ConnectorError> {
        self.session().await.map(|_| ())
    }

    /// Calls `method` with `params`, adding the session's context as the last parameter.
    ///
    /// A call that meets an ended session (401) logs in again once and is repeated.
    pub async fn call(&self, method: &str, params: Vec<Value>) -> Result<Value, ConnectorError> {
        self.call_in(method, params, Value::Null).await
    }

    /// Like [`TrytonClient::call`], with `extra` (an object) added to the session's context.
    pub async fn call_in(
        &self,
        method: &str,
        mut params: Vec<Value>,
        extra: Value,
    ) -> Result<Value, ConnectorError> {
        let mut session = self.session().await?;
        let context_at = params.len();
        params.push(Value::Null);
        let mut renewed = false;
        loop {
            let mut context = session.context.clone();
            if let (Some(context), Value::Object(extra)) = (context.as_object_mut(), &extra) {
                context.extend(extra.clone());
            }
            params[context_at] = context;
            let body = json!({"id": 0, "method": method, "params": params});
            let answer = self
                .http
                .get_json(|client| {
                    client
                        .post(&self.rpc_url)
                        .query(&[("method", method)])
                        .header(reqwest::header::AUTHORIZATION, &session.header)
                        .json(&body)
                })
                .await;
            match answer {
                Ok(answer) => return read_result(method, answer),
                Err(ConnectorError::CredentialsRejected(_)) if !renewed => {
                    tracing::debug!(method, "tryton session ended, logging in again");
                    session = self.renew(&session).await?;
                    renewed = true;
                }
                Err(ConnectorError::CredentialsRejected(_)) => {
                    return Err(ConnectorError::CredentialsRejected(format!(
                        "Tryton refused a fresh session of `{}` for {method}",
                        self.login
                    )))
                }
                Err(other) => return Err(self.explain(other)),
            }
        }
    }

    async fn session(&self) -> Result<Session, ConnectorError> {
        let mut current = self.session.lock().await;
        if let Some(session) = current.as_ref() {
            return Ok(session.clone());
        }
        let fresh = self.log_in().await?;
        *current = Some(fresh.clone());
        Ok(fresh)
    }

    /// Replaces `ended` with a new session, unless another request already did.
    async fn renew(&self, ended: &Session) -> Result<Session, ConnectorError> {
        let mut current = self.session.lock().await;
        if let Some(session) = current.as_ref().filter(|session| *session != ended) {
            return Ok(session.clone());
        }
        *current = None;
        let fresh = self.log_in().await?;
        *current = Some(fresh.clone());
        Ok(fresh)
    }

    async fn log_in(&self) -> Result<Session, ConnectorError> {
        let body = json!({
            "id": 0,
            "method": "common.db.login",
            "params": [self.login, {"password": self.password}],
        });
        let answer = self
            .http
            .get_json(|client| {
                client
                    .post(&self.rpc_url)
                    .query(&[("method", "common.db.login")])
                    .timeout(self.login_timeout)
                    .json(&body)
            })
            .await
            .map_err(|err| match err {
                ConnectorError::CredentialsRejected(_) => {
                    ConnectorError::CredentialsRejected(format!(
                        "Tryton refused the login of `{}` to database `{}`: wrong user name or \
                         password, or the user is inactive",
                        self.login, self.database
                    ))
                }
                other => self.explain(other),
            })?;
        let result = read_result("common.db.login", answer)?;
        let (Some(user_id), Some(session)) = (result[0].as_i64(), result[1].as_str()) else {
            return Err(ConnectorError::Malformed(format!(
                "common.db.login answered {result}, not [user id, session]"
            )));
        };
        let token = format!("{}:{user_id}:{session}", self.login);
        let header = format!(
            "Session {}",
            base64::engine::general_purpose::STANDARD.encode(token)
        );

        // The user's preferences as context, as Tryton's clients send it: it names the
        // company, which company-bound records (productions, purchases) are read in.
        let preferences = json!({
            "id": 0,
            "method": "model.res.user.get_preferences",
            "params": [true, {}],
        });
        let answer = self
            .http
            .get_json(|client| {
                client
                    .post(&self.rpc_url)
                    .query(&[("method", "model.res.user.get_preferences")])
                    .header(reqwest::header::AUTHORIZATION, &header)
                    .json(&preferences)
            })
            .await
            .map_err(|err| self.explain(err))?;
        let context = read_result("model.res.user.get_preferences", answer)?;
        if !context.is_object() {
            return Err(ConnectorError::Malformed(format!(
                "the user's preferences are {context}, not an object"
            )));
        }
        Ok(Session { header, context })
    }

    /// Words an HTTP failure in Tryton's terms.
    fn explain(&self, err: ConnectorError) -> ConnectorError {
        match err {
            ConnectorError::Status { status: 404, .. } => {
                ConnectorError::InvalidCredentials(format!(
                    "the Tryton server at {} has no database `{}` (or is not a Tryton server)",
                    self.server, self.database
                ))
            }
            ConnectorError::Unreachable(detail) => ConnectorError::Unreachable(format!(
                "cannot reach the Tryton server at {}: {detail}",
                self.server
            )),
            other => other,
        }
    }
}

/// Reads a JSON-RPC answer: its `result`, or Tryton's error as a connector error.
fn read_result(method: &str, mut answer: Value) -> Result<Value, ConnectorError> {
    if let Some(error) = answer.get("error").filter(|error| !error.is_null()) {
        return Err(tryton_error(method, error));
    }
    match answer.get_mut("result") {
        Some(result) => Ok(result.take()),
        None => Err(ConnectorError::Malformed(format!(
            "the answer to {method} has neither `result` nor `error`"
        ))),
    }
}

/// Maps Tryton's `[name, arguments]` error. `AccessError` means the user may not read what the
/// connector reads: its credentials will not do, as with a refused login. Other errors
/// (`UserError`, a model missing because its module is not activated, a server bug) do not
/// go away by retrying; they keep the 200 status Tryton answered them with.
fn tryton_error(method: &str, error: &Value) -> ConnectorError {
    let name = error[0].as_str().unwrap_or("error");
    let message = match &error[1] {
        Value::Array(arguments) => arguments
            .iter()
            .filter_map(Value::as_str)
            .filter(|text| !text.is_empty())
            .collect::<Vec<_>>()
            .join(" "),
        Value::String(text) => text.clone(),
        _ => String::new(),
    };
    let detail = if message.is_empty() {
        format!("Tryton raised {name} in {method}")
    } else {
        format!("Tryton raised {name} in {method}: {message}")
    };
    if name.starts_with('\'') && message.is_empty() {
        // Tryton names a model (or method) it does not know, quoted, and nothing else.
        return ConnectorError::Status {
            status: 200,
            detail: format!(
                "Tryton does not know {name} ({method}): is its module activated in this \
                 database?"
            ),
        };
    }
    match name {
        "AccessError" | "AccessButtonError" => ConnectorError::CredentialsRejected(detail),
        _ => ConnectorError::Status {
            status: 200,
            detail,
        },
    }
}

/// Reads an error body: Tryton answers HTTP errors with HTML or nothing, so only a JSON-RPC
/// error is worth reading.
fn read_error(body: &Value) -> Option<String> {
    let error = body.get("error")?;
    Some(format!("{} {}", error[0].as_str()?, error[1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials(fields: Value) -> Credentials {
        Credentials::new(fields.as_object().unwrap().clone())
    }

    #[test]
    fn credentials_need_a_url_a_database_and_a_user() {
        let good = json!({"base_url": "http://erp.example:8000/", "database": "plant one",
                          "username": "sync", "password": "s"});
        let client = TrytonClient::open(&credentials(good.clone())).unwrap();
        assert_eq!(client.rpc_url, "http://erp.example:8000/plant%20one/rpc/");

        for (field, value, expected) in [
            ("base_url", json!("ftp://erp"), "http or https"),
            ("base_url", json!("not a url"), "not a URL"),
            ("database", json!("a/b"), "database name"),
            ("database", json!(""), "`database` is required"),
            ("password", json!(null), "`password` is required"),
        ] {
            let mut fields = good.clone();
            fields[field] = value;
            let err = TrytonClient::open(&credentials(fields)).err().unwrap();
            assert!(
                matches!(err, ConnectorError::InvalidCredentials(_)),
                "{err}"
            );
            assert!(err.to_string().contains(expected), "{err}");
        }
    }

    #[test]
    fn tryton_errors_keep_their_name_and_message() {
        let user_error = json!([
            "UserError",
            ["You are trying to read records \"9\".", "", null]
        ]);
        let err = read_result(
            "model.stock.lot.read",
            json!({"id": 0, "error": user_error}),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the source answered 200: Tryton raised UserError in model.stock.lot.read: \
             You are trying to read records \"9\"."
        );
        assert!(!err.is_transient());

        let access = json!([
            "AccessError",
            ["You are not allowed to access \"Lot\".", ""]
        ]);
        let err = read_result("m", json!({"error": access})).unwrap_err();
        assert!(
            matches!(err, ConnectorError::CredentialsRejected(_)),
            "{err}"
        );

        let unknown_model = json!(["'quality.inspection'", ""]);
        let err = read_result(
            "model.quality.inspection.search_read",
            json!({"error": unknown_model}),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("Tryton does not know 'quality.inspection'"),
            "{err}"
        );
        assert!(err.to_string().contains("module activated"), "{err}");

        let err = read_result("m", json!({"id": 0})).unwrap_err();
        assert!(matches!(err, ConnectorError::Malformed(_)), "{err}");
        assert_eq!(
            read_result("m", json!({"id": 0, "result": [1, 2]})).unwrap(),
            json!([1, 2])
        );
    }
}
