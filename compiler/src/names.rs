//! Names: what a valid name is in the language (identifiers, keywords, environment variable
//! names), and the names a job takes in Kubernetes. One rule each, used by the checker, IR
//! validation, editors and the runtime's Kubernetes executor, so that what the compiler accepts
//! and reports is exactly what the runtime creates. Pure.

use crate::limits;

// ---------------------------------------------------------------- the language

/// The keywords of the grammar (`grammar/chainr.pest`, its `kw_*` rules). They are not reserved:
/// each is recognised by its position, so `job after { ... }` is a job named `after`.
pub const KEYWORDS: [&str; 11] = [
    "pipeline", "job", "after", "param", "defaults", "template", "finally", "for", "in", "notify",
    "on",
];

/// The boolean literals: where a value stands, these are always booleans, so a param named
/// `true` cannot be used as a value.
pub const BOOLEANS: [&str; 2] = ["true", "false"];

/// Whether `s` is an identifier (the grammar's `ident`): an ASCII letter or `_`, then ASCII
/// letters, digits, `_` and `-`. Jobs, params, templates, template parameters, loop variables
/// and fields are named with identifiers.
pub fn is_identifier(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Whether `s` is one of the grammar's [`KEYWORDS`].
pub fn is_keyword(s: &str) -> bool {
    KEYWORDS.contains(&s)
}

/// Whether `s` can be given to a job, param, template or local name by an editor (rename): an
/// identifier that reads as nothing else. The language accepts keywords as names, but a new name
/// `in` or `after` only makes a pipeline harder to read, and `true` or `false` would turn the
/// uses of a param into booleans. The error says why, in words.
pub fn check_new_name(s: &str) -> Result<(), String> {
    if !is_identifier(s) {
        return Err(format!(
            "`{s}` is not a name: use letters, digits, `_` and `-`, starting with a letter"
        ));
    }
    if is_keyword(s) {
        return Err(format!("`{s}` is a keyword: choose another name"));
    }
    if BOOLEANS.contains(&s) {
        return Err(format!("`{s}` is a boolean: choose another name"));
    }
    Ok(())
}

/// The prefix of the environment variables chainr sets itself (`CHAINR_JOB`, ...): `env` and
/// `secret_env` cannot set them (E0212, E0908).
pub const RESERVED_ENV_PREFIX: &str = "CHAINR_";

/// Whether `s` is a valid environment variable name in `env` and `secret_env`: ASCII letters,
/// digits and `_`, not starting with a digit (E0209, E0908).
pub fn is_env_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

// ---------------------------------------------------------------- Kubernetes

/// The longest Kubernetes name derived here: a DNS-1123 label, since Kubernetes copies a Job's
/// name into the `job-name` label of its pods, and label values are at most 63 characters.
pub const MAX_DNS_LABEL: usize = 63;

/// The most characters of the run id a Job name shows.
const RUN_PART: usize = 8;
/// The most characters of the job's name a Job name shows.
const JOB_PART: usize = 27;
/// Digits of the attempt number that fit without shortening the job's part: attempts are at most
/// `retries + 1`, so they have at most 3 digits.
const ATTEMPT_DIGITS: usize = 3;
const _: () = assert!(limits::RETRIES.max + 1 < 1000);
/// The most characters of the job's name the `chainr.io/job` label shows.
const LABEL_PART: usize = 48;

/// The 64-bit FNV-1a hash of a text: simple and stable across builds and platforms, so a Job
/// re-created by another chainrc version after a crash gets the same name.
pub fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The low 24 bits of [`fnv1a`] as 6 hex digits: keeps the names derived from distinct job names
/// distinct (`build_docs` and `build-docs`).
pub fn short_hash(s: &str) -> String {
    format!("{:06x}", fnv1a(s) & 0xff_ffff)
}

/// The low 32 bits of [`fnv1a`] as 8 hex digits, for run ids.
fn run_hash(s: &str) -> String {
    format!("{:08x}", fnv1a(s) & 0xffff_ffff)
}

/// A part of a DNS-1123 label: lower case, `-` for anything not an ASCII letter or digit, no
/// leading, trailing or doubled `-`, at most `max` characters. Empty when `s` has no letter or
/// digit.
pub fn dns_part(s: &str, max: usize) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        if out.len() >= max {
            break;
        }
    }
    out.trim_end_matches('-').to_string()
}

fn or(part: String, default: &str) -> String {
    if part.is_empty() {
        default.to_string()
    } else {
        part
    }
}

/// Whether `s` is a DNS-1123 label: 1 to 63 lower-case letters, digits and `-`, starting and
/// ending with a letter or digit.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_DNS_LABEL
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The part of a job's Job names that comes from the job: its name made a DNS label (at most 27
/// characters) and a short hash of the whole name. Two jobs of a pipeline get the same Job names
/// exactly when this is the same for both, in every run and for every attempt (E0105, E0907).
pub fn job_segment(job: &str) -> String {
    job_segment_within(job, JOB_PART)
}

fn job_segment_within(job: &str, max: usize) -> String {
    format!("{}-{}", or(dns_part(job, max), "job"), short_hash(job))
}

/// The name of the Kubernetes Job of an attempt:
/// `chainr-RUN-RUNHASH-JOB-JOBHASH-ATTEMPT`, a DNS-1123 label of at most 63 characters.
///
/// RUN is the run id's first characters and RUNHASH a hash of the whole run id, so runs whose
/// ids differ get different names even when their ids start alike (`nightly-2026-01-01`,
/// `nightly-2026-01-02`); JOB-JOBHASH is [`job_segment`]. The same attempt always gives the same
/// name, so a Job created before a crash is found again.
pub fn job_object_name(run_id: &str, job: &str, attempt: u32) -> String {
    let attempt = attempt.to_string();
    // Attempts beyond the limits' (which validation refuses) shorten the job's part to fit.
    let job_max = JOB_PART - attempt.len().saturating_sub(ATTEMPT_DIGITS);
    format!(
        "chainr-{}-{}-{}-{attempt}",
        or(dns_part(run_id, RUN_PART), "run"),
        run_hash(run_id),
        job_segment_within(job, job_max),
    )
}

/// The value of the `chainr.io/job` label: a valid label value for any job name, distinct for
/// distinct names (the name made a DNS label of at most 48 characters, and a short hash).
pub fn job_label(job: &str) -> String {
    format!(
        "{}-{}",
        or(dns_part(job, LABEL_PART), "job"),
        short_hash(job)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: &str = "3f0c9a2e-1b2c-4d5e-8f90-123456789abc";

    fn awkward_names() -> Vec<String> {
        let mut names: Vec<String> = [
            "build",
            "Build",
            "build_it",
            "build-it",
            "ünïcødé",
            "_",
            "x.y",
            "-",
            "a--b",
            "9lives",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        names.push("a".repeat(300));
        names.push("a".repeat(299) + "b");
        names.push("é".repeat(200));
        names.push("load_customer_orders_into_the_warehouse".into());
        names
    }

    #[test]
    fn identifiers_follow_the_grammar() {
        for ok in [
            "build",
            "unit-tests",
            "load_users",
            "_tmp",
            "shard2",
            "A-",
            "after",
        ] {
            assert!(is_identifier(ok), "{ok}");
        }
        for bad in ["", "2x", "-a", "a.b", "a b", "é", "a/b", "a$"] {
            assert!(!is_identifier(bad), "{bad}");
        }
    }

    /// The keywords are exactly the grammar's `kw_*` rules.
    #[test]
    fn keywords_are_the_grammars() {
        let grammar = include_str!("../../grammar/chainr.pest");
        let mut from_grammar: Vec<&str> = grammar
            .lines()
            .filter_map(|l| l.strip_prefix("kw_"))
            .filter_map(|l| l.split('"').nth(1))
            .collect();
        let mut ours = KEYWORDS.to_vec();
        from_grammar.sort_unstable();
        ours.sort_unstable();
        assert_eq!(ours, from_grammar);
        assert!(grammar.contains(r#"boolean   = @{ ("true" | "false") ~ !ident_char }"#));
        let docs = include_str!("../../docs/language.md");
        let listed = docs
            .split("Keywords (")
            .nth(1)
            .and_then(|s| s.split(')').next())
            .unwrap_or("");
        for kw in KEYWORDS {
            assert!(
                listed.contains(&format!("`{kw}`")),
                "docs/language.md: {kw}"
            );
        }
    }

    #[test]
    fn new_names_are_identifiers_and_no_keywords() {
        assert!(check_new_name("deploy-prod").is_ok());
        assert!(check_new_name("after_all").is_ok());
        for kw in KEYWORDS.iter().chain(&BOOLEANS) {
            let why = check_new_name(kw).unwrap_err();
            assert!(why.contains(kw), "{why}");
        }
        assert!(check_new_name("a b").unwrap_err().contains("not a name"));
    }

    #[test]
    fn env_names() {
        for ok in ["A", "_x", "MY_VAR2"] {
            assert!(is_env_name(ok), "{ok}");
        }
        for bad in ["", "2A", "MY-VAR", "a.b", "É"] {
            assert!(!is_env_name(bad), "{bad}");
        }
    }

    #[test]
    fn kubernetes_names_are_dns_labels_within_63_characters() {
        for job in awkward_names() {
            for run in [RUN, "", "___", "nightly-2026-01-01", &"R".repeat(100)] {
                for attempt in [1, 12, 101, 999, 1000, u32::MAX] {
                    let name = job_object_name(run, &job, attempt);
                    assert!(is_dns_label(&name), "{name:?} ({} chars)", name.len());
                }
            }
            let label = job_label(&job);
            assert!(is_dns_label(&label), "{label:?}");
            assert!(is_dns_label(&job_segment(&job)));
        }
        // The longest possible name is exactly the limit.
        let longest = job_object_name(&"r".repeat(20), &"j".repeat(100), u32::MAX);
        assert_eq!(longest.len(), MAX_DNS_LABEL, "{longest}");
        let longest = job_object_name(&"r".repeat(20), &"j".repeat(100), 101);
        assert_eq!(longest.len(), MAX_DNS_LABEL, "{longest}");
    }

    #[test]
    fn kubernetes_names_are_deterministic() {
        assert_eq!(
            job_object_name(RUN, "build", 1),
            job_object_name(RUN, "build", 1)
        );
        // Fixed forever: a Job created before a crash must be found again by a later chainrc.
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(
            short_hash("build"),
            format!("{:06x}", fnv1a("build") & 0xff_ffff)
        );
        assert_eq!(
            job_object_name("nightly-2026-01-01", "first", 1),
            format!(
                "chainr-nightly-{}-first-{}-1",
                run_hash("nightly-2026-01-01"),
                short_hash("first")
            )
        );
    }

    #[test]
    fn runs_with_different_ids_get_different_job_names() {
        let a = job_object_name("nightly-2026-01-01", "first", 1);
        let b = job_object_name("nightly-2026-01-02", "first", 1);
        assert_ne!(a, b);
        // Ids that agree on every character the name shows.
        let long = "x".repeat(40);
        assert_ne!(
            job_object_name(&format!("{long}1"), "j", 1),
            job_object_name(&format!("{long}2"), "j", 1)
        );
        assert_ne!(
            job_object_name("Run_1", "j", 1),
            job_object_name("run-1", "j", 1)
        );
    }

    #[test]
    fn distinct_jobs_and_attempts_get_distinct_names() {
        let names = awkward_names();
        let mut seen = std::collections::HashSet::new();
        for n in &names {
            for attempt in [1, 2, 12, 101] {
                assert!(
                    seen.insert(job_object_name(RUN, n, attempt)),
                    "{n} {attempt}"
                );
            }
        }
        let labels: std::collections::HashSet<String> =
            names.iter().map(|n| job_label(n)).collect();
        assert_eq!(labels.len(), names.len());
    }

    /// The check at compile time compares job segments: two jobs' Job names are equal exactly
    /// when their segments are, whatever the run and the attempt, and equal labels imply equal
    /// segments.
    #[test]
    fn job_segments_decide_collisions() {
        let (a, b) = COLLIDING;
        assert_ne!(a, b);
        assert_eq!(job_segment(a), job_segment(b));
        for run in [RUN, "nightly-2026-01-01"] {
            for attempt in [1, 7, 101] {
                assert_eq!(
                    job_object_name(run, a, attempt),
                    job_object_name(run, b, attempt)
                );
                assert_ne!(
                    job_object_name(run, a, attempt),
                    job_object_name(run, "build", attempt)
                );
            }
        }
        let names = awkward_names();
        for x in &names {
            for y in &names {
                let same_segment = job_segment(x) == job_segment(y);
                assert_eq!(
                    job_object_name(RUN, x, 3) == job_object_name(RUN, y, 3),
                    same_segment
                );
                if job_label(x) == job_label(y) {
                    assert!(same_segment);
                }
            }
        }
    }

    /// Two job names whose Kubernetes names really are the same: they agree on their first 27
    /// characters and their hashes collide (found by trying numbered suffixes). The fixtures of
    /// E0105 and E0907 use them.
    pub(crate) const COLLIDING: (&str, &str) = (
        "export_customer_orders_to_warehouse_32879",
        "export_customer_orders_to_warehouse_41464",
    );
}
