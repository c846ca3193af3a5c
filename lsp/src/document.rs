//! An open document: its text, where its lines start, and what the compiler made of it.

use chainr_compiler::diagnostic::Diagnostic;
use chainr_compiler::index::{Index, SymbolKind};
use chainr_compiler::ir::Pipeline;
use chainr_compiler::syntax::{File, Span};
use chainr_compiler::{parse, Params};
use tower_lsp_server::ls_types::{Position, Range, TextDocumentContentChangeEvent};

/// Byte offsets of line starts, to convert between byte offsets and LSP positions (UTF-16).
#[derive(Clone, Debug, Default)]
pub struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    pub fn new(text: &str) -> Lines {
        let mut starts = Vec::with_capacity(text.len() / 40 + 1);
        starts.push(0);
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Lines { starts }
    }

    pub fn position(&self, text: &str, offset: usize) -> Position {
        let offset = offset.min(text.len());
        let line = self.starts.partition_point(|&s| s <= offset) - 1;
        let start = self.starts[line];
        let col: usize = text[start..offset].chars().map(char::len_utf16).sum();
        Position::new(line as u32, col as u32)
    }

    pub fn offset(&self, text: &str, p: Position) -> usize {
        let Some(&start) = self.starts.get(p.line as usize) else {
            return text.len();
        };
        // A column past the end of the line means the end of the line, before its line break.
        let next = self
            .starts
            .get(p.line as usize + 1)
            .copied()
            .unwrap_or(text.len());
        let end = start + text[start..next].trim_end_matches(['\n', '\r']).len();
        let mut units = 0usize;
        for (i, c) in text[start..end].char_indices() {
            if units >= p.character as usize {
                return start + i;
            }
            units += c.len_utf16();
        }
        end.min(text.len())
    }

    pub fn range(&self, text: &str, span: Span) -> Range {
        Range::new(
            self.position(text, span.start as usize),
            self.position(text, span.end as usize),
        )
    }
}

/// The names a document declares, kept from its last version that parsed without error, so
/// that completion and hover still know them while the user is typing.
#[derive(Clone, Debug, Default)]
pub struct Names {
    pub jobs: Vec<String>,
    pub params: Vec<(String, String)>,
    pub templates: Vec<String>,
}

pub struct Document {
    pub text: String,
    pub lines: Lines,
    pub version: i32,
    /// The tree of what parsed (all items, or those before and after a syntax error).
    pub file: File,
    pub index: Index,
    pub diagnostics: Vec<Diagnostic>,
    /// The IR, when the document compiles.
    pub pipeline: Option<Pipeline>,
    pub last_good: Names,
    /// The tree has no syntax error, so the next edit can re-parse only what it touched.
    clean: bool,
}

impl Document {
    pub fn new(text: String, version: i32) -> Document {
        let mut d = Document {
            lines: Lines::new(&text),
            text,
            version,
            file: File::default(),
            index: Index::default(),
            diagnostics: Vec::new(),
            pipeline: None,
            last_good: Names::default(),
            clean: false,
        };
        let parsed = parse::parse(&d.text);
        d.analyze(parsed);
        d
    }

    /// Applies edits in order (full or incremental), then analyses the new text.
    pub fn change(&mut self, version: i32, changes: Vec<TextDocumentContentChangeEvent>) {
        let single = changes.len() == 1;
        let mut edit = None;
        for c in changes {
            match c.range {
                Some(r) => {
                    let a = self.lines.offset(&self.text, r.start);
                    let b = self.lines.offset(&self.text, r.end).max(a);
                    self.text.replace_range(a..b, &c.text);
                    edit = Some(parse::Edit {
                        start: a,
                        old_end: b,
                        new_end: a + c.text.len(),
                    });
                }
                None => self.text = c.text,
            }
            self.lines = Lines::new(&self.text);
        }
        self.version = version;
        // One edit of an error-free tree: re-parse only the items it touched.
        let reparsed = match edit {
            Some(e) if single && self.clean => {
                parse::reparse(std::mem::take(&mut self.file), &self.text, e)
            }
            _ => None,
        };
        let parsed = reparsed.unwrap_or_else(|| parse::parse(&self.text));
        self.analyze(parsed);
    }

    fn analyze(&mut self, parsed: parse::Parsed) {
        self.clean = parsed.errors.is_empty() && parsed.file.pipeline.is_some();
        self.index = Index::build(&parsed.file);
        if parsed.errors.is_empty() {
            let out = chainr_compiler::check_file(&parsed.file, &Params::default());
            self.diagnostics = out.diagnostics;
            self.pipeline = out.pipeline;
            self.last_good = Names {
                jobs: self.index.jobs().map(|s| s.name.clone()).collect(),
                params: self
                    .index
                    .symbols
                    .iter()
                    .filter(|s| s.kind == SymbolKind::Param)
                    .map(|s| (s.name.clone(), self.text[s.decl.range()].to_string()))
                    .collect(),
                templates: self
                    .index
                    .symbols
                    .iter()
                    .filter(|s| s.kind == SymbolKind::Template)
                    .map(|s| s.name.clone())
                    .collect(),
            };
        } else {
            self.diagnostics = parsed.errors;
            self.pipeline = None;
        }
        self.file = parsed.file;
    }

    pub fn range(&self, span: Span) -> Range {
        self.lines.range(&self.text, span)
    }

    pub fn offset(&self, p: Position) -> usize {
        self.lines.offset(&self.text, p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_utf16_units() {
        let text = "ab\né😀x\n";
        let lines = Lines::new(text);
        let x = text.find('x').unwrap();
        assert_eq!(lines.position(text, x), Position::new(1, 3));
        assert_eq!(lines.offset(text, Position::new(1, 3)), x);
        assert_eq!(lines.offset(text, Position::new(9, 0)), text.len());
        // Past the end of a line: the end of that line, not the next one.
        assert_eq!(lines.offset(text, Position::new(0, 99)), 2);
        let crlf = "ab\r\ncd";
        assert_eq!(Lines::new(crlf).offset(crlf, Position::new(0, 99)), 2);
    }
}
