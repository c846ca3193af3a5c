//! Prometheus metrics of this process (`GET /metrics`, text format): API requests and their
//! latency by route, runs submitted, store errors.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::LazyLock;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

struct Metrics {
    registry: Registry,
    latency: Family<RequestLabels, Histogram>,
    submitted: Counter,
    store_errors: Counter,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut registry = Registry::with_prefix("chainr");
    let latency = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
        Histogram::new([
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
        ])
    });
    registry.register(
        "api_request_duration_seconds",
        "Time to answer an API request, by method, route and status",
        latency.clone(),
    );
    let submitted = Counter::default();
    registry.register(
        "runs_submitted",
        "Runs accepted by POST /api/runs in this process",
        submitted.clone(),
    );
    let store_errors = Counter::default();
    registry.register(
        "store_errors",
        "Store operations of the API that failed (unavailable or unreadable)",
        store_errors.clone(),
    );
    Metrics {
        registry,
        latency,
        submitted,
        store_errors,
    }
});

pub(crate) fn request(method: &str, route: &str, status: u16, seconds: f64) {
    METRICS
        .latency
        .get_or_create(&RequestLabels {
            method: method.to_string(),
            route: route.to_string(),
            status,
        })
        .observe(seconds);
}

pub(crate) fn submitted() {
    METRICS.submitted.inc();
}

pub(crate) fn store_error() {
    METRICS.store_errors.inc();
}

/// Every metric in the Prometheus text format.
pub(crate) fn encode() -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &METRICS.registry);
    out
}
