//! Compiling what a client sent (IR JSON or `.chainr` source) and the compiler's findings as
//! JSON: each with its code, severity, message, where (line and column, 1-based, columns in
//! characters; and byte offsets) and its help, plus the whole rendered as the CLI prints it.

use chainr_compiler::{self as compiler, ir, Diagnostic, Params, Severity};
use serde::Serialize;
use utoipa::ToSchema;

/// What a submission holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// The Pipeline IR as JSON (the original chainr format or its superset).
    Json,
    /// `.chainr` source, compiled on the server.
    Chainr,
}

impl SourceKind {
    /// `json` or `chainr`, as the Run document's `metadata.source` says.
    pub fn word(self) -> &'static str {
        match self {
            SourceKind::Json => "json",
            SourceKind::Chainr => "chainr",
        }
    }

    /// The file name diagnostics are rendered against.
    fn file_name(self) -> &'static str {
        match self {
            SourceKind::Json => "pipeline.json",
            SourceKind::Chainr => "pipeline.chainr",
        }
    }
}

/// The compiler's findings about a submitted pipeline.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Diagnostics {
    pub diagnostics: Vec<DiagnosticJson>,
    /// The same, rendered as text as `chainrc check` prints it (no colour).
    pub rendered: String,
}

/// One finding.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiagnosticJson {
    /// A stable code such as `E0100` (documented in docs/language.md).
    pub code: &'static str,
    /// `error` or `warning`.
    pub severity: &'static str,
    pub message: String,
    /// Where the primary label starts and ends (1-based lines, columns in characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_line: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_column: Option<u32>,
    /// Byte offsets of the same.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<u32>,
    /// What the primary label says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

/// The result of compiling a submission: the pipeline when it has no error, and the findings.
pub struct Checked {
    pub pipeline: Option<ir::Pipeline>,
    pub diagnostics: Diagnostics,
    pub errors: usize,
}

/// Compiles `text` as `kind` (params apply to source only); with `media` (the notification
/// media the server knows), a pipeline that names another medium has an error too.
pub fn check(kind: SourceKind, text: &str, params: &Params, media: Option<&[String]>) -> Checked {
    let mut compiled = match kind {
        SourceKind::Json => compiler::compile_json(text),
        SourceKind::Chainr => compiler::compile(text, params),
    };
    if let Some(known) = media {
        compiled.check_media(known);
    }
    let errors = compiled.diagnostics.iter().filter(|d| d.is_error()).count();
    let rendered = if compiled.diagnostics.is_empty() {
        String::new()
    } else {
        cap(compiler::render(
            &compiled.diagnostics,
            kind.file_name(),
            text,
            false,
        ))
    };
    let lines = LineIndex::new(text);
    Checked {
        pipeline: if errors == 0 { compiled.pipeline } else { None },
        diagnostics: Diagnostics {
            diagnostics: compiled
                .diagnostics
                .iter()
                .map(|d| to_json(d, &lines))
                .collect(),
            rendered,
        },
        errors,
    }
}

/// The most of the rendered text an answer holds: a pipeline on one huge line would otherwise
/// come back whole in the snippet.
const RENDERED_CAP: usize = 64 << 10;

fn cap(mut text: String) -> String {
    if text.len() > RENDERED_CAP {
        let mut end = RENDERED_CAP;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("\n[the rest of the rendered diagnostics was left out]\n");
    }
    text
}

fn to_json(d: &Diagnostic, lines: &LineIndex) -> DiagnosticJson {
    let primary = d.labels.iter().find(|l| l.primary).or(d.labels.first());
    let (start, end) = match primary {
        Some(l) => (Some(l.span.start), Some(l.span.end)),
        None => (None, None),
    };
    let at = |offset: Option<u32>| offset.map(|o| lines.position(o as usize));
    let (from, to) = (at(start), at(end));
    DiagnosticJson {
        code: d.code,
        severity: match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        },
        message: d.message.clone(),
        line: from.map(|p| p.0),
        column: from.map(|p| p.1),
        end_line: to.map(|p| p.0),
        end_column: to.map(|p| p.1),
        start,
        end,
        label: primary.map(|l| l.message.clone()).filter(|m| !m.is_empty()),
        help: d.help.clone(),
    }
}

/// Byte offsets to 1-based lines and character columns.
struct LineIndex<'t> {
    text: &'t str,
    starts: Vec<usize>,
}

impl<'t> LineIndex<'t> {
    fn new(text: &'t str) -> LineIndex<'t> {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { text, starts }
    }

    fn position(&self, offset: usize) -> (u32, u32) {
        let offset = offset.min(self.text.len());
        let line = self.starts.partition_point(|&s| s <= offset) - 1;
        let start = self.starts[line];
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (line as u32 + 1, column as u32 + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_characters_from_one() {
        let text = "ab\nçd\n\nx";
        let lines = LineIndex::new(text);
        assert_eq!(lines.position(0), (1, 1));
        assert_eq!(lines.position(2), (1, 3));
        assert_eq!(lines.position(3), (2, 1));
        // `ç` is two bytes, one character.
        assert_eq!(lines.position(5), (2, 2));
        assert_eq!(lines.position(7), (3, 1));
        assert_eq!(lines.position(8), (4, 1));
        assert_eq!(lines.position(9), (4, 2));
        assert_eq!(lines.position(99), (4, 2));
    }

    #[test]
    fn a_source_error_has_its_code_and_place() {
        let src = "pipeline p {\n  job a {\n    image = \"alpine\"\n    run = \"true\"\n  }\n  job b after nope {\n    image = \"alpine\"\n    run = \"true\"\n  }\n}\n";
        let checked = check(SourceKind::Chainr, src, &Params::default(), None);
        assert!(checked.pipeline.is_none());
        assert!(checked.errors >= 1);
        let first = &checked.diagnostics.diagnostics[0];
        assert!(first.code.starts_with('E'), "{first:?}");
        assert_eq!(first.line, Some(6), "{first:?}");
        assert!(checked.diagnostics.rendered.contains(first.code));
    }

    #[test]
    fn the_original_json_compiles() {
        let json = r#"{"kind":"Pipeline","jobs":{"a":{"image":"busybox","run":"exit 0"}}}"#;
        let checked = check(SourceKind::Json, json, &Params::default(), None);
        assert_eq!(checked.errors, 0);
        assert!(checked.pipeline.is_some());
        assert!(checked.diagnostics.diagnostics.is_empty());
    }

    #[test]
    fn a_medium_the_server_does_not_know_is_an_error_with_a_suggestion() {
        let src = "pipeline p {\n  notify on failed { to = [\"team-slak\"] }\n  job a {\n    image = \"alpine\"\n    run = \"true\"\n  }\n}\n";
        let known = vec!["team-slack".to_string(), "oncall-mail".to_string()];
        let checked = check(SourceKind::Chainr, src, &Params::default(), Some(&known));
        assert!(checked.pipeline.is_none(), "nothing to store");
        let d = &checked.diagnostics.diagnostics[0];
        assert_eq!((d.code, d.line), ("E0707", Some(2)), "{d:?}");
        assert!(
            checked.diagnostics.rendered.contains("team-slack"),
            "{}",
            checked.diagnostics.rendered
        );
        let unchecked = check(SourceKind::Chainr, src, &Params::default(), None);
        assert!(
            unchecked.pipeline.is_some(),
            "without a configuration, media are not checked"
        );
        let json = r#"{"kind":"Pipeline","notify":[{"on":["failed"],"to":["oncall-mail"]}],"jobs":{"a":{"image":"busybox","run":"exit 0"}}}"#;
        assert_eq!(
            check(SourceKind::Json, json, &Params::default(), Some(&known)).errors,
            0
        );
    }
}
