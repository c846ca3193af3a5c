//! Semantic tokens: what each word of the text is (keyword, job, param, field, string...), for
//! highlighting.

use crate::document::Document;
use chainr_compiler::index::{Occurrence, SymbolKind};
use chainr_compiler::syntax::{Block, Expr, ExprKind, FanSource, Item, Job, Notify, Span, StrPart};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenType {
    Keyword,
    Comment,
    String,
    Number,
    Function,
    Variable,
    Parameter,
    Property,
    EnumMember,
    Class,
}

impl TokenType {
    /// Every token type, in the order of the legend the server announces: the order of
    /// declaration, so that `t as u32` is the index of `t` in the legend.
    pub const ALL: [TokenType; 10] = [
        TokenType::Keyword,
        TokenType::Comment,
        TokenType::String,
        TokenType::Number,
        TokenType::Function,
        TokenType::Variable,
        TokenType::Parameter,
        TokenType::Property,
        TokenType::EnumMember,
        TokenType::Class,
    ];
}

/// The tokens of the document in order, none overlapping another. A token can cover several
/// lines (comments, `"""` blocks); a string's token leaves out its interpolations.
pub fn semantic_tokens(doc: &Document) -> Vec<(Span, TokenType)> {
    let mut spans: Vec<(Span, TokenType)> = Vec::new();
    for c in chainr_compiler::format::comments(&doc.text) {
        spans.push((c, TokenType::Comment));
    }
    for (span, o) in &doc.index.occurrences {
        let t = match o {
            Occurrence::Def(i) | Occurrence::Ref(i) => match doc.index.symbols[*i].kind {
                SymbolKind::Job => TokenType::Function,
                SymbolKind::Param => TokenType::Variable,
                SymbolKind::Template => TokenType::Class,
                SymbolKind::TemplateParam | SymbolKind::LoopVar => TokenType::Parameter,
            },
            Occurrence::Field(_) | Occurrence::Setting(_) | Occurrence::NotifyKey(_) => {
                TokenType::Property
            }
            Occurrence::Outcome { .. } | Occurrence::Event { .. } => TokenType::EnumMember,
            Occurrence::Notify(_) => TokenType::Keyword,
            Occurrence::Unresolved(_) => continue,
        };
        spans.push((*span, t));
    }
    keywords_and_literals(doc, &mut spans);
    spans.sort_by_key(|(s, _)| (s.start, s.end));
    let mut last_end = 0usize;
    spans.retain(|(span, _)| {
        if (span.start as usize) < last_end {
            return false;
        }
        last_end = span.end as usize;
        true
    });
    spans
}

fn keywords_and_literals(doc: &Document, out: &mut Vec<(Span, TokenType)>) {
    let text = &doc.text;
    let keyword = |start: usize, word: &str, out: &mut Vec<(Span, TokenType)>| {
        out.push((Span::new(start, start + word.len()), TokenType::Keyword));
    };
    if let Some(name) = &doc.file.pipeline {
        if let Some(i) = text[..name.span.start as usize].rfind("pipeline") {
            keyword(i, "pipeline", out);
        }
    }
    let mut exprs = Vec::new();
    for item in &doc.file.items {
        let start = item.span().start as usize;
        match item {
            Item::Param(p) => {
                keyword(start, "param", out);
                out.push((p.ty.span, TokenType::Class));
                exprs.extend(p.default.iter());
            }
            Item::Defaults(d) => {
                keyword(start, "defaults", out);
                collect_block(&d.body, out, &mut exprs);
            }
            Item::Template(t) => {
                keyword(start, "template", out);
                for p in &t.params {
                    out.push((p.ty.span, TokenType::Class));
                    exprs.extend(p.default.iter());
                }
                collect_block(&t.body, out, &mut exprs);
            }
            Item::Setting(e) => exprs.push(&e.value),
            Item::Notify(n) => notify_tokens(n, out, &mut exprs),
            Item::Job(j) => job_tokens(text, j, out, &mut exprs),
            Item::Finally(f) => {
                keyword(start, "finally", out);
                for j in &f.jobs {
                    job_tokens(text, j, out, &mut exprs);
                }
            }
        }
    }
    for e in exprs {
        expr_tokens(e, out);
    }
}

fn job_tokens<'a>(
    text: &str,
    j: &'a Job,
    out: &mut Vec<(Span, TokenType)>,
    exprs: &mut Vec<&'a Expr>,
) {
    out.push((
        Span::new(j.span.start as usize, j.span.start as usize + 3),
        TokenType::Keyword,
    ));
    if let Some(a) = &j.after {
        out.push((
            Span::new(a.span.start as usize, a.span.start as usize + 5),
            TokenType::Keyword,
        ));
    }
    if let Some(f) = &j.fanout {
        out.push((
            Span::new(f.span.start as usize, f.span.start as usize + 3),
            TokenType::Keyword,
        ));
        let var_end = f.var.span.end as usize;
        if let Some(i) = text[var_end..f.span.end as usize].find("in") {
            out.push((Span::new(var_end + i, var_end + i + 2), TokenType::Keyword));
        }
        match &f.source {
            FanSource::Range(a, b) => {
                exprs.push(a);
                exprs.push(b);
            }
            FanSource::Values(e) => exprs.push(e),
        }
    }
    if let Some(u) = &j.template {
        exprs.extend(u.args.iter().map(|a| &a.value));
    }
    if let Some(b) = &j.body {
        collect_block(b, out, exprs);
    }
}

/// `on` (the index has `notify` and the events), the durations and the block's values.
fn notify_tokens<'a>(n: &'a Notify, out: &mut Vec<(Span, TokenType)>, exprs: &mut Vec<&'a Expr>) {
    out.push((n.on, TokenType::Keyword));
    exprs.extend(n.events.iter().filter_map(|e| e.after.as_ref()));
    if let Some(b) = &n.body {
        collect_block(b, out, exprs);
    }
}

/// The values of a block (and of its `notify` statements), and the keywords of those.
fn collect_block<'a>(b: &'a Block, out: &mut Vec<(Span, TokenType)>, exprs: &mut Vec<&'a Expr>) {
    for n in &b.notify {
        notify_tokens(n, out, exprs);
    }
    for e in &b.entries {
        match &e.value.kind {
            ExprKind::Map(m) => collect_block(m, out, exprs),
            _ => exprs.push(&e.value),
        }
    }
}

fn expr_tokens(e: &Expr, out: &mut Vec<(Span, TokenType)>) {
    match &e.kind {
        ExprKind::Str(parts) => {
            // The string around its interpolations.
            let mut at = e.span.start as usize;
            for p in parts {
                if let StrPart::Interp(_, whole) = p {
                    if (whole.start as usize) > at {
                        out.push((Span::new(at, whole.start as usize), TokenType::String));
                    }
                    at = whole.end as usize;
                }
            }
            if at < e.span.end as usize {
                out.push((Span::new(at, e.span.end as usize), TokenType::String));
            }
        }
        ExprKind::Number(_) => out.push((e.span, TokenType::Number)),
        ExprKind::Bool(_) => out.push((e.span, TokenType::Keyword)),
        ExprKind::List(items) => items.iter().for_each(|i| expr_tokens(i, out)),
        ExprKind::Map(b) => b.entries.iter().for_each(|en| expr_tokens(&en.value, out)),
        ExprKind::Name(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications() {
        let text = "pipeline p {\n  notify on running_longer_than 2h { to = [\"a\"] }\n  job j { image = \"b\" run = \"c\"; notify on failed }\n}\n";
        let doc = Document::new(text.to_string(), 1);
        let tokens = semantic_tokens(&doc);
        let of = |word: &str, nth: usize| {
            let at = text.match_indices(word).nth(nth).unwrap().0;
            tokens
                .iter()
                .find(|(s, _)| s.start as usize == at)
                .map(|(s, t)| (&text[s.range()], *t))
        };
        assert_eq!(of("notify", 0), Some(("notify", TokenType::Keyword)));
        assert_eq!(of("on ", 0), Some(("on", TokenType::Keyword)));
        assert_eq!(
            of("running_longer_than", 0),
            Some(("running_longer_than", TokenType::EnumMember))
        );
        assert_eq!(of("2h", 0), Some(("2h", TokenType::Number)));
        assert_eq!(of("to", 0), Some(("to", TokenType::Property)));
        assert_eq!(of("\"a\"", 0), Some(("\"a\"", TokenType::String)));
        assert_eq!(of("notify", 1), Some(("notify", TokenType::Keyword)));
        assert_eq!(of("on ", 1), Some(("on", TokenType::Keyword)));
        assert_eq!(of("failed", 0), Some(("failed", TokenType::EnumMember)));
    }

    #[test]
    fn the_legend_is_in_declaration_order() {
        for (i, t) in TokenType::ALL.into_iter().enumerate() {
            assert_eq!(t as usize, i);
        }
    }
}
