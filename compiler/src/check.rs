//! The checker: resolves names, types every value, checks conditions and the dependency graph,
//! and lowers the pipeline to the IR. Every problem is gathered; none stops the others.

use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::fields::{self, FieldKind, OUTCOMES, PULL_POLICIES, RESOURCE_KEYS};
use crate::graph::find_cycles;
use crate::ir;
use crate::syntax::*;
use crate::types::{Type, Value};
use crate::units::{self, Duration};
use indexmap::IndexMap;
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

/// Values given on the command line (`-p NAME=VALUE`), as text.
#[derive(Clone, Debug, Default)]
pub struct Params(pub Vec<(String, String)>);

pub(crate) fn check(file: &File, params: &Params) -> (Option<ir::Pipeline>, Vec<Diagnostic>) {
    let mut cx = Checker::default();
    let Some(name) = &file.pipeline else {
        return (None, cx.diags);
    };
    let pipeline = cx.run(file, name, params);
    let ok = !cx.diags.iter().any(Diagnostic::is_error);
    (if ok { Some(pipeline) } else { None }, cx.diags)
}

#[derive(Default)]
struct Checker<'a> {
    diags: Vec<Diagnostic>,
    params: IndexMap<&'a str, ParamInfo<'a>>,
    templates: IndexMap<&'a str, TemplateInfo<'a>>,
    used_templates: HashSet<&'a str>,
    /// Template parameters' default values, worked out once where the template is declared.
    template_defaults: HashMap<(&'a str, &'a str), Option<Value>>,
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
                Item::Setting(_) => {}
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
        if let Some(d) = defaults {
            self.check_block_keys(d, "defaults");
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
        for (decl, jobs) in decls.iter().zip(bodies) {
            let (depends_on, condition) = match &decl.job.after {
                Some(after) => lower_condition(&after.cond, &decls, &by_name),
                None => (Vec::new(), None),
            };
            for (name, mut job) in decl.instances.iter().zip(jobs) {
                job.depends_on = depends_on.clone();
                job.condition = condition.clone();
                pipeline.jobs.insert(name.clone(), job);
            }
        }
        pipeline
    }

    // ------------------------------------------------------------ params and templates

    fn declare_param(&mut self, p: &'a Param) {
        if let Some(first) = self.params.get(p.name.name.as_str()) {
            self.diags.push(
                Diagnostic::error(
                    "E0301",
                    format!("the param `{}` is declared twice", p.name.name),
                )
                .primary(p.name.span, "declared again here")
                .secondary(first.decl.name.span, "first declared here")
                .help("remove one declaration, or rename one of them"),
            );
            return;
        }
        self.params.insert(
            &p.name.name,
            ParamInfo {
                decl: p,
                value: None,
                resolved: false,
                used: false,
            },
        );
    }

    fn declare_template(&mut self, t: &'a Template) {
        if let Some(first) = self.templates.get(t.name.name.as_str()) {
            self.diags.push(
                Diagnostic::error(
                    "E0401",
                    format!("the template `{}` is declared twice", t.name.name),
                )
                .primary(t.name.span, "declared again here")
                .secondary(first.decl.name.span, "first declared here")
                .help("remove one declaration, or rename one of them"),
            );
            return;
        }
        let mut params = Vec::new();
        let mut seen: HashMap<&str, Span> = HashMap::default();
        for p in &t.params {
            if let Some(first) = seen.insert(&p.name.name, p.name.span) {
                self.diags.push(
                    Diagnostic::error(
                        "E0301",
                        format!("the template parameter `{}` is declared twice", p.name.name),
                    )
                    .primary(p.name.span, "declared again here")
                    .secondary(first, "first declared here"),
                );
            }
            let ty = self.type_of(&p.ty);
            params.push((p, ty));
        }
        self.check_block_keys(&t.body, "template");
        self.templates
            .insert(&t.name.name, TemplateInfo { decl: t, params });
    }

    fn type_of(&mut self, t: &TypeExpr) -> Option<Type> {
        let base = match t.name.name.as_str() {
            "string" => Type::String,
            "int" => Type::Int,
            "bool" => Type::Bool,
            "duration" => Type::Duration,
            "quantity" => Type::Quantity,
            "list" => {
                let Some(arg) = &t.arg else {
                    self.diags.push(
                        Diagnostic::error("E0302", "`list` needs an element type")
                            .primary(t.span, "a list of what?")
                            .help("write `list<string>`, `list<int>`, ...")
                            .fix(t.span, "list<string>"),
                    );
                    return None;
                };
                return Some(Type::List(Box::new(self.type_of(arg)?)));
            }
            other => {
                let mut d = Diagnostic::error("E0302", format!("unknown type `{other}`"))
                    .primary(t.name.span, "not a type");
                d = match did_you_mean(other, Type::NAMES) {
                    Some(s) => d.help(format!("did you mean `{s}`?")).fix(t.name.span, s),
                    None => {
                        d.help("the types are string, int, bool, duration, quantity and list<T>")
                    }
                };
                self.diags.push(d);
                return None;
            }
        };
        if let Some(arg) = &t.arg {
            self.diags.push(
                Diagnostic::error("E0302", format!("`{}` takes no element type", t.name.name))
                    .primary(arg.span, "only `list` has an element type"),
            );
        }
        Some(base)
    }

    fn resolve_params(&mut self, cli: &Params) {
        let names: Vec<&'a str> = self.params.keys().copied().collect();
        for (key, text) in &cli.0 {
            if !self.params.contains_key(key.as_str()) {
                let mut d = Diagnostic::error(
                    "E0306",
                    format!("`-p {key}=...` names no param of this pipeline"),
                );
                d = match did_you_mean(key, names.iter().copied()) {
                    Some(s) => d.help(format!("did you mean `-p {s}={text}`?")),
                    None if names.is_empty() => d.help("this pipeline declares no params"),
                    None => d.help(format!("its params are: {}", names.join(", "))),
                };
                self.diags.push(d);
            }
        }
        for name in names {
            let decl = self.params[name].decl;
            let Some(ty) = self.type_of(&decl.ty) else {
                self.mark_resolved(name);
                continue;
            };
            let given = cli.0.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v);
            let value = if let Some(text) = given {
                match value_from_text(text, &ty) {
                    Ok(v) => Some(v),
                    Err(why) => {
                        self.diags.push(
                            Diagnostic::error(
                                "E0305",
                                format!("invalid value for param `{name}`: {why}"),
                            )
                            .primary(decl.ty.span, format!("`{name}` is {}", ty.article()))
                            .note(format!("given on the command line as `-p {name}={text}`")),
                        );
                        None
                    }
                }
            } else if let Some(default) = &decl.default {
                // A default may use the params declared before it.
                self.eval(default, &ty, &Scope::empty())
            } else {
                self.diags.push(
                    Diagnostic::error("E0304", format!("the param `{name}` has no value"))
                        .primary(decl.name.span, "no default, and no value given")
                        .help(format!("pass one with `-p {name}=VALUE`, or give a default: `param {name}: {ty} = ...`")),
                );
                None
            };
            if let Some(p) = self.params.get_mut(name) {
                p.value = value;
            }
            self.mark_resolved(name);
        }
    }

    /// A template no job uses is still checked, with its parameters' values unknown.
    fn check_unused_templates(&mut self) {
        let unused: Vec<TemplateInfo<'a>> = self
            .templates
            .iter()
            .filter(|(name, _)| !self.used_templates.contains(*name))
            .map(|(_, t)| t.clone())
            .collect();
        for t in unused {
            let scope = Scope {
                locals: t
                    .params
                    .iter()
                    .map(|(p, _)| (p.name.name.as_str(), None))
                    .collect(),
            };
            self.apply_block(&t.decl.body, &scope, &mut JobFields::default());
        }
    }

    /// Checks every template parameter's default once, whether or not a job uses the template; a
    /// default sees the pipeline's params only.
    fn template_defaults(&mut self) {
        let templates: Vec<TemplateInfo<'a>> = self.templates.values().cloned().collect();
        for t in templates {
            for (p, ty) in &t.params {
                let (Some(d), Some(ty)) = (&p.default, ty) else {
                    continue;
                };
                let value = self.eval(d, ty, &Scope::empty());
                self.template_defaults
                    .insert((&t.decl.name.name, &p.name.name), value);
            }
        }
    }

    fn warn_unused(&mut self) {
        for (name, p) in &self.params {
            if !p.used {
                self.diags.push(
                    Diagnostic::warning("W0001", format!("the param `{name}` is never used"))
                        .primary(p.decl.name.span, "declared here")
                        .help(format!(
                            "use it as `${{{name}}}` in a string or as a value, or remove it"
                        )),
                );
            }
        }
        for (name, t) in &self.templates {
            if !self.used_templates.contains(name) {
                self.diags.push(
                    Diagnostic::warning("W0002", format!("the template `{name}` is never used"))
                        .primary(t.decl.name.span, "declared here")
                        .help(format!("use it as `job NAME = {name}(...)`, or remove it")),
                );
            }
        }
    }

    fn setting(
        &mut self,
        e: &'a Entry,
        pipeline: &mut ir::Pipeline,
        seen: &mut HashMap<&'a str, Span>,
        scope: &Scope,
    ) {
        let key = e.key.name.as_str();
        let Some(field) = fields::setting(key) else {
            let mut d = Diagnostic::error("E0601", format!("unknown pipeline setting `{key}`"))
                .primary(e.key.span, "not a setting");
            if fields::job_field(key).is_some() {
                d = d.help(format!(
                    "`{key}` is a job field: set it in a job, or for every job in `defaults {{ {key} = ... }}`"
                ));
            } else if let Some(s) = did_you_mean(key, fields::SETTINGS.iter().map(|f| f.name)) {
                d = d.help(format!("did you mean `{s}`?")).fix(e.key.span, s);
            } else {
                d = d.help("the settings are description, fail_fast and concurrency");
            }
            self.diags.push(d);
            return;
        };
        if let Some(first) = seen.insert(key, e.key.span) {
            self.duplicate_field(key, e.key.span, first);
            return;
        }
        match (
            field.kind,
            self.eval_field(field.name, field.kind, &e.value, scope),
        ) {
            (_, None) => {}
            (FieldKind::Bool, Some(Value::Bool(b))) => pipeline.fail_fast = b,
            (FieldKind::Int { .. }, Some(Value::Int(n))) => pipeline.concurrency = Some(n as u32),
            (_, Some(Value::Str(s))) => pipeline.description = Some(s),
            _ => {}
        }
    }

    // ------------------------------------------------------------ jobs

    /// Checks the keys of a block (unknown and repeated fields); values are checked per job.
    fn check_block_keys(&mut self, block: &Block, what: &str) {
        let mut seen = [None::<Span>; fields::JOB_FIELDS.len()];
        for e in &block.entries {
            let key = e.key.name.as_str();
            match fields::JOB_FIELDS.iter().position(|f| f.name == key) {
                None => self.unknown_field(&e.key, what),
                Some(i) => match seen[i] {
                    Some(first) => self.duplicate_field(key, e.key.span, first),
                    None => seen[i] = Some(e.key.span),
                },
            }
        }
    }

    fn unknown_field(&mut self, key: &Ident, what: &str) {
        let name = key.name.as_str();
        let mut d = Diagnostic::error("E0200", format!("unknown field `{name}` in {what}"))
            .primary(key.span, "not a job field");
        let aliases = [
            ("cmd", "run"),
            ("command", "run"),
            ("script", "run"),
            ("after", "after"),
            ("depends_on", "after"),
            ("dependsOn", "after"),
            ("needs", "after"),
            ("retry", "retries"),
            ("environment", "env"),
            ("continue_on_error", "allow_failure"),
        ];
        if let Some((_, to)) = aliases.iter().find(|(from, _)| *from == name) {
            if *to == "after" {
                d = d.help(
                    "dependencies are written in the job's header: `job NAME after other { ... }`",
                );
            } else {
                d = d.help(format!("did you mean `{to}`?")).fix(key.span, *to);
            }
        } else if let Some(s) = did_you_mean(name, fields::JOB_FIELDS.iter().map(|f| f.name)) {
            d = d.help(format!("did you mean `{s}`?")).fix(key.span, s);
        } else {
            d = d.help(format!(
                "the job fields are {}",
                fields::JOB_FIELDS
                    .iter()
                    .map(|f| f.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        self.diags.push(d);
    }

    fn duplicate_field(&mut self, key: &str, span: Span, first: Span) {
        self.diags.push(
            Diagnostic::error("E0201", format!("the field `{key}` is set twice"))
                .primary(span, "set again here")
                .secondary(first, "first set here")
                .help("remove one of them"),
        );
    }

    /// Checks one job's fields and expands its fan-out; returns the instance names and IR jobs.
    fn job(
        &mut self,
        job: &'a Job,
        defaults: Option<&'a Block>,
        finally: bool,
    ) -> (Vec<String>, Vec<ir::Job>) {
        if let Some(body) = &job.body {
            self.check_block_keys(body, "a job");
        }
        let template = job.template.as_ref().and_then(|u| self.template_use(u));
        // Fan-out values: one scope per instance.
        let instances: Vec<(String, Option<Value>)> = match &job.fanout {
            None => vec![(job.name.name.clone(), None)],
            Some(f) => self.fanout(&job.name, f),
        };
        let mut names = Vec::with_capacity(instances.len());
        let mut out = Vec::with_capacity(instances.len());
        for (name, var) in instances {
            let mut scope = Scope::empty();
            if let (Some(f), Some(v)) = (&job.fanout, var) {
                scope.locals.push((&f.var.name, Some(v)));
            }
            let mut fields = JobFields::default();
            if let Some(d) = defaults {
                // `defaults` sees the pipeline's params only, not the job's loop variable.
                self.apply_block(d, &Scope::empty(), &mut fields);
            }
            if let Some((tmpl, use_)) = &template {
                // A template sees its own parameters and the pipeline's params, nothing of the job.
                let mut tscope = Scope::empty();
                self.bind_template_args(tmpl, use_, &scope, &mut tscope);
                self.apply_block(&tmpl.decl.body, &tscope, &mut fields);
            }
            if let Some(body) = &job.body {
                self.apply_block(body, &scope, &mut fields);
            }
            if job.template.is_some() && template.is_none() {
                // The template is unknown (reported): what it would have given is unknown too.
                fields.present = u32::MAX;
            }
            let irjob = self.finish_job(job, fields, finally, &template);
            names.push(name);
            out.push(irjob);
        }
        if job.fanout.is_some() {
            for j in &mut out {
                j.group = Some(job.name.name.clone());
            }
        }
        (names, out)
    }

    fn finish_job(
        &mut self,
        job: &Job,
        f: JobFields,
        finally: bool,
        template: &Option<(TemplateInfo<'a>, &'a TemplateUse)>,
    ) -> ir::Job {
        let from_where = |field: &str| match template {
            Some((t, _)) => format!(
                "add `{field} = ...` to the job, to template `{}`, or to `defaults`",
                t.decl.name.name
            ),
            None => format!("add `{field} = ...` to the job, or to `defaults` for every job"),
        };
        if f.image.is_none() && !f.has("image") {
            self.diags.push(
                Diagnostic::error(
                    "E0202",
                    format!("the job `{}` has no `image`", job.name.name),
                )
                .primary(job.name.span, "`image` is required")
                .help(from_where("image")),
            );
        }
        if f.run.is_none() && !f.has("run") {
            self.diags.push(
                Diagnostic::error("E0202", format!("the job `{}` has no `run`", job.name.name))
                    .primary(job.name.span, "`run` is required")
                    .help(from_where("run")),
            );
        }
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
        j
    }

    fn template_use(&mut self, u: &'a TemplateUse) -> Option<(TemplateInfo<'a>, &'a TemplateUse)> {
        let name = u.name.name.as_str();
        if !self.templates.contains_key(name) {
            let mut d = Diagnostic::error("E0400", format!("unknown template `{name}`"))
                .primary(u.name.span, "no template with this name");
            let suggestion = did_you_mean(name, self.templates.keys().copied());
            d = match suggestion {
                Some(s) => d.help(format!("did you mean `{s}`?")).fix(u.name.span, s),
                None => d.help(format!("declare it: `template {name}(...) {{ ... }}`")),
            };
            // The misspelling was meant as a use of the suggested template.
            if let Some((&key, _)) = suggestion.and_then(|s| self.templates.get_key_value(s)) {
                self.used_templates.insert(key);
            }
            self.diags.push(d);
            return None;
        }
        let (&key, _) = self.templates.get_key_value(name)?;
        self.used_templates.insert(key);
        let t = &self.templates[name];
        // Argument names are checked here once; values are checked per instance.
        let mut diags = Vec::new();
        let mut seen: HashMap<&str, Span> = HashMap::default();
        for a in &u.args {
            let an = a.name.name.as_str();
            if let Some(first) = seen.insert(an, a.name.span) {
                diags.push(
                    Diagnostic::error("E0404", format!("the argument `{an}` is given twice"))
                        .primary(a.name.span, "given again here")
                        .secondary(first, "first given here")
                        .help("remove one of them"),
                );
            } else if !t.params.iter().any(|(p, _)| p.name.name == an) {
                let mut d = Diagnostic::error(
                    "E0402",
                    format!("the template `{name}` has no parameter `{an}`"),
                )
                .primary(a.name.span, "unknown argument")
                .secondary(t.decl.name.span, "template declared here");
                d = match did_you_mean(an, t.params.iter().map(|(p, _)| p.name.name.as_str())) {
                    Some(s) => d.help(format!("did you mean `{s}`?")).fix(a.name.span, s),
                    None => d.help(format!(
                        "its parameters are: {}",
                        t.params
                            .iter()
                            .map(|(p, _)| p.name.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                };
                diags.push(d);
            }
        }
        for (p, _) in &t.params {
            if p.default.is_none() && !u.args.iter().any(|a| a.name.name == p.name.name) {
                diags.push(
                    Diagnostic::error(
                        "E0403",
                        format!("missing argument `{}` for template `{name}`", p.name.name),
                    )
                    .primary(u.span, format!("`{}` is required", p.name.name))
                    .secondary(p.name.span, "parameter declared here")
                    .help(format!("add `{} = ...` to the arguments", p.name.name)),
                );
            }
        }
        self.diags.extend(diags);
        Some((self.templates[name].clone(), u))
    }

    fn bind_template_args(
        &mut self,
        t: &TemplateInfo<'a>,
        u: &'a TemplateUse,
        caller: &Scope,
        into: &mut Scope<'a>,
    ) {
        for (p, ty) in &t.params {
            let Some(ty) = ty else {
                into.locals.push((&p.name.name, None));
                continue;
            };
            let value = match u.args.iter().find(|a| a.name.name == p.name.name) {
                Some(a) => self.eval(&a.value, ty, caller),
                None => self
                    .template_defaults
                    .get(&(t.decl.name.name.as_str(), p.name.name.as_str()))
                    .cloned()
                    .flatten(),
            };
            into.locals.push((&p.name.name, value));
        }
    }

    fn fanout(&mut self, name: &Ident, f: &ForClause) -> Vec<(String, Option<Value>)> {
        let scope = Scope::empty();
        let values: Vec<Value> = match &f.source {
            FanSource::Range(lo, hi) => {
                let (Some(Value::Int(a)), Some(Value::Int(b))) = (
                    self.eval(lo, &Type::Int, &scope),
                    self.eval(hi, &Type::Int, &scope),
                ) else {
                    return Vec::new();
                };
                if a < 0 {
                    self.diags.push(
                        Diagnostic::error("E0500", "a fan-out range cannot start below 0")
                            .primary(lo.span, format!("starts at {a}"))
                            .help("instances are named after the values: use `0..n`"),
                    );
                    return Vec::new();
                }
                let count = b as i128 - a as i128;
                if count > 10_000 {
                    self.diags.push(
                        Diagnostic::error("E0503", format!("this fan-out makes {count} jobs"))
                            .primary(f.span, "more than 10000 instances")
                            .help("split the work into fewer, larger shards"),
                    );
                    return Vec::new();
                }
                (a..b).map(Value::Int).collect()
            }
            FanSource::Values(e) => match self.eval_any(e, &scope) {
                Some(Value::List(items)) => items,
                Some(other) => {
                    let mut d = Diagnostic::error("E0500", "a fan-out needs a range or a list")
                        .primary(e.span, format!("found {}", other.ty().article()));
                    if let (Value::Int(_), ExprKind::Name(n) | ExprKind::Number(n)) =
                        (&other, &e.kind)
                    {
                        d = d
                            .help(format!("did you mean `0..{n}`?"))
                            .fix(e.span, format!("0..{n}"));
                    } else {
                        d = d.help("write `for i in 0..4` or `for t in [\"a\", \"b\"]`");
                    }
                    self.diags.push(d);
                    return Vec::new();
                }
                None => return Vec::new(),
            },
        };
        if values.is_empty() {
            self.diags.push(
                Diagnostic::error(
                    "E0501",
                    format!("the fan-out of `{}` makes no jobs", name.name),
                )
                .primary(f.span, "this range or list is empty")
                .help("a fan-out needs at least one instance; `0..n` gives n instances"),
            );
            return Vec::new();
        }
        let mut seen: HashSet<String> = HashSet::default();
        let mut out = Vec::with_capacity(values.len());
        for v in values {
            let Some(text) = v.to_text() else {
                self.diags.push(
                    Diagnostic::error(
                        "E0500",
                        "a fan-out's values must be strings, numbers or booleans",
                    )
                    .primary(f.span, "this fans out over lists")
                    .help("fan out over a list of scalars; instances are named after the values"),
                );
                return Vec::new();
            };
            if text.is_empty() {
                self.diags.push(
                    Diagnostic::error(
                        "E0504",
                        format!("an empty value in the fan-out of `{}`", name.name),
                    )
                    .primary(f.span, "an instance would be named after an empty string")
                    .help("instances are named `NAME-VALUE`: give every value some text"),
                );
                continue;
            }
            let suffix: String = text
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                        c
                    } else {
                        '-'
                    }
                })
                .collect();
            let instance = format!("{}-{}", name.name, suffix);
            if !seen.insert(instance.clone()) {
                self.diags.push(
                    Diagnostic::error(
                        "E0502",
                        format!("the fan-out of `{}` makes `{instance}` twice", name.name),
                    )
                    .primary(
                        f.span,
                        format!("`{text}` gives the same instance name as an earlier value"),
                    )
                    .help("fan out over distinct values"),
                );
                continue;
            }
            out.push((instance, Some(v)));
        }
        out
    }

    fn apply_block(&mut self, block: &Block, scope: &Scope, f: &mut JobFields) {
        for e in &block.entries {
            let Some(field) = fields::job_field(&e.key.name) else {
                // Reported by check_block_keys. A likely misspelling still counts as the field
                // being written, and the names its value uses count as used.
                if let Some(s) =
                    did_you_mean(&e.key.name, fields::JOB_FIELDS.iter().map(|f| f.name))
                {
                    f.mark(s);
                }
                if matches!(e.key.name.as_str(), "cmd" | "command" | "script") {
                    f.mark("run");
                }
                self.mark_used_names(&e.value);
                continue;
            };
            f.mark(field.name);
            match field.kind {
                FieldKind::StringMap | FieldKind::SecretEnv => {
                    self.apply_map(field.name, field.kind, &e.value, scope, f);
                }
                FieldKind::Resources => self.apply_resources(&e.value, scope, f),
                kind => {
                    let Some(v) = self.eval_field(field.name, kind, &e.value, scope) else {
                        continue;
                    };
                    match (field.name, v) {
                        ("image", Value::Str(s)) => f.image = Some(s),
                        ("run", Value::Str(s)) => f.run = Some(s),
                        ("retries", Value::Int(n)) => f.retries = n as u32,
                        ("backoff", Value::Duration(d)) => {
                            if d > Duration::from_secs(300) {
                                self.diags.push(
                                    Diagnostic::warning(
                                        "W0004",
                                        format!("a backoff of {d} is above the 5m cap"),
                                    )
                                    .primary(e.value.span, "retries never wait longer than 5m")
                                    .help("use at most 5m"),
                                );
                            }
                            f.backoff = Some(d)
                        }
                        ("timeout", Value::Duration(d)) => {
                            if d.millis == 0 {
                                self.diags.push(
                                    Diagnostic::error("E0213", "a timeout of zero")
                                        .primary(e.value.span, "every attempt would be killed at once")
                                        .help("remove `timeout` for no limit, or give a positive duration"),
                                );
                            }
                            f.timeout = Some(d)
                        }
                        ("allow_failure", Value::Bool(b)) => f.allow_failure = b,
                        ("description", Value::Str(s)) => f.description = Some(s),
                        ("working_dir", Value::Str(s)) => f.working_dir = Some(s),
                        ("service_account", Value::Str(s)) => f.service_account = Some(s),
                        ("image_pull_policy", Value::Str(s)) => {
                            f.image_pull_policy = match s.as_str() {
                                "Always" => Some(ir::PullPolicy::Always),
                                "IfNotPresent" => Some(ir::PullPolicy::IfNotPresent),
                                _ => Some(ir::PullPolicy::Never),
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    /// Evaluates a scalar field's value and checks it against the field's rules.
    fn eval_field(
        &mut self,
        name: &str,
        kind: FieldKind,
        e: &Expr,
        scope: &Scope,
    ) -> Option<Value> {
        match kind {
            FieldKind::String => self.eval(e, &Type::String, scope),
            FieldKind::Bool => self.eval(e, &Type::Bool, scope),
            FieldKind::Duration => self.eval(e, &Type::Duration, scope),
            FieldKind::Int { min, max } => match self.eval(e, &Type::Int, scope)? {
                Value::Int(n) if n < min || n > max => {
                    let mut d =
                        Diagnostic::error("E0207", format!("`{name}` must be from {min} to {max}"))
                            .primary(e.span, format!("{n} is out of range"));
                    if name == "retries" && n < 0 {
                        d = d.help("`retries = 0` (the default) means a single attempt");
                    }
                    self.diags.push(d);
                    None
                }
                v => Some(v),
            },
            FieldKind::Image => {
                let v = self.eval(e, &Type::String, scope)?;
                if let Value::Str(s) = &v {
                    if let Err(why) = units::check_image(s) {
                        let mut d =
                            Diagnostic::error("E0206", format!("invalid image reference `{s}`"))
                                .primary(e.span, why);
                        let lower = s.to_lowercase();
                        if lower != *s && units::check_image(&lower).is_ok() {
                            d = d.help(format!("did you mean `{lower}`?"));
                            if matches!(e.kind, ExprKind::Str(_)) {
                                d = d.fix(e.span, format!("\"{lower}\""));
                            }
                        } else {
                            d = d.help("an image is `[registry/]name[:tag][@digest]`, such as `ghcr.io/acme/etl:1.4`");
                        }
                        self.diags.push(d);
                        return None;
                    }
                }
                Some(v)
            }
            FieldKind::PullPolicy => {
                let v = self.eval(e, &Type::String, scope)?;
                if let Value::Str(s) = &v {
                    if !PULL_POLICIES.contains(&s.as_str()) {
                        let mut d = Diagnostic::error(
                            "E0210",
                            format!("`{s}` is not an image pull policy"),
                        )
                        .primary(e.span, "expected \"Always\", \"IfNotPresent\" or \"Never\"");
                        if let Some(p) = did_you_mean(s, PULL_POLICIES) {
                            d = d
                                .help(format!("did you mean \"{p}\"?"))
                                .fix(e.span, format!("\"{p}\""));
                        }
                        self.diags.push(d);
                        return None;
                    }
                }
                Some(v)
            }
            FieldKind::StringMap | FieldKind::SecretEnv | FieldKind::Resources => None,
        }
    }

    fn map_block<'e>(&mut self, field: &str, e: &'e Expr) -> Option<&'e Block> {
        match &e.kind {
            ExprKind::Map(b) => Some(b),
            other => {
                self.diags.push(
                    Diagnostic::error("E0203", "mismatched types")
                        .primary(
                            e.span,
                            format!("expected a map, found {}", other.describe()),
                        )
                        .help(format!("write `{field} {{ KEY = \"value\" }}`")),
                );
                None
            }
        }
    }

    fn apply_map(
        &mut self,
        field: &str,
        kind: FieldKind,
        e: &Expr,
        scope: &Scope,
        f: &mut JobFields,
    ) {
        let Some(block) = self.map_block(field, e) else {
            return;
        };
        let mut seen: HashMap<&str, Span> = HashMap::default();
        for entry in &block.entries {
            let key = entry.key.name.as_str();
            if let Some(first) = seen.insert(key, entry.key.span) {
                self.diags.push(
                    Diagnostic::error("E0201", format!("`{key}` is set twice in `{field}`"))
                        .primary(entry.key.span, "set again here")
                        .secondary(first, "first set here")
                        .help("remove one of them"),
                );
                continue;
            }
            if field != "node_selector" {
                if !is_env_name(key) {
                    let mut d = Diagnostic::error(
                        "E0209",
                        format!("`{key}` is not a valid environment variable name"),
                    )
                    .primary(
                        entry.key.span,
                        "use letters, digits and `_`, not starting with a digit",
                    );
                    let fixed: String = key
                        .chars()
                        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                        .collect();
                    if is_env_name(&fixed) {
                        d = d
                            .help(format!("did you mean `{fixed}`?"))
                            .fix(entry.key.span, fixed);
                    }
                    self.diags.push(d);
                    continue;
                }
                if key.starts_with("CHAINR_") {
                    self.diags.push(
                        Diagnostic::error("E0212", format!("`{key}` is reserved"))
                            .primary(entry.key.span, "chainr sets the CHAINR_ variables itself")
                            .help("choose another name"),
                    );
                    continue;
                }
            }
            let Some(text) = self.eval_text(&entry.value, scope) else {
                continue;
            };
            match kind {
                FieldKind::SecretEnv => match text.split_once('/') {
                    Some((secret, k))
                        if !secret.is_empty() && !k.is_empty() && !k.contains('/') =>
                    {
                        f.secret_env.insert(
                            key.to_string(),
                            ir::SecretRef {
                                secret: secret.to_string(),
                                key: k.to_string(),
                            },
                        );
                    }
                    _ => self.diags.push(
                        Diagnostic::error("E0211", format!("`{text}` does not name a secret key"))
                            .primary(entry.value.span, "expected \"SECRET/KEY\"")
                            .help(
                                "write the secret's name and the key in it: \"db-creds/password\"",
                            ),
                    ),
                },
                _ if field == "node_selector" => {
                    f.node_selector.insert(key.to_string(), text);
                }
                _ => {
                    f.env.insert(key.to_string(), text);
                }
            }
        }
    }

    fn apply_resources(&mut self, e: &Expr, scope: &Scope, f: &mut JobFields) {
        let Some(block) = self.map_block("resources", e) else {
            return;
        };
        let mut seen: HashMap<&str, Span> = HashMap::default();
        for entry in &block.entries {
            let key = entry.key.name.as_str();
            if !RESOURCE_KEYS.contains(&key) {
                let mut d = Diagnostic::error("E0208", format!("unknown resource `{key}`"))
                    .primary(entry.key.span, "expected `cpu` or `memory`");
                if key.contains("gpu") {
                    d = d.help("only cpu and memory can be requested; to run on GPU nodes, use `node_selector`");
                } else if let Some(s) = did_you_mean(key, RESOURCE_KEYS).or(match key {
                    "mem" | "ram" => Some("memory"),
                    "cpus" | "cores" => Some("cpu"),
                    _ => None,
                }) {
                    d = d
                        .help(format!("did you mean `{s}`?"))
                        .fix(entry.key.span, s);
                }
                self.diags.push(d);
                continue;
            }
            if let Some(first) = seen.insert(key, entry.key.span) {
                self.duplicate_field(key, entry.key.span, first);
                continue;
            }
            if let Some(Value::Quantity(q)) = self.eval(&entry.value, &Type::Quantity, scope) {
                if key == "cpu" {
                    f.resources.cpu = Some(q);
                } else {
                    f.resources.memory = Some(q);
                }
            }
        }
    }

    // ------------------------------------------------------------ values

    fn mark_used_names(&mut self, e: &Expr) {
        match &e.kind {
            ExprKind::Name(n) => {
                if let Some(p) = self.params.get_mut(n.as_str()) {
                    p.used = true;
                }
            }
            ExprKind::Str(parts) => {
                for part in parts {
                    if let StrPart::Interp(i, _) = part {
                        if let Some(p) = self.params.get_mut(i.name.as_str()) {
                            p.used = true;
                        }
                    }
                }
            }
            ExprKind::List(items) => items.iter().for_each(|i| self.mark_used_names(i)),
            ExprKind::Map(b) => b
                .entries
                .iter()
                .for_each(|en| self.mark_used_names(&en.value)),
            ExprKind::Number(_) | ExprKind::Bool(_) => {}
        }
    }

    fn mark_resolved(&mut self, name: &str) {
        if let Some(p) = self.params.get_mut(name) {
            p.resolved = true;
        }
    }

    /// The value of a name where it is used, reporting an unknown name, a param used before its
    /// value is known, and nothing more for a name whose value was invalid.
    fn resolve(&mut self, name: &str, span: Span, scope: &Scope, in_string: bool) -> Option<Value> {
        if let Some((_, v)) = scope.locals.iter().rev().find(|(n, _)| *n == name) {
            return v.clone();
        }
        let Some(p) = self.params.get_mut(name) else {
            self.unknown_name(name, span, scope, in_string);
            return None;
        };
        p.used = true;
        if !p.resolved {
            let decl = p.decl.name.span;
            let itself = p.decl.span.contains(span.start as usize);
            let d = Diagnostic::error(
                "E0309",
                format!("the param `{name}` is used before it has a value"),
            );
            self.diags.push(if itself {
                d.primary(span, "used in its own default")
                    .help("a param's default cannot use the param itself; give a value or another param")
            } else {
                d.primary(span, "used here, in the default of an earlier param")
                    .secondary(decl, "declared here")
                    .help("a param's default can use only the params declared before it; move this declaration up")
            });
            return None;
        }
        p.value.clone()
    }

    fn unknown_name(&mut self, name: &str, span: Span, scope: &Scope, in_string: bool) {
        let candidates: Vec<&str> = scope
            .locals
            .iter()
            .map(|(n, _)| *n)
            .chain(self.params.keys().copied())
            .collect();
        let (code, what) = if in_string {
            ("E0307", format!("unknown name `{name}` in interpolation"))
        } else {
            ("E0300", format!("unknown name `{name}`"))
        };
        let mut d = Diagnostic::error(code, what).primary(span, "not a param or variable in scope");
        if let Some(s) = did_you_mean(name, candidates.iter().copied()) {
            // The typo was meant as a use: the suggested param is not "unused".
            if let Some(p) = self.params.get_mut(s) {
                p.used = true;
            }
            d = d.help(format!("did you mean `{s}`?"));
            if !in_string {
                d = d.fix(span, s);
            }
        } else if in_string {
            d = d.help(format!(
                "to pass `${{{name}}}` to the shell, write `$${{{name}}}`; to use a value, declare `param {name}: string`"
            ));
        } else {
            d = d.help(format!("if this is text, quote it: \"{name}\""));
        }
        self.diags.push(d);
    }

    /// The text of a string, a number or a boolean (env values accept all three).
    fn eval_text(&mut self, e: &Expr, scope: &Scope) -> Option<String> {
        match &e.kind {
            ExprKind::Number(n) => Some(n.clone()),
            ExprKind::Bool(b) => Some(b.to_string()),
            ExprKind::Name(n) => match self.resolve(n, e.span, scope, false)? {
                Value::List(_) => {
                    self.mismatch(e, &Type::String, "a list");
                    None
                }
                v => v.to_text(),
            },
            _ => match self.eval(e, &Type::String, scope)? {
                Value::Str(s) => Some(s),
                _ => None,
            },
        }
    }

    fn mismatch(&mut self, e: &Expr, want: &Type, found: &str) {
        let mut d = Diagnostic::error("E0203", "mismatched types").primary(
            e.span,
            format!("expected {}, found {found}", want.article()),
        );
        if let (Type::Duration | Type::Quantity | Type::Int, ExprKind::Str(parts)) = (want, &e.kind)
        {
            if let [StrPart::Text(t)] = parts.as_slice() {
                d = d.help(format!("write it without quotes: {t}"));
            }
        }
        if let (Type::Bool, ExprKind::Str(_)) = (want, &e.kind) {
            d = d.help("use `true` or `false`, without quotes");
        }
        if let (Type::String, ExprKind::Number(n)) = (want, &e.kind) {
            d = d
                .help(format!("quote it to make it text: \"{n}\""))
                .fix(e.span, format!("\"{n}\""));
        }
        self.diags.push(d);
    }

    /// A value of the type it naturally has (fan-out lists), without an expected type.
    fn eval_any(&mut self, e: &Expr, scope: &Scope) -> Option<Value> {
        match &e.kind {
            ExprKind::Str(_) => self.eval(e, &Type::String, scope),
            ExprKind::Bool(b) => Some(Value::Bool(*b)),
            ExprKind::Number(n) => Some(
                n.parse()
                    .map(Value::Int)
                    .unwrap_or_else(|_| Value::Str(n.clone())),
            ),
            ExprKind::Name(n) => self.resolve(n, e.span, scope, false),
            ExprKind::List(items) => {
                let mut out = Vec::with_capacity(items.len());
                for i in items {
                    out.push(self.eval_any(i, scope)?);
                }
                Some(Value::List(out))
            }
            ExprKind::Map(_) => {
                self.diags.push(
                    Diagnostic::error("E0203", "mismatched types")
                        .primary(e.span, "a map cannot be used here"),
                );
                None
            }
        }
    }

    /// Evaluates `e` as a value of type `want`, reporting what does not fit.
    fn eval(&mut self, e: &Expr, want: &Type, scope: &Scope) -> Option<Value> {
        match (&e.kind, want) {
            (ExprKind::Str(parts), Type::String) => {
                let mut out = String::new();
                let mut ok = true;
                for part in parts {
                    match part {
                        StrPart::Text(t) => out.push_str(t),
                        StrPart::Interp(name, span) => {
                            match self.resolve(&name.name, name.span, scope, true) {
                                Some(v) => match v.to_text() {
                                    Some(t) => out.push_str(&t),
                                    None => {
                                        self.diags.push(
                                        Diagnostic::error("E0308", format!("cannot interpolate the list `{}`", name.name))
                                            .primary(*span, "a list has no single text")
                                            .help(format!("fan out over it instead: `job NAME for x in {} {{ ... }}`", name.name)),
                                    );
                                        ok = false;
                                    }
                                },
                                None => ok = false,
                            }
                        }
                        StrPart::BadEscape(span) => {
                            self.diags.push(
                                Diagnostic::error("E0009", "unknown escape sequence")
                                    .primary(*span, "not a known escape")
                                    .help(r#"the escapes are \n \t \r \\ \" \$ (a NUL cannot be passed to a shell); for a backslash write \\"#),
                            );
                            ok = false;
                        }
                    }
                }
                ok.then_some(Value::Str(out))
            }
            (ExprKind::Number(n), Type::Int) => match n.parse::<i64>() {
                Ok(i) => Some(Value::Int(i)),
                Err(_)
                    if n.trim_start_matches('-')
                        .chars()
                        .all(|c| c.is_ascii_digit()) =>
                {
                    self.diags.push(
                        Diagnostic::error("E0207", format!("`{n}` is out of range"))
                            .primary(e.span, "too large for an integer"),
                    );
                    None
                }
                Err(_) => {
                    self.diags.push(
                        Diagnostic::error("E0203", "mismatched types")
                            .primary(e.span, format!("expected an integer, found `{n}`")),
                    );
                    None
                }
            },
            (ExprKind::Number(n), Type::Duration) => match Duration::parse(n) {
                Ok(d) => Some(Value::Duration(d)),
                Err(why) => {
                    let is_quantity = units::check_quantity(n).is_ok() && n.ends_with('i');
                    let d = if is_quantity {
                        Diagnostic::error("E0203", "mismatched types")
                            .primary(
                                e.span,
                                format!("expected a duration, found the quantity `{n}`"),
                            )
                            .help("durations are written like 30s, 10m or 1h30m")
                    } else {
                        let mut d = Diagnostic::error("E0204", format!("invalid duration `{n}`"))
                            .primary(e.span, why);
                        let digits: String = n
                            .chars()
                            .take_while(|c| c.is_ascii_digit() || *c == '.')
                            .collect();
                        let unit = &n[digits.len()..];
                        let fixed_unit = match unit {
                            "min" | "mins" | "minute" | "minutes" => Some("m"),
                            "hr" | "hrs" | "hour" | "hours" => Some("h"),
                            "sec" | "secs" | "second" | "seconds" => Some("s"),
                            "day" | "days" => Some("d"),
                            "msec" | "millis" => Some("ms"),
                            _ => None,
                        };
                        if n.parse::<u64>().is_ok() {
                            d = d
                                .help(format!("add a unit: `{n}s` or `{n}m`"))
                                .fix(e.span, format!("{n}s"));
                        } else if let Some(u) = fixed_unit {
                            d = d
                                .help(format!("did you mean `{digits}{u}`?"))
                                .fix(e.span, format!("{digits}{u}"));
                        } else {
                            d = d.help("durations are numbers with units ms, s, m, h or d: 30s, 10m, 1h30m");
                        }
                        d
                    };
                    self.diags.push(d);
                    None
                }
            },
            (ExprKind::Number(n), Type::Quantity) => {
                match units::check_quantity(n) {
                    Ok(()) => Some(Value::Quantity(n.clone())),
                    Err((why, suggestion)) => {
                        let mut d = Diagnostic::error("E0205", format!("invalid quantity `{n}`"))
                            .primary(e.span, why);
                        d = match suggestion {
                        Some(s) => d.help(format!("did you mean `{s}`?")).fix(e.span, s),
                        None => d.help("quantities are numbers with an optional suffix: 500m, 2, 256Mi, 1Gi"),
                    };
                        self.diags.push(d);
                        None
                    }
                }
            }
            (ExprKind::Bool(b), Type::Bool) => Some(Value::Bool(*b)),
            (ExprKind::List(items), Type::List(inner)) => {
                let mut out = Vec::with_capacity(items.len());
                let mut ok = true;
                for i in items {
                    match self.eval(i, inner, scope) {
                        Some(v) => out.push(v),
                        None => ok = false,
                    }
                }
                ok.then_some(Value::List(out))
            }
            (ExprKind::Name(n), _) => {
                let v = self.resolve(n, e.span, scope, false)?;
                let ty = v.ty();
                let fits = fits(&v, want);
                if fits {
                    return Some(v);
                }
                let mut d = Diagnostic::error("E0203", "mismatched types").primary(
                    e.span,
                    format!("expected {}, found `{n}`, {}", want.article(), ty.article()),
                );
                if let Some(p) = self.params.get(n.as_str()) {
                    d = d
                        .secondary(p.decl.ty.span, format!("`{n}` is declared as {ty} here"))
                        .help(format!(
                            "declare it as `param {n}: {want}`, or use a value of type {want}"
                        ));
                }
                self.diags.push(d);
                None
            }
            (kind, want) => {
                self.mismatch(e, want, kind.describe());
                None
            }
        }
    }

    // ------------------------------------------------------------ conditions and graph

    fn resolve_condition(
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
                if !OUTCOMES.contains(&o.name.as_str()) {
                    ok = false;
                    let alias = match o.name.as_str() {
                        "success" | "succeed" | "successful" | "ok" | "passed" => Some("succeeded"),
                        "failure" | "fail" | "error" | "err" => Some(if o.name.starts_with('e') {
                            "errored"
                        } else {
                            "failed"
                        }),
                        "canceled" | "cancel" => Some("cancelled"),
                        "skip" => Some("skipped"),
                        "finished" | "completed" | "complete" | "always" | "any" => Some("done"),
                        other => did_you_mean(other, OUTCOMES),
                    };
                    let mut d = Diagnostic::error("E0104", format!("unknown outcome `{}`", o.name))
                        .primary(o.span, "not an outcome");
                    d = match alias {
                        Some(s) => d.help(format!("did you mean `{name}.{s}`?")).fix(o.span, s),
                        None => d.help("the outcomes are succeeded, failed, errored, skipped, cancelled and done"),
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
        let mut assignment = vec![0usize; n];
        loop {
            if eval_cond(cond, &|name: &str| {
                let t = by_name[name];
                let i = jobs.binary_search(&t).expect("referenced job");
                (assignment[i], decls[t].allow_failure.iter().any(|&a| a))
            }) {
                return;
            }
            let mut k = 0;
            while k < n {
                assignment[k] += 1;
                if assignment[k] < 5 {
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

    fn report_cycles(&mut self, decls: &[Decl], edges: &[Vec<(usize, Span)>]) {
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

    /// Job names must stay distinct once made Kubernetes-safe, and instance names must not
    /// collide with other jobs.
    fn check_names(&mut self, decls: &[Decl]) {
        let mut exact: HashMap<&str, usize> = HashMap::default();
        let mut safe: HashMap<String, (usize, &str)> = HashMap::default();
        for (i, d) in decls.iter().enumerate() {
            for inst in &d.instances {
                if inst.len() > 253 {
                    // The IR's limit (E0906): what compiles must be valid IR.
                    let mut cut = 40;
                    while !inst.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    self.diags.push(
                        Diagnostic::error(
                            "E0107",
                            format!("the job name `{}…` is too long", &inst[..cut]),
                        )
                        .primary(
                            d.job.name.span,
                            format!("makes a name of {} bytes; at most 253", inst.len()),
                        )
                        .help("use a shorter name (a fan-out adds `-VALUE` to it)"),
                    );
                    continue;
                }
                if let Some(&j) = exact.get(inst.as_str()) {
                    if j != i && (d.fanned || decls[j].fanned) {
                        self.diags.push(
                            Diagnostic::error("E0101", format!("the job name `{inst}` is used twice"))
                                .primary(d.job.name.span, format!("makes a job named `{inst}`"))
                                .secondary(decls[j].job.name.span, format!("also makes `{inst}`"))
                                .help("a fan-out `NAME for ...` makes jobs `NAME-0`, `NAME-1`, ...: rename one of them"),
                        );
                    }
                    continue;
                }
                exact.insert(inst, i);
                let k = units::kubernetes_name(inst);
                match safe.get(&k) {
                    Some(&(j, other)) if other != inst.as_str() => {
                        self.diags.push(
                            Diagnostic::error("E0105", format!("the job names `{other}` and `{inst}` collide in Kubernetes"))
                                .primary(d.job.name.span, format!("both become `{k}` in Kubernetes"))
                                .secondary(decls[j].job.name.span, "the other job")
                                .help("Kubernetes names are lower case, with `-` for `_` and `.`; rename one of them"),
                        );
                    }
                    Some(_) => {}
                    None => {
                        safe.insert(k, (i, inst));
                    }
                }
            }
        }
    }
}

#[derive(Default)]
struct JobFields {
    /// Bit i: field `JOB_FIELDS[i]` is written somewhere, even if its value was invalid.
    present: u32,
    image: Option<String>,
    run: Option<String>,
    description: Option<String>,
    env: IndexMap<String, String>,
    secret_env: IndexMap<String, ir::SecretRef>,
    retries: u32,
    backoff: Option<Duration>,
    timeout: Option<Duration>,
    resources: ir::Resources,
    allow_failure: bool,
    working_dir: Option<String>,
    service_account: Option<String>,
    node_selector: IndexMap<String, String>,
    image_pull_policy: Option<ir::PullPolicy>,
}

impl JobFields {
    fn has(&self, field: &str) -> bool {
        fields::JOB_FIELDS
            .iter()
            .position(|f| f.name == field)
            .is_some_and(|i| self.present & (1 << i) != 0)
    }

    fn mark(&mut self, field: &str) {
        if let Some(i) = fields::JOB_FIELDS.iter().position(|f| f.name == field) {
            self.present |= 1 << i;
        }
    }
}

/// Whether a value has the type wanted; list elements are checked one by one (an empty list
/// fits any list type).
fn fits(v: &Value, want: &Type) -> bool {
    match (v, want) {
        (Value::List(items), Type::List(t)) => items.iter().all(|i| fits(i, t)),
        (v, want) => v.ty() == *want,
    }
}

fn is_env_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Reads a `-p NAME=VALUE` value as the param's type.
fn value_from_text(text: &str, ty: &Type) -> Result<Value, String> {
    match ty {
        Type::String => Ok(Value::Str(text.to_string())),
        Type::Int => text
            .trim()
            .parse()
            .map(Value::Int)
            .map_err(|_| format!("`{text}` is not an integer")),
        Type::Bool => match text.trim() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(format!("`{text}` is not `true` or `false`")),
        },
        Type::Duration => Duration::parse(text.trim()).map(Value::Duration),
        Type::Quantity => units::check_quantity(text.trim())
            .map(|_| Value::Quantity(text.trim().to_string()))
            .map_err(|(why, _)| why),
        Type::List(inner) => {
            let body = text.trim();
            let body = body
                .strip_prefix('[')
                .and_then(|b| b.strip_suffix(']'))
                .unwrap_or(body);
            if body.trim().is_empty() {
                return Ok(Value::List(Vec::new()));
            }
            body.split(',')
                .map(|item| value_from_text(item.trim().trim_matches('"'), inner))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::List)
        }
    }
}

// ---------------------------------------------------------------- condition semantics

/// Outcome indices used by [`eval_cond`]: succeeded, failed, errored, skipped, cancelled.
const SUCCEEDED: usize = 0;
const FAILED: usize = 1;
const ERRORED: usize = 2;
const SKIPPED: usize = 3;
const CANCELLED: usize = 4;

fn has_not_or_or(c: &Cond) -> bool {
    match c {
        Cond::Ref { .. } => false,
        Cond::Not(..) | Cond::Or(..) => true,
        Cond::And(cs, _) => cs.iter().any(has_not_or_or),
    }
}

fn eval_cond(c: &Cond, outcome_of: &dyn Fn(&str) -> (usize, bool)) -> bool {
    match c {
        Cond::Ref { job, outcome, .. } => {
            let (o, allow_failure) = outcome_of(&job.name);
            match outcome.as_ref().map(|o| o.name.as_str()) {
                None => o == SUCCEEDED || (allow_failure && (o == FAILED || o == ERRORED)),
                Some("succeeded") => o == SUCCEEDED,
                Some("failed") => o == FAILED,
                Some("errored") => o == ERRORED,
                Some("skipped") => o == SKIPPED,
                Some("cancelled") => o == CANCELLED,
                _ => true,
            }
        }
        Cond::Not(c, _) => !eval_cond(c, outcome_of),
        Cond::And(cs, _) => cs.iter().all(|c| eval_cond(c, outcome_of)),
        Cond::Or(cs, _) => cs.iter().any(|c| eval_cond(c, outcome_of)),
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
            let o = outcome.as_ref().map(|o| o.name.as_str());
            let plain =
                o.is_none() || (o == Some("succeeded") && !d.allow_failure.iter().any(|&a| a));
            if plain {
                depends_on.extend(d.instances.iter().map(|i| ir::Dependency {
                    job: i.clone(),
                    conditions: None,
                }));
                continue;
            }
            if o == Some("failed") && !d.fanned {
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
            match outcome.as_ref().map(|o| o.name.as_str()) {
                None if d.allow_failure.iter().any(|&a| a) => all(d
                    .instances
                    .iter()
                    .zip(&d.allow_failure)
                    .map(|(i, &allowed)| {
                        if allowed {
                            C::Any(vec![
                                C::Succeeded(i.clone()),
                                C::Failed(i.clone()),
                                C::Errored(i.clone()),
                            ])
                        } else {
                            C::Succeeded(i.clone())
                        }
                    })
                    .collect()),
                None | Some("succeeded") => all(each(C::Succeeded)),
                Some("failed") => any(each(C::Failed)),
                Some("skipped") => all(each(C::Skipped)),
                Some("done") => all(each(C::Done)),
                // A group is errored when an instance errored and none failed; cancelled when one
                // was cancelled and none failed or errored.
                Some("errored") if d.fanned => all(vec![
                    C::Not(Box::new(any(each(C::Failed)))),
                    any(each(C::Errored)),
                ]),
                Some("errored") => C::Errored(d.instances[0].clone()),
                Some(_) if d.fanned => all(vec![
                    C::Not(Box::new(any(each(C::Failed)))),
                    C::Not(Box::new(any(each(C::Errored)))),
                    any(each(C::Cancelled)),
                ]),
                Some(_) => C::Cancelled(d.instances[0].clone()),
            }
        }
    }
}
