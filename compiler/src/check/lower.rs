//! Lowering a checked pipeline to the IR: jobs with their fields, and conditions in the
//! original `dependsOn` form where they allow it.

use super::{Decl, HashMap, HashSet, JobFields};
use crate::ir;
use crate::outcome::{bare_after_accepts, Outcome, OutcomeTest};
use crate::syntax::*;

/// A job's IR from its checked fields; its conditions are added by [`jobs`].
pub(super) fn job(f: JobFields, finally: bool) -> ir::Job {
    let mut j = ir::Job::new(f.image.unwrap_or_default(), f.run.unwrap_or_default());
    j.description = f.description;
    j.env = f.env;
    j.secret_env = f.secret_env;
    j.retries = f.retries;
    j.backoff = f.backoff.map(ir::DurationText);
    j.timeout = f.timeout.map(ir::DurationText);
    j.resources = f.resources;
    j.allow_failure = f.allow_failure;
    j.finally = finally;
    j.working_dir = f.working_dir;
    j.service_account = f.service_account;
    j.node_selector = f.node_selector;
    j.image_pull_policy = f.image_pull_policy;
    j.notify = f.notify;
    j
}

/// Puts every job's instances into the pipeline, with their lowered conditions.
pub(super) fn jobs(
    decls: &[Decl],
    bodies: Vec<Vec<ir::Job>>,
    by_name: &HashMap<&str, usize>,
    pipeline: &mut ir::Pipeline,
) {
    for (decl, jobs) in decls.iter().zip(bodies) {
        let (depends_on, condition) = match &decl.job.after {
            Some(after) => lower_condition(&after.cond, decls, by_name),
            None => (Vec::new(), None),
        };
        for (name, mut job) in decl.instances.iter().zip(jobs) {
            job.depends_on = depends_on.clone();
            job.condition = condition.clone();
            pipeline.jobs.insert(name.clone(), job);
        }
    }
}

/// Lowers a checked condition: a top-level conjunction of `x` and `x.failed` on single jobs
/// becomes the original `dependsOn` form; whatever is left becomes `condition`.
fn lower_condition(
    cond: &Cond,
    decls: &[Decl],
    by_name: &HashMap<&str, usize>,
) -> (Vec<ir::Dependency>, Option<ir::Condition>) {
    let conjuncts: Vec<&Cond> = match cond {
        Cond::And(cs, _) => cs.iter().collect(),
        c => vec![c],
    };
    let mut depends_on = Vec::new();
    let mut rest = Vec::new();
    for c in conjuncts {
        if let Cond::Ref { job, outcome, .. } = c {
            let d = &decls[by_name[job.name.as_str()]];
            let t = test_of(outcome);
            // `{"job": x}` in `dependsOn` means what a bare `after x` means.
            let plain = t == OutcomeTest::Bare
                || (t == OutcomeTest::Succeeded && !d.allow_failure.iter().any(|&a| a));
            if plain {
                depends_on.extend(d.instances.iter().map(|i| ir::Dependency {
                    job: i.clone(),
                    conditions: None,
                }));
                continue;
            }
            if t == OutcomeTest::Failed && !d.fanned {
                depends_on.push(ir::Dependency {
                    job: d.instances[0].clone(),
                    conditions: Some(ir::DependencyConditions { failure: true }),
                });
                continue;
            }
        }
        rest.push(lower(c, decls, by_name));
    }
    // `after s, s.succeeded` names the same dependency twice; keep the first.
    if depends_on.len() > 1 {
        let mut seen: HashSet<(&str, bool)> = HashSet::default();
        let keep: Vec<bool> = depends_on
            .iter()
            .map(|d| seen.insert((d.job.as_str(), d.on_failure())))
            .collect();
        let mut keep = keep.into_iter();
        depends_on.retain(|_| keep.next().unwrap_or(true));
    }
    let condition = match rest.len() {
        0 => None,
        1 => rest.pop(),
        _ => Some(ir::Condition::All(rest)),
    };
    (depends_on, condition)
}

fn lower(c: &Cond, decls: &[Decl], by_name: &HashMap<&str, usize>) -> ir::Condition {
    use ir::Condition as C;
    match c {
        Cond::Not(c, _) => C::Not(Box::new(lower(c, decls, by_name))),
        Cond::And(cs, _) => C::All(cs.iter().map(|c| lower(c, decls, by_name)).collect()),
        Cond::Or(cs, _) => C::Any(cs.iter().map(|c| lower(c, decls, by_name)).collect()),
        Cond::Ref { job, outcome, .. } => {
            let d = &decls[by_name[job.name.as_str()]];
            let each = |f: fn(String) -> C| -> Vec<C> {
                d.instances.iter().map(|i| f(i.clone())).collect()
            };
            let all = |cs: Vec<C>| {
                if cs.len() == 1 {
                    cs.into_iter().next().expect("one")
                } else {
                    C::All(cs)
                }
            };
            let any = |cs: Vec<C>| {
                if cs.len() == 1 {
                    cs.into_iter().next().expect("one")
                } else {
                    C::Any(cs)
                }
            };
            match test_of(outcome) {
                // Spelled out with the outcomes a bare `after` accepts of a job with
                // `allow_failure`.
                OutcomeTest::Bare if d.allow_failure.iter().any(|&a| a) => all(d
                    .instances
                    .iter()
                    .zip(&d.allow_failure)
                    .map(|(i, &allowed)| {
                        let accepted: Vec<C> = Outcome::ALL
                            .into_iter()
                            .filter(|&o| bare_after_accepts(o, allowed))
                            .map(|o| is(o, i.clone()))
                            .collect();
                        any(accepted)
                    })
                    .collect()),
                OutcomeTest::Bare | OutcomeTest::Succeeded => all(each(C::Succeeded)),
                OutcomeTest::Failed => any(each(C::Failed)),
                OutcomeTest::Skipped => all(each(C::Skipped)),
                OutcomeTest::Done => all(each(C::Done)),
                // A group is errored when an instance errored and none failed; cancelled when one
                // was cancelled and none failed or errored.
                OutcomeTest::Errored if d.fanned => all(vec![
                    C::Not(Box::new(any(each(C::Failed)))),
                    any(each(C::Errored)),
                ]),
                OutcomeTest::Errored => C::Errored(d.instances[0].clone()),
                OutcomeTest::Cancelled if d.fanned => all(vec![
                    C::Not(Box::new(any(each(C::Failed)))),
                    C::Not(Box::new(any(each(C::Errored)))),
                    any(each(C::Cancelled)),
                ]),
                OutcomeTest::Cancelled => C::Cancelled(d.instances[0].clone()),
            }
        }
    }
}

/// What a reference in a checked condition tests. Unknown words are E0104, so lowering never
/// sees one; the fallback only keeps this function total.
fn test_of(outcome: &Option<Ident>) -> OutcomeTest {
    OutcomeTest::of(outcome.as_ref().map(|o| o.name.as_str())).unwrap_or(OutcomeTest::Done)
}

/// The IR condition that a job ended with `o`.
fn is(o: Outcome, job: String) -> ir::Condition {
    match o {
        Outcome::Succeeded => ir::Condition::Succeeded(job),
        Outcome::Failed => ir::Condition::Failed(job),
        Outcome::Errored => ir::Condition::Errored(job),
        Outcome::Skipped => ir::Condition::Skipped(job),
        Outcome::Cancelled => ir::Condition::Cancelled(job),
    }
}
