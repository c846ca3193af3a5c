//! Prometheus metrics of this process (`GET /metrics`, text format): API requests and their
//! latency by route, runs submitted, store errors; and the store's runs by status, read from
//! its indexes when scraped (`chainr_runs`, and `chainr_queue_depth`: runs submitted and not
//! started by a worker yet).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::LazyLock;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

struct Metrics {
    registry: Registry,
    latency: Family<RequestLabels, Histogram>,
    submitted: Counter,
    store_errors: Counter,
    runs: Family<StatusLabel, Gauge>,
    queued: Gauge,
    attempts: Family<StatusLabel, Counter>,
    notifications: Family<StateLabel, Gauge>,
    notification_attempts: Family<AttemptLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabels {
    medium: String,
    result: &'static str,
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
    let runs = Family::<StatusLabel, Gauge>::default();
    registry.register("runs", "Stored runs by status", runs.clone());
    let queued = Gauge::default();
    registry.register(
        "queue_depth",
        "Runs submitted and not started by a worker yet (status PENDING)",
        queued.clone(),
    );
    let attempts = Family::<StatusLabel, Counter>::default();
    registry.register(
        "attempts",
        "Attempts that ended in this process's workers, by how they ended",
        attempts.clone(),
    );
    let notifications = Family::<StateLabel, Gauge>::default();
    registry.register(
        "notifications",
        "Stored notifications by state (pending, sent, dead, skipped)",
        notifications.clone(),
    );
    let notification_attempts = Family::<AttemptLabels, Counter>::default();
    registry.register(
        "notification_attempts",
        "Notification attempts of this process's notifier, by medium and result (sent, retried, dead, skipped)",
        notification_attempts.clone(),
    );
    Metrics {
        notifications,
        notification_attempts,
        registry,
        attempts,
        runs,
        queued,
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

/// The count of `which` in a store's counts (0 when it is left out).
fn count_of<T: PartialEq>(counts: &[(T, u64)], which: T) -> u64 {
    counts
        .iter()
        .filter(|(s, _)| *s == which)
        .map(|(_, n)| *n)
        .sum()
}

/// Sets the store's figures: how many runs have each status.
pub(crate) fn set_runs(counts: &[(chainr_runtime::record::Status, u64)]) {
    use chainr_runtime::record::Status;
    for status in Status::ALL {
        let n = count_of(counts, status);
        METRICS
            .runs
            .get_or_create(&StatusLabel {
                status: status.word(),
            })
            .set(n as i64);
        if status == Status::Pending {
            METRICS.queued.set(n as i64);
        }
    }
}

/// Counts what a worker of this process stored: each attempt that ended, by how it ended.
pub fn count_events(_run: &str, events: &[chainr_runtime::event::RunEvent]) {
    use chainr_runtime::event::EventKind;
    use chainr_runtime::record::Status;
    for e in events {
        if let EventKind::AttemptEnded { result, .. } = &e.kind {
            METRICS
                .attempts
                .get_or_create(&StatusLabel {
                    status: Status::from(result.end).word(),
                })
                .inc();
        }
    }
}

/// Sets the store's figures: how many notifications are in each state.
pub(crate) fn set_notifications(counts: &[(chainr_runtime::outbox::DeliveryState, u64)]) {
    use chainr_runtime::outbox::DeliveryState;
    for state in DeliveryState::ALL {
        let n = count_of(counts, state);
        METRICS
            .notifications
            .get_or_create(&StateLabel {
                state: state.word(),
            })
            .set(n as i64);
    }
}

/// Counts an attempt of this process's notifier: its medium and how it ended (`sent`,
/// `retried`, `dead`, `skipped`).
pub fn count_notification(medium: &str, result: &'static str) {
    METRICS
        .notification_attempts
        .get_or_create(&AttemptLabels {
            medium: medium.to_string(),
            result,
        })
        .inc();
}

/// Every metric in the Prometheus text format.
pub(crate) fn encode() -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &METRICS.registry);
    out
}
