//! Building the syntax tree from pest's pairs.

use super::Rule;
use crate::syntax::*;
use pest::iterators::Pair;

fn span(p: &Pair<Rule>, base: usize) -> Span {
    let s = p.as_span();
    Span::new(base + s.start(), base + s.end())
}

pub(super) fn ident(p: &Pair<Rule>, base: usize) -> Ident {
    Ident {
        name: p.as_str().to_string(),
        span: span(p, base),
    }
}

pub(super) fn item(p: Pair<Rule>, base: usize) -> Item {
    match p.as_rule() {
        Rule::param => Item::Param(param(p, base)),
        Rule::defaults => {
            let sp = span(&p, base);
            let b = p
                .into_inner()
                .find(|p| p.as_rule() == Rule::body)
                .expect("defaults block");
            Item::Defaults(Defaults {
                body: block(b, base),
                span: sp,
            })
        }
        Rule::template => {
            let sp = span(&p, base);
            let mut inner = p.into_inner().filter(|p| p.as_rule() != Rule::kw_template);
            let name = ident(&inner.next().expect("template name"), base);
            let mut params = Vec::new();
            let mut body = None;
            for q in inner {
                match q.as_rule() {
                    Rule::tparam => params.push(param(q, base)),
                    Rule::body => body = Some(block(q, base)),
                    _ => {}
                }
            }
            Item::Template(Template {
                name,
                params,
                body: body.expect("template body"),
                span: sp,
            })
        }
        Rule::finally => {
            let sp = span(&p, base);
            let jobs = p
                .into_inner()
                .filter(|q| q.as_rule() == Rule::job)
                .map(|q| job(q, base))
                .collect();
            Item::Finally(Finally { jobs, span: sp })
        }
        Rule::job => Item::Job(job(p, base)),
        Rule::notify => Item::Notify(notify(p, base)),
        Rule::setting => Item::Setting(entry(p.into_inner().next().expect("setting entry"), base)),
        r => unreachable!("not an item: {r:?}"),
    }
}

fn param(p: Pair<Rule>, base: usize) -> Param {
    let sp = span(&p, base);
    let mut inner = p.into_inner().filter(|p| p.as_rule() != Rule::kw_param);
    let name = ident(&inner.next().expect("param name"), base);
    let ty = type_expr(inner.next().expect("param type"), base);
    let default = inner.next().map(|e| expr(e, base));
    let end = default.as_ref().map_or(ty.span.end, |d| d.span.end);
    Param {
        name,
        ty,
        default,
        span: Span::new(sp.start as usize, end as usize),
    }
}

fn type_expr(p: Pair<Rule>, base: usize) -> TypeExpr {
    let sp = span(&p, base);
    let mut inner = p.into_inner();
    let name = ident(&inner.next().expect("type name"), base);
    let arg = inner.next().map(|a| Box::new(type_expr(a, base)));
    // `list<T>` ends at its `>`; a plain name ends with the name, not the blanks after it.
    let end = if arg.is_some() { sp.end } else { name.span.end };
    TypeExpr {
        name,
        arg,
        span: Span::new(sp.start as usize, end as usize),
    }
}

fn job(p: Pair<Rule>, base: usize) -> Job {
    let sp = span(&p, base);
    let mut inner = p.into_inner().filter(|p| p.as_rule() != Rule::kw_job);
    let name = ident(&inner.next().expect("job name"), base);
    let mut j = Job {
        name,
        template: None,
        fanout: None,
        after: None,
        body: None,
        span: sp,
    };
    for q in inner {
        match q.as_rule() {
            Rule::use_template => {
                let usp = span(&q, base);
                let mut parts = q.into_inner();
                let tname = ident(&parts.next().expect("template name"), base);
                let args = parts
                    .map(|a| {
                        let mut kv = a.into_inner();
                        let name = ident(&kv.next().expect("arg name"), base);
                        let value = expr(kv.next().expect("arg value"), base);
                        Arg { name, value }
                    })
                    .collect();
                j.template = Some(TemplateUse {
                    name: tname,
                    args,
                    span: usp,
                });
            }
            Rule::for_clause => {
                let fsp = span(&q, base);
                let mut parts = q
                    .into_inner()
                    .filter(|p| !matches!(p.as_rule(), Rule::kw_for | Rule::kw_in));
                let var = ident(&parts.next().expect("loop variable"), base);
                let src = parts.next().expect("loop source");
                let source = if src.as_rule() == Rule::range {
                    let mut bounds = src.into_inner();
                    let lo = expr(bounds.next().expect("range start"), base);
                    let hi = expr(bounds.next().expect("range end"), base);
                    FanSource::Range(lo, hi)
                } else {
                    FanSource::Values(expr(src, base))
                };
                j.fanout = Some(ForClause {
                    var,
                    source,
                    span: fsp,
                });
            }
            Rule::after_clause => {
                let asp = span(&q, base);
                let conds: Vec<Cond> = q
                    .into_inner()
                    .filter(|p| p.as_rule() != Rule::kw_after)
                    .map(|c| cond(c, base))
                    .collect();
                let commas = conds.len() > 1;
                let cond = if conds.len() == 1 {
                    conds.into_iter().next().expect("one condition")
                } else {
                    let csp = conds[0].span().to(conds[conds.len() - 1].span());
                    Cond::And(conds, csp)
                };
                j.after = Some(After {
                    span: Span::new(asp.start as usize, cond.span().end as usize),
                    cond,
                    commas,
                });
            }
            Rule::body => j.body = Some(block(q, base)),
            _ => {}
        }
    }
    if j.body.is_none() {
        // Without a body, the rule's match runs over the blanks and comments that follow (the
        // look-ahead for `{` skips them); the job ends with its last part.
        let last = [
            Some(j.name.span),
            j.template.as_ref().map(|t| t.span),
            j.fanout.as_ref().map(|f| f.span),
            j.after.as_ref().map(|a| a.span),
        ];
        j.span.end = last
            .iter()
            .flatten()
            .map(|s| s.end)
            .max()
            .unwrap_or(j.span.end);
    }
    j
}

fn cond(p: Pair<Rule>, base: usize) -> Cond {
    let sp = span(&p, base);
    match p.as_rule() {
        Rule::cond => {
            // Operands separated by `&&` and `||`: group the `&&` runs, then join them with `||`.
            let mut ors: Vec<Vec<Cond>> = vec![Vec::new()];
            for q in p.into_inner() {
                if q.as_rule() == Rule::cond_op {
                    if q.as_str() == "||" {
                        ors.push(Vec::new());
                    }
                } else {
                    ors.last_mut()
                        .expect("at least one group")
                        .push(cond(q, base));
                }
            }
            let mut terms: Vec<Cond> = ors
                .into_iter()
                .map(|mut ands| {
                    if ands.len() == 1 {
                        ands.pop().expect("one operand")
                    } else {
                        let asp = ands[0].span().to(ands[ands.len() - 1].span());
                        Cond::And(ands, asp)
                    }
                })
                .collect();
            if terms.len() == 1 {
                terms.pop().expect("one term")
            } else {
                // From the operands: the rule's own match ends after the blanks that follow.
                let osp = terms[0].span().to(terms[terms.len() - 1].span());
                Cond::Or(terms, osp)
            }
        }
        Rule::not => Cond::Not(
            Box::new(cond(p.into_inner().next().expect("negated"), base)),
            sp,
        ),
        Rule::job_ref => {
            let mut inner = p.into_inner();
            let job = ident(&inner.next().expect("job name"), base);
            let outcome = inner.next().map(|o| ident(&o, base));
            Cond::Ref {
                job,
                outcome,
                span: sp,
            }
        }
        r => unreachable!("not a condition: {r:?}"),
    }
}

/// A block, or a body (which may also hold `notify` statements).
fn block(p: Pair<Rule>, base: usize) -> Block {
    let sp = span(&p, base);
    let mut b = Block {
        entries: Vec::new(),
        notify: Vec::new(),
        span: sp,
    };
    for q in p.into_inner() {
        if q.as_rule() == Rule::notify {
            b.notify.push(notify(q, base));
        } else {
            b.entries.push(entry(q, base));
        }
    }
    b
}

fn notify(p: Pair<Rule>, base: usize) -> Notify {
    let sp = span(&p, base);
    let mut keyword = sp;
    let mut on = sp;
    let mut events = Vec::new();
    let mut body = None;
    for q in p.into_inner() {
        match q.as_rule() {
            Rule::kw_notify => keyword = span(&q, base),
            Rule::kw_on => on = span(&q, base),
            Rule::notify_event => {
                let mut inner = q.into_inner();
                let name = ident(&inner.next().expect("event name"), base);
                let after = inner.next().map(|d| expr(d, base));
                // Like a job without a body, the rule's match runs over the blanks after it.
                let end = after.as_ref().map_or(name.span.end, |d| d.span.end);
                events.push(Event {
                    span: Span::new(name.span.start as usize, end as usize),
                    name,
                    after,
                });
            }
            Rule::block => body = Some(block(q, base)),
            _ => {}
        }
    }
    let end = match (&body, events.last()) {
        (Some(b), _) => b.span.end,
        (None, Some(e)) => e.span.end,
        (None, None) => on.end,
    };
    Notify {
        keyword,
        on,
        events,
        body,
        span: Span::new(sp.start as usize, end as usize),
    }
}

fn entry(p: Pair<Rule>, base: usize) -> Entry {
    let sp = span(&p, base);
    let mut inner = p.into_inner();
    let k = inner.next().expect("entry key");
    let key = if k.as_rule() == Rule::string {
        let ksp = span(&k, base);
        let text = string_parts(k.clone(), base)
            .into_iter()
            .map(|part| match part {
                StrPart::Text(t) => t,
                StrPart::Interp(i, _) => format!("${{{}}}", i.name),
                // Kept as written, so the checker rejects the name instead of silently changing it.
                StrPart::BadEscape(esc) => src_text(&k, esc, base),
            })
            .collect();
        Ident {
            name: text,
            span: ksp,
        }
    } else {
        ident(&k, base)
    };
    let value = expr(inner.next().expect("entry value"), base);
    Entry {
        key,
        value,
        span: sp,
    }
}

fn src_text(pair: &Pair<Rule>, span: Span, base: usize) -> String {
    let start = span.start as usize - base - pair.as_span().start();
    let end = span.end as usize - base - pair.as_span().start();
    pair.as_str()
        .get(start..end)
        .unwrap_or_default()
        .to_string()
}

fn expr(p: Pair<Rule>, base: usize) -> Expr {
    let sp = span(&p, base);
    let kind = match p.as_rule() {
        Rule::string => ExprKind::Str(string_parts(p, base)),
        Rule::mstring => ExprKind::Str(dedent(mstring_parts(p, base))),
        Rule::number => ExprKind::Number(p.as_str().to_string()),
        Rule::boolean => ExprKind::Bool(p.as_str() == "true"),
        Rule::ident => ExprKind::Name(p.as_str().to_string()),
        Rule::list => ExprKind::List(p.into_inner().map(|e| expr(e, base)).collect()),
        Rule::block => ExprKind::Map(block(p, base)),
        r => unreachable!("not an expression: {r:?}"),
    };
    Expr { kind, span: sp }
}

fn push_text(parts: &mut Vec<StrPart>, s: &str) {
    if let Some(StrPart::Text(t)) = parts.last_mut() {
        t.push_str(s);
    } else {
        parts.push(StrPart::Text(s.to_string()));
    }
}

fn interp(p: Pair<Rule>, base: usize) -> StrPart {
    let sp = span(&p, base);
    let name = p.into_inner().next().expect("interpolated name");
    StrPart::Interp(ident(&name, base), sp)
}

fn string_parts(p: Pair<Rule>, base: usize) -> Vec<StrPart> {
    let mut parts = Vec::new();
    for q in p.into_inner() {
        match q.as_rule() {
            Rule::text | Rule::lone => push_text(&mut parts, q.as_str()),
            Rule::dollar => push_text(&mut parts, "${"),
            Rule::interp => parts.push(interp(q, base)),
            Rule::escape => match &q.as_str()[1..] {
                "n" => push_text(&mut parts, "\n"),
                "t" => push_text(&mut parts, "\t"),
                "r" => push_text(&mut parts, "\r"),
                "\\" => push_text(&mut parts, "\\"),
                "\"" => push_text(&mut parts, "\""),
                "$" => push_text(&mut parts, "$"),
                _ => parts.push(StrPart::BadEscape(span(&q, base))),
            },
            _ => {}
        }
    }
    parts
}

fn mstring_parts(p: Pair<Rule>, base: usize) -> Vec<StrPart> {
    let mut parts = Vec::new();
    for q in p.into_inner() {
        match q.as_rule() {
            Rule::mtext | Rule::lone => push_text(&mut parts, q.as_str()),
            Rule::dollar => push_text(&mut parts, "${"),
            Rule::interp => parts.push(interp(q, base)),
            _ => {}
        }
    }
    parts
}

/// Removes the common indentation of a `"""` block, its first line break and its last line when
/// that line holds only the closing quotes' indentation (as Swift and Kotlin do: no final newline).
pub fn dedent(parts: Vec<StrPart>) -> Vec<StrPart> {
    // Lines of segments: text pieces (without newlines) and interpolations.
    let mut lines: Vec<Vec<StrPart>> = vec![Vec::new()];
    for part in parts {
        match part {
            StrPart::Text(t) => {
                for (i, piece) in t.split('\n').enumerate() {
                    if i > 0 {
                        lines.push(Vec::new());
                    }
                    if !piece.is_empty() {
                        lines
                            .last_mut()
                            .expect("a line")
                            .push(StrPart::Text(piece.to_string()));
                    }
                }
            }
            other => lines.last_mut().expect("a line").push(other),
        }
    }
    // Only spaces and tabs count as indentation (so slicing stays on character boundaries).
    let blank = |line: &Vec<StrPart>| {
        line.iter()
            .all(|p| matches!(p, StrPart::Text(t) if t.chars().all(|c| c == ' ' || c == '\t')))
    };
    let leading = |line: &Vec<StrPart>| match line.first() {
        Some(StrPart::Text(t)) => t.len() - t.trim_start_matches([' ', '\t']).len(),
        _ => 0,
    };
    if lines.len() > 1 && blank(&lines[0]) {
        lines.remove(0);
    }
    if lines.len() > 1 && lines.last().is_some_and(blank) {
        lines.pop();
    }
    let indent = lines
        .iter()
        .filter(|l| !blank(l))
        .map(leading)
        .min()
        .unwrap_or(0);
    let mut out: Vec<StrPart> = Vec::new();
    for (i, mut line) in lines.into_iter().enumerate() {
        if i > 0 {
            push_part(&mut out, StrPart::Text("\n".into()));
        }
        if let Some(StrPart::Text(t)) = line.first_mut() {
            let cut = indent.min(t.len() - t.trim_start_matches([' ', '\t']).len());
            t.replace_range(..cut, "");
        }
        for p in line {
            push_part(&mut out, p);
        }
    }
    out.retain(|p| !matches!(p, StrPart::Text(t) if t.is_empty()));
    out
}

/// Appends a part, merging adjacent text.
fn push_part(out: &mut Vec<StrPart>, part: StrPart) {
    match (out.last_mut(), part) {
        (Some(StrPart::Text(prev)), StrPart::Text(t)) => prev.push_str(&t),
        (_, p) => out.push(p),
    }
}
