//! The scheduler gives the same outcomes as a simple reference model, on random pipelines,
//! random attempt results and random orders of events, and keeps its invariants throughout.

use chainr_compiler::ir::{self, Condition, Dependency, DependencyConditions};
use chainr_runtime::scheduler::{
    jobs_to_retry, Action, AttemptEnd, JobState, Options, Outcome, RunOutcome, Scheduler,
};
use proptest::prelude::*;
use std::collections::HashSet;

#[derive(Clone, Debug)]
pub(crate) struct Spec {
    deps: Vec<(usize, bool)>,
    tree: Option<Tree>,
    allow_failure: bool,
    finally: bool,
    retries: u32,
    /// Result of each attempt; attempts beyond the list succeed.
    pub(crate) results: Vec<AttemptEnd>,
}

#[derive(Clone, Debug)]
enum Tree {
    All(Vec<Tree>),
    Any(Vec<Tree>),
    Not(Box<Tree>),
    Leaf(usize, u8),
}

fn end() -> impl Strategy<Value = AttemptEnd> {
    prop_oneof![
        3 => Just(AttemptEnd::Succeeded),
        2 => Just(AttemptEnd::Failed),
        1 => Just(AttemptEnd::Errored),
    ]
}

fn tree(targets: Vec<usize>) -> BoxedStrategy<Tree> {
    let leaf = (proptest::sample::select(targets), 0u8..6).prop_map(|(j, t)| Tree::Leaf(j, t));
    leaf.prop_recursive(3, 8, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 1..3).prop_map(Tree::All),
            proptest::collection::vec(inner.clone(), 1..3).prop_map(Tree::Any),
            inner.prop_map(|t| Tree::Not(Box::new(t))),
        ]
    })
    .boxed()
}

pub(crate) fn pipeline_specs() -> impl Strategy<Value = Vec<Spec>> {
    (1usize..10).prop_flat_map(|n| {
        let jobs: Vec<BoxedStrategy<Spec>> = (0..n)
            .map(|i| {
                let finally = any::<bool>().prop_map(|f| f).boxed();
                finally
                    .prop_flat_map(move |finally| {
                        // A non-finally job may only wait for non-finally jobs; that is enforced
                        // below by filtering, since finally flags of others are not known yet.
                        let deps = proptest::collection::vec((0..i.max(1), any::<bool>()), 0..3);
                        let tree = if i == 0 {
                            Just(None).boxed()
                        } else {
                            proptest::option::weighted(0.4, tree((0..i).collect())).boxed()
                        };
                        (
                            deps,
                            tree,
                            any::<bool>(),
                            Just(finally),
                            0u32..3,
                            proptest::collection::vec(end(), 0..4),
                        )
                    })
                    .prop_map(
                        move |(deps, tree, allow_failure, finally, retries, results)| Spec {
                            deps: if i == 0 { Vec::new() } else { deps },
                            tree,
                            allow_failure,
                            finally,
                            retries,
                            results,
                        },
                    )
                    .boxed()
            })
            .collect();
        jobs
    })
}

/// Drops references that the language forbids (a non-finally job waiting for a finally one).
pub(crate) fn legal(mut specs: Vec<Spec>) -> Vec<Spec> {
    let finally: Vec<bool> = specs.iter().map(|s| s.finally).collect();
    for s in specs.iter_mut() {
        if s.finally {
            continue;
        }
        s.deps.retain(|(d, _)| !finally[*d]);
        if let Some(t) = &s.tree {
            if mentions_finally(t, &finally) {
                s.tree = None;
            }
        }
    }
    specs
}

fn mentions_finally(t: &Tree, finally: &[bool]) -> bool {
    match t {
        Tree::All(ts) | Tree::Any(ts) => ts.iter().any(|t| mentions_finally(t, finally)),
        Tree::Not(t) => mentions_finally(t, finally),
        Tree::Leaf(j, _) => finally[*j],
    }
}

pub(crate) fn name(i: usize) -> String {
    format!("j{i}")
}

fn to_condition(t: &Tree) -> Condition {
    match t {
        Tree::All(ts) => Condition::All(ts.iter().map(to_condition).collect()),
        Tree::Any(ts) => Condition::Any(ts.iter().map(to_condition).collect()),
        Tree::Not(t) => Condition::Not(Box::new(to_condition(t))),
        Tree::Leaf(j, k) => match k {
            0 => Condition::Succeeded(name(*j)),
            1 => Condition::Failed(name(*j)),
            2 => Condition::Errored(name(*j)),
            3 => Condition::Skipped(name(*j)),
            4 => Condition::Cancelled(name(*j)),
            _ => Condition::Done(name(*j)),
        },
    }
}

pub(crate) fn to_ir(specs: &[Spec]) -> ir::Pipeline {
    let mut jobs = indexmap::IndexMap::new();
    for (i, s) in specs.iter().enumerate() {
        let mut job = ir::Job::new("busybox", "true");
        job.depends_on = s
            .deps
            .iter()
            .map(|&(d, failure)| Dependency {
                job: name(d),
                conditions: failure.then_some(DependencyConditions { failure: true }),
            })
            .collect();
        job.condition = s.tree.as_ref().map(to_condition);
        job.allow_failure = s.allow_failure;
        job.finally = s.finally;
        job.retries = s.retries;
        jobs.insert(name(i), job);
    }
    ir::Pipeline {
        kind: ir::PipelineKind::Pipeline,
        name: None,
        description: None,
        fail_fast: false,
        concurrency: None,
        notify: Vec::new(),
        jobs,
    }
}

/// What the reference model says of a run: each job's outcome and attempts, and the run's
/// outcome.
type Expected = (Vec<Outcome>, Vec<u32>, RunOutcome);

/// The reference: decide jobs in rounds until nothing changes, the obvious way. `kept`: the
/// outcomes of jobs decided before (a retried run), `before`: the attempts made before.
fn reference(specs: &[Spec], kept: &[Option<Outcome>], before: &[u32]) -> Expected {
    let n = specs.len();
    let mut out: Vec<Option<Outcome>> = kept.to_vec();
    let mut attempts = before.to_vec();
    loop {
        let mut progress = false;
        let others_done = (0..n).all(|j| specs[j].finally || out[j].is_some());
        for j in 0..n {
            if out[j].is_some() || (specs[j].finally && !others_done) {
                continue;
            }
            let mut needed: Vec<usize> = specs[j].deps.iter().map(|d| d.0).collect();
            if let Some(t) = &specs[j].tree {
                leaves(t, &mut needed);
            }
            if needed.iter().any(|&d| out[d].is_none()) {
                continue;
            }
            let ok = |d: usize| {
                let o = out[d].unwrap();
                o == Outcome::Succeeded
                    || (specs[d].allow_failure && matches!(o, Outcome::Failed | Outcome::Errored))
            };
            let deps_hold = specs[j].deps.iter().all(|&(d, failure)| {
                if failure {
                    out[d] == Some(Outcome::Failed)
                } else {
                    ok(d)
                }
            });
            let tree_holds = specs[j].tree.as_ref().is_none_or(|t| holds(t, &out));
            out[j] = Some(if deps_hold && tree_holds {
                let mut result = Outcome::Succeeded;
                for _ in 0..=specs[j].retries {
                    attempts[j] += 1;
                    result = match specs[j]
                        .results
                        .get(attempts[j] as usize - 1)
                        .copied()
                        .unwrap_or(AttemptEnd::Succeeded)
                    {
                        AttemptEnd::Succeeded => Outcome::Succeeded,
                        AttemptEnd::Failed => Outcome::Failed,
                        AttemptEnd::Errored => Outcome::Errored,
                        AttemptEnd::Cancelled => Outcome::Cancelled,
                    };
                    if result == Outcome::Succeeded {
                        break;
                    }
                }
                result
            } else {
                Outcome::Skipped
            });
            progress = true;
        }
        if !progress {
            break;
        }
    }
    let outcomes: Vec<Outcome> = out
        .into_iter()
        .map(|o| o.expect("every job decided"))
        .collect();
    let failed = outcomes
        .iter()
        .zip(specs)
        .any(|(o, s)| matches!(o, Outcome::Failed | Outcome::Errored) && !s.allow_failure);
    (
        outcomes,
        attempts,
        if failed {
            RunOutcome::Failed
        } else {
            RunOutcome::Succeeded
        },
    )
}

/// The reference's jobs that a retry runs again: those that did not succeed, then, round by
/// round, those whose conditions name one of them, and the finally jobs if any runs again.
fn reference_retry(specs: &[Spec], outcomes: &[Outcome]) -> Vec<usize> {
    let n = specs.len();
    let mut again: Vec<bool> = outcomes.iter().map(|o| *o != Outcome::Succeeded).collect();
    loop {
        let any = again.contains(&true);
        let mut changed = false;
        for j in 0..n {
            let mut needed: Vec<usize> = specs[j].deps.iter().map(|d| d.0).collect();
            if let Some(t) = &specs[j].tree {
                leaves(t, &mut needed);
            }
            let hit = (specs[j].finally && any) || needed.iter().any(|&d| again[d]);
            if hit && !again[j] {
                again[j] = true;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    (0..n).filter(|&j| again[j]).collect()
}

fn leaves(t: &Tree, out: &mut Vec<usize>) {
    match t {
        Tree::All(ts) | Tree::Any(ts) => ts.iter().for_each(|t| leaves(t, out)),
        Tree::Not(t) => leaves(t, out),
        Tree::Leaf(j, _) => out.push(*j),
    }
}

fn holds(t: &Tree, out: &[Option<Outcome>]) -> bool {
    match t {
        Tree::All(ts) => ts.iter().all(|t| holds(t, out)),
        Tree::Any(ts) => ts.iter().any(|t| holds(t, out)),
        Tree::Not(t) => !holds(t, out),
        Tree::Leaf(j, k) => {
            let o = out[*j].unwrap();
            match k {
                0 => o == Outcome::Succeeded,
                1 => o == Outcome::Failed,
                2 => o == Outcome::Errored,
                3 => o == Outcome::Skipped,
                4 => o == Outcome::Cancelled,
                _ => true,
            }
        }
    }
}

/// Starts the scheduler and drives it to the end (see [`play`]).
fn drive(
    s: &mut Scheduler,
    specs: &[Spec],
    concurrency: Option<usize>,
    picks: &[usize],
) -> Expected {
    let mut actions = Vec::new();
    s.start(&mut actions);
    play(s, actions, specs, concurrency, picks)
}

/// Drives the scheduler from its first actions: attempts end in the order `picks` chooses among
/// the running ones; an attempt's result is its spec's for that attempt number.
fn play(
    s: &mut Scheduler,
    mut actions: Vec<Action>,
    specs: &[Spec],
    concurrency: Option<usize>,
    picks: &[usize],
) -> Expected {
    let mut running: Vec<(usize, u32)> = Vec::new();
    let mut backoff: Vec<usize> = Vec::new();
    let mut finished = None;
    let mut step = 0;
    let mut decided_or_ended: HashSet<usize> = HashSet::new();
    loop {
        for a in actions.drain(..) {
            match a {
                Action::Launch { job, attempt } => {
                    // Launched only once everything its condition names is terminal.
                    let mut needed: Vec<usize> = specs[job].deps.iter().map(|d| d.0).collect();
                    if let Some(t) = &specs[job].tree {
                        leaves(t, &mut needed);
                    }
                    for d in needed {
                        assert!(
                            matches!(s.state(d), JobState::Done(_)),
                            "j{job} launched before j{d} ended"
                        );
                    }
                    if specs[job].finally {
                        for (o, spec) in specs.iter().enumerate() {
                            if !spec.finally {
                                assert!(
                                    matches!(s.state(o), JobState::Done(_)),
                                    "finally j{job} before j{o}"
                                );
                            }
                        }
                    }
                    running.push((job, attempt));
                }
                Action::Retry { job, .. } => backoff.push(job),
                Action::Kill { .. } => panic!("nothing is cancelled here"),
                Action::Decided { job, .. } => {
                    assert!(decided_or_ended.insert(job), "j{job} decided twice");
                }
                Action::Finished(o) => {
                    assert!(finished.is_none(), "finished twice");
                    finished = Some(o);
                }
            }
        }
        if let Some(c) = concurrency {
            assert!(running.len() <= c, "more than {c} running");
        }
        if finished.is_some() {
            break;
        }
        let pick = picks.get(step).copied().unwrap_or(0);
        step += 1;
        // Either a retry comes due or a running attempt ends.
        if !backoff.is_empty() && (running.is_empty() || pick % 3 == 0) {
            let job = backoff.remove(pick % backoff.len());
            s.retry_due(job, &mut actions);
            continue;
        }
        assert!(
            !running.is_empty(),
            "stuck: nothing running, nothing due, not finished"
        );
        let (job, attempt) = running.remove(pick % running.len());
        let result = specs[job]
            .results
            .get(attempt as usize - 1)
            .copied()
            .unwrap_or(AttemptEnd::Succeeded);
        s.attempt_ended(job, result, &mut actions);
    }
    assert!(running.is_empty() && backoff.is_empty());
    let outcomes = (0..specs.len())
        .map(|j| match s.state(j) {
            JobState::Done(o) => o,
            other => panic!("j{j} not terminal: {other:?}"),
        })
        .collect();
    let attempts = (0..specs.len()).map(|j| s.attempts(j)).collect();
    (outcomes, attempts, finished.unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// And so it does when the finished run is retried: what succeeded is kept, the rest runs
    /// again with attempts numbered on.
    #[test]
    fn scheduler_agrees_with_the_reference_model(
        specs in pipeline_specs(),
        concurrency in proptest::option::of(1usize..4),
        picks in proptest::collection::vec(any::<usize>(), 0..64),
        picks_again in proptest::collection::vec(any::<usize>(), 0..64),
    ) {
        let specs = legal(specs);
        let n = specs.len();
        let expected = reference(&specs, &vec![None; n], &vec![0; n]);
        let p = to_ir(&specs);
        let mut s = Scheduler::new(&p, Options { concurrency }).unwrap();
        let got = drive(&mut s, &specs, concurrency, &picks);
        prop_assert_eq!(&got, &expected);
        let (outcomes, attempts, _) = got;
        let again = jobs_to_retry(&p, |j| outcomes[j] == Outcome::Succeeded);
        prop_assert_eq!(&again, &reference_retry(&specs, &outcomes));
        let kept: Vec<Option<Outcome>> =
            (0..n).map(|j| (!again.contains(&j)).then_some(outcomes[j])).collect();
        let expected = reference(&specs, &kept, &attempts);
        s.reopen(&again);
        let got = drive(&mut s, &specs, concurrency, &picks_again);
        prop_assert_eq!(got, expected);
    }
}
