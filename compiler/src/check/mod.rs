//! The checker: resolves names, types every value, checks conditions and the dependency graph,
//! and lowers the pipeline to the IR. Every problem is gathered; none stops the others.
//!
//! [`check`] drives two passes over the file. The checking is split by what it is about:
//!
//! - `params`: params (`-p` values, defaults, types) and the unused-param and -template warnings;
//! - `templates`: template declarations, their uses and arguments;
//! - `fields`: the fields of jobs, `defaults` and templates, and the pipeline's settings;
//! - `values`: names in scope and values of the type a place expects;
//! - `jobs`: one job's fields and fan-out, and the names jobs take (IR, Kubernetes);
//! - `conditions`: conditions, the dependency graph, conditions that can never hold;
//! - `notify`: notifications, the pipeline's and the jobs';
//! - `lower`: the checked pipeline as an [`ir::Pipeline`]; it runs only when nothing is wrong.

mod conditions;
mod fields;
mod jobs;
mod lower;
mod notify;
mod params;
mod templates;
mod values;

use crate::diagnostic::Diagnostic;
use crate::ir;
use crate::notify::MediumUse;
use crate::syntax::*;
use crate::types::{Type, Value};
use fields::JobFields;
use indexmap::{IndexMap, IndexSet};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

/// Values given on the command line (`-p NAME=VALUE`), as text.
#[derive(Clone, Debug, Default)]
pub struct Params(pub Vec<(String, String)>);

/// Checks and lowers a file: the IR when nothing is wrong, every problem, and where the
/// pipeline names notification media.
pub(crate) fn check(
    file: &File,
    params: &Params,
) -> (Option<ir::Pipeline>, Vec<Diagnostic>, Vec<MediumUse>) {
    let mut cx = Checker::default();
    let Some(name) = &file.pipeline else {
        return (None, cx.diags, Vec::new());
    };
    let pipeline = cx.run(file, name, params);
    let ok = !cx.diags.iter().any(Diagnostic::is_error);
    let media = cx.media.into_iter().collect();
    (if ok { Some(pipeline) } else { None }, cx.diags, media)
}

#[derive(Default)]
struct Checker<'a> {
    diags: Vec<Diagnostic>,
    params: IndexMap<&'a str, ParamInfo<'a>>,
    templates: IndexMap<&'a str, TemplateInfo<'a>>,
    used_templates: HashSet<&'a str>,
    /// Template parameters' default values, worked out once where the template is declared.
    template_defaults: HashMap<(&'a str, &'a str), Option<Value>>,
    /// The media of the pipeline's notifications, each once, in order: where a job's `notify`
    /// without a block sends.
    pipeline_media: Vec<String>,
    /// Some notification of the pipeline has media that are invalid (already reported).
    pipeline_media_unknown: bool,
    /// Every place a medium is named, each once.
    media: IndexSet<MediumUse, rustc_hash::FxBuildHasher>,
}

struct ParamInfo<'a> {
    decl: &'a Param,
    value: Option<Value>,
    /// Its value has been worked out (successfully or not).
    resolved: bool,
    used: bool,
}

#[derive(Clone)]
struct TemplateInfo<'a> {
    decl: &'a Template,
    params: Vec<(&'a Param, Option<Type>)>,
}

/// Names visible where a value is written: pipeline params plus the locals of a template or a
/// fan-out (its parameters, its loop variable).
struct Scope<'s> {
    /// `None`: the name exists but its value was invalid, which is already reported.
    locals: Vec<(&'s str, Option<Value>)>,
}

impl<'s> Scope<'s> {
    fn empty() -> Scope<'s> {
        Scope { locals: Vec::new() }
    }
}

/// A job as declared, before fan-out expansion.
struct Decl<'a> {
    job: &'a Job,
    finally: bool,
    /// The IR names of its instances (one, unless it fans out).
    instances: Vec<String>,
    /// Each instance's `allow_failure` (a fan-out can set it from its loop variable).
    allow_failure: Vec<bool>,
    fanned: bool,
}

impl<'a> Checker<'a> {
    fn run(&mut self, file: &'a File, name: &'a Ident, cli: &Params) -> ir::Pipeline {
        let mut pipeline = ir::Pipeline {
            kind: ir::PipelineKind::Pipeline,
            name: Some(name.name.clone()),
            description: None,
            fail_fast: false,
            concurrency: None,
            notify: Vec::new(),
            jobs: IndexMap::new(),
        };
        let mut defaults: Option<&'a Block> = None;
        let mut jobs: Vec<(&'a Job, bool)> = Vec::new();
        for item in &file.items {
            match item {
                Item::Param(p) => self.declare_param(p),
                Item::Template(t) => self.declare_template(t),
                Item::Defaults(d) => {
                    let b = &d.body;
                    if let Some(first) = defaults {
                        self.diags.push(
                            Diagnostic::error("E0602", "`defaults` is given twice")
                                .primary(d.span, "second `defaults` block")
                                .secondary(first.span, "first given here")
                                .help("merge the two blocks into one"),
                        );
                    } else {
                        defaults = Some(b);
                    }
                }
                Item::Job(j) => jobs.push((j, false)),
                Item::Finally(f) => jobs.extend(f.jobs.iter().map(|j| (j, true))),
                Item::Notify(_) | Item::Setting(_) => {}
            }
        }
        self.resolve_params(cli);
        self.template_defaults();
        let empty = Scope::empty();
        let mut seen_settings: HashMap<&str, Span> = HashMap::default();
        for item in &file.items {
            if let Item::Setting(e) = item {
                self.setting(e, &mut pipeline, &mut seen_settings, &empty);
            }
        }
        // Before the jobs: a job's `notify` without a block sends to the pipeline's media.
        for item in &file.items {
            if let Item::Notify(n) = item {
                self.pipeline_notify(n, &mut pipeline);
            }
        }
        if let Some(d) = defaults {
            self.check_block_keys(d, "defaults");
            self.no_notify_in_defaults(d);
            // Its values are checked here too, so a pipeline without jobs still hears of them.
            self.apply_block(d, &Scope::empty(), &mut JobFields::default());
        }

        // Pass 1: every job's name, instances and fields.
        let mut decls: Vec<Decl<'a>> = Vec::with_capacity(jobs.len());
        let mut by_name: HashMap<&'a str, usize> =
            HashMap::with_capacity_and_hasher(jobs.len(), Default::default());
        let mut bodies: Vec<Vec<ir::Job>> = Vec::with_capacity(jobs.len());
        for (job, finally) in jobs {
            if let Some(&first) = by_name.get(job.name.name.as_str()) {
                let first_span = decls[first].job.name.span;
                self.diags.push(
                    Diagnostic::error(
                        "E0101",
                        format!("the job name `{}` is used twice", job.name.name),
                    )
                    .primary(job.name.span, "second job with this name")
                    .secondary(first_span, "first defined here")
                    .help("rename one of them; job names are unique in a pipeline"),
                );
            } else {
                by_name.insert(&job.name.name, decls.len());
            }
            let (instances, irjobs) = self.job(job, defaults, finally);
            let allow_failure = irjobs.iter().map(|j| j.allow_failure).collect();
            decls.push(Decl {
                job,
                finally,
                instances,
                allow_failure,
                fanned: job.fanout.is_some(),
            });
            bodies.push(irjobs);
        }
        self.check_names(&decls);

        // Pass 2: conditions and the dependency graph.
        let mut edges: Vec<Vec<(usize, Span)>> = vec![Vec::new(); decls.len()];
        for (i, decl) in decls.iter().enumerate() {
            if let Some(after) = &decl.job.after {
                edges[i] = self.resolve_condition(i, &after.cond, &decls, &by_name);
            }
        }
        self.report_cycles(&decls, &edges);
        self.check_unused_templates();
        self.warn_unused();
        if self.diags.iter().any(Diagnostic::is_error) {
            return pipeline;
        }
        lower::jobs(&decls, bodies, &by_name, &mut pipeline);
        pipeline
    }
}
