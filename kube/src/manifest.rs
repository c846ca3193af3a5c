//! The `batch/v1` Job of one attempt: its name, labels and spec. Pure: the same attempt always
//! gives the same Job, so a re-created Job after a crash can be recognised (and adopted).

use chainr_compiler::ir;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, EnvVar, EnvVarSource, PodSpec, PodTemplateSpec, ResourceRequirements,
    SecretKeySelector,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;

pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const RUN: &str = "chainr.io/run";
pub const JOB: &str = "chainr.io/job";
pub const ATTEMPT: &str = "chainr.io/attempt";
/// The job's name as written in the pipeline (labels cannot hold every name).
pub const JOB_NAME: &str = "chainr.io/job-name";

/// What the Job of an attempt needs beyond the pipeline's job.
pub struct Attempt<'a> {
    pub run_id: &'a str,
    pub job_name: &'a str,
    pub attempt: u32,
    /// `CHAINR_RUN_STATUS` and `CHAINR_FAILED_JOBS` for finally jobs.
    pub extra_env: &'a [(&'static str, String)],
    /// Seconds a finished Job is kept before Kubernetes deletes it.
    pub ttl_after_finished: i32,
}

/// The Job's name and the `chainr.io/job` label: the compiler derives them, so that what it
/// reports as colliding is exactly what collides here.
pub use chainr_compiler::names::{job_label, job_object_name};

pub fn labels(run_id: &str, job: &str, attempt: u32) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.to_string(), "chainr".to_string()),
        (RUN.to_string(), run_id.to_string()),
        (JOB.to_string(), job_label(job)),
        (ATTEMPT.to_string(), attempt.to_string()),
    ])
}

fn env(name: &str, value: String) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value),
        value_from: None,
    }
}

pub fn job(spec: &ir::Job, a: &Attempt) -> Job {
    let labels = labels(a.run_id, a.job_name, a.attempt);
    let mut vars: Vec<EnvVar> = spec.env.iter().map(|(k, v)| env(k, v.clone())).collect();
    vars.push(env("CHAINR_RUN_ID", a.run_id.to_string()));
    vars.push(env("CHAINR_JOB", a.job_name.to_string()));
    vars.push(env("CHAINR_ATTEMPT", a.attempt.to_string()));
    for (k, v) in a.extra_env {
        vars.push(env(k, v.clone()));
    }
    for (k, s) in &spec.secret_env {
        vars.push(EnvVar {
            name: k.clone(),
            value: None,
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: s.secret.clone(),
                    key: s.key.clone(),
                    optional: None,
                }),
                ..Default::default()
            }),
        });
    }
    let mut quantities = BTreeMap::new();
    if let Some(cpu) = &spec.resources.cpu {
        quantities.insert("cpu".to_string(), Quantity(cpu.clone()));
    }
    if let Some(memory) = &spec.resources.memory {
        quantities.insert("memory".to_string(), Quantity(memory.clone()));
    }
    let resources = (!quantities.is_empty()).then(|| ResourceRequirements {
        // Requests and limits alike: the job gets what it asks for, no more.
        limits: Some(quantities.clone()),
        requests: Some(quantities),
        ..Default::default()
    });
    let container = Container {
        name: "job".to_string(),
        image: Some(spec.image.clone()),
        command: Some(vec!["sh".to_string(), "-c".to_string()]),
        // Kubernetes expands `$(NAME)` and turns `$$` into `$` in args: escaping every `$` hands
        // the script to the shell exactly as written (`$(date)`, `$$`).
        args: Some(vec![spec.run.replace('$', "$$")]),
        env: Some(vars),
        resources,
        working_dir: spec.working_dir.clone(),
        image_pull_policy: spec.image_pull_policy.map(|p| format!("{p:?}")),
        ..Default::default()
    };
    let mut annotations = BTreeMap::new();
    annotations.insert(JOB_NAME.to_string(), a.job_name.to_string());
    Job {
        metadata: ObjectMeta {
            name: Some(job_object_name(a.run_id, a.job_name, a.attempt)),
            labels: Some(labels.clone()),
            annotations: Some(annotations),
            ..Default::default()
        },
        spec: Some(JobSpec {
            // chainr retries by itself, one Job per attempt.
            backoff_limit: Some(0),
            active_deadline_seconds: spec.timeout.map(|t| t.0.millis.div_ceil(1000) as i64),
            ttl_seconds_after_finished: Some(a.ttl_after_finished),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".to_string()),
                    containers: vec![container],
                    service_account_name: spec.service_account.clone(),
                    node_selector: (!spec.node_selector.is_empty()).then(|| {
                        spec.node_selector
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect()
                    }),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_dns_label(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !s.starts_with('-')
            && !s.ends_with('-')
    }

    #[test]
    fn names_are_dns_labels_and_distinct() {
        let run = "3f0c9a2e-1b2c-4d5e-8f90-123456789abc";
        let names = [
            "build",
            "Build",
            "build_it",
            "build-it",
            "ünïcødé",
            "a".repeat(300).as_str().to_owned().leak(),
            "_",
            "x.y",
        ];
        let mut seen = std::collections::HashSet::new();
        for n in names {
            let object = job_object_name(run, n, 12);
            assert!(is_dns_label(&object), "{object}");
            assert!(seen.insert(object), "{n} collides");
            let label = job_label(n);
            assert!(label.len() <= 63 && is_dns_label(&label), "{label}");
        }
        assert_eq!(
            job_object_name(run, "build", 1),
            job_object_name(run, "build", 1)
        );
        assert_ne!(
            job_object_name(run, "build", 1),
            job_object_name(run, "build", 2)
        );
    }
}
