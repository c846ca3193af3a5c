//! Conditions: the jobs and outcomes they name, the dependency graph and its cycles, and
//! conditions that no combination of outcomes makes true.

use super::{Checker, Decl, HashMap};
use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::graph::find_cycles;
use crate::outcome::{self, Outcome, OutcomeTest};
use crate::syntax::*;

impl<'a> Checker<'a> {
    pub(super) fn resolve_condition(
        &mut self,
        me: usize,
        cond: &Cond,
        decls: &[Decl],
        by_name: &HashMap<&str, usize>,
    ) -> Vec<(usize, Span)> {
        let mut refs = Vec::new();
        cond.refs(&mut refs);
        let mut edges = Vec::with_capacity(refs.len());
        let job = decls[me].job;
        let mut ok = true;
        for (target, outcome) in refs {
            let name = target.name.as_str();
            if let Some(o) = outcome {
                if OutcomeTest::from_word(&o.name).is_none() {
                    ok = false;
                    let mut d = Diagnostic::error("E0104", format!("unknown outcome `{}`", o.name))
                        .primary(o.span, "not an outcome");
                    d = match OutcomeTest::suggest(&o.name) {
                        Some(s) => d.help(format!("did you mean `{name}.{s}`?")).fix(o.span, s),
                        None => {
                            let (last, others) = outcome::WORDS.split_last().expect("outcomes");
                            d.help(format!("the outcomes are {} and {last}", others.join(", ")))
                        }
                    };
                    self.diags.push(d);
                }
            }
            if name == job.name.name {
                ok = false;
                self.diags.push(
                    Diagnostic::error("E0102", format!("the job `{name}` depends on itself"))
                        .primary(target.span, "a job cannot wait for its own outcome")
                        .secondary(job.name.span, "this job")
                        .help("remove this reference"),
                );
                continue;
            }
            let Some(&t) = by_name.get(name) else {
                ok = false;
                let mut d = Diagnostic::error("E0100", format!("unknown job `{name}`"))
                    .primary(target.span, "no job with this name");
                d = match did_you_mean(name, by_name.keys().copied()) {
                    Some(s) => d.help(format!("did you mean `{s}`?")).fix(target.span, s),
                    None => d.help("a condition names jobs declared in this pipeline"),
                };
                self.diags.push(d);
                continue;
            };
            if decls[t].finally && !decls[me].finally {
                ok = false;
                self.diags.push(
                    Diagnostic::error(
                        "E0106",
                        format!(
                            "`{name}` is a finally job; only other finally jobs can wait for it"
                        ),
                    )
                    .primary(target.span, "a finally job runs after every other job")
                    .secondary(decls[t].job.name.span, "declared in `finally` here")
                    .help(format!(
                        "move `{}` into the `finally` block, or remove this reference",
                        job.name.name
                    )),
                );
                continue;
            }
            edges.push((t, target.span));
        }
        if ok {
            self.check_satisfiable(me, cond, decls, by_name);
        }
        edges
    }

    /// Warns when no combination of outcomes makes the condition true.
    fn check_satisfiable(
        &mut self,
        me: usize,
        cond: &Cond,
        decls: &[Decl],
        by_name: &HashMap<&str, usize>,
    ) {
        let mut refs = Vec::new();
        cond.refs(&mut refs);
        let mut jobs: Vec<usize> = refs
            .iter()
            .filter_map(|(j, _)| by_name.get(j.name.as_str()).copied())
            .collect();
        jobs.sort_unstable();
        jobs.dedup();
        // A conjunction naming distinct jobs always holds for some outcomes; only negation,
        // disjunction or a job named twice can make a condition unsatisfiable.
        let plain = !has_not_or_or(cond) && jobs.len() == refs.len();
        if plain || jobs.is_empty() || jobs.len() > 5 {
            return;
        }
        let n = jobs.len();
        // Every combination of outcomes of the jobs named, as indices into `Outcome::ALL`.
        let mut assignment = vec![0usize; n];
        loop {
            if eval_cond(cond, &|name: &str| {
                let t = by_name[name];
                let i = jobs.binary_search(&t).expect("referenced job");
                (
                    Outcome::ALL[assignment[i]],
                    decls[t].allow_failure.iter().any(|&a| a),
                )
            }) {
                return;
            }
            let mut k = 0;
            while k < n {
                assignment[k] += 1;
                if assignment[k] < Outcome::ALL.len() {
                    break;
                }
                assignment[k] = 0;
                k += 1;
            }
            if k == n {
                break;
            }
        }
        let job = decls[me].job;
        let after = job.after.as_ref().expect("a job with a condition");
        self.diags.push(
            Diagnostic::warning("W0003", format!("the job `{}` can never run", job.name.name))
                .primary(after.cond.span(), "this condition is false whatever the outcomes")
                .help("a job has exactly one outcome, so a condition such as `x.succeeded && x.failed` or `!x.done` never holds"),
        );
    }

    pub(super) fn report_cycles(&mut self, decls: &[Decl], edges: &[Vec<(usize, Span)>]) {
        let adjacency: Vec<Vec<usize>> = edges
            .iter()
            .map(|es| es.iter().map(|(t, _)| *t).collect())
            .collect();
        for cycle in find_cycles(&adjacency) {
            let names: Vec<&str> = cycle
                .iter()
                .map(|&i| decls[i].job.name.name.as_str())
                .collect();
            let mut path = names.join(" → ");
            path.push_str(" → ");
            path.push_str(names[0]);
            let mut d = Diagnostic::error("E0103", format!("dependency cycle: {path}"));
            for (k, &from) in cycle.iter().enumerate() {
                let to = cycle[(k + 1) % cycle.len()];
                let span = edges[from]
                    .iter()
                    .find(|(t, _)| *t == to)
                    .map(|(_, s)| *s)
                    .unwrap_or_default();
                let msg = format!("`{}` waits for `{}`", names[k], decls[to].job.name.name);
                d = if k == 0 {
                    d.primary(span, msg)
                } else {
                    d.secondary(span, msg)
                };
            }
            d = d.help("remove one of these dependencies; a job that must run after everything belongs in `finally`");
            self.diags.push(d);
        }
    }
}

fn has_not_or_or(c: &Cond) -> bool {
    match c {
        Cond::Ref { .. } => false,
        Cond::Not(..) | Cond::Or(..) => true,
        Cond::And(cs, _) => cs.iter().any(has_not_or_or),
    }
}

/// Whether a condition holds, given each named job's outcome and `allow_failure`.
fn eval_cond(c: &Cond, outcome_of: &dyn Fn(&str) -> (Outcome, bool)) -> bool {
    match c {
        Cond::Ref { job, outcome, .. } => {
            let (o, allow_failure) = outcome_of(&job.name);
            // Only checked conditions get here: every word is an outcome.
            OutcomeTest::of(outcome.as_ref().map(|o| o.name.as_str()))
                .is_none_or(|t| t.holds(o, allow_failure))
        }
        Cond::Not(c, _) => !eval_cond(c, outcome_of),
        Cond::And(cs, _) => cs.iter().all(|c| eval_cond(c, outcome_of)),
        Cond::Or(cs, _) => cs.iter().any(|c| eval_cond(c, outcome_of)),
    }
}
