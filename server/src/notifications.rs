//! Notifications as the API shows them: listed by state (`?state=dead` for dead letters), read
//! one by one, and dead letters sent again. The notifier (`chainr-notify`) does the sending;
//! this reads and writes the store's outbox only.

use crate::auth::{Caller, Scope};
use crate::error::{ApiError, ErrorBody};
use crate::App;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chainr_runtime::outbox::{Delivery, DeliveryState};
use serde::{Deserialize, Serialize};
use std::time::SystemTime;
use utoipa::{IntoParams, ToSchema};

/// A page of notifications, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationList {
    /// Always `NotificationList`.
    #[schema(example = "NotificationList")]
    pub kind: &'static str,
    #[schema(value_type = Vec<crate::openapi::DeliverySchema>)]
    pub items: Vec<Delivery>,
    /// The URL of the next page, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Which notifications to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NotificationParams {
    /// Only those in this state: `pending`, `sent`, `dead` or `skipped`.
    pub state: Option<String>,
    /// At most this many (1 to 1000; default 50).
    pub limit: Option<usize>,
    /// The cursor of the page to read (from `next`).
    pub after: Option<u64>,
}

/// Lists notifications, newest first; `?state=dead` lists the dead letters.
#[utoipa::path(get, path = "/api/notifications", tag = "notifications", params(NotificationParams),
    responses(
        (status = 200, description = "A page of notifications, newest first", body = NotificationList),
        (status = 400, description = "A bad state, limit or cursor", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
    ))]
pub async fn list(
    State(app): State<App>,
    caller: Caller,
    params: Result<Query<NotificationParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read, "listing notifications")?;
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = params.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and 1000, got {limit}"
        )));
    }
    let state = params
        .state
        .as_deref()
        .map(|s| s.parse::<DeliveryState>())
        .transpose()
        .map_err(ApiError::bad_request)?;
    let page = app.outbox.deliveries(state, params.after, limit).await?;
    let next = page.next.map(|after| {
        let mut url = format!("/api/notifications?limit={limit}&after={after}");
        if let Some(s) = state {
            url.push_str(&format!("&state={}", s.word()));
        }
        url
    });
    let mut response = Json(NotificationList {
        kind: "NotificationList",
        items: page.deliveries,
        next: next.clone(),
    })
    .into_response();
    if let Some(next) = next {
        if let Ok(v) = format!("<{next}>; rel=\"next\"").parse() {
            response.headers_mut().insert(header::LINK, v);
        }
    }
    Ok(response)
}

/// The most notifications of one run an answer holds.
const RUN_MAX: usize = 1000;

/// A run's notifications, newest first (at most 1,000).
#[utoipa::path(get, path = "/api/runs/{uid}/notifications", tag = "notifications",
    params(("uid" = String, Path, description = "The run's uid")),
    responses(
        (status = 200, description = "The run's notifications, newest first", body = NotificationList),
        (status = 404, description = "No run has this uid", body = ErrorBody),
    ))]
pub async fn of_run(
    State(app): State<App>,
    caller: Caller,
    Path(uid): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read, "listing notifications")?;
    let items = app.outbox.run_deliveries(&uid, RUN_MAX).await?;
    // A run with notifications exists; one without is read to say 404 when it does not.
    if items.is_empty() {
        app.run(&uid).await?;
    }
    Ok(Json(NotificationList {
        kind: "NotificationList",
        items,
        next: None,
    })
    .into_response())
}

async fn one(app: &App, id: &str) -> Result<Delivery, ApiError> {
    app.outbox
        .delivery(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no notification has id {id}")))
}

/// One notification and how its delivery goes.
#[utoipa::path(get, path = "/api/notifications/{id}", tag = "notifications",
    params(("id" = String, Path, description = "The notification's id")),
    responses(
        (status = 200, description = "The notification", body = crate::openapi::DeliverySchema),
        (status = 404, description = "No notification has this id", body = ErrorBody),
    ))]
pub async fn get(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read, "reading notifications")?;
    Ok(Json(one(&app, &id).await?).into_response())
}

/// Sends a dead letter again: it is pending at once, its attempts counted from zero, with the
/// same id (receivers that saw it before recognise it).
#[utoipa::path(post, path = "/api/notifications/{id}/resend", tag = "notifications",
    params(("id" = String, Path, description = "The notification's id")),
    responses(
        (status = 202, description = "Pending again", body = crate::openapi::DeliverySchema),
        (status = 403, description = "The token may only read", body = ErrorBody),
        (status = 404, description = "No notification has this id", body = ErrorBody),
        (status = 409, description = "Not a dead letter", body = ErrorBody),
    ))]
pub async fn resend(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Write, "resending a notification")?;
    let d = app.outbox.resend(&id, SystemTime::now()).await?;
    tracing::info!(notification = %id, by = ?caller.name, "resend requested");
    Ok((StatusCode::ACCEPTED, Json(d)).into_response())
}
