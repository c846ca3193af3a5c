//! One job: its fields after `defaults` and its template, its fan-out instances, and the names
//! its instances take (unique, not too long, distinct in Kubernetes).

use super::{lower, Checker, Decl, HashMap, HashSet, JobFields, Scope, TemplateInfo};
use crate::diagnostic::Diagnostic;
use crate::ir;
use crate::limits;
use crate::names;
use crate::syntax::*;
use crate::types::{Type, Value};

impl<'a> Checker<'a> {
    /// Checks one job's fields and expands its fan-out; returns the instance names and IR jobs.
    pub(super) fn job(
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
                self.job_notify(&tmpl.decl.body, &tscope, &mut fields.notify);
            }
            if let Some(body) = &job.body {
                self.apply_block(body, &scope, &mut fields);
                self.job_notify(body, &scope, &mut fields.notify);
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
        lower::job(f, finally)
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
                if count > i128::from(limits::MAX_FANOUT) {
                    self.diags.push(
                        Diagnostic::error("E0503", format!("this fan-out makes {count} jobs"))
                            .primary(
                                f.span,
                                format!("more than {} instances", limits::MAX_FANOUT),
                            )
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

    /// Job names must stay distinct in Kubernetes ([`names::job_segment`]), and instance names
    /// must not collide with other jobs.
    pub(super) fn check_names(&mut self, decls: &[Decl]) {
        let mut exact: HashMap<&str, usize> = HashMap::default();
        let mut safe: HashMap<String, (usize, &str)> = HashMap::default();
        for (i, d) in decls.iter().enumerate() {
            for inst in &d.instances {
                if inst.len() > limits::MAX_JOB_NAME_LEN {
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
                            format!(
                                "makes a name of {} bytes; at most {}",
                                inst.len(),
                                limits::MAX_JOB_NAME_LEN
                            ),
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
                // Exactly the runtime's derivation: names collide only when they really are equal.
                let k = names::job_segment(inst);
                match safe.get(&k) {
                    Some(&(j, other)) if other != inst.as_str() => {
                        let mut diag = Diagnostic::error(
                            "E0105",
                            format!("the job names `{other}` and `{inst}` collide in Kubernetes"),
                        )
                        .primary(
                            d.job.name.span,
                            format!("both get Kubernetes Job names with `{k}`"),
                        );
                        if j != i {
                            diag = diag.secondary(decls[j].job.name.span, "the other job");
                        }
                        self.diags.push(diag.help(
                            "a Job name keeps the first characters of a job's name and a short hash of all of it, and these agree: rename one of them",
                        ));
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
