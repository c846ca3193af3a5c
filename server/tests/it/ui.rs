//! The web UI as the server answers it: the shell at every page URL, the embedded files with
//! their headers, signing in with a cookie, the guard against cross-site writes, and the API
//! the UI added (`whoami`, a run's pipeline, the document's last event).

use crate::api::{open, started, with_tokens, READER, SEED, WRITER};
use axum::body::Body;
use axum::http::{header, Request, StatusCode};

/// The shell's script URL: `/ui/VERSION/app.js`.
fn script_url(shell: &str) -> String {
    let end = shell.find("/app.js").expect("the shell names its script") + "/app.js".len();
    let start = shell[..end].rfind('"').unwrap() + 1;
    shell[start..end].to_string()
}

#[tokio::test]
async fn every_page_url_answers_the_shell_with_a_strict_policy() {
    let app = open();
    for path in [
        "/",
        "/new",
        "/signin",
        "/runs/some-uid",
        "/runs/some-uid/jobs/build",
        "/runs/some-uid/jobs/%3Cb%3E",
    ] {
        let a = app.get(path).await;
        assert_eq!(a.status, StatusCode::OK, "{path}");
        assert_eq!(a.header(header::CONTENT_TYPE), "text/html; charset=utf-8");
        let csp = a.header(header::CONTENT_SECURITY_POLICY);
        assert!(csp.contains("default-src 'self'"), "{csp}");
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert_eq!(a.header(header::X_CONTENT_TYPE_OPTIONS), "nosniff");
        assert_eq!(a.header(header::CACHE_CONTROL), "no-cache");
        assert!(a.text().contains("<main id=\"main\""));
    }
    // Other paths are not pages.
    assert_eq!(app.get("/runs").await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.get("/nothing").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn files_are_served_by_version_for_ever_and_old_versions_are_gone() {
    let app = open();
    let shell = app.get("/").await.text();
    let url = script_url(&shell);
    let a = app.get(&url).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.header(header::CONTENT_TYPE),
        "text/javascript; charset=utf-8"
    );
    assert_eq!(
        a.header(header::CACHE_CONTROL),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(a.header(header::X_CONTENT_TYPE_OPTIONS), "nosniff");
    assert!(a.text().contains("import"));
    let css = app.get(&url.replace("app.js", "style.css")).await;
    assert_eq!(css.header(header::CONTENT_TYPE), "text/css; charset=utf-8");
    let old = app.get("/ui/000000000000/app.js").await;
    assert_eq!(old.status, StatusCode::NOT_FOUND);
    assert_eq!(old.header(header::CACHE_CONTROL), "no-store");
    let missing = app.get(&url.replace("app.js", "nope.js")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

/// A request with these headers.
fn request(method: &str, uri: &str, headers: &[(&str, &str)], body: &str) -> Request<Body> {
    let mut r = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.body(Body::from(body.to_string())).unwrap()
}

#[tokio::test]
async fn a_token_signs_a_browser_in_with_an_http_only_strict_cookie() {
    let app = with_tokens();
    let a = app
        .send(request("POST", "/api/session", &[], "not-a-known-token"))
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.headers.get(header::SET_COOKIE).is_none());
    let a = app
        .send(request(
            "POST",
            "/api/session",
            &[("origin", "http://chainr.test"), ("host", "chainr.test")],
            &format!("{WRITER}\n"),
        ))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.json()["name"], "ci");
    assert_eq!(a.json()["scope"], "write");
    let cookie = a.header(header::SET_COOKIE).to_string();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    assert!(!cookie.contains(WRITER), "the token is encoded: {cookie}");
    let pair = cookie.split(';').next().unwrap().to_string();

    // The cookie authenticates wherever a bearer token does.
    let who = app
        .send(request("GET", "/api/whoami", &[("cookie", &pair)], ""))
        .await;
    assert_eq!(who.status, StatusCode::OK);
    assert_eq!(who.json()["name"], "ci");
    assert_eq!(who.json()["auth"], "cookie");
    let list = app
        .send(request(
            "GET",
            "/api/runs",
            &[("cookie", &format!("theme=dark; {pair}"))],
            "",
        ))
        .await;
    assert_eq!(list.status, StatusCode::OK);

    // Behind an HTTPS proxy the cookie is Secure.
    let a = app
        .send(request(
            "POST",
            "/api/session",
            &[("x-forwarded-proto", "https")],
            READER,
        ))
        .await;
    assert!(a.header(header::SET_COOKIE).contains("; Secure"));
    assert_eq!(a.json()["scope"], "read");

    // Signing out removes it.
    let out = app
        .send(request(
            "DELETE",
            "/api/session",
            &[
                ("cookie", &pair),
                ("origin", "http://chainr.test"),
                ("host", "chainr.test"),
            ],
            "",
        ))
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert!(out.header(header::SET_COOKIE).contains("Max-Age=0"));
    // A cookie that holds no known token is a 401, as a bad bearer token is.
    let stale = app
        .send(request(
            "GET",
            "/api/whoami",
            &[("cookie", "chainr_session=6e6f7065")],
            "",
        ))
        .await;
    assert_eq!(stale.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.send(request("GET", "/api/whoami", &[], ""))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn writes_from_another_origin_are_refused() {
    let app = with_tokens();
    let signed = app.send(request("POST", "/api/session", &[], WRITER)).await;
    let cookie = signed.header(header::SET_COOKIE).to_string();
    let cookie = cookie.split(';').next().unwrap();
    let submit = |headers: &[(&str, &str)]| {
        let mut all = vec![
            ("content-type", "application/json"),
            ("host", "chainr.test"),
        ];
        all.extend_from_slice(headers);
        request("POST", "/api/runs", &all, SEED)
    };
    // The cookie alone, without the Origin every browser sends with a write: refused.
    let a = app.send(submit(&[("cookie", cookie)])).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text());
    assert!(a.json()["error"].as_str().unwrap().contains("Origin"));
    // From another site's page: refused, with the cookie or even with a bearer token.
    for credentials in [
        ("cookie", cookie.to_string()),
        ("authorization", format!("Bearer {WRITER}")),
    ] {
        let a = app
            .send(submit(&[
                (credentials.0, credentials.1.as_str()),
                ("origin", "https://evil.example"),
            ]))
            .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text());
        assert!(a.json()["error"].as_str().unwrap().contains("cross-origin"));
    }
    let a = app
        .send(submit(&[("cookie", cookie), ("origin", "null")]))
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(app.stored_runs().await, 0);
    // From the server's own page (default ports and case do not matter): accepted.
    let a = app
        .send(submit(&[
            ("cookie", cookie),
            ("origin", "http://CHAINR.test:80"),
        ]))
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text());
    // Reads need no Origin: an EventSource or a link sends none.
    let a = app
        .send(request("GET", "/api/runs", &[("cookie", cookie)], ""))
        .await;
    assert_eq!(a.status, StatusCode::OK);
    // A read token's cookie writes nothing, same origin or not.
    let reader = app.send(request("POST", "/api/session", &[], READER)).await;
    let reader = reader.header(header::SET_COOKIE).to_string();
    let a = app
        .send(submit(&[
            ("cookie", reader.split(';').next().unwrap()),
            ("origin", "http://chainr.test"),
        ]))
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(a.json()["error"].as_str().unwrap().contains("scope read"));
    // Signing in from another site (login CSRF) is refused too.
    let a = app
        .send(request(
            "POST",
            "/api/session",
            &[("origin", "https://evil.example"), ("host", "chainr.test")],
            WRITER,
        ))
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn without_authentication_only_pages_of_the_server_itself_may_write() {
    let app = open();
    let who = app.get("/api/whoami").await.json();
    assert_eq!(who["name"], serde_json::Value::Null);
    assert_eq!(who["scope"], "write");
    assert_eq!(who["auth"], "none");
    let cross = app
        .send(request(
            "POST",
            "/api/runs",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("origin", "http://attacker.example"),
                ("host", "127.0.0.1:8080"),
            ],
            SEED,
        ))
        .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    assert_eq!(app.stored_runs().await, 0);
    let curl = app
        .post("/api/runs", "application/x-www-form-urlencoded", SEED)
        .await;
    assert_eq!(curl.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn a_runs_pipeline_and_the_last_event_of_its_document_are_served() {
    let app = open();
    let (uid, _lease) = started(&app).await;
    let run = app.get(&format!("/api/runs/{uid}")).await;
    assert_eq!(
        run.header(header::HeaderName::from_static("chainr-last-event-id")),
        "2"
    );
    let p = app.get(&format!("/api/runs/{uid}/pipeline")).await;
    assert_eq!(p.status, StatusCode::OK);
    let p = p.json();
    assert_eq!(p["jobs"]["first"]["image"], "busybox");
    assert_eq!(p["jobs"]["success"]["dependsOn"][0]["job"], "first");
    assert_eq!(
        app.get("/api/runs/nope/pipeline").await.status,
        StatusCode::NOT_FOUND
    );
    // Reading a pipeline needs a token like reading a run.
    let app = with_tokens();
    assert_eq!(
        app.get("/api/runs/nope/pipeline").await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn the_openapi_document_names_the_session_cookie_beside_the_bearer_token() {
    let doc = open().get("/api/openapi.json").await.json();
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["session"]["in"], "cookie");
    assert_eq!(schemes["session"]["name"], "chainr_session");
    assert_eq!(doc["security"].as_array().unwrap().len(), 2);
}
