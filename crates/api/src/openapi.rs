//! The OpenAPI 3.1 document and a reference page rendered from it on the server.

use std::fmt::Write as _;
use std::sync::OnceLock;

use axum::response::Html;
use axum::Json;
use millrace_model::objects::*;
use millrace_model::{connection, ObjectType, RecordEnvelope};
use utoipa::openapi::schema::{AllOfBuilder, Schema};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{RefOr, Server};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use crate::{link, management, problem, records, unified, webhooks};

#[derive(OpenApi)]
#[openapi(
    info(title = "Millrace", description = "One API for the data of industrial systems: \
        connect a system once, read its data in one model."),
    paths(
        unified::this_connection, unified::sync_now, unified::list, unified::get,
        management::systems, management::create, management::list, management::get,
        management::disconnect, management::rotate, management::delete_data,
        management::sync_now, management::runs, management::records, management::record,
        management::credits,
        webhooks::create, webhooks::list, webhooks::get, webhooks::delete, webhooks::deliveries,
        webhooks::retry,
        link::create, link::list, link::get, link::exchange,
    ),
    components(schemas(
        problem::Problem, records::RecordPage, RecordEnvelope,
        connection::Connection, connection::Stream, connection::StreamProgress,
        connection::SyncRun, connection::Credits, connection::LedgerEntry,
        millrace_model::SystemInfo, management::CreateConnection, management::Created,
        webhooks::CreateWebhook, webhooks::CreatedWebhook, millrace_model::WebhookEndpoint,
        millrace_model::WebhookDelivery, millrace_model::DeliveryAttempt,
        millrace_model::EventType, millrace_model::EndpointStatus, millrace_model::DeliveryStatus,
        link::CreateLinkSession, link::CreatedLinkSession, link::ExchangeCode,
        millrace_model::LinkSession, millrace_model::LinkSessionStatus,
    )),
    modifiers(&Security, &ObjectSchemas),
    tags(
        (name = "unified", description = "One connection's data, with that connection's token"),
        (name = "management", description = "The operator's endpoints, with the management key"),
        (name = "webhooks", description = "Webhook endpoints and deliveries, with the management \
            key. Each delivery is a POST of `{\"type\", \"timestamp\", \"data\"}` signed by the \
            Standard Webhooks scheme (`webhook-id`, `webhook-timestamp`, `webhook-signature`)"),
        (name = "link", description = "Link sessions, with the management key: send a customer to \
            the session's `url`; the Link page returns to `redirect_uri` with a one-time `code`, \
            which `POST /v1/link/token` exchanges once for the connection's token"),
    )
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, description) in [
            ("connection_token", "A connection's token (`mrc_...`)"),
            ("management_key", "The operator's management key"),
        ] {
            let scheme = HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(description))
                .build();
            components.add_security_scheme(name, SecurityScheme::Http(scheme));
        }
        openapi.servers = Some(vec![Server::new("/")]);
    }
}

/// Adds one `<Type>Record` schema per object type: the envelope plus the type's own fields.
struct ObjectSchemas;

fn object_schema(object: ObjectType) -> (String, RefOr<Schema>) {
    use ObjectType::*;
    let (name, schema) = match object {
        Sites => (Site::name(), Site::schema()),
        Locations => (Location::name(), Location::schema()),
        Assets => (Asset::name(), Asset::schema()),
        Parts => (Part::name(), Part::schema()),
        Vendors => (Vendor::name(), Vendor::schema()),
        Users => (User::name(), User::schema()),
        Meters => (Meter::name(), Meter::schema()),
        PreventiveMaintenance => (
            millrace_model::objects::PreventiveMaintenance::name(),
            millrace_model::objects::PreventiveMaintenance::schema(),
        ),
        Documents => (Document::name(), Document::schema()),
        WorkOrders => (WorkOrder::name(), WorkOrder::schema()),
        WorkRequests => (WorkRequest::name(), WorkRequest::schema()),
        PurchaseOrders => (PurchaseOrder::name(), PurchaseOrder::schema()),
        MeterReadings => (MeterReading::name(), MeterReading::schema()),
        AssetDowntimes => (AssetDowntime::name(), AssetDowntime::schema()),
        ProductionOrders => (ProductionOrder::name(), ProductionOrder::schema()),
        QualityEvents => (QualityEvent::name(), QualityEvent::schema()),
    };
    (name.into_owned(), schema)
}

impl Modify for ObjectSchemas {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut nested = Vec::new();
        for object in ObjectType::ALL {
            let (name, schema) = object_schema(*object);
            let record = AllOfBuilder::new()
                .item(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    "RecordEnvelope",
                )))
                .item(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    name.clone(),
                )))
                .description(Some(format!("A record of `/v1/{}`.", object.slug())))
                .build();
            components
                .schemas
                .insert(format!("{name}Record"), RefOr::T(Schema::AllOf(record)));
            components.schemas.insert(name, schema);
        }
        let mut schemas = Vec::new();
        <WorkOrder as ToSchema>::schemas(&mut schemas);
        <Part as ToSchema>::schemas(&mut schemas);
        <PurchaseOrder as ToSchema>::schemas(&mut schemas);
        <Asset as ToSchema>::schemas(&mut schemas);
        <WorkRequest as ToSchema>::schemas(&mut schemas);
        <Site as ToSchema>::schemas(&mut schemas);
        <User as ToSchema>::schemas(&mut schemas);
        nested.extend(schemas);
        for (name, schema) in nested {
            components.schemas.entry(name).or_insert(schema);
        }
    }
}

/// Returns the OpenAPI document, built once.
pub fn openapi() -> &'static utoipa::openapi::OpenApi {
    static DOCUMENT: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOCUMENT.get_or_init(ApiDoc::openapi)
}

/// Serves `/openapi.json`.
pub async fn document() -> Json<&'static utoipa::openapi::OpenApi> {
    Json(openapi())
}

/// Serves `/docs`: a readable reference rendered from the OpenAPI document.
pub async fn reference_page() -> Html<&'static str> {
    static PAGE: OnceLock<String> = OnceLock::new();
    Html(PAGE.get_or_init(|| render_reference(openapi())))
}

fn render_reference(doc: &utoipa::openapi::OpenApi) -> String {
    let mut html = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Millrace API reference</title><style>\
         body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;\
         line-height:1.5;color:#1b1f23}code{background:#f3f4f6;padding:0 .25rem}\
         .op{border-top:1px solid #ddd;padding:.75rem 0}.method{font-weight:700;\
         text-transform:uppercase;margin-right:.5rem}table{border-collapse:collapse}\
         td,th{border:1px solid #ddd;padding:.25rem .5rem;text-align:left}</style></head><body>",
    );
    let _ = write!(
        html,
        "<h1>{}</h1><p>{}</p><p>Machine-readable: <a href=\"/openapi.json\">/openapi.json</a>. \
         Errors are <code>application/problem+json</code> documents with a stable \
         <code>code</code>.</p><h2>Object types</h2><p>",
        escape(&doc.info.title),
        escape(doc.info.description.as_deref().unwrap_or_default()),
    );
    for object in ObjectType::ALL {
        let filters: Vec<&str> = records::filters_of(*object)
            .iter()
            .map(|(name, _)| *name)
            .collect();
        let _ = write!(
            html,
            "<code>/v1/{}</code> (filters: {})<br>",
            object.slug(),
            escape(&filters.join(", "))
        );
    }
    html.push_str("</p><h2>Endpoints</h2>");
    for (path, item) in &doc.paths.paths {
        let operations = [
            ("get", &item.get),
            ("post", &item.post),
            ("patch", &item.patch),
            ("delete", &item.delete),
        ];
        for (method, operation) in operations {
            let Some(operation) = operation else { continue };
            let _ = write!(
                html,
                "<div class=\"op\"><span class=\"method\">{method}</span><code>{}</code><p>{}</p>",
                escape(path),
                escape(
                    operation
                        .description
                        .as_deref()
                        .or(operation.summary.as_deref())
                        .unwrap_or_default()
                ),
            );
            if let Some(parameters) = &operation.parameters {
                html.push_str("<table><tr><th>parameter</th><th>in</th><th>about</th></tr>");
                for parameter in parameters {
                    let _ = write!(
                        html,
                        "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                        escape(&parameter.name),
                        match parameter.parameter_in {
                            utoipa::openapi::path::ParameterIn::Path => "path",
                            utoipa::openapi::path::ParameterIn::Query => "query",
                            utoipa::openapi::path::ParameterIn::Header => "header",
                            utoipa::openapi::path::ParameterIn::Cookie => "cookie",
                        },
                        escape(parameter.description.as_deref().unwrap_or_default()),
                    );
                }
                html.push_str("</table>");
            }
            html.push_str("</div>");
        }
    }
    html.push_str("</body></html>");
    html
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
