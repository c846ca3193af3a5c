use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use chainr_runtime::event::{AttemptResult, EventKind, RunEvent};
use chainr_runtime::log::{LogKey, LogSink, MemoryLogs};
use chainr_runtime::scheduler::AttemptEnd;
use chainr_runtime::store::{MemoryStore, Store};
use chainr_server::{Api, Auth, Tokens};
use http_body_util::BodyExt;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tower::ServiceExt;

/// The original chainr README's example.
pub const SEED: &str = include_str!("../../../examples/seed.json");

pub const WRITER: &str = "writer-token-0123456789";
pub const READER: &str = "reader-token-0123456789";

pub struct App {
    pub store: Arc<MemoryStore>,
    pub logs: Arc<MemoryLogs>,
    pub router: Router,
    _drain: tokio::sync::watch::Sender<bool>,
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(&name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .unwrap()
    }
}

pub fn app(auth: Auth) -> App {
    let store = Arc::new(MemoryStore::new());
    let logs = Arc::new(MemoryLogs::new());
    let (tx, draining) = tokio::sync::watch::channel(false);
    let router = chainr_server::router(Api {
        store: store.clone(),
        outbox: store.clone(),
        media: None,
        logs: logs.clone(),
        auth,
        max_body: 64 << 10,
        poll: Duration::from_millis(10),
        draining,
    });
    App {
        store,
        logs,
        router,
        _drain: tx,
    }
}

pub fn open() -> App {
    app(Auth::Disabled)
}

pub fn with_tokens() -> App {
    let tokens = format!("ci write {WRITER}\nviewer read {READER}\n");
    app(Auth::Tokens(Tokens::parse(&tokens).unwrap()))
}

impl App {
    pub async fn send(&self, request: Request<Body>) -> Answer {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, uri: &str) -> Answer {
        self.send(Request::get(uri).body(Body::empty()).unwrap())
            .await
    }

    pub async fn post(&self, uri: &str, content_type: &str, body: impl Into<Body>) -> Answer {
        self.send(
            Request::post(uri)
                .header(header::CONTENT_TYPE, content_type)
                .body(body.into())
                .unwrap(),
        )
        .await
    }

    pub async fn stored_runs(&self) -> usize {
        let q = chainr_runtime::store::ListQuery {
            limit: 1000,
            ..Default::default()
        };
        self.store.list(&q).await.unwrap().runs.len()
    }
}

#[tokio::test]
async fn the_seed_json_sent_as_curl_sends_it_is_accepted_as_the_original_answered() {
    let app = open();
    // `curl -d @seed.json` sends the file's text with the form content type.
    let a = app
        .post("/api/runs", "application/x-www-form-urlencoded", SEED)
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text());
    let run = a.json();
    assert_eq!(run["kind"], "Run");
    assert_eq!(run["status"], "PENDING");
    let uid = run["metadata"]["uid"].as_str().unwrap().to_string();
    assert_eq!(run["metadata"]["selfLink"], format!("/api/runs/{uid}"));
    assert_eq!(a.header(header::LOCATION), format!("/api/runs/{uid}"));
    let jobs: Vec<(&str, &str)> = run["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| (j["name"].as_str().unwrap(), j["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        jobs,
        [
            ("first", "PENDING"),
            ("second", "PENDING"),
            ("success", "PENDING"),
            ("error", "PENDING")
        ]
    );
    let got = app.get(&format!("/api/runs/{uid}")).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.json()["metadata"]["uid"], uid.as_str());
    let list = app.get("/api/runs").await.json();
    assert_eq!(list["kind"], "RunList");
    assert_eq!(list["items"][0]["metadata"]["uid"], uid.as_str());
    // The same as JSON proper.
    let a = app.post("/api/runs", "application/json", SEED).await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    assert_eq!(app.stored_runs().await, 2);
}

#[tokio::test]
async fn invalid_submissions_are_4xx_naming_the_problem_and_store_nothing() {
    let app = open();
    let cases: Vec<(&str, String, StatusCode, &str)> = vec![
        ("application/json", "{\"kind\": \"Pipeline\", \"jobs\": {".into(), StatusCode::BAD_REQUEST, "error"),
        (
            "application/json",
            r#"{"kind":"Pipeline","jobs":{"a":{"image":"busybox","run":"true","dependsOn":[{"job":"ghost"}]}}}"#.into(),
            StatusCode::BAD_REQUEST,
            "ghost",
        ),
        (
            "application/json",
            r#"{"kind":"Pipeline","jobs":{"a":{"image":"busybox","run":"true","dependsOn":[{"job":"b"}]},"b":{"image":"busybox","run":"true","dependsOn":[{"job":"a"}]}}}"#.into(),
            StatusCode::BAD_REQUEST,
            "cycle",
        ),
        (
            "application/json",
            r#"{"kind":"Pipeline","jobs":{"a":{"image":"busybox","run":"true","colour":"red"}}}"#.into(),
            StatusCode::BAD_REQUEST,
            "colour",
        ),
        ("text/plain", SEED.into(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "content type"),
        ("application/json", "x".repeat(65 << 10), StatusCode::PAYLOAD_TOO_LARGE, "max-body"),
    ];
    let shown = |t: &str| t.chars().take(300).collect::<String>();
    for (content_type, body, status, says) in cases {
        let a = app.post("/api/runs", content_type, body.clone()).await;
        assert_eq!(
            a.status,
            status,
            "{}: {}",
            &body[..body.len().min(80)],
            a.text()
        );
        let e = a.json();
        assert_eq!(e["kind"], "Error");
        let message = e["error"].as_str().unwrap().to_string() + &e.to_string();
        assert!(message.contains(says), "{says}: {}", shown(&message));
    }
    let a = app
        .post("/api/runs", "application/json", vec![0xff, 0xfe, 0x00])
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let a = app
        .send(Request::post("/api/runs").body(Body::from(SEED)).unwrap())
        .await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(app.stored_runs().await, 0);
}

#[tokio::test]
async fn source_is_compiled_on_the_server_with_params_and_its_errors_are_diagnostics() {
    let app = open();
    let src = "pipeline greet {\n  param who: string = \"world\"\n  job hello {\n    image = \"busybox\"\n    run = \"echo hello ${who}\"\n  }\n}\n";
    let a = app
        .post("/api/runs?param=who%3Dchainr", "text/x-chainr", src)
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text());
    assert_eq!(a.json()["metadata"]["name"], "greet");
    let uid = a.json()["metadata"]["uid"].as_str().unwrap().to_string();
    let stored = app.store.get(&uid).await.unwrap().unwrap();
    assert_eq!(stored.pipeline.jobs["hello"].run, "echo hello chainr");

    let bad = "pipeline p {\n  job a {\n    image = \"busybox\"\n    run = \"true\"\n  }\n  job b after nope {\n    image = \"busybox\"\n    run = \"true\"\n  }\n}\n";
    let a = app.post("/api/runs", "text/x-chainr", bad).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let e = a.json();
    assert_eq!(e["kind"], "Error");
    let d = &e["diagnostics"][0];
    assert_eq!(d["severity"], "error");
    assert!(d["code"].as_str().unwrap().starts_with('E'));
    assert_eq!(d["line"], 6);
    assert_eq!(d["column"], 15, "{d}");
    assert!(d["message"].as_str().unwrap().contains("nope"), "{d}");
    assert!(
        e["rendered"]
            .as_str()
            .unwrap()
            .contains("pipeline.chainr:6:15"),
        "{e}"
    );
    // Params do not apply to the IR.
    let a = app
        .post("/api/runs?param=who%3Dx", "application/json", SEED)
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.stored_runs().await, 1);
}

#[tokio::test]
async fn check_compiles_without_storing_anything() {
    let app = open();
    let a = app
        .post(
            "/api/check",
            "text/x-chainr",
            "pipeline p {\n  job a {\n    image = \"busybox\"\n  }\n}\n",
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    let c = a.json();
    assert_eq!(c["kind"], "Check");
    assert_eq!(c["ok"], false);
    assert!(!c["diagnostics"].as_array().unwrap().is_empty());
    let a = app
        .post("/api/check", "application/json", SEED)
        .await
        .json();
    assert_eq!(a["ok"], true);
    assert_eq!(a["pipeline"]["jobs"]["first"]["image"], "busybox");
    assert_eq!(app.stored_runs().await, 0);
}

#[tokio::test]
async fn tokens_decide_who_may_read_and_who_may_write() {
    let app = with_tokens();
    let bearer = |t: &str| format!("Bearer {t}");
    let a = app.get("/api/runs").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.header(header::WWW_AUTHENTICATE).starts_with("Bearer"));
    assert_eq!(a.json()["kind"], "Error");
    let post = |token: &str| {
        Request::post("/api/runs")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, bearer(token))
            .body(Body::from(SEED))
            .unwrap()
    };
    let a = app.send(post(READER)).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text());
    assert_eq!(app.stored_runs().await, 0);
    let a = app.send(post("not-a-token-at-all")).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let a = app.send(post(WRITER)).await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    assert_eq!(a.json()["metadata"]["submitter"], "ci");
    let uid = a.json()["metadata"]["uid"].as_str().unwrap().to_string();
    let read = app
        .send(
            Request::get(format!("/api/runs/{uid}"))
                .header(header::AUTHORIZATION, bearer(READER))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.json()["metadata"]["submitter"], "ci");
    let listed = app
        .send(
            Request::get("/api/runs")
                .header(header::AUTHORIZATION, bearer(READER))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .json();
    assert_eq!(listed["items"][0]["metadata"]["submitter"], "ci");
    assert_eq!(listed["items"][0]["metadata"]["source"], "json");
    assert!(listed["items"][0]["metadata"]["createdAt"].is_string());
    // Probes and metrics need no token (they hold no run's data); the OpenAPI document does not
    // either, but everything under /api does.
    assert_eq!(app.get("/healthz").await.status, StatusCode::OK);
    assert_eq!(app.get("/readyz").await.status, StatusCode::OK);
    assert_eq!(app.get("/metrics").await.status, StatusCode::OK);
    assert_eq!(app.get("/api").await.status, StatusCode::OK);
}

#[tokio::test]
async fn lists_page_with_a_cursor_newest_first_and_filter() {
    let app = open();
    let mut uids = Vec::new();
    for i in 0..5 {
        let src = format!(
            "pipeline {} {{\n  job a {{\n    image = \"busybox\"\n    run = \"true\"\n  }}\n}}\n",
            if i % 2 == 0 { "even" } else { "odd" }
        );
        let a = app.post("/api/runs", "text/x-chainr", src).await;
        uids.push(a.json()["metadata"]["uid"].as_str().unwrap().to_string());
    }
    let mut seen = Vec::new();
    let mut next = Some("/api/runs?limit=2".to_string());
    while let Some(url) = next {
        let a = app.get(&url).await;
        assert_eq!(a.status, StatusCode::OK);
        let page = a.json();
        assert!(page["items"].as_array().unwrap().len() <= 2);
        for item in page["items"].as_array().unwrap() {
            seen.push(item["metadata"]["uid"].as_str().unwrap().to_string());
        }
        next = page["next"].as_str().map(str::to_string);
        if let Some(n) = &next {
            assert!(a.header(header::LINK).contains(n.as_str()));
        }
    }
    uids.reverse();
    assert_eq!(seen, uids, "every run once, newest first");
    let odd = app.get("/api/runs?pipeline=odd").await.json();
    assert_eq!(odd["items"].as_array().unwrap().len(), 2);
    let pending = app.get("/api/runs?status=pending&limit=1").await.json();
    assert_eq!(pending["items"].as_array().unwrap().len(), 1);
    assert!(pending["next"].as_str().unwrap().contains("status=pending"));
    for bad in [
        "/api/runs?limit=0",
        "/api/runs?limit=5000",
        "/api/runs?status=DONE",
        "/api/runs?after=x",
    ] {
        let a = app.get(bad).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(a.json()["kind"], "Error");
    }
}

#[tokio::test]
async fn unknown_things_are_404_and_wrong_methods_405_with_allow() {
    let app = open();
    let a = app.get("/api/runs/no-such-run").await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.json()["kind"], "Error");
    assert_eq!(app.get("/api/nothing").await.status, StatusCode::NOT_FOUND);
    let a = app
        .send(Request::delete("/api/runs").body(Body::empty()).unwrap())
        .await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(a.header(header::ALLOW).contains("POST"));
    assert_eq!(a.json()["kind"], "Error");
}

/// A run with job `first` started by hand, as a worker would: claim, events, output.
pub async fn started(app: &App) -> (String, chainr_runtime::store::Lease) {
    let a = app.post("/api/runs", "application/json", SEED).await;
    let uid = a.json()["metadata"]["uid"].as_str().unwrap().to_string();
    let lease = app
        .store
        .claim("w", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    let now = SystemTime::now();
    let events = [
        RunEvent {
            seq: 1,
            at: now,
            kind: EventKind::RunStarted { resumed: false },
        },
        RunEvent {
            seq: 2,
            at: now,
            kind: EventKind::AttemptStarted {
                job: 0,
                attempt: 1,
                handle: None,
            },
        },
    ];
    app.store.append(&lease, &events).await.unwrap();
    (uid, lease)
}

fn key(uid: &str) -> LogKey {
    LogKey {
        run: uid.to_string(),
        job: "first".to_string(),
        attempt: 1,
    }
}

#[tokio::test]
async fn logs_are_read_whole_or_followed_until_the_attempt_ends() {
    let app = open();
    let (uid, lease) = started(&app).await;
    app.logs.append(&key(&uid), b"one\n").await.unwrap();
    let a = app.get(&format!("/api/runs/{uid}/jobs/first/logs")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.header(header::CONTENT_TYPE).starts_with("text/plain"));
    assert_eq!(a.text(), "one\n");
    let a = app.get(&format!("/api/runs/{uid}/jobs/second/logs")).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "not started");
    assert_eq!(
        app.get(&format!("/api/runs/{uid}/jobs/ghost/logs"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get(&format!("/api/runs/{uid}/jobs/first/logs?attempt=2"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // Following: what is there, then what arrives, and the answer ends with the attempt.
    let follower = {
        let router = app.router.clone();
        let uri = format!("/api/runs/{uid}/jobs/first/logs?follow=true");
        tokio::spawn(async move {
            let response = router
                .oneshot(Request::get(uri).body(Body::empty()).unwrap())
                .await
                .unwrap();
            response.into_body().collect().await.unwrap().to_bytes()
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !follower.is_finished(),
        "following waits for the attempt to end"
    );
    app.logs.append(&key(&uid), b"two\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    app.logs.append(&key(&uid), b"three\n").await.unwrap();
    app.logs.finish(&key(&uid)).await.unwrap();
    let ended = RunEvent {
        seq: 3,
        at: SystemTime::now(),
        kind: EventKind::AttemptEnded {
            job: 0,
            attempt: 1,
            result: AttemptResult::new(AttemptEnd::Succeeded, Some(0), None),
        },
    };
    app.store.append(&lease, &[ended]).await.unwrap();
    let body = tokio::time::timeout(Duration::from_secs(10), follower)
        .await
        .expect("the followed log ends with its attempt")
        .unwrap();
    assert_eq!(&body[..], b"one\ntwo\nthree\n");
}

#[tokio::test]
async fn run_events_resume_after_last_event_id() {
    let app = open();
    let (uid, _lease) = started(&app).await;
    let response = app
        .router
        .clone()
        .oneshot(
            Request::get(format!("/api/runs/{uid}/events"))
                .header("last-event-id", "1")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut body = response.into_body();
    let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let text = String::from_utf8(frame.into_data().unwrap().to_vec()).unwrap();
    assert!(text.contains("id: 2\n"), "{text}");
    assert!(text.contains("event: attemptStarted\n"), "{text}");
    assert!(text.contains("\"jobName\":\"first\""), "{text}");
    assert!(!text.contains("id: 1\n"), "{text}");
}

#[tokio::test]
async fn every_route_is_in_the_openapi_document_and_answers() {
    let app = open();
    let a = app.get("/api/openapi.json").await;
    assert_eq!(a.status, StatusCode::OK);
    let doc = a.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    // The API the service promises.
    for (method, path) in [
        ("get", "/api"),
        ("get", "/api/runs"),
        ("post", "/api/runs"),
        ("get", "/api/runs/{uid}"),
        ("post", "/api/check"),
        ("get", "/api/runs/{uid}/jobs/{job}/logs"),
        ("get", "/api/runs/{uid}/events"),
        ("post", "/api/runs/{uid}/cancel"),
        ("post", "/api/runs/{uid}/retry"),
        ("get", "/api/runs/{uid}/graph"),
        ("get", "/api/events"),
        ("get", "/api/runs/{uid}/pipeline"),
        ("get", "/api/whoami"),
        ("post", "/api/session"),
        ("delete", "/api/session"),
        ("get", "/api/notifications"),
        ("get", "/api/notifications/{id}"),
        ("post", "/api/notifications/{id}/resend"),
        ("get", "/api/runs/{uid}/notifications"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is missing from the document"
        );
    }
    // And every documented operation is a route: it never reaches the fallback.
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            let uri = path
                .replace("{uid}", "x")
                .replace("{job}", "y")
                .replace("{id}", "z");
            let request = Request::builder()
                .method(method.to_ascii_uppercase().as_str())
                .uri(&uri)
                .body(Body::empty())
                .unwrap();
            // Only the head: an event stream never ends.
            let response = app.router.clone().oneshot(request).await.unwrap();
            let status = response.status();
            let fallback = status == StatusCode::NOT_FOUND && {
                let body = response.into_body().collect().await.unwrap().to_bytes();
                String::from_utf8_lossy(&body).contains("no resource at")
            };
            assert!(
                !fallback && status != StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}: {status}"
            );
        }
    }
    // The Run and Pipeline schemas are the types' own.
    let schemas = &doc["components"]["schemas"];
    assert!(
        schemas["Run"]["properties"]["jobs"].is_object(),
        "{}",
        schemas["Run"]
    );
    assert!(schemas["Pipeline"]["properties"]["jobs"].is_object());
    assert!(schemas["Layout"]["properties"]["nodes"].is_object());
    assert!(schemas["Delivery"]["properties"]["state"].is_object());
    // GET /api lists the same paths.
    let resources = app.get("/api").await.json();
    let listed: Vec<&str> = resources["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), paths.len());
}

#[tokio::test]
async fn metrics_count_requests_by_route() {
    let app = open();
    app.post("/api/runs", "application/json", SEED).await;
    let m = app.get("/metrics").await;
    assert_eq!(m.status, StatusCode::OK);
    let text = m.text();
    assert!(
        text.contains("chainr_api_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(text.contains("route=\"/api/runs\""), "{text}");
    assert!(text.contains("chainr_runs_submitted_total"), "{text}");
    assert!(text.contains("chainr_runs{status=\"PENDING\"} 1"), "{text}");
    assert!(text.contains("chainr_queue_depth 1"), "{text}");
    // What workers of this process stored.
    let ended = RunEvent {
        seq: 9,
        at: SystemTime::now(),
        kind: EventKind::AttemptEnded {
            job: 0,
            attempt: 1,
            result: AttemptResult::new(AttemptEnd::Failed, Some(2), None),
        },
    };
    chainr_server::count_events("r", &[ended]);
    let text = app.get("/metrics").await.text();
    assert!(
        text.contains("chainr_attempts_total{status=\"FAILED\"}"),
        "{text}"
    );
}

#[tokio::test]
async fn cancel_is_recorded_for_the_worker_and_refused_once_the_run_finished() {
    let app = open();
    let (uid, lease) = started(&app).await;
    let a = app
        .post(&format!("/api/runs/{uid}/cancel"), "application/json", "")
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text());
    assert_eq!(a.json()["metadata"]["uid"], uid.as_str());
    assert_eq!(app.store.cancel_requests(&uid).await.unwrap(), 1);
    assert_eq!(
        app.post("/api/runs/nope/cancel", "application/json", "")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let finished = RunEvent {
        seq: 3,
        at: SystemTime::now(),
        kind: EventKind::RunFinished {
            outcome: chainr_runtime::scheduler::RunOutcome::Cancelled,
        },
    };
    app.store.append(&lease, &[finished]).await.unwrap();
    let a = app
        .post(&format!("/api/runs/{uid}/cancel"), "application/json", "")
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.text());
    assert_eq!(a.json()["kind"], "Error");

    let app = with_tokens();
    let a = app
        .send(
            Request::post("/api/runs/any/cancel")
                .header(header::AUTHORIZATION, format!("Bearer {READER}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
}

/// The next SSE frame's text.
async fn next_frame(body: &mut Body) -> String {
    let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("an event in time")
        .unwrap()
        .unwrap();
    String::from_utf8(frame.into_data().unwrap().to_vec()).unwrap()
}

#[tokio::test]
async fn the_feed_of_every_run_starts_now_or_after_the_last_event_seen() {
    let app = open();
    let first = app.post("/api/runs", "application/json", SEED).await.json();
    let first = first["metadata"]["uid"].as_str().unwrap().to_string();
    // From now: the run submitted before is not replayed; the next one is.
    let response = app
        .router
        .clone()
        .oneshot(Request::get("/api/events").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    // The stream says where it starts: a client that reconnects before any change resumes
    // from there.
    let place = next_frame(&mut body).await;
    assert!(place.contains("event: ready\n"), "{place}");
    let start: u64 = place
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .unwrap_or_else(|| panic!("{place:?}"))
        .parse()
        .unwrap();
    assert!(place.contains(&format!("\"after\":{start}")), "{place}");
    let second = app.post("/api/runs", "application/json", SEED).await.json();
    let second = second["metadata"]["uid"].as_str().unwrap().to_string();
    let text = next_frame(&mut body).await;
    assert!(text.contains("event: runCreated\n"), "{text}");
    assert!(text.contains(&second), "{text}");
    assert!(!text.contains(&first), "{text}");
    let id: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(id > start);
    // A client that reconnects after the first run's creation gets the second's again.
    let response = app
        .router
        .clone()
        .oneshot(
            Request::get("/api/events")
                .header("last-event-id", (id - 1).to_string())
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let mut body = response.into_body();
    let again = next_frame(&mut body).await;
    assert!(again.contains(&format!("id: {id}\n")), "{again}");
    assert!(again.contains(&second), "{again}");
}

#[tokio::test]
async fn retry_is_for_finished_runs_only() {
    let app = open();
    let (uid, lease) = started(&app).await;
    let a = app
        .post(&format!("/api/runs/{uid}/retry"), "application/json", "")
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.text());
    let finished = RunEvent {
        seq: 3,
        at: SystemTime::now(),
        kind: EventKind::RunFinished {
            outcome: chainr_runtime::scheduler::RunOutcome::Failed,
        },
    };
    app.store.append(&lease, &[finished]).await.unwrap();
    let a = app
        .post(&format!("/api/runs/{uid}/retry"), "application/json", "")
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text());
    assert_eq!(a.json()["status"], "PENDING");
    // Queued again for a worker.
    let lease = app
        .store
        .claim("w2", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(lease.map(|l| l.run), Some(uid));
    assert_eq!(
        app.post("/api/runs/nope/retry", "application/json", "")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

const FAN: &str = r#"pipeline fan {
  job extract { image = "busybox"  run = "true" }
  job shard for i in 0..40 after extract { image = "busybox"  run = "echo ${i}" }
  job load after shard { image = "busybox"  run = "true" }
  job repair after shard.failed { image = "busybox"  run = "true" }
  finally {
    job report { image = "busybox"  run = "true" }
  }
}
"#;

#[tokio::test]
async fn a_runs_graph_is_laid_out_once_and_revalidated_with_its_etag() {
    let app = with_tokens();
    let a = app
        .send(
            Request::post("/api/runs")
                .header(header::CONTENT_TYPE, "text/x-chainr")
                .header(header::AUTHORIZATION, format!("Bearer {WRITER}"))
                .body(Body::from(FAN))
                .unwrap(),
        )
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text());
    let uid = a.json()["metadata"]["uid"].as_str().unwrap().to_string();
    let get = |uri: String, headers: &[(header::HeaderName, &str)]| {
        let mut r = Request::get(uri).header(header::AUTHORIZATION, format!("Bearer {READER}"));
        for (k, v) in headers {
            r = r.header(k, *v);
        }
        r.body(Body::empty()).unwrap()
    };

    // Collapsed: the 40 instances are one node.
    let a = app.send(get(format!("/api/runs/{uid}/graph"), &[])).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.header(header::CONTENT_TYPE), "application/json");
    assert_eq!(a.header(header::CACHE_CONTROL), "private, max-age=3600");
    assert!(a.headers.get(header::CONTENT_ENCODING).is_none());
    let etag = a.header(header::ETAG).to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    let l = a.json();
    let names: Vec<&str> = l["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["extract", "shard", "load", "repair", "report"]);
    let shard = &l["nodes"][1];
    assert_eq!(shard["kind"], "group");
    assert_eq!(shard["jobs"].as_array().unwrap().len(), 40);
    assert_eq!(shard["jobs"][0], 1);
    assert_eq!(l["nodes"][4]["kind"], "finally");
    assert_eq!(l["nodes"][4]["finally"], true);
    assert_eq!(l["nodeWidth"], 180);
    let edges = l["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 3);
    assert!(edges
        .iter()
        .any(|e| e["from"] == 1 && e["to"] == 3 && e["label"] == "failed"));

    // The same again, the same validator; with it, 304 and no body.
    let b = app.send(get(format!("/api/runs/{uid}/graph"), &[])).await;
    assert_eq!(b.body, a.body);
    assert_eq!(b.header(header::ETAG), etag);
    let c = app
        .send(get(
            format!("/api/runs/{uid}/graph"),
            &[(header::IF_NONE_MATCH, &etag)],
        ))
        .await;
    assert_eq!(c.status, StatusCode::NOT_MODIFIED);
    assert!(c.body.is_empty());
    assert_eq!(c.header(header::ETAG), etag);
    let d = app
        .send(get(
            format!("/api/runs/{uid}/graph"),
            &[(header::IF_NONE_MATCH, "\"something-else\"")],
        ))
        .await;
    assert_eq!(d.status, StatusCode::OK);

    // Expanded (repeatable; order and repeats do not matter), gzipped for a client that
    // accepts it.
    let e = app
        .send(get(
            format!("/api/runs/{uid}/graph?expand=shard&expand=nothing&expand=shard"),
            &[(header::ACCEPT_ENCODING, "gzip, br")],
        ))
        .await;
    assert_eq!(e.status, StatusCode::OK);
    assert_eq!(e.header(header::CONTENT_ENCODING), "gzip");
    assert_ne!(e.header(header::ETAG), etag);
    let mut json = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&e.body[..]), &mut json).unwrap();
    let open: Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(open["nodes"].as_array().unwrap().len(), 44);
    assert_eq!(open["nodes"][1]["name"], "shard-0");
    assert_eq!(open["nodes"][1]["group"], "shard");
    assert_eq!(open["edges"].as_array().unwrap().len(), 40 * 3);
    let f = app
        .send(get(
            format!("/api/runs/{uid}/graph?expand=nothing&expand=shard"),
            &[],
        ))
        .await;
    assert_eq!(f.header(header::CONTENT_TYPE), "application/json");
    assert_eq!(serde_json::from_slice::<Value>(&f.body).unwrap(), open);

    // Reading needs a token; an unknown run is 404.
    let a = app.get(&format!("/api/runs/{uid}/graph")).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let a = app.send(get("/api/runs/nope/graph".to_string(), &[])).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.json()["kind"], "Error");
}

/// Notifications as the API shows them: listed by state and by run, read one by one, dead
/// letters resent by a writer only.
#[tokio::test]
async fn notifications_are_listed_read_and_dead_letters_resent() {
    use chainr_runtime::outbox::conformance::{delivery, t};
    use chainr_runtime::outbox::{Outbox, Settle};
    let app = with_tokens();
    let seed = app
        .send(
            Request::post("/api/runs")
                .header(header::AUTHORIZATION, format!("Bearer {WRITER}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(SEED))
                .unwrap(),
        )
        .await;
    assert_eq!(seed.status, StatusCode::ACCEPTED, "{}", seed.text());
    let uid = seed.json()["metadata"]["uid"].as_str().unwrap().to_string();
    let (sent, dead) = (delivery(&uid, 1, "slack", 0), delivery(&uid, 2, "mail", 0));
    let other = delivery("another-run", 1, "slack", 0);
    let all = [sent.clone(), dead.clone(), other.clone()];
    app.store.enqueue(0, 1, &all).await.unwrap();
    app.store
        .claim_due("n", t(1), Duration::from_secs(30), 10)
        .await
        .unwrap();
    let id = |d: &chainr_runtime::outbox::Delivery| d.notification.id.clone();
    app.store
        .settle(&id(&sent), "n", Settle::Sent { at: t(2) })
        .await
        .unwrap();
    app.store
        .settle(
            &id(&dead),
            "n",
            Settle::Dead {
                error: "HTTP 503".into(),
            },
        )
        .await
        .unwrap();

    let as_reader = |uri: String| {
        Request::get(uri)
            .header(header::AUTHORIZATION, format!("Bearer {READER}"))
            .body(Body::empty())
            .unwrap()
    };
    let ids = |a: &Answer| -> Vec<String> {
        a.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap().to_string())
            .collect()
    };
    let listed = app
        .send(as_reader("/api/notifications?state=dead".into()))
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text());
    assert_eq!(listed.json()["kind"], "NotificationList");
    assert_eq!(ids(&listed), [id(&dead)]);
    assert_eq!(listed.json()["items"][0]["lastError"], "HTTP 503");
    let paged = app
        .send(as_reader("/api/notifications?limit=2".into()))
        .await;
    assert_eq!(ids(&paged), [id(&other), id(&dead)]);
    let next = paged.json()["next"].as_str().unwrap().to_string();
    assert_eq!(ids(&app.send(as_reader(next)).await), [id(&sent)]);
    let of_run = app
        .send(as_reader(format!("/api/runs/{uid}/notifications")))
        .await;
    assert_eq!(ids(&of_run), [id(&dead), id(&sent)]);
    assert_eq!(
        app.send(as_reader("/api/runs/nope/notifications".into()))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let one = app
        .send(as_reader(format!("/api/notifications/{}", id(&sent))))
        .await;
    assert_eq!(one.json()["state"], "sent");
    assert_eq!(one.json()["attempts"], 1);
    for bad in ["state=lost", "limit=0", "after=x"] {
        let a = app
            .send(as_reader(format!("/api/notifications?{bad}")))
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{bad}");
    }

    let resend = |token: &'static str, id: String| {
        Request::post(format!("/api/notifications/{id}/resend"))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(
        app.send(resend(READER, id(&dead))).await.status,
        StatusCode::FORBIDDEN
    );
    let again = app.send(resend(WRITER, id(&dead))).await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.text());
    assert_eq!(
        (
            again.json()["state"].clone(),
            again.json()["attempts"].clone()
        ),
        ("pending".into(), 0.into())
    );
    assert_eq!(
        app.send(resend(WRITER, id(&sent))).await.status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        app.send(resend(WRITER, "nope".into())).await.status,
        StatusCode::NOT_FOUND
    );
}
