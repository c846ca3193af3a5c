//! The web UI: plain ES modules and a style sheet from `server/ui/`, embedded in the binary at
//! compile time (nothing is built, nothing is fetched from elsewhere at run time). Every page URL
//! (`/`, `/runs/{uid}`, `/runs/{uid}/jobs/{job}`, `/new`, `/signin`) answers the same shell,
//! whose script reads the URL and the API. Files are served under `/ui/VERSION/`, VERSION being
//! a hash of them all, so that browsers may keep them for ever and still never run a stale
//! mix of old and new files.

use crate::App;
use axum::extract::Path;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

macro_rules! files {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/ui/", $name)))),*]
    };
}

/// Every file of the UI, by name. (A test checks that `server/ui/` holds exactly these.)
pub const FILES: &[(&str, &[u8])] = files![
    "index.html",
    "style.css",
    "icon.svg",
    "app.js",
    "api.js",
    "dom.js",
    "format.js",
    "live.js",
    "record.js",
    "runs.js",
    "run.js",
    "graph.js",
    "timeline.js",
    "notifications.js",
    "job.js",
    "log.js",
    "ansi.js",
    "new.js",
    "signin.js",
];

/// The policy every UI answer carries: scripts, styles, images and connections from this
/// server only; no inline script or style; not to be framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// A hash of every file: the path segment that changes whenever any file does.
pub static VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut h = Sha256::new();
    for (name, bytes) in FILES {
        h.update(name.as_bytes());
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    }
    hex::encode(&h.finalize()[..6])
});

/// The shell, with its files' URLs under the current version.
static SHELL: LazyLock<String> = LazyLock::new(|| {
    let index = FILES
        .iter()
        .find(|(n, _)| *n == "index.html")
        .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    index.replace("/ui/VERSION/", &format!("/ui/{}/", *VERSION))
});

/// The UI's routes: the page URLs and the files.
pub(crate) fn routes() -> Router<App> {
    Router::new()
        .route("/", get(shell))
        .route("/new", get(shell))
        .route("/signin", get(shell))
        .route("/runs/{uid}", get(shell))
        .route("/runs/{uid}/jobs/{job}", get(shell))
        .route("/ui/{version}/{file}", get(file))
}

fn common_headers(response: &mut Response) {
    let headers = response.headers_mut();
    let set = |headers: &mut axum::http::HeaderMap, name: HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        CONTENT_SECURITY_POLICY,
    );
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, "same-origin");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
}

async fn shell() -> Response {
    let mut response = (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // Always asked again: it names the current version of every other file.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        SHELL.as_str(),
    )
        .into_response();
    common_headers(&mut response);
    response
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("html") => "text/html; charset=utf-8",
        _ => "application/octet-stream",
    }
}

async fn file(Path((version, name)): Path<(String, String)>) -> Response {
    let found = FILES.iter().find(|(n, _)| *n == name);
    let mut response = match found {
        Some((name, bytes)) if version == *VERSION => (
            [
                (header::CONTENT_TYPE, content_type(name)),
                // The URL changes with the content: keep it for a year.
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            *bytes,
        )
            .into_response(),
        // An old version's file (a page loaded before an upgrade): not kept, so not cached.
        _ => (
            StatusCode::NOT_FOUND,
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            format!("no UI file {name} in version {version}; reload the page\n"),
        )
            .into_response(),
    };
    common_headers(&mut response);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_in_the_ui_folder_is_embedded_and_nothing_else() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = FILES.iter().map(|(n, _)| n.to_string()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded, "server/ui/ and ui::FILES differ");
    }

    #[test]
    fn the_shell_names_files_of_the_current_version_only() {
        assert!(!SHELL.contains("/ui/VERSION/"));
        assert!(SHELL.contains(&format!("/ui/{}/app.js", *VERSION)));
        // No inline script or style: the policy would block it.
        assert!(!SHELL.contains("<script>"));
        assert!(!SHELL.contains("style="));
    }

    #[test]
    fn no_file_parses_html_from_strings_or_reaches_another_host() {
        for (name, bytes) in FILES {
            let text = String::from_utf8_lossy(bytes);
            for banned in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
            ] {
                assert!(!text.contains(banned), "{name} uses {banned}");
            }
            for scheme in ["http://", "https://", "//fonts.", "//cdn"] {
                let outside = text
                    .match_indices(scheme)
                    // The SVG namespace is a name, not a place that is fetched.
                    .filter(|(i, _)| !text[*i..].starts_with("http://www.w3.org/2000/svg"))
                    .count();
                assert_eq!(outside, 0, "{name} names {scheme}");
            }
        }
    }
}
