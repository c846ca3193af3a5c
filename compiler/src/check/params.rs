//! Params: their types, their values (`-p` on the command line, or the default), and the
//! warnings about params and templates that are never used.

use super::{Checker, ParamInfo, Params, Scope};
use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::syntax::*;
use crate::types::{Type, Value};
use crate::units::{self, Duration};

impl<'a> Checker<'a> {
    pub(super) fn declare_param(&mut self, p: &'a Param) {
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

    pub(super) fn type_of(&mut self, t: &TypeExpr) -> Option<Type> {
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

    pub(super) fn resolve_params(&mut self, cli: &Params) {
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

    pub(super) fn warn_unused(&mut self) {
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
