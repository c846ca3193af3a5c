//! Editor features computed from a document: hover, completion, definitions and references,
//! symbols, semantic tokens, code actions. Plain functions of a `Document`, so the server only
//! translates requests.

use crate::document::Document;
use chainr_compiler::diagnostic::{Diagnostic as CDiagnostic, Severity};
use chainr_compiler::fields::{self, OUTCOMES};
use chainr_compiler::index::{Occurrence, SymbolKind};
use chainr_compiler::syntax::{ExprKind, Item, Span, StrPart};
use tower_lsp_server::ls_types::*;

/// What each outcome means, for hover and completion.
pub fn outcome_doc(name: &str) -> &'static str {
    match name {
        "succeeded" => "The job exited 0. For a fan-out job: every instance succeeded.",
        "failed" => "The job exited non-zero or ran past its timeout (after its retries). For a fan-out job: some instance failed.",
        "errored" => "The job could not run: image pull failure, unschedulable, evicted, executor error.",
        "skipped" => "The job's own condition was false, so it did not run.",
        "cancelled" => "The run was cancelled (or stopped by fail_fast) before the job finished.",
        "done" => "The job has ended, whatever its outcome: any of the others.",
        _ => "Not an outcome: the outcomes are succeeded, failed, errored, skipped, cancelled and done.",
    }
}

pub fn diagnostics(doc: &Document, uri: &Uri) -> Vec<Diagnostic> {
    doc.diagnostics
        .iter()
        .map(|d| to_lsp(doc, uri, d))
        .collect()
}

fn to_lsp(doc: &Document, uri: &Uri, d: &CDiagnostic) -> Diagnostic {
    let primary = d.primary_span().unwrap_or_default();
    let label = d
        .labels
        .iter()
        .find(|l| l.primary)
        .map(|l| l.message.as_str())
        .unwrap_or("");
    let mut message = d.message.clone();
    if !label.is_empty() && !d.message.contains(label) {
        message.push_str(": ");
        message.push_str(label);
    }
    if let Some(h) = &d.help {
        message.push_str("\nhelp: ");
        message.push_str(h);
    }
    let related: Vec<DiagnosticRelatedInformation> = d
        .labels
        .iter()
        .filter(|l| !l.primary)
        .map(|l| DiagnosticRelatedInformation {
            location: Location::new(uri.clone(), doc.range(l.span)),
            message: l.message.clone(),
        })
        .collect();
    Diagnostic {
        range: doc.range(primary),
        severity: Some(match d.severity {
            Severity::Error => DiagnosticSeverity::ERROR,
            Severity::Warning => DiagnosticSeverity::WARNING,
        }),
        code: Some(NumberOrString::String(d.code.to_string())),
        source: Some("chainr".into()),
        message,
        related_information: (!related.is_empty()).then_some(related),
        ..Default::default()
    }
}

/// Quick fixes: the did-you-mean edits of the diagnostics that touch `range`.
pub fn code_actions(doc: &Document, uri: &Uri, range: Range) -> Vec<CodeActionOrCommand> {
    let a = doc.offset(range.start);
    let b = doc.offset(range.end);
    doc.diagnostics
        .iter()
        .filter_map(|d| {
            let fix = d.fix.as_ref()?;
            let span = d.primary_span()?;
            if (span.end as usize) < a || (span.start as usize) > b {
                return None;
            }
            let edit = TextEdit::new(doc.range(fix.span), fix.replacement.clone());
            let mut changes = std::collections::HashMap::new();
            changes.insert(uri.clone(), vec![edit]);
            Some(CodeActionOrCommand::CodeAction(CodeAction {
                title: format!("Replace with `{}`", fix.replacement.trim_matches('"')),
                kind: Some(CodeActionKind::QUICKFIX),
                diagnostics: Some(vec![to_lsp(doc, uri, d)]),
                edit: Some(WorkspaceEdit {
                    changes: Some(changes),
                    ..Default::default()
                }),
                is_preferred: Some(true),
                ..Default::default()
            }))
        })
        .collect()
}

pub fn hover(doc: &Document, offset: usize) -> Option<Hover> {
    let (span, occurrence) = doc.index.at(offset)?;
    let text = match occurrence {
        Occurrence::Def(i) | Occurrence::Ref(i) => symbol_hover(doc, *i),
        Occurrence::Field(name) => match fields::job_field(name) {
            Some(f) => format!("**{}**: `{}`\n\n{}", f.name, f.ty, f.doc),
            None => format!("`{name}` is not a job field"),
        },
        Occurrence::Setting(name) => match fields::setting(name) {
            Some(f) => format!("**{}** (pipeline setting): `{}`\n\n{}", f.name, f.ty, f.doc),
            None => format!("`{name}` is not a pipeline setting"),
        },
        Occurrence::Outcome { name, .. } => format!("**.{name}**\n\n{}", outcome_doc(name)),
        Occurrence::Unresolved(name) => format!("`{name}`: not defined in this pipeline"),
    };
    Some(Hover {
        contents: HoverContents::Markup(MarkupContent {
            kind: MarkupKind::Markdown,
            value: text,
        }),
        range: Some(doc.range(*span)),
    })
}

fn symbol_hover(doc: &Document, i: usize) -> String {
    let s = &doc.index.symbols[i];
    let decl = doc.text[s.decl.range()].trim();
    match s.kind {
        SymbolKind::Job => job_hover(doc, &s.name, s.finally),
        SymbolKind::Param => format!(
            "```chainr\n{decl}\n```\nPipeline param; set it with `-p {}=VALUE`.",
            s.name
        ),
        SymbolKind::Template => {
            let head = decl.split('{').next().unwrap_or(decl).trim();
            format!(
                "```chainr\ntemplate {}\n```\nUse it as `job NAME = {}(...)`.",
                head.trim_start_matches("template "),
                s.name
            )
        }
        SymbolKind::TemplateParam => format!("```chainr\n{decl}\n```\nTemplate parameter."),
        SymbolKind::LoopVar => format!(
            "`{}`: the fan-out variable, one value per instance.\n\n```chainr\n{decl}\n```",
            s.name
        ),
    }
}

fn job_hover(doc: &Document, name: &str, finally: bool) -> String {
    let mut out = format!("**job {name}**{}", if finally { " (finally)" } else { "" });
    let job = doc.file.items.iter().find_map(|item| match item {
        Item::Job(j) if j.name.name == name => Some(j),
        Item::Finally(f) => f.jobs.iter().find(|j| j.name.name == name),
        _ => None,
    });
    if let Some(j) = job {
        if let Some(a) = &j.after {
            out.push_str(&format!(
                "\n\nruns after: `{}`",
                doc.text[a.cond.span().range()].trim()
            ));
        } else if finally {
            out.push_str("\n\nruns once every other job has ended");
        } else {
            out.push_str("\n\nruns at the start of the run");
        }
    }
    if let Some(p) = &doc.pipeline {
        // The compiled job (after defaults and templates); a fan-out shows its first instance.
        let compiled = p
            .jobs
            .get(name)
            .map(|j| (name.to_string(), j, 1))
            .or_else(|| {
                let instances: Vec<_> = p
                    .jobs
                    .iter()
                    .filter(|(_, j)| j.group.as_deref() == Some(name))
                    .collect();
                instances
                    .first()
                    .map(|(n, j)| ((*n).clone(), *j, instances.len()))
            });
        if let Some((instance, j, count)) = compiled {
            if count > 1 {
                out.push_str(&format!(
                    "\n\nfan-out: {count} instances (`{instance}`, ...)"
                ));
            }
            out.push_str(&format!("\n\nimage: `{}`", j.image));
            if let Some(t) = &j.timeout {
                out.push_str(&format!(" · timeout: {}", t.0));
            }
            if j.retries > 0 {
                out.push_str(&format!(" · retries: {}", j.retries));
            }
            if j.allow_failure {
                out.push_str(" · allow_failure");
            }
            let run: Vec<&str> = j.run.lines().take(6).collect();
            out.push_str(&format!("\n\n```sh\n{}\n```", run.join("\n")));
        }
    }
    out.push_str("\n\n`after ");
    out.push_str(name);
    out.push_str("` waits for it to succeed; `.failed`, `.errored`, `.skipped`, `.cancelled`, `.done` test its other outcomes.");
    out
}

/// Where the symbol at `offset` is declared.
pub fn definition(doc: &Document, offset: usize) -> Option<Span> {
    let (_, occurrence) = doc.index.at(offset)?;
    let i = doc.index.symbol_of(occurrence)?;
    Some(doc.index.symbols[i].def)
}

/// Every place the symbol at `offset` is named (its declaration included when asked).
pub fn references(doc: &Document, offset: usize, with_declaration: bool) -> Vec<Span> {
    let Some((_, occurrence)) = doc.index.at(offset) else {
        return Vec::new();
    };
    let Some(i) = doc.index.symbol_of(occurrence) else {
        return Vec::new();
    };
    if matches!(occurrence, Occurrence::Outcome { .. }) {
        return Vec::new();
    }
    let s = &doc.index.symbols[i];
    let mut out = Vec::new();
    if with_declaration {
        out.push(s.def);
    }
    out.extend(s.refs.iter().copied());
    out
}

/// The edits that rename the symbol at `offset`; `Err` when the new name is not an identifier
/// or is a keyword.
pub fn rename(
    doc: &Document,
    offset: usize,
    new_name: &str,
) -> Result<Vec<(Span, String)>, String> {
    chainr_compiler::names::check_new_name(new_name)?;
    let spans = references(doc, offset, true);
    Ok(spans
        .into_iter()
        .map(|s| (s, new_name.to_string()))
        .collect())
}

pub fn document_symbols(doc: &Document) -> Vec<DocumentSymbol> {
    let mut children = Vec::new();
    for s in &doc.index.symbols {
        let kind = match s.kind {
            SymbolKind::Job => SymbolKind_::FUNCTION,
            SymbolKind::Param => SymbolKind_::VARIABLE,
            SymbolKind::Template => SymbolKind_::CLASS,
            SymbolKind::TemplateParam | SymbolKind::LoopVar => continue,
        };
        #[allow(deprecated)]
        children.push(DocumentSymbol {
            name: s.name.clone(),
            detail: Some(
                match s.kind {
                    SymbolKind::Job if s.finally => "finally job",
                    SymbolKind::Job => "job",
                    SymbolKind::Param => "param",
                    _ => "template",
                }
                .to_string(),
            ),
            kind,
            tags: None,
            deprecated: None,
            range: doc.range(s.decl),
            selection_range: doc.range(s.def),
            children: None,
        });
    }
    let Some(name) = &doc.file.pipeline else {
        return children;
    };
    let whole = Span::new(0, doc.text.len());
    #[allow(deprecated)]
    let root = DocumentSymbol {
        name: name.name.clone(),
        detail: Some("pipeline".into()),
        kind: SymbolKind_::MODULE,
        tags: None,
        deprecated: None,
        range: doc.range(whole),
        selection_range: doc.range(name.span),
        children: Some(children),
    };
    vec![root]
}

use tower_lsp_server::ls_types::SymbolKind as SymbolKind_;

/// What the text before the cursor asks for.
#[derive(Debug, PartialEq)]
enum Context {
    Outcome,
    JobName,
    Interpolation,
    Field,
    Item,
    Template,
    None,
}

/// Brace depth and whether the cursor is inside a string, scanning from the start.
fn scan(text: &str) -> (usize, Option<usize>) {
    let b = text.as_bytes();
    let (mut depth, mut string_start) = (0usize, None);
    let mut i = 0;
    while i < b.len() {
        if let Some(start) = string_start {
            let triple = text[start..].starts_with("\"\"\"");
            if triple {
                if b[i..].starts_with(b"\"\"\"") && i > start + 2 {
                    string_start = None;
                    i += 3;
                    continue;
                }
            } else if b[i] == b'\\' {
                i += 2;
                continue;
            } else if b[i] == b'"' || b[i] == b'\n' {
                string_start = None;
            }
            i += 1;
            continue;
        }
        match b[i] {
            b'"' => {
                string_start = Some(i);
                if b[i..].starts_with(b"\"\"\"") {
                    i += 3;
                    continue;
                }
            }
            b'{' => depth += 1,
            b'}' => depth = depth.saturating_sub(1),
            b'/' if b.get(i + 1) == Some(&b'/') => {
                i = text[i..].find('\n').map_or(b.len(), |n| i + n);
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = text[i + 2..].find("*/").map_or(b.len(), |n| i + 2 + n + 2);
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    (depth, string_start)
}

fn context(text: &str, offset: usize) -> Context {
    let before = &text[..offset];
    let (depth, string) = scan(before);
    let word_start = before
        .char_indices()
        .rev()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
        .map_or(0, |(i, c)| i + c.len_utf8());
    if let Some(start) = string {
        let inside = &before[start..];
        let open = inside.rfind("${");
        let closed = inside.rfind('}');
        return match (open, closed) {
            (Some(o), Some(c)) if c > o => Context::None,
            (Some(_), _) => Context::Interpolation,
            _ => Context::None,
        };
    }
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = &before[line_start..];
    let trimmed = line.trim_start();
    let before_word = &before[..word_start];
    if before_word.ends_with('.') && line.contains("after") {
        return Context::Outcome;
    }
    // The header of a job: `job NAME ... after ...` with no `{` yet on this line.
    if let Some(after) = line.find(" after ") {
        if trimmed.starts_with("job ") && !line[after..].contains('{') {
            return Context::JobName;
        }
    }
    if trimmed.starts_with("job ") && before_word.trim_end().ends_with('=') && !line.contains('{') {
        return Context::Template;
    }
    let at_line_start = before[line_start..word_start].trim().is_empty()
        || before[line_start..word_start]
            .trim_end()
            .ends_with([',', ';', '{']);
    if at_line_start {
        return match depth {
            0 => Context::None,
            1 => Context::Item,
            _ => Context::Field,
        };
    }
    Context::None
}

pub fn completion(doc: &Document, offset: usize) -> Vec<CompletionItem> {
    let offset = offset.min(doc.text.len());
    match context(&doc.text, offset) {
        Context::Outcome => OUTCOMES
            .iter()
            .map(|o| CompletionItem {
                label: o.to_string(),
                kind: Some(CompletionItemKind::ENUM_MEMBER),
                documentation: Some(Documentation::String(outcome_doc(o).into())),
                ..Default::default()
            })
            .collect(),
        Context::JobName => {
            let mut names: Vec<String> = doc.index.jobs().map(|s| s.name.clone()).collect();
            let known: std::collections::HashSet<&str> = names.iter().map(String::as_str).collect();
            let missing: Vec<String> = doc
                .last_good
                .jobs
                .iter()
                .filter(|n| !known.contains(n.as_str()))
                .cloned()
                .collect();
            names.extend(missing);
            names
                .into_iter()
                .map(|n| CompletionItem {
                    label: n,
                    kind: Some(CompletionItemKind::FUNCTION),
                    detail: Some("job".into()),
                    ..Default::default()
                })
                .collect()
        }
        Context::Template => doc
            .index
            .symbols
            .iter()
            .filter(|s| s.kind == SymbolKind::Template)
            .map(|s| s.name.clone())
            .chain(doc.last_good.templates.iter().cloned())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .map(|n| CompletionItem {
                label: n,
                kind: Some(CompletionItemKind::CLASS),
                detail: Some("template".into()),
                ..Default::default()
            })
            .collect(),
        Context::Interpolation => {
            let mut items: Vec<CompletionItem> = doc
                .index
                .symbols
                .iter()
                .filter(|s| {
                    s.kind == SymbolKind::Param
                        || (s.decl.contains(offset) && s.kind != SymbolKind::Job)
                })
                .filter(|s| s.kind != SymbolKind::Template)
                .map(|s| CompletionItem {
                    label: s.name.clone(),
                    kind: Some(CompletionItemKind::VARIABLE),
                    detail: Some(
                        doc.text[s.decl.range()]
                            .lines()
                            .next()
                            .unwrap_or("")
                            .trim()
                            .to_string(),
                    ),
                    ..Default::default()
                })
                .collect();
            // Loop variables and template parameters of the enclosing job or template.
            for s in &doc.index.symbols {
                if matches!(s.kind, SymbolKind::LoopVar | SymbolKind::TemplateParam)
                    && enclosing(doc, s.decl, offset)
                    && !items.iter().any(|i| i.label == s.name)
                {
                    items.push(CompletionItem {
                        label: s.name.clone(),
                        kind: Some(CompletionItemKind::VARIABLE),
                        ..Default::default()
                    });
                }
            }
            // While the item is being typed it may not parse: read its header as text.
            for name in header_locals(&doc.text[..offset]) {
                if !items.iter().any(|i| i.label == name) {
                    items.push(CompletionItem {
                        label: name,
                        kind: Some(CompletionItemKind::VARIABLE),
                        ..Default::default()
                    });
                }
            }
            for (n, decl) in &doc.last_good.params {
                if !items.iter().any(|i| &i.label == n) {
                    items.push(CompletionItem {
                        label: n.clone(),
                        kind: Some(CompletionItemKind::VARIABLE),
                        detail: Some(decl.clone()),
                        ..Default::default()
                    });
                }
            }
            items
        }
        Context::Field => fields::JOB_FIELDS
            .iter()
            .map(|f| CompletionItem {
                label: f.name.to_string(),
                kind: Some(CompletionItemKind::PROPERTY),
                detail: Some(f.ty.to_string()),
                documentation: Some(Documentation::String(f.doc.to_string())),
                ..Default::default()
            })
            .collect(),
        Context::Item => ["job", "param", "template", "defaults", "finally"]
            .iter()
            .map(|k| CompletionItem {
                label: k.to_string(),
                kind: Some(CompletionItemKind::KEYWORD),
                ..Default::default()
            })
            .chain(fields::SETTINGS.iter().map(|f| CompletionItem {
                label: f.name.to_string(),
                kind: Some(CompletionItemKind::PROPERTY),
                detail: Some(format!("pipeline setting: {}", f.ty)),
                documentation: Some(Documentation::String(f.doc.to_string())),
                ..Default::default()
            }))
            .collect(),
        Context::None => Vec::new(),
    }
}

/// The loop variable or template parameters named in the header of the item the text ends in.
fn header_locals(before: &str) -> Vec<String> {
    let Some(line) = before
        .lines()
        .rev()
        .map(str::trim_start)
        .find(|l| l.starts_with("job ") || l.starts_with("template "))
    else {
        return Vec::new();
    };
    if let Some(rest) = line.strip_prefix("template ") {
        let Some(params) = rest
            .split_once('(')
            .and_then(|(_, p)| p.split_once(')'))
            .map(|(p, _)| p)
        else {
            return Vec::new();
        };
        return params
            .split(',')
            .filter_map(|p| p.split(':').next())
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .collect();
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    words
        .windows(3)
        .find(|w| w[0] == "for" && w[2] == "in")
        .map(|w| vec![w[1].to_string()])
        .unwrap_or_default()
}

/// Whether `offset` lies in the job or template that declares a local at `decl`.
fn enclosing(doc: &Document, decl: Span, offset: usize) -> bool {
    doc.file.items.iter().any(|item| {
        let span = item.span();
        span.contains(offset) && span.contains(decl.start as usize)
    })
}

pub const TOKEN_TYPES: [SemanticTokenType; 10] = [
    SemanticTokenType::KEYWORD,
    SemanticTokenType::COMMENT,
    SemanticTokenType::STRING,
    SemanticTokenType::NUMBER,
    SemanticTokenType::FUNCTION,
    SemanticTokenType::VARIABLE,
    SemanticTokenType::PARAMETER,
    SemanticTokenType::PROPERTY,
    SemanticTokenType::ENUM_MEMBER,
    SemanticTokenType::CLASS,
];

const KEYWORD: u32 = 0;
const COMMENT: u32 = 1;
const STRING: u32 = 2;
const NUMBER: u32 = 3;
const FUNCTION: u32 = 4;
const VARIABLE: u32 = 5;
const PARAMETER: u32 = 6;
const PROPERTY: u32 = 7;
const ENUM_MEMBER: u32 = 8;
const CLASS: u32 = 9;

pub fn semantic_tokens(doc: &Document) -> Vec<SemanticToken> {
    let mut spans: Vec<(Span, u32)> = Vec::new();
    for c in chainr_compiler::format::comments(&doc.text) {
        spans.push((c, COMMENT));
    }
    for (span, o) in &doc.index.occurrences {
        let t = match o {
            Occurrence::Def(i) | Occurrence::Ref(i) => match doc.index.symbols[*i].kind {
                SymbolKind::Job => FUNCTION,
                SymbolKind::Param => VARIABLE,
                SymbolKind::Template => CLASS,
                SymbolKind::TemplateParam | SymbolKind::LoopVar => PARAMETER,
            },
            Occurrence::Field(_) | Occurrence::Setting(_) => PROPERTY,
            Occurrence::Outcome { .. } => ENUM_MEMBER,
            Occurrence::Unresolved(_) => continue,
        };
        spans.push((*span, t));
    }
    keywords_and_literals(doc, &mut spans);
    spans.sort_by_key(|(s, _)| (s.start, s.end));
    // Strings can hold interpolations (variables): split a string's token around them.
    let mut out = Vec::new();
    let (mut line, mut col) = (0u32, 0u32);
    let mut last_end = 0usize;
    for (span, t) in spans {
        if (span.start as usize) < last_end {
            continue;
        }
        let text = &doc.text[span.range()];
        // One token per line of a multi-line token (comments, `"""` blocks).
        let mut offset = span.start as usize;
        for piece in text.split_inclusive(['\n', '\r']) {
            let len = piece.trim_end_matches(['\n', '\r']);
            if !len.is_empty() {
                let p = doc.lines.position(&doc.text, offset);
                let delta_line = p.line - line;
                let delta_start = if delta_line == 0 {
                    p.character - col
                } else {
                    p.character
                };
                let length: u32 = len.chars().map(|c| c.len_utf16() as u32).sum();
                out.push(SemanticToken {
                    delta_line,
                    delta_start,
                    length,
                    token_type: t,
                    token_modifiers_bitset: 0,
                });
                line = p.line;
                col = p.character;
            }
            offset += piece.len();
        }
        last_end = span.end as usize;
    }
    out
}

fn keywords_and_literals(doc: &Document, out: &mut Vec<(Span, u32)>) {
    let text = &doc.text;
    let keyword = |start: usize, word: &str, out: &mut Vec<(Span, u32)>| {
        out.push((Span::new(start, start + word.len()), KEYWORD));
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
                out.push((p.ty.span, CLASS));
                exprs.extend(p.default.iter());
            }
            Item::Defaults(d) => {
                keyword(start, "defaults", out);
                collect_block(&d.body, &mut exprs);
            }
            Item::Template(t) => {
                keyword(start, "template", out);
                for p in &t.params {
                    out.push((p.ty.span, CLASS));
                    exprs.extend(p.default.iter());
                }
                collect_block(&t.body, &mut exprs);
            }
            Item::Setting(e) => exprs.push(&e.value),
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
    j: &'a chainr_compiler::syntax::Job,
    out: &mut Vec<(Span, u32)>,
    exprs: &mut Vec<&'a chainr_compiler::syntax::Expr>,
) {
    out.push((
        Span::new(j.span.start as usize, j.span.start as usize + 3),
        KEYWORD,
    ));
    if let Some(a) = &j.after {
        out.push((
            Span::new(a.span.start as usize, a.span.start as usize + 5),
            KEYWORD,
        ));
    }
    if let Some(f) = &j.fanout {
        out.push((
            Span::new(f.span.start as usize, f.span.start as usize + 3),
            KEYWORD,
        ));
        let var_end = f.var.span.end as usize;
        if let Some(i) = text[var_end..f.span.end as usize].find("in") {
            out.push((Span::new(var_end + i, var_end + i + 2), KEYWORD));
        }
        match &f.source {
            chainr_compiler::syntax::FanSource::Range(a, b) => {
                exprs.push(a);
                exprs.push(b);
            }
            chainr_compiler::syntax::FanSource::Values(e) => exprs.push(e),
        }
    }
    if let Some(u) = &j.template {
        exprs.extend(u.args.iter().map(|a| &a.value));
    }
    if let Some(b) = &j.body {
        collect_block(b, exprs);
    }
}

fn collect_block<'a>(
    b: &'a chainr_compiler::syntax::Block,
    exprs: &mut Vec<&'a chainr_compiler::syntax::Expr>,
) {
    for e in &b.entries {
        match &e.value.kind {
            ExprKind::Map(m) => collect_block(m, exprs),
            _ => exprs.push(&e.value),
        }
    }
}

fn expr_tokens(e: &chainr_compiler::syntax::Expr, out: &mut Vec<(Span, u32)>) {
    match &e.kind {
        ExprKind::Str(parts) => {
            // The string around its interpolations.
            let mut at = e.span.start as usize;
            for p in parts {
                if let StrPart::Interp(_, whole) = p {
                    if (whole.start as usize) > at {
                        out.push((Span::new(at, whole.start as usize), STRING));
                    }
                    at = whole.end as usize;
                }
            }
            if at < e.span.end as usize {
                out.push((Span::new(at, e.span.end as usize), STRING));
            }
        }
        ExprKind::Number(_) => out.push((e.span, NUMBER)),
        ExprKind::Bool(_) => out.push((e.span, KEYWORD)),
        ExprKind::List(items) => items.iter().for_each(|i| expr_tokens(i, out)),
        ExprKind::Map(b) => b.entries.iter().for_each(|en| expr_tokens(&en.value, out)),
        ExprKind::Name(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts() {
        let cases = [
            ("pipeline p {\n  job a after b.$0", Context::Outcome),
            ("pipeline p {\n  job a after $0", Context::JobName),
            ("pipeline p {\n  job a after b, c$0", Context::JobName),
            (
                "pipeline p {\n  job a {\n    run = \"echo ${$0",
                Context::Interpolation,
            ),
            ("pipeline p {\n  job a {\n    $0", Context::Field),
            ("pipeline p {\n  $0", Context::Item),
            ("pipeline p {\n  job a = $0", Context::Template),
            ("pipeline p {\n  job a {\n    run = \"x $0", Context::None),
            // After non-ASCII text: no panic, the same answers.
            ("pipeline p {\n  // café\n  $0", Context::Item),
            ("pipeline p {\n  job tâ$0", Context::None),
            ("pipeline p {\n  job a after é$0", Context::JobName),
        ];
        for (text, want) in cases {
            let at = text.find("$0").unwrap();
            assert_eq!(context(&text.replace("$0", ""), at), want, "{text}");
        }
    }

    #[test]
    fn rename_refuses_keywords_and_non_names() {
        let text = "pipeline p {\n  job a { image = \"b\" run = \"r\" }\n  job b after a { image = \"b\" run = \"r\" }\n}\n";
        let doc = Document::new(text.to_string(), 0);
        let at = text.find("job a").unwrap() + 4;
        assert_eq!(rename(&doc, at, "build").map(|e| e.len()), Ok(2));
        for bad in ["after", "in", "true", "2fast", "a b"] {
            assert!(rename(&doc, at, bad).is_err(), "{bad}");
        }
    }
}
