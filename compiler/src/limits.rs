//! The numeric limits of pipelines: one home for each range, shared by source checking, the
//! validation of IR JSON, the table of fields (for hover) and the runtime's scheduler. A value
//! outside its range is rejected whether it is written in `.chainr` or arrives as IR JSON, with
//! the same bounds (`docs/language.md` and `docs/ir.md` state them; a test checks they agree).

use crate::units::Duration;

/// An inclusive range of integers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntRange {
    pub min: i64,
    pub max: i64,
}

impl IntRange {
    pub const fn contains(self, n: i64) -> bool {
        self.min <= n && n <= self.max
    }
}

/// `retries`: extra attempts after a failed or errored attempt. `0` (the default) is a single
/// attempt; at most 100 extra attempts (E0207 in source, E0910 in IR JSON).
pub const RETRIES: IntRange = IntRange { min: 0, max: 100 };

/// `concurrency`: at most this many jobs of a run at once; at least 1, at most 100000 (E0207 in
/// source, E0910 in IR JSON). Without it, a run has no limit of its own.
pub const CONCURRENCY: IntRange = IntRange {
    min: 1,
    max: 100_000,
};

/// The wait before the first retry when a job gives no `backoff`.
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);

/// The longest wait before a retry: the backoff doubles after each retry up to this cap. A
/// `backoff` above it is a warning (W0004), since retries never wait longer.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// The shortest `timeout`: above zero, since a timeout of zero would kill every attempt at once
/// (E0213 in source, E0910 in IR JSON).
pub const MIN_TIMEOUT: Duration = Duration { millis: 1 };

/// The shortest `running_longer_than` of a notification: above zero, since every run is
/// running at its start (E0702 in source, E0911 in IR JSON).
pub const MIN_RUNNING_LONGER_THAN: Duration = Duration { millis: 1 };

/// The longest duration that can be written (`timeout`, `backoff`, a `duration` param): a year;
/// anything longer is surely a mistake (E0204 in source, E0900 in IR JSON).
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 86_400);

/// The most instances one fan-out makes (E0503).
pub const MAX_FANOUT: i64 = 10_000;

/// The longest job name in the IR, in bytes, a fan-out's `-VALUE` included (E0107 in source,
/// E0906 in IR JSON). The Kubernetes names derived from it are shorter: see [`crate::names`].
pub const MAX_JOB_NAME_LEN: usize = 253;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{compile, compile_json, Params};

    fn source_accepts(setting: &str, job_field: &str) -> bool {
        let src = format!(
            "pipeline p {{\n  {setting}\n  job a {{ image = \"busybox\" run = \"true\" {job_field} }}\n}}\n"
        );
        let out = compile(&src, &Params::default());
        assert!(
            out.diagnostics
                .iter()
                .all(|d| ["E0204", "E0207", "E0213"].contains(&d.code) || !d.is_error()),
            "{src}: {:?}",
            out.diagnostics
        );
        out.pipeline.is_some()
    }

    fn ir_accepts(concurrency: i64, retries: i64) -> bool {
        let json = format!(
            r#"{{"kind": "Pipeline", "concurrency": {concurrency}, "jobs": {{"a": {{"image": "busybox", "run": "true", "retries": {retries}}}}}}}"#
        );
        compile_json(&json).pipeline.is_some()
    }

    /// Source and IR JSON accept exactly the same values at and around every bound.
    #[test]
    fn source_and_ir_meet_the_same_ranges() {
        for n in [
            CONCURRENCY.min - 1,
            CONCURRENCY.min,
            CONCURRENCY.max,
            CONCURRENCY.max + 1,
        ] {
            let source = source_accepts(&format!("concurrency = {n}"), "");
            // Below 0 the IR's unsigned field refuses it already (E0900).
            let ir = ir_accepts(n, 0);
            assert_eq!(source, CONCURRENCY.contains(n), "source, concurrency {n}");
            assert_eq!(ir, CONCURRENCY.contains(n), "IR, concurrency {n}");
        }
        for n in [RETRIES.min, RETRIES.max, RETRIES.max + 1, 1000] {
            let source = source_accepts("", &format!("retries = {n}"));
            let ir = ir_accepts(1, n);
            assert_eq!(source, RETRIES.contains(n), "source, retries {n}");
            assert_eq!(ir, RETRIES.contains(n), "IR, retries {n}");
        }
        assert!(!source_accepts("", "retries = -1"));
    }

    #[test]
    fn timeouts_and_durations_meet_the_same_bounds() {
        let source = |t: &str| source_accepts("", &format!("timeout = {t}"));
        let ir = |t: &str| {
            compile_json(&format!(
                r#"{{"kind": "Pipeline", "jobs": {{"a": {{"image": "busybox", "run": "true", "timeout": "{t}"}}}}}}"#
            ))
            .pipeline
            .is_some()
        };
        let longest = MAX_DURATION.to_string();
        let too_long = Duration {
            millis: MAX_DURATION.millis + 1,
        }
        .to_string();
        for (t, ok) in [
            ("0s", false),
            ("1ms", true),
            (longest.as_str(), true),
            (too_long.as_str(), false),
        ] {
            assert_eq!(ir(t), ok, "IR, timeout {t}");
            if t != too_long {
                assert_eq!(source(t), ok, "source, timeout {t}");
            }
        }
        assert_eq!(MIN_TIMEOUT.millis, 1);
    }

    #[test]
    fn the_field_table_uses_these_ranges() {
        use crate::fields::{job_field, setting, FieldKind};
        let int = |kind| match kind {
            FieldKind::Int { min, max } => IntRange { min, max },
            other => panic!("{other:?}"),
        };
        assert_eq!(int(job_field("retries").unwrap().kind), RETRIES);
        assert_eq!(int(setting("concurrency").unwrap().kind), CONCURRENCY);
        let backoff = job_field("backoff").unwrap().doc;
        assert!(
            backoff.contains(&format!("capped at {MAX_BACKOFF}")),
            "{backoff}"
        );
        assert!(
            backoff.contains(&format!("Default {DEFAULT_BACKOFF}")),
            "{backoff}"
        );
    }

    /// The references state the same numbers as the constants.
    #[test]
    fn the_docs_state_these_limits() {
        let words = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
        let language = words(include_str!("../../docs/language.md"));
        let ir = words(include_str!("../../docs/ir.md"));
        for needle in [
            format!("| `retries` | int, {} to {} |", RETRIES.min, RETRIES.max),
            format!(
                "| `concurrency` | int, {} to {} |",
                CONCURRENCY.min, CONCURRENCY.max
            ),
            format!("capped at `{MAX_BACKOFF}`"),
            format!("| `backoff` | duration | `{DEFAULT_BACKOFF}` |"),
            format!("more than {MAX_FANOUT} instances is `E0503`"),
            format!("longer than {MAX_JOB_NAME_LEN} bytes"),
            format!(
                "(`retries` {} to {}, `concurrency` {} to {})",
                RETRIES.min, RETRIES.max, CONCURRENCY.min, CONCURRENCY.max
            ),
        ] {
            assert!(language.contains(&needle), "docs/language.md: {needle}");
        }
        for needle in [
            format!(
                "| `retries` | integer, {} to {} |",
                RETRIES.min, RETRIES.max
            ),
            format!(
                "| `concurrency` | integer, {} to {} |",
                CONCURRENCY.min, CONCURRENCY.max
            ),
            format!("capped at {MAX_BACKOFF}"),
            format!("| E0906 | A job name is 1 to {MAX_JOB_NAME_LEN} bytes"),
            format!(
                "`concurrency` is from {} to {}; `retries` is from {} to {}",
                CONCURRENCY.min, CONCURRENCY.max, RETRIES.min, RETRIES.max
            ),
        ] {
            assert!(ir.contains(&needle), "docs/ir.md: {needle}");
        }
    }
}
