//! Signing in from a browser: `POST /api/session` takes a token and keeps it in an `HttpOnly`,
//! `SameSite=Strict` cookie that the server then accepts wherever it accepts a bearer token;
//! `DELETE /api/session` signs out; `GET /api/whoami` says who the caller is and what it may do,
//! so that the UI shows only what the caller may use.

use crate::auth::{self, Auth, Caller, Scope, Via};
use crate::error::{ApiError, ErrorBody};
use crate::App;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

/// Who the caller is.
#[derive(Debug, Serialize, ToSchema)]
pub struct Identity {
    /// Always `Identity`.
    #[schema(example = "Identity")]
    pub kind: &'static str,
    /// The token's name; `null` when the server runs without authentication.
    pub name: Option<String>,
    /// `read` or `write`.
    #[schema(example = "write")]
    pub scope: &'static str,
    /// How the caller was authenticated: `none` (`--no-auth`), `bearer` or `cookie`.
    #[schema(example = "cookie")]
    pub auth: &'static str,
}

impl Identity {
    fn of(name: Option<String>, scope: Scope, via: Via) -> Identity {
        Identity {
            kind: "Identity",
            name,
            scope: scope.word(),
            auth: via.word(),
        }
    }
}

/// Says who the caller is: the token's name and scope (the web UI hides what the scope does
/// not allow).
#[utoipa::path(get, path = "/api/whoami", tag = "session",
    responses(
        (status = 200, description = "The caller", body = Identity),
        (status = 401, description = "No or unknown token", body = ErrorBody),
    ))]
pub async fn whoami(caller: Caller) -> Json<Identity> {
    Json(Identity::of(caller.name, caller.scope, caller.via))
}

/// Signs a browser in: the body is the token. When it is known, the answer sets the session
/// cookie (`HttpOnly; SameSite=Strict; Path=/`, and `Secure` behind HTTPS) that authenticates
/// the browser's next requests. Without authentication (`--no-auth`) no cookie is needed.
#[utoipa::path(post, path = "/api/session", tag = "session",
    request_body(description = "The token", content((String = "text/plain"))),
    responses(
        (status = 200, description = "Signed in; the cookie is set", body = Identity,
            headers(("Set-Cookie" = String, description = "The session cookie"))),
        (status = 401, description = "Not a known token", body = ErrorBody),
        (status = 403, description = "Sent from a page of another origin", body = ErrorBody),
    ))]
pub async fn sign_in(
    State(app): State<App>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    // Signing in from another site's page (login CSRF) is refused like any cross-site write.
    auth::same_origin(&headers, Via::Open)?;
    let body = body.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    let token = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("the token is not UTF-8 text"))?
        .trim();
    let tokens = match &app.auth {
        Auth::Disabled => {
            let me = Identity::of(None, Scope::Write, Via::Open);
            return Ok(Json(me).into_response());
        }
        Auth::Tokens(t) => t,
    };
    let Some((name, scope)) = tokens.check(token) else {
        tracing::info!("sign-in refused: unknown token");
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "unknown token"));
    };
    tracing::info!(name = %name, "signed in");
    let cookie = auth::session_cookie_for(token, auth::came_over_https(&headers));
    let me = Identity::of(Some(name), scope, Via::Cookie);
    Ok((
        [
            (header::SET_COOKIE, cookie),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        Json(me),
    )
        .into_response())
}

/// Signs a browser out: the answer removes the session cookie.
#[utoipa::path(delete, path = "/api/session", tag = "session",
    responses(
        (status = 204, description = "Signed out; the cookie is removed"),
        (status = 403, description = "Sent from a page of another origin", body = ErrorBody),
    ))]
pub async fn sign_out(headers: HeaderMap) -> Result<Response, ApiError> {
    auth::same_origin(&headers, Via::Open)?;
    let cookie = auth::session_cookie_cleared(auth::came_over_https(&headers));
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}
