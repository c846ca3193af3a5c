//! The OpenAPI 3 document, generated: paths and the API's own types from the handlers'
//! annotations (utoipa), the Pipeline IR, the Run document and the graph's layout from their
//! Rust types (schemars, the same generator as `docs/pipeline.schema.json`). The routes are registered together with
//! their documentation, so a route cannot exist without its entry.

use crate::runs::Resource;
use crate::App;
use std::borrow::Cow;
use std::sync::LazyLock;
use utoipa::openapi::{Ref, RefOr, Schema};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "chainr",
        description = "Chain container jobs: submit pipelines, watch their runs, read their logs. \
                       Authenticate with `Authorization: Bearer TOKEN` (or, from a browser, the cookie \
                       `POST /api/session` sets); a `read` token reads, a `write` token also submits, \
                       cancels and retries."
    ),
    tags(
        (name = "runs", description = "Submit, list, read, cancel and retry runs"),
        (name = "logs", description = "Attempts' output"),
        (name = "events", description = "Live changes as server-sent events"),
        (name = "session", description = "Who the caller is; signing a browser in and out"),
    ),
    modifiers(&Security)
)]
struct Doc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        };
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        // The web UI's session (`POST /api/session`): either one authenticates.
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::auth::SESSION_COOKIE,
                "The token, as POST /api/session sets it; writes must carry a same-origin Origin",
            ))),
        );
        doc.security = Some(vec![
            SecurityRequirement::new("bearer", Vec::<String>::new()),
            SecurityRequirement::new("session", Vec::<String>::new()),
        ]);
    }
}

/// Every API route, each with its documentation.
pub(crate) fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::with_openapi(Doc::openapi())
        .routes(routes!(crate::runs::resources))
        .routes(routes!(crate::runs::list, crate::runs::submit))
        .routes(routes!(crate::runs::get))
        .routes(routes!(crate::runs::pipeline))
        .routes(routes!(crate::runs::cancel))
        .routes(routes!(crate::runs::retry))
        .routes(routes!(crate::events::all_events))
        .routes(routes!(crate::runs::check))
        .routes(routes!(crate::logs::logs))
        .routes(routes!(crate::events::run_events))
        .routes(routes!(crate::session::whoami))
        .routes(routes!(crate::session::sign_in, crate::session::sign_out))
        .routes(routes!(crate::graph::graph))
        .routes(routes!(crate::notifications::list))
        .routes(routes!(crate::notifications::get))
        .routes(routes!(crate::notifications::resend))
        .routes(routes!(crate::notifications::of_run))
}

/// The Run document (the fold of a run's events), as the API answers it. Its schema comes
/// from the Rust type (`chainr_runtime::record::Run`).
pub struct RunSchema;

/// The Pipeline IR, the original chainr's JSON and its superset (docs/ir.md). Its schema comes
/// from the Rust type (`chainr_compiler::ir::Pipeline`).
pub struct PipelineSchema;

/// A notification and how its delivery goes. Its schema comes from the Rust type
/// (`chainr_runtime::outbox::Delivery`).
pub struct DeliverySchema;

/// The layout of a run's graph. Its schema comes from the Rust type
/// (`chainr_runtime::layout::Layout`).
pub struct LayoutSchema;

macro_rules! schema_by_name {
    ($t:ty, $name:literal) => {
        impl utoipa::PartialSchema for $t {
            fn schema() -> RefOr<Schema> {
                RefOr::Ref(Ref::from_schema_name($name))
            }
        }
        impl utoipa::ToSchema for $t {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
        }
    };
}
schema_by_name!(RunSchema, "Run");
schema_by_name!(PipelineSchema, "Pipeline");
schema_by_name!(LayoutSchema, "Layout");
schema_by_name!(DeliverySchema, "Delivery");

/// The whole document as JSON.
pub fn openapi() -> serde_json::Value {
    let (_, doc) = routes().split_for_parts();
    let mut value = serde_json::to_value(&doc).unwrap_or_default();
    // The Run document and the Pipeline IR: the schemas their types generate, with everything
    // they refer to, under components.
    let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
    let run = generator.subschema_for::<chainr_runtime::record::Run>();
    let pipeline = generator.subschema_for::<chainr_compiler::ir::Pipeline>();
    let layout = generator.subschema_for::<chainr_runtime::layout::Layout>();
    let delivery = generator.subschema_for::<chainr_runtime::outbox::Delivery>();
    let mut defs = generator.take_definitions(true);
    for (name, schema) in [
        ("Run", run),
        ("Pipeline", pipeline),
        ("Layout", layout),
        ("Delivery", delivery),
    ] {
        // A type that is not referenceable comes inline; keep it under its name.
        if schema.get("$ref").is_none() {
            defs.insert(name.to_string(), schema.to_value());
        }
    }
    if let Some(schemas) = value
        .pointer_mut("/components/schemas")
        .and_then(|s| s.as_object_mut())
    {
        for (name, schema) in defs {
            schemas.insert(name, schema);
        }
    }
    value
}

static DOCUMENT: LazyLock<String> =
    LazyLock::new(|| serde_json::to_string_pretty(&openapi()).unwrap_or_default());

pub(crate) fn document_text() -> &'static str {
    &DOCUMENT
}

/// The API's resources: the document's paths with their methods and summaries.
pub(crate) fn resources() -> Vec<Resource> {
    static RESOURCES: LazyLock<Vec<(String, Vec<String>, String)>> = LazyLock::new(|| {
        let doc = openapi();
        let mut out = Vec::new();
        if let Some(paths) = doc.get("paths").and_then(|p| p.as_object()) {
            for (path, item) in paths {
                let Some(item) = item.as_object() else {
                    continue;
                };
                let methods: Vec<String> = item.keys().map(|m| m.to_ascii_uppercase()).collect();
                let summary = item
                    .values()
                    .find_map(|op| op.get("summary").and_then(|s| s.as_str()))
                    .unwrap_or("")
                    .to_string();
                out.push((path.clone(), methods, summary));
            }
        }
        out
    });
    RESOURCES
        .iter()
        .map(|(path, methods, summary)| Resource {
            path: path.clone(),
            methods: methods.clone(),
            summary: summary.clone(),
        })
        .collect()
}
