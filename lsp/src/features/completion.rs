//! Completion: job names after `after` and in conditions, outcomes after `.`, fields at the
//! start of a line in a body, params and local names inside `${`, templates after `job NAME =`,
//! items and settings at the pipeline's level, events after `notify on` and `to` in its block. What is asked for is read from the text before
//! the cursor, so that it works while that text does not parse.

use super::outcome_doc;
use crate::document::Document;
use chainr_compiler::fields::{self, OUTCOMES};
use chainr_compiler::index::SymbolKind;
use chainr_compiler::notify::{self, Level};
use chainr_compiler::syntax::Span;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Outcome,
    Job,
    Template,
    /// A param, fan-out variable or template parameter.
    Variable,
    /// A job field or pipeline setting.
    Field,
    Keyword,
    /// An event of a `notify`.
    Event,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub label: String,
    pub kind: Kind,
    pub detail: Option<String>,
    /// Plain text.
    pub documentation: Option<String>,
}

/// What the text before the cursor asks for.
#[derive(Debug, PartialEq)]
enum Context {
    Outcome,
    JobName,
    Interpolation,
    Field,
    Item,
    Template,
    /// An event after `notify on` (or after a `,` of its events).
    Event(Level),
    /// A key in the block of a `notify`.
    NotifyKey,
    None,
}

/// What the text before the cursor is in: the `{` still open there (innermost last), and where
/// the string the cursor is in starts. Read with the compiler's lexer, so comments and strings
/// count as the grammar says.
fn scan(text: &str) -> (Vec<usize>, Option<usize>) {
    let mut open = Vec::new();
    let mut inside = None;
    for t in chainr_compiler::lex::tokens(text) {
        inside = None;
        if t.is_punct(text, "{") {
            open.push(t.start);
        } else if t.is_punct(text, "}") {
            open.pop();
        } else if t.kind.is_string() && t.kind.is_unterminated() && t.end == text.len() {
            inside = Some(t.start);
        }
    }
    (open, inside)
}

fn context(text: &str, offset: usize) -> Context {
    let before = &text[..offset];
    let (open, string) = scan(before);
    let depth = open.len();
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
    if notify::expects_event(before, 0, word_start) {
        return Context::Event(if depth <= 1 { Level::Run } else { Level::Job });
    }
    let at_line_start = before[line_start..word_start].trim().is_empty()
        || before[line_start..word_start]
            .trim_end()
            .ends_with([',', ';', '{']);
    if at_line_start {
        // In the block of a `notify`: what leads to its `{` starts with `notify`.
        let in_notify = open.last().is_some_and(|&brace| {
            let start = before[..brace]
                .rfind(['\n', '{', '}', ';'])
                .map_or(0, |i| i + 1);
            before[start..brace].trim_start().starts_with("notify ")
        });
        return match depth {
            0 => Context::None,
            1 => Context::Item,
            _ if in_notify => Context::NotifyKey,
            _ => Context::Field,
        };
    }
    Context::None
}

/// What can be written at `offset`, by what the text before it asks for.
pub fn completion(doc: &Document, offset: usize) -> Vec<Item> {
    let offset = offset.min(doc.text.len());
    match context(&doc.text, offset) {
        Context::Outcome => OUTCOMES
            .iter()
            .map(|o| Item {
                label: o.to_string(),
                kind: Kind::Outcome,
                detail: None,
                documentation: Some(outcome_doc(o).into()),
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
                .map(|n| Item {
                    label: n,
                    kind: Kind::Job,
                    detail: Some("job".into()),
                    documentation: None,
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
            .map(|n| Item {
                label: n,
                kind: Kind::Template,
                detail: Some("template".into()),
                documentation: None,
            })
            .collect(),
        Context::Interpolation => {
            let mut items: Vec<Item> = doc
                .index
                .symbols
                .iter()
                .filter(|s| {
                    s.kind == SymbolKind::Param
                        || (s.decl.contains(offset) && s.kind != SymbolKind::Job)
                })
                .filter(|s| s.kind != SymbolKind::Template)
                .map(|s| Item {
                    label: s.name.clone(),
                    kind: Kind::Variable,
                    detail: Some(
                        doc.text[s.decl.range()]
                            .lines()
                            .next()
                            .unwrap_or("")
                            .trim()
                            .to_string(),
                    ),
                    documentation: None,
                })
                .collect();
            // Loop variables and template parameters of the enclosing job or template.
            for s in &doc.index.symbols {
                if matches!(s.kind, SymbolKind::LoopVar | SymbolKind::TemplateParam)
                    && enclosing(doc, s.decl, offset)
                    && !items.iter().any(|i| i.label == s.name)
                {
                    items.push(Item {
                        label: s.name.clone(),
                        kind: Kind::Variable,
                        detail: None,
                        documentation: None,
                    });
                }
            }
            // While the item is being typed it may not parse: read its header as text.
            for name in header_locals(&doc.text[..offset]) {
                if !items.iter().any(|i| i.label == name) {
                    items.push(Item {
                        label: name,
                        kind: Kind::Variable,
                        detail: None,
                        documentation: None,
                    });
                }
            }
            for (n, decl) in &doc.last_good.params {
                if !items.iter().any(|i| &i.label == n) {
                    items.push(Item {
                        label: n.clone(),
                        kind: Kind::Variable,
                        detail: Some(decl.clone()),
                        documentation: None,
                    });
                }
            }
            items
        }
        Context::Field => fields::JOB_FIELDS
            .iter()
            .map(|f| Item {
                label: f.name.to_string(),
                kind: Kind::Field,
                detail: Some(f.ty.to_string()),
                documentation: Some(f.doc.to_string()),
            })
            .chain(std::iter::once(notify_keyword(Level::Job)))
            .collect(),
        Context::Event(level) => level
            .events()
            .iter()
            .map(|&e| Item {
                label: e.name().to_string(),
                kind: Kind::Event,
                detail: Some(format!("event of {}", level.noun())),
                documentation: Some(notify::event_doc(e, level).to_string()),
            })
            .collect(),
        Context::NotifyKey => vec![Item {
            label: "to".into(),
            kind: Kind::Field,
            detail: Some("list of string".into()),
            documentation: Some(
                "The media to tell, as the server's configuration names them.".into(),
            ),
        }],
        Context::Item => ["job", "param", "template", "defaults", "finally"]
            .iter()
            .map(|k| Item {
                label: k.to_string(),
                kind: Kind::Keyword,
                detail: None,
                documentation: None,
            })
            .chain(std::iter::once(notify_keyword(Level::Run)))
            .chain(fields::SETTINGS.iter().map(|f| Item {
                label: f.name.to_string(),
                kind: Kind::Field,
                detail: Some(format!("pipeline setting: {}", f.ty)),
                documentation: Some(f.doc.to_string()),
            }))
            .collect(),
        Context::None => Vec::new(),
    }
}

/// `notify`, offered where a field or an item may start.
fn notify_keyword(level: Level) -> Item {
    Item {
        label: "notify".into(),
        kind: Kind::Keyword,
        detail: Some(format!(
            "notify on EVENTS {{ to = [...] }}: about {}",
            level.noun()
        )),
        documentation: None,
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
            ("pipeline p {\n  notify on $0", Context::Event(Level::Run)),
            (
                "pipeline p {\n  notify on failed, ca$0",
                Context::Event(Level::Run),
            ),
            (
                "pipeline p {\n  job a {\n    notify on $0",
                Context::Event(Level::Job),
            ),
            (
                "pipeline p {\n  job a { run = \"x\"; notify on failed, $0",
                Context::Event(Level::Job),
            ),
            (
                "pipeline p {\n  notify on failed {\n    $0",
                Context::NotifyKey,
            ),
            ("pipeline p {\n  notify on failed { $0", Context::NotifyKey),
            (
                "pipeline p {\n  job a { notify on failed { $0",
                Context::NotifyKey,
            ),
            ("pipeline p {\n  job on $0", Context::None),
        ];
        for (text, want) in cases {
            let at = text.find("$0").unwrap();
            assert_eq!(context(&text.replace("$0", ""), at), want, "{text}");
        }
    }
}
