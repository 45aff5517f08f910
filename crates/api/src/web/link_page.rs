//! The Link page: a customer opens the URL of a link session, picks a system and a deployment
//! model, fills the system's credential form and is sent back to the operator's `redirect_uri`
//! with a one-time code once Millrace has checked the credentials live.
//!
//! The page never shows credit costs (they are the operator's business), never echoes a secret
//! field back, and works without its script (which only filters the catalogue as one types and
//! marks the form busy while the check runs).

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use millrace_model::{Deployment, LinkSession, LinkSessionStatus, SystemInfo};
use millrace_sync::{hash_token, ConnectRequest, SyncError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{PageError, PageForm, CONTENT_SECURITY_POLICY};
use crate::link::{connect_for_session, LinkFailure, LINK_URL_PREFIX};
use crate::AppState;

/// The query of the catalogue page: a search without the script.
#[derive(Debug, Deserialize)]
pub struct Search {
    q: Option<String>,
}

#[derive(Serialize)]
struct SystemChoice {
    id: String,
    name: String,
    vendor: String,
    category: String,
    href: String,
}

#[derive(Serialize)]
struct CategoryGroup {
    label: &'static str,
    systems: Vec<SystemChoice>,
}

/// The catalogue of the systems the session offers, grouped by category and searchable.
pub async fn systems(
    State(state): State<AppState>,
    Path(secret): Path<String>,
    Query(search): Query<Search>,
) -> Result<Response, PageError> {
    let session = open_session(&state, &secret).await?;
    let offered = offered_systems(&state, &session);
    if let [only] = offered.as_slice() {
        return Ok(Redirect::to(&format!("/link/{secret}/{}", only.id)).into_response());
    }

    let query = search.q.unwrap_or_default();
    let needle = query.trim().to_lowercase();
    let mut groups: BTreeMap<&'static str, Vec<SystemChoice>> = BTreeMap::new();
    for system in &offered {
        let category = category_label(system);
        let haystack = format!("{} {} {} {category}", system.name, system.vendor, system.id);
        if !needle.is_empty() && !haystack.to_lowercase().contains(&needle) {
            continue;
        }
        groups.entry(category).or_default().push(SystemChoice {
            id: system.id.clone(),
            name: system.name.clone(),
            vendor: system.vendor.clone(),
            category: category.to_owned(),
            href: format!("/link/{secret}/{}", system.id),
        });
    }
    let groups: Vec<CategoryGroup> = groups
        .into_iter()
        .map(|(label, systems)| CategoryGroup { label, systems })
        .collect();
    state.web.page(
        StatusCode::OK,
        "link_systems.html",
        minijinja::context! {
            title => "Connect a system",
            script => "link.js",
            query,
            groups,
            total => offered.len(),
        },
    )
}

/// The credential form of one system.
pub async fn form(
    State(state): State<AppState>,
    Path((secret, system_id)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let session = open_session(&state, &secret).await?;
    let system = offered_system(&state, &session, &system_id)?;
    render_form(
        &state,
        &secret,
        &session,
        &system,
        FormState::default(),
        StatusCode::OK,
    )
}

/// Checks the credentials live, connects, and sends the browser back to the operator.
pub async fn submit(
    State(state): State<AppState>,
    Path((secret, system_id)): Path<(String, String)>,
    PageForm(fields): PageForm<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    let session = open_session(&state, &secret).await?;
    let system = offered_system(&state, &session, &system_id)?;
    let field = |name: &str| {
        fields
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    state
        .web
        .check_csrf(&csrf_binding(&session), field("csrf").unwrap_or_default())?;

    let mut form = FormState {
        deployment: field("deployment").unwrap_or("cloud").to_owned(),
        ..FormState::default()
    };
    let mut credentials = Map::new();
    for credential in &system.credential_fields {
        let value = field(&format!("cred.{}", credential.name))
            .unwrap_or_default()
            .trim();
        if !credential.secret {
            form.values
                .insert(credential.name.clone(), value.to_owned());
        }
        if value.is_empty() {
            if credential.required {
                form.field_errors.insert(
                    credential.name.clone(),
                    format!("Enter the {}.", credential.label),
                );
            }
            continue;
        }
        credentials.insert(credential.name.clone(), Value::String(value.to_owned()));
    }
    let deployment = form.deployment.parse::<Deployment>();
    if deployment.is_err() {
        form.field_errors.insert(
            "deployment".to_owned(),
            "Choose where the system runs.".to_owned(),
        );
    }
    let Ok(deployment) = deployment else {
        form.error = Some("Some details are missing.".to_owned());
        return render_form(
            &state,
            &secret,
            &session,
            &system,
            form,
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    };
    if !form.field_errors.is_empty() {
        form.error = Some("Some details are missing.".to_owned());
        return render_form(
            &state,
            &secret,
            &session,
            &system,
            form,
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    }

    let request = ConnectRequest {
        customer_id: session.customer_id.clone(),
        system: system.id.clone(),
        deployment,
        credentials,
        name: None,
        lookback_days: None,
        sync_interval_seconds: None,
    };
    match connect_for_session(&state, &session, request).await {
        Ok(target) => Ok(Redirect::to(&target).into_response()),
        Err(LinkFailure::Closed(status)) => Err(closed(status)),
        Err(LinkFailure::Internal(err)) => Err(err.into()),
        Err(LinkFailure::Connect(err)) => {
            form.error = Some(explain(&system, &err)?);
            render_form(
                &state,
                &secret,
                &session,
                &system,
                form,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
        }
    }
}

/// What the form shows again after a failed submission (never a secret field's value).
#[derive(Default)]
struct FormState {
    deployment: String,
    values: BTreeMap<String, String>,
    field_errors: BTreeMap<String, String>,
    error: Option<String>,
}

fn render_form(
    state: &AppState,
    secret: &str,
    session: &LinkSession,
    system: &SystemInfo,
    form: FormState,
    status: StatusCode,
) -> Result<Response, PageError> {
    let several = offered_systems(state, session).len() > 1;
    let deployment = if form.deployment.is_empty() {
        "cloud".to_owned()
    } else {
        form.deployment
    };
    let mut response = state.web.page(
        status,
        "link_form.html",
        minijinja::context! {
            title => format!("Connect {}", system.name),
            script => "link.js",
            system => system,
            action => format!("/link/{secret}/{}", system.id),
            back => several.then(|| format!("/link/{secret}")),
            csrf => state.web.csrf_token(&csrf_binding(session)),
            deployment,
            values => form.values,
            field_errors => form.field_errors,
            error => form.error,
        },
    )?;
    // The form's answer redirects to the operator's site, which form-action must allow.
    let origin = url::Url::parse(&session.redirect_uri)
        .map(|url| url.origin().ascii_serialization())
        .unwrap_or_default();
    let policy = CONTENT_SECURITY_POLICY.replace(
        "form-action 'self'",
        &format!("form-action 'self' {origin}"),
    );
    if let Ok(value) = HeaderValue::from_str(&policy) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, value);
    }
    Ok(response)
}

/// Turns a failed connect into a sentence for the customer.
fn explain(system: &SystemInfo, err: &SyncError) -> Result<String, PageError> {
    let name = &system.name;
    let message = match err {
        SyncError::CredentialsRejected(_) => format!(
            "{name} refused these credentials. Check them (a password is case-sensitive) and \
             try again."
        ),
        SyncError::SourceUnreachable(detail) => format!(
            "Millrace could not reach {name} at the address given ({detail}). Check the URL, \
             and that the system accepts connections from Millrace."
        ),
        SyncError::SourceTimedOut(detail) => format!(
            "{name} did not answer in time ({detail}). Check the URL, or try again when the \
             system is less busy."
        ),
        SyncError::SourceFailed(detail) => {
            format!("{name} answered the check with an error: {detail}.")
        }
        SyncError::InvalidRequest(detail) => format!("Some details are not valid: {detail}."),
        SyncError::InsufficientCredits { .. } => "Your provider's plan has no room for another \
             connection right now. Please contact them."
            .to_owned(),
        other => return Err(PageError::internal(other)),
    };
    Ok(message)
}

/// Finds the pending session of a URL secret, or the page that says why there is none.
async fn open_session(state: &AppState, secret: &str) -> Result<LinkSession, PageError> {
    let not_found = || {
        PageError::new(
            StatusCode::NOT_FOUND,
            "This link is not valid",
            "Check that the whole link was copied, or ask for a new one.",
        )
    };
    if !secret.starts_with(LINK_URL_PREFIX) {
        return Err(not_found());
    }
    let session = state
        .engine
        .store()
        .link_session_by_url_token(&hash_token(secret))
        .await?
        .ok_or_else(not_found)?;
    match session.status {
        LinkSessionStatus::Pending => Ok(session),
        status => Err(closed(status)),
    }
}

fn closed(status: LinkSessionStatus) -> PageError {
    match status {
        LinkSessionStatus::Completed => PageError::new(
            StatusCode::GONE,
            "This link was already used",
            "A system was connected with it. Ask for a new link to connect another one.",
        ),
        _ => PageError::new(
            StatusCode::GONE,
            "This link has expired",
            "Ask for a new link to connect your system.",
        ),
    }
}

fn offered_systems(state: &AppState, session: &LinkSession) -> Vec<SystemInfo> {
    state
        .engine
        .registry()
        .iter()
        .map(|connector| connector.system().clone())
        .filter(|system| {
            session
                .systems
                .as_ref()
                .is_none_or(|offered| offered.contains(&system.id))
        })
        .collect()
}

fn offered_system(
    state: &AppState,
    session: &LinkSession,
    system_id: &str,
) -> Result<SystemInfo, PageError> {
    offered_systems(state, session)
        .into_iter()
        .find(|system| system.id == system_id)
        .ok_or_else(|| {
            PageError::new(
                StatusCode::NOT_FOUND,
                "This system is not offered here",
                "Go back to the list and pick one of the systems it shows.",
            )
        })
}

fn csrf_binding(session: &LinkSession) -> String {
    format!("link:{}", session.id)
}

fn category_label(system: &SystemInfo) -> &'static str {
    use millrace_model::SystemCategory::*;
    match system.category {
        Erp => "ERP",
        Cmms => "Maintenance (CMMS)",
        Eam => "Asset management (EAM)",
        Mes => "Manufacturing execution (MES)",
        Qms => "Quality (QMS)",
        Wms => "Warehouse (WMS)",
        Historian => "Historian",
    }
}
