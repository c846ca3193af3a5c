//! Templates: declarations, parameter defaults, uses with their arguments, and the checking of
//! templates no job uses.

use super::{Checker, HashMap, JobFields, Scope, TemplateInfo};
use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::syntax::*;

impl<'a> Checker<'a> {
    pub(super) fn declare_template(&mut self, t: &'a Template) {
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

    /// Checks every template parameter's default once, whether or not a job uses the template; a
    /// default sees the pipeline's params only.
    pub(super) fn template_defaults(&mut self) {
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

    pub(super) fn template_use(
        &mut self,
        u: &'a TemplateUse,
    ) -> Option<(TemplateInfo<'a>, &'a TemplateUse)> {
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

    pub(super) fn bind_template_args(
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

    /// A template no job uses is still checked, with its parameters' values unknown.
    pub(super) fn check_unused_templates(&mut self) {
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
            let mut fields = JobFields::default();
            self.apply_block(&t.decl.body, &scope, &mut fields);
            self.job_notify(&t.decl.body, &scope, &mut fields.notify);
        }
    }
}
