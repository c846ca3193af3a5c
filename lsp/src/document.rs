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

impl Names {
    fn of(index: &Index, text: &str) -> Names {
        let named = |kind: SymbolKind| index.symbols.iter().filter(move |s| s.kind == kind);
        Names {
            jobs: index.jobs().map(|s| s.name.clone()).collect(),
            params: named(SymbolKind::Param)
                .map(|s| (s.name.clone(), text[s.decl.range()].to_string()))
                .collect(),
            templates: named(SymbolKind::Template)
                .map(|s| s.name.clone())
                .collect(),
        }
    }
}

/// Documents at least this large are analysed on two threads (the index beside the check).
const PARALLEL_MIN: usize = 64 * 1024;

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

    /// Applies changes in order, then analyses the new text. A change is a range replaced
    /// (incremental sync) or the whole text (which clients may send even when the server offers
    /// incremental sync); either way it becomes one edit, from the first byte that differs to the
    /// last, and when the tree before it had no syntax error only the items that edit touched
    /// are parsed again.
    pub fn change(&mut self, version: i32, changes: Vec<TextDocumentContentChangeEvent>) {
        let mut edit: Option<parse::Edit> = None;
        for c in changes {
            let e = match c.range {
                Some(r) => {
                    let a = self.lines.offset(&self.text, r.start);
                    let b = self.lines.offset(&self.text, r.end).max(a);
                    self.text.replace_range(a..b, &c.text);
                    parse::Edit {
                        start: a,
                        old_end: b,
                        new_end: a + c.text.len(),
                    }
                }
                None => {
                    let e = diff(&self.text, &c.text);
                    self.text = c.text;
                    e
                }
            };
            edit = Some(match edit {
                None => e,
                Some(before) => compose(before, e),
            });
            self.lines = Lines::new(&self.text);
        }
        self.version = version;
        let edit = match edit {
            // The same text as before (no change, or a whole text that is the same): the same
            // analysis.
            None => return,
            Some(e) if e.start == e.old_end && e.start == e.new_end => return,
            Some(e) => e,
        };
        let reparsed = if self.clean {
            parse::reparse(std::mem::take(&mut self.file), &self.text, edit)
        } else {
            None
        };
        let parsed = reparsed.unwrap_or_else(|| parse::parse(&self.text));
        self.analyze(parsed);
    }

    fn analyze(&mut self, parsed: parse::Parsed) {
        let ok = parsed.errors.is_empty();
        self.clean = ok && parsed.file.pipeline.is_some();
        // What the previous version left, freed beside the check rather than before it.
        let stale = (
            std::mem::take(&mut self.file),
            std::mem::take(&mut self.index),
            self.pipeline.take(),
            std::mem::take(&mut self.diagnostics),
            if ok {
                std::mem::take(&mut self.last_good)
            } else {
                Names::default()
            },
        );
        let (file, text) = (&parsed.file, self.text.as_str());
        let index = move || {
            drop(stale);
            let index = Index::build(file);
            let names = ok.then(|| Names::of(&index, text));
            (index, names)
        };
        let check = || ok.then(|| chainr_compiler::check_file(file, &Params::default()));
        // The index and the check read the same tree and take most of the time of an edit of a
        // large file: on two threads when there are two.
        let parallel = text.len() >= PARALLEL_MIN
            && std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2;
        let ((index, names), checked) = if parallel {
            std::thread::scope(|scope| {
                let indexing = scope.spawn(index);
                let checked = check();
                let indexed = indexing
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                (indexed, checked)
            })
        } else {
            (index(), check())
        };
        self.index = index;
        if let Some(names) = names {
            self.last_good = names;
        }
        match checked {
            Some(out) => {
                self.diagnostics = out.diagnostics;
                self.pipeline = out.pipeline;
            }
            None => self.diagnostics = parsed.errors,
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

/// The edit that turns `old` into `new`: the bytes between their longest common prefix and
/// their longest common suffix (not overlapping it), both cut at character boundaries.
fn diff(old: &str, new: &str) -> parse::Edit {
    let (a, b) = (old.as_bytes(), new.as_bytes());
    let mut start = common_prefix(a, b);
    while !(old.is_char_boundary(start) && new.is_char_boundary(start)) {
        start -= 1;
    }
    let room = a.len().min(b.len()) - start;
    let mut suffix = common_suffix(&a[a.len() - room..], &b[b.len() - room..]);
    // The common suffix is the same bytes in both texts, so a boundary in one is one in the other.
    while !old.is_char_boundary(a.len() - suffix) {
        suffix -= 1;
    }
    parse::Edit {
        start,
        old_end: a.len() - suffix,
        new_end: b.len() - suffix,
    }
}

/// How many bytes `a` and `b` share at their start; whole blocks compared first (as slices,
/// which the compiler turns into `memcmp`), then bytes.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    const BLOCK: usize = 64;
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + BLOCK <= n && a[i..i + BLOCK] == b[i..i + BLOCK] {
        i += BLOCK;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

/// How many bytes `a` and `b` share at their end.
fn common_suffix(a: &[u8], b: &[u8]) -> usize {
    const BLOCK: usize = 64;
    let n = a.len().min(b.len());
    let (ea, eb) = (a.len(), b.len());
    let mut i = 0;
    while i + BLOCK <= n && a[ea - i - BLOCK..ea - i] == b[eb - i - BLOCK..eb - i] {
        i += BLOCK;
    }
    while i < n && a[ea - i - 1] == b[eb - i - 1] {
        i += 1;
    }
    i
}

/// One edit for `first` followed by `second` (whose offsets are in the text after `first`): the
/// region from where either starts to where either ends.
fn compose(first: parse::Edit, second: parse::Edit) -> parse::Edit {
    // In the text between the two edits, this region holds the text `first` wrote and the text
    // `second` replaces.
    let start = first.start.min(second.start);
    let end = first.new_end.max(second.old_end);
    parse::Edit {
        start,
        // `end` is at or after what `first` wrote, so in the original text it is shifted back.
        old_end: end - first.new_end + first.old_end,
        // and at or after what `second` replaced, so in the final text it is shifted forward.
        new_end: end - second.old_end + second.new_end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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

    /// Applies `edit` to `old` as the edit says: what it does not cover is kept.
    fn apply(old: &str, new: &str, e: &parse::Edit) -> String {
        format!(
            "{}{}{}",
            &old[..e.start],
            &new[e.start..e.new_end],
            &old[e.old_end..]
        )
    }

    #[test]
    fn a_whole_text_becomes_the_edit_of_what_differs() {
        let e = diff("pipeline p { job a {} }", "pipeline p { job ab {} }");
        assert_eq!((e.start, e.old_end, e.new_end), (18, 18, 19));
        // Characters that share their first bytes: the edit covers whole characters.
        let e = diff("x é y", "x è y");
        assert_eq!((e.start, e.old_end, e.new_end), (2, 4, 4));
        let e = diff("a😀b", "a😁b");
        assert_eq!((e.start, e.old_end, e.new_end), (1, 5, 5));
        // A repeated run: the suffix does not overlap the prefix.
        let e = diff("aaa", "aaaa");
        assert_eq!((e.start, e.old_end, e.new_end), (3, 3, 4));
        let e = diff("same", "same");
        assert_eq!((e.start, e.old_end, e.new_end), (4, 4, 4));
        let e = diff("", "new");
        assert_eq!((e.start, e.old_end, e.new_end), (0, 0, 3));
    }

    #[test]
    fn a_whole_text_change_re_parses_only_the_edited_item() {
        let old = include_str!("../../examples/warehouse.chainr");
        let new = old.replacen(
            "\"Rebuild the reporting table",
            "\"Rebuild the report table",
            1,
        );
        let e = diff(old, &new);
        assert_eq!(new.len(), old.len() - 3);
        let re = parse::reparse(parse::parse(old).file, &new, e).expect("an edit inside a job");
        assert_eq!(
            format!("{:?}", re.file),
            format!("{:?}", parse::parse(&new).file)
        );
    }

    /// Source to edit: the examples, and the same with a syntax error.
    const BASES: [&str; 3] = [
        include_str!("../../examples/warehouse.chainr"),
        include_str!("../../examples/templates.chainr"),
        "pipeline p {\n  job a { image = \"busybox\" run = \"x\" }  // note\n  job b after a. { run = \"y\" }\n}\n",
    ];

    /// Tokens of the language, and nothing (a deletion), for edits that stay close to real source.
    const TOKENS: &[&str] = &[
        "",
        "{",
        "}",
        "(",
        ")",
        "[",
        "]",
        "=",
        ",",
        ";",
        ".",
        "..",
        "&&",
        "||",
        "!",
        "\"",
        "\"\"\"",
        "${",
        "job",
        "after",
        "for",
        "in",
        "param",
        "template",
        "x",
        "x.failed",
        "10m",
        "true",
        "\n",
        "//",
        "/*",
        "*/",
        "\\",
        "é",
        "😀",
        "\u{a0}",
        "\n  job n after extract { run = \"n\" }\n",
    ];

    /// An edit: where (any byte, moved back to a character boundary), how many bytes it
    /// replaces, which token it writes, and whether the client sends it as a range or as the
    /// whole new text.
    type Step = (usize, usize, usize, bool);

    fn step() -> impl Strategy<Value = Step> {
        (any::<usize>(), 0usize..16, 0..TOKENS.len(), any::<bool>())
    }

    /// Applies one edit to `text`, returning the change a client sends for it.
    fn edit(text: &mut String, (at, len, token, whole): Step) -> TextDocumentContentChangeEvent {
        let mut start = at % (text.len() + 1);
        while !text.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = (start + len).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let lines = Lines::new(text);
        let range = Range::new(lines.position(text, start), lines.position(text, end));
        text.replace_range(start..end, TOKENS[token]);
        TextDocumentContentChangeEvent {
            range: (!whole).then_some(range),
            range_length: None,
            text: if whole {
                text.clone()
            } else {
                TOKENS[token].to_string()
            },
        }
    }

    /// What the document holds is what analysing its text from scratch gives.
    fn assert_fresh(doc: &Document) -> Result<(), TestCaseError> {
        let fresh = Document::new(doc.text.clone(), doc.version);
        prop_assert_eq!(format!("{:?}", &doc.file), format!("{:?}", &fresh.file));
        prop_assert_eq!(&doc.diagnostics, &fresh.diagnostics);
        prop_assert_eq!(&doc.pipeline, &fresh.pipeline);
        prop_assert_eq!(format!("{:?}", &doc.index), format!("{:?}", &fresh.index));
        prop_assert_eq!(doc.clean, fresh.clean);
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        /// The edit found between two texts turns the first into the second, on character
        /// boundaries, keeping as much of both ends as they share.
        #[test]
        fn the_diff_of_two_texts_rebuilds_the_second(
            old in "[aé😀 {}\n]{0,12}",
            new in "[aé😀 {}\n]{0,12}",
        ) {
            let e = diff(&old, &new);
            prop_assert!(e.start <= e.old_end && e.start <= e.new_end);
            prop_assert_eq!(apply(&old, &new, &e), new.clone());
            prop_assert_eq!(old.len() - e.old_end, new.len() - e.new_end);
            prop_assert_eq!(&old[e.old_end..], &new[e.new_end..]);
            prop_assert_eq!(&old[..e.start], &new[..e.start]);
        }

        /// Changes sent one notification at a time, as ranges or as whole texts, leave the
        /// document as a full analysis of its text would (the tree, diagnostics, IR and index),
        /// whether they were re-parsed item by item or as a whole.
        #[test]
        fn changes_agree_with_a_full_analysis(
            base in 0..BASES.len(),
            steps in proptest::collection::vec(step(), 1..5),
        ) {
            let mut text = BASES[base].to_string();
            let mut doc = Document::new(text.clone(), 1);
            for (version, s) in steps.into_iter().enumerate() {
                let change = edit(&mut text, s);
                doc.change(version as i32 + 2, vec![change]);
                prop_assert_eq!(&doc.text, &text);
                assert_fresh(&doc)?;
            }
        }

        /// Several changes in one notification (ranges and whole texts mixed) become one edit.
        #[test]
        fn changes_of_one_notification_agree_with_a_full_analysis(
            base in 0..BASES.len(),
            steps in proptest::collection::vec(step(), 1..5),
        ) {
            let mut text = BASES[base].to_string();
            let mut doc = Document::new(text.clone(), 1);
            let changes: Vec<_> = steps.into_iter().map(|s| edit(&mut text, s)).collect();
            doc.change(2, changes);
            prop_assert_eq!(&doc.text, &text);
            assert_fresh(&doc)?;
        }

        /// Two edits composed into one rebuild the text the two give one after the other.
        #[test]
        fn composed_edits_rebuild_the_text(
            base in 0..BASES.len(),
            first in step(),
            second in step(),
        ) {
            let old = BASES[base].to_string();
            let mut mid = old.clone();
            edit(&mut mid, first);
            let mut new = mid.clone();
            edit(&mut new, second);
            let e = compose(diff(&old, &mid), diff(&mid, &new));
            prop_assert_eq!(apply(&old, &new, &e), new);
        }
    }
}
