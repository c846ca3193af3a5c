//! Values: names in scope, and expressions evaluated as the type their place expects.

use super::{Checker, Scope};
use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::syntax::*;
use crate::types::{Type, Value};
use crate::units::{self, Duration};

impl<'a> Checker<'a> {
    pub(super) fn mark_used_names(&mut self, e: &Expr) {
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

    pub(super) fn mark_resolved(&mut self, name: &str) {
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
    pub(super) fn eval_text(&mut self, e: &Expr, scope: &Scope) -> Option<String> {
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
    pub(super) fn eval_any(&mut self, e: &Expr, scope: &Scope) -> Option<Value> {
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
    pub(super) fn eval(&mut self, e: &Expr, want: &Type, scope: &Scope) -> Option<Value> {
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
}

/// Whether a value has the type wanted; list elements are checked one by one (an empty list
/// fits any list type).
fn fits(v: &Value, want: &Type) -> bool {
    match (v, want) {
        (Value::List(items), Type::List(t)) => items.iter().all(|i| fits(i, t)),
        (v, want) => v.ty() == *want,
    }
}
