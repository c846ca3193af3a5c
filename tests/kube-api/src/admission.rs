//! What the API server does to a Job before storing it: decoding, validation (422 `Invalid` with
//! field causes, as `kubectl` shows them) and defaulting (the generated selector and labels, the
//! Job and pod template defaults).

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec, JobStatus};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::{json, Value};

use crate::http::ApiError;
use crate::store::generate_name;

/// One field error, rendered as the API server renders `field.Error`.
struct FieldError {
    field: String,
    reason: &'static str,
    text: String,
}

impl FieldError {
    fn invalid(field: impl Into<String>, value: &str, detail: &str) -> Self {
        FieldError {
            field: field.into(),
            reason: "FieldValueInvalid",
            text: format!("Invalid value: {}: {detail}", json!(value)),
        }
    }

    fn required(field: impl Into<String>, detail: &str) -> Self {
        let text = if detail.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {detail}")
        };
        FieldError {
            field: field.into(),
            reason: "FieldValueRequired",
            text,
        }
    }

    fn not_supported(field: impl Into<String>, value: &str, supported: &[&str]) -> Self {
        let supported: Vec<String> = supported.iter().map(|s| json!(s).to_string()).collect();
        FieldError {
            field: field.into(),
            reason: "FieldValueNotSupported",
            text: format!(
                "Unsupported value: {}: supported values: {}",
                json!(value),
                supported.join(", ")
            ),
        }
    }
}

fn invalid(kind: &str, group: &str, name: &str, errors: Vec<FieldError>) -> ApiError {
    let rendered: Vec<String> = errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.text))
        .collect();
    let summary = if rendered.len() == 1 {
        rendered[0].clone()
    } else {
        format!("[{}]", rendered.join(", "))
    };
    let qualified = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    };
    let causes: Vec<Value> = errors
        .iter()
        .map(|e| json!({ "reason": e.reason, "message": e.text, "field": e.field }))
        .collect();
    ApiError {
        details: Some(json!({ "name": name, "group": group, "kind": kind, "causes": causes })),
        ..ApiError::new(
            422,
            "Invalid",
            format!("{qualified} \"{name}\" is invalid: {summary}"),
        )
    }
}

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const ENV_NAME_MSG: &str = "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')";

pub(crate) fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn is_dns1123_subdomain(s: &str) -> bool {
    // The regex alone: the parts between dots have no length limit of their own.
    s.len() <= 253
        && s.split('.').all(|part| {
            let b = part.as_bytes();
            !b.is_empty()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
        })
}

fn is_label_value(s: &str) -> bool {
    let b = s.as_bytes();
    b.is_empty()
        || (b.len() <= 63
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric())
}

fn label_key_errors(field: &str, key: &str) -> Vec<FieldError> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let mut out = Vec::new();
    if let Some(p) = prefix {
        if p.is_empty() || !is_dns1123_subdomain(p) {
            out.push(FieldError::invalid(
                field,
                key,
                &format!("prefix part {DNS1123_SUBDOMAIN_MSG}"),
            ));
        }
    }
    if name.is_empty() || name.len() > 63 || !is_label_value(name) {
        let detail = if name.len() > 63 {
            "name part must be no more than 63 characters"
        } else {
            QUALIFIED_NAME_MSG
        };
        out.push(FieldError::invalid(field, key, detail));
    }
    out
}

fn labels_errors(field: &str, labels: Option<&BTreeMap<String, String>>) -> Vec<FieldError> {
    let mut out = Vec::new();
    for (k, v) in labels.into_iter().flatten() {
        out.extend(label_key_errors(field, k));
        if v.len() > 63 {
            out.push(FieldError::invalid(
                field,
                v,
                "must be no more than 63 characters",
            ));
        } else if !is_label_value(v) {
            out.push(FieldError::invalid(field, v, LABEL_VALUE_MSG));
        }
    }
    out
}

fn is_env_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && !b[0].is_ascii_digit()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-._".contains(c))
}

fn container_errors(path: &str, c: &Container) -> Vec<FieldError> {
    let mut out = Vec::new();
    if c.name.is_empty() {
        out.push(FieldError::required(format!("{path}.name"), ""));
    } else if !is_dns1123_label(&c.name) {
        out.push(FieldError::invalid(
            format!("{path}.name"),
            &c.name,
            DNS1123_LABEL_MSG,
        ));
    }
    if c.image.as_deref().unwrap_or("").trim().is_empty() {
        out.push(FieldError::required(format!("{path}.image"), ""));
    }
    for (i, e) in c.env.iter().flatten().enumerate() {
        if !is_env_name(&e.name) {
            out.push(FieldError::invalid(
                format!("{path}.env[{i}].name"),
                &e.name,
                ENV_NAME_MSG,
            ));
        }
    }
    out
}

/// Decodes and validates a Job posted to namespace `ns`, resolving `generateName` (the flag
/// tells whether the name was generated). The uid and defaults come later ([`default_job`]),
/// once the name is known to be free.
pub(crate) fn admit_job(body: &[u8], ns: &str) -> Result<(Job, bool), ApiError> {
    let mut job: Job = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding Job: {e}")))?;
    match job.metadata.namespace.as_deref() {
        Some(n) if !n.is_empty() && n != ns => return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        _ => job.metadata.namespace = Some(ns.to_string()),
    }
    let mut errors = Vec::new();
    let generated = job.metadata.name.as_deref().is_none_or(str::is_empty);
    let name = match (
        job.metadata.name.as_deref(),
        job.metadata.generate_name.as_deref(),
    ) {
        (Some(n), _) if !n.is_empty() => n.to_string(),
        (_, Some(g)) if !g.is_empty() => generate_name(g),
        _ => {
            errors.push(FieldError::required(
                "metadata.name",
                "name or generateName is required",
            ));
            String::new()
        }
    };
    job.metadata.name = Some(name.clone());
    if !name.is_empty() {
        if !is_dns1123_subdomain(&name) {
            errors.push(FieldError::invalid(
                "metadata.name",
                &name,
                DNS1123_SUBDOMAIN_MSG,
            ));
        } else if name.len() > 63 {
            // The name is copied into the pods' `job-name` label, a label value.
            errors.push(FieldError::invalid(
                "metadata.name",
                &name,
                "must be no more than 63 characters",
            ));
        }
    }
    errors.extend(labels_errors(
        "metadata.labels",
        job.metadata.labels.as_ref(),
    ));

    let spec = job.spec.get_or_insert_with(JobSpec::default);
    if spec.selector.is_some() && spec.manual_selector != Some(true) {
        errors.push(FieldError::invalid(
            "spec.selector",
            "",
            "`selector` will be auto-generated",
        ));
    }
    for (field, v) in [
        ("spec.parallelism", spec.parallelism.map(i64::from)),
        ("spec.completions", spec.completions.map(i64::from)),
        ("spec.backoffLimit", spec.backoff_limit.map(i64::from)),
        (
            "spec.ttlSecondsAfterFinished",
            spec.ttl_seconds_after_finished.map(i64::from),
        ),
    ] {
        if let Some(v) = v.filter(|v| *v < 0) {
            errors.push(FieldError::invalid(
                field,
                &v.to_string(),
                "must be greater than or equal to 0",
            ));
        }
    }
    if let Some(d) = spec.active_deadline_seconds.filter(|d| *d <= 0) {
        errors.push(FieldError::invalid(
            "spec.activeDeadlineSeconds",
            &d.to_string(),
            "must be greater than 0",
        ));
    }
    errors.extend(labels_errors(
        "spec.template.metadata.labels",
        spec.template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.as_ref()),
    ));
    match spec.template.spec.as_ref() {
        None => errors.push(FieldError::required("spec.template.spec.containers", "")),
        Some(pod) => {
            match pod.restart_policy.as_deref() {
                Some("Never") | Some("OnFailure") => {}
                Some(other) => errors.push(FieldError::not_supported(
                    "spec.template.spec.restartPolicy",
                    other,
                    &["OnFailure", "Never"],
                )),
                None => errors.push(FieldError::not_supported(
                    "spec.template.spec.restartPolicy",
                    "Always",
                    &["OnFailure", "Never"],
                )),
            }
            if pod.containers.is_empty() {
                errors.push(FieldError::required("spec.template.spec.containers", ""));
            }
            for (i, c) in pod.containers.iter().enumerate() {
                errors.extend(container_errors(
                    &format!("spec.template.spec.containers[{i}]"),
                    c,
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok((job, generated))
    } else {
        Err(invalid("Job", "batch", &name, errors))
    }
}

/// The API server's defaults for a new Job: the generated selector and labels, the spec and pod
/// template defaults, an empty status.
pub(crate) fn default_job(job: &mut Job, uid: &str) {
    let name = job.metadata.name.clone().unwrap_or_default();
    job.metadata.uid = Some(uid.to_string());
    job.metadata.generation = Some(1);
    job.metadata.creation_timestamp = Some(crate::store::now());
    job.metadata.resource_version = None;
    job.metadata.deletion_timestamp = None;
    job.status = Some(JobStatus::default());

    let spec = job.spec.get_or_insert_with(JobSpec::default);
    if spec.completions.is_none() && spec.parallelism.is_none() {
        spec.completions = Some(1);
    }
    spec.parallelism.get_or_insert(1);
    spec.backoff_limit.get_or_insert(6);
    spec.completion_mode
        .get_or_insert_with(|| "NonIndexed".into());
    spec.suspend.get_or_insert(false);
    spec.pod_replacement_policy
        .get_or_insert_with(|| "TerminatingOrFailed".into());
    if spec.manual_selector != Some(true) {
        spec.selector = Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                "batch.kubernetes.io/controller-uid".to_string(),
                uid.to_string(),
            )])),
            ..Default::default()
        });
        let template_meta = spec.template.metadata.get_or_insert_with(Default::default);
        let labels = template_meta.labels.get_or_insert_with(BTreeMap::new);
        for (k, v) in [
            ("batch.kubernetes.io/controller-uid", uid),
            ("batch.kubernetes.io/job-name", name.as_str()),
            ("controller-uid", uid),
            ("job-name", name.as_str()),
        ] {
            labels.insert(k.to_string(), v.to_string());
        }
    }
    default_pod_template(&mut spec.template);
    // A Job without labels of its own takes its template's (the defaulting runs again when the
    // object is read back, after the selector was generated, so the generated labels come too).
    if job.metadata.labels.as_ref().is_none_or(BTreeMap::is_empty) {
        job.metadata.labels = spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone());
    }
}

fn default_pod_template(t: &mut PodTemplateSpec) {
    let pod = t.spec.get_or_insert_with(PodSpec::default);
    pod.dns_policy.get_or_insert_with(|| "ClusterFirst".into());
    pod.scheduler_name
        .get_or_insert_with(|| "default-scheduler".into());
    pod.termination_grace_period_seconds.get_or_insert(30);
    pod.security_context.get_or_insert_with(Default::default);
    for c in &mut pod.containers {
        c.termination_message_path
            .get_or_insert_with(|| "/dev/termination-log".into());
        c.termination_message_policy
            .get_or_insert_with(|| "File".into());
        c.resources.get_or_insert_with(Default::default);
        if c.image_pull_policy.is_none() {
            let image = c.image.as_deref().unwrap_or("");
            let last = image.rsplit('/').next().unwrap_or(image);
            let tag = last
                .split_once('@')
                .map_or(last, |(n, _)| n)
                .split_once(':')
                .map(|(_, t)| t);
            let digest = last.contains('@');
            c.image_pull_policy = Some(if !digest && matches!(tag, None | Some("latest")) {
                "Always".into()
            } else {
                "IfNotPresent".into()
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_dns1123_label("a-b-1"));
        assert!(!is_dns1123_label("-a"));
        assert!(!is_dns1123_label("A"));
        assert!(!is_dns1123_label(&"a".repeat(64)));
        assert!(is_dns1123_subdomain("a.b"));
        assert!(is_label_value("My_value.1"));
        assert!(!is_label_value("-x"));
        assert!(is_env_name("MY_VAR.x"));
        assert!(!is_env_name("1X"));
    }
}
