//! The parser: source text to a [`File`] syntax tree, with friendly syntax errors.
//!
//! pest has no error recovery, so the pipeline is parsed one item at a time: after a syntax error
//! the parser skips to the next line that starts an item and goes on, so a file with three broken
//! jobs reports three errors. Items that parsed are kept (an editor can still use them).

use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::syntax::*;
use pest::iterators::Pair;
use pest::Parser as _;

#[derive(pest_derive::Parser)]
#[grammar = "../../grammar/chainr.pest"]
struct Grammar;

/// What [`parse`] returns: the items that parsed, and the syntax errors.
#[derive(Debug, Default)]
pub struct Parsed {
    pub file: File,
    pub errors: Vec<Diagnostic>,
}

const ITEM_KEYWORDS: [&str; 5] = ["job", "param", "template", "defaults", "finally"];

/// Parses a file. Large files are parsed on two threads (see [`parse_sequential`]).
pub fn parse(src: &str) -> Parsed {
    parse_with(src, true)
}

/// Parses a file on the calling thread only; gives the same result as [`parse`].
pub fn parse_sequential(src: &str) -> Parsed {
    parse_with(src, false)
}

/// Parses a file item by item, the error-recovering path that [`parse`] takes only when the
/// file has a syntax error; for tests that both paths agree.
pub fn parse_item_by_item(src: &str) -> Parsed {
    parse_with_mode(src, Mode::ItemByItem)
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Parallel,
    Sequential,
    ItemByItem,
}

fn parse_with(src: &str, parallel: bool) -> Parsed {
    parse_with_mode(
        src,
        if parallel {
            Mode::Parallel
        } else {
            Mode::Sequential
        },
    )
}

fn parse_with_mode(src: &str, mode: Mode) -> Parsed {
    let mut parsed = Parsed::default();
    if let Some(err) = too_deep(src) {
        parsed.errors.push(err);
        return parsed;
    }
    let mut pos = skip_trivia(src, 0);
    if let Some(err) = unterminated_comment(src, pos) {
        parsed.errors.push(err);
        return parsed;
    }
    let header_start = pos;
    match Grammar::parse(Rule::header, &src[pos..]) {
        Ok(mut pairs) => {
            let header = pairs.next().expect("header rule yields one pair");
            let end = header.as_span().end();
            let name = header
                .into_inner()
                .find(|p| p.as_rule() == Rule::ident)
                .expect("header has a name");
            parsed.file.pipeline = Some(ident(&name, pos));
            pos += end;
        }
        Err(e) => {
            let at = pos;
            let mut d = syntax_error(Rule::header, src, pos, e);
            if ITEM_KEYWORDS.iter().any(|k| src[at..].starts_with(k)) {
                d = Diagnostic::error("E0010", "a file must start with `pipeline NAME {`")
                    .primary(Span::new(at, at), "expected `pipeline` here")
                    .help("wrap the jobs in a pipeline: `pipeline my-pipeline { ... }`");
            }
            parsed.errors.push(d);
            return parsed;
        }
    }
    let header_span = Span::new(header_start, pos);
    let fast = match mode {
        Mode::Parallel if src.len() - pos >= PARALLEL_MIN => {
            parse_in_two(src, pos).or_else(|| parse_chunk(src, pos, src.len(), true))
        }
        Mode::ItemByItem => None,
        _ => parse_chunk(src, pos, src.len(), true),
    };
    if let Some((items, brace)) = fast {
        parsed.file.items = items;
        pos = brace;
    }
    // From the closing brace (what follows it), or item by item with error recovery.
    parse_items(src, pos, usize::MAX, header_span, &mut parsed);
    parsed
}

/// An edit of the text: bytes `start..old_end` were replaced by `start..new_end`.
#[derive(Clone, Copy, Debug)]
pub struct Edit {
    pub start: usize,
    pub old_end: usize,
    pub new_end: usize,
}

/// Parses `src` after `edit`, reusing the items of `old` (the error-free tree of the text
/// before the edit) that the edit did not touch: only the items around the edit are parsed
/// again, the ones after it are shifted. `None` when that is not possible (the edit touches the
/// header or the closing brace, or the new text does not parse): parse the whole file instead.
/// The result is the tree [`parse`] would give.
pub fn reparse(old: File, src: &str, edit: Edit) -> Option<Parsed> {
    let name = old.pipeline?;
    let end = old.end?;
    let delta = edit.new_end as i64 - edit.old_end as i64;
    // The header (up to its `{`) must be before the edit, so it is the same text as before.
    if edit.start <= name.span.end as usize {
        return None;
    }
    let header_end = src
        .get(name.span.end as usize..edit.start)?
        .find('{')
        .map(|n| name.span.end as usize + n + 1)?;
    if edit.start < header_end || edit.old_end > end.start as usize {
        return None;
    }
    let mut items = old.items;
    // Items that end before the edit stay; so do those that start after it (shifted).
    let first = items.partition_point(|it| (it.span().end as usize) < edit.start);
    let after = items.partition_point(|it| (it.span().start as usize) <= edit.old_end);
    let region_start = if first == 0 {
        header_end
    } else {
        items[first - 1].span().end as usize
    };
    let region_end_old = if after < items.len() {
        items[after].span().start as usize
    } else {
        end.start as usize
    };
    let region_end = (region_end_old as i64 + delta) as usize;
    if region_end < region_start || region_end > src.len() || too_deep(src).is_some() {
        return None;
    }
    let (mid, _) = parse_chunk(src, region_start, region_end, false)?;
    // The region must end where the next kept item starts: a comment opened in the region that
    // now runs on into that item (a line joined to a `//` line) means the item is not what it was.
    let last_end = mid
        .last()
        .map_or(region_start, |it: &Item| it.span().end as usize);
    if skip_trivia(src, last_end) > region_end {
        return None;
    }
    let mut tail = items.split_off(after);
    items.truncate(first);
    tail.shift(delta);
    items.extend(mid);
    items.extend(tail);
    let mut end = end;
    end.shift(delta);
    Some(Parsed {
        file: File {
            pipeline: Some(name),
            items,
            end: Some(end),
        },
        errors: Vec::new(),
    })
}

/// Files at least this large are parsed on two threads, split at an item boundary.
const PARALLEL_MIN: usize = 128 * 1024;

/// Parses items from `pos` until the pipeline's closing brace, the end of the text, or the
/// first item boundary at or after `stop`; returns where it stopped.
fn parse_items(
    src: &str,
    mut pos: usize,
    stop: usize,
    header_span: Span,
    parsed: &mut Parsed,
) -> usize {
    loop {
        pos = skip_trivia(src, pos);
        if pos >= stop {
            return pos;
        }
        if let Some(err) = unterminated_comment(src, pos) {
            parsed.errors.push(err);
            break;
        }
        if pos >= src.len() {
            if parsed.errors.is_empty() {
                parsed.errors.push(
                    Diagnostic::error("E0011", "this pipeline is never closed")
                        .primary(header_span, "this pipeline's `{` is never closed")
                        .secondary(
                            Span::new(src.trim_end().len(), src.trim_end().len()),
                            "the file ends here",
                        )
                        .help("add `}` at the end of the file"),
                );
            }
            break;
        }
        if src.as_bytes()[pos] == b'}' {
            parsed.file.end = Some(Span::new(pos, pos + 1));
            let rest = skip_trivia(src, pos + 1);
            if rest < src.len() && parsed.errors.is_empty() {
                let extra = if src[rest..].starts_with("pipeline") {
                    "a file holds one pipeline; put the next one in a file of its own"
                } else {
                    "this text is outside the pipeline; move it between the pipeline's braces"
                };
                parsed.errors.push(
                    Diagnostic::error("E0012", "unexpected text after the end of the pipeline")
                        .primary(
                            Span::new(rest, src[rest..].find('\n').map_or(src.len(), |n| rest + n)),
                            "not part of the pipeline",
                        )
                        .secondary(Span::new(pos, pos + 1), "the pipeline ends here")
                        .help(extra),
                );
            }
            break;
        }
        match Grammar::parse(Rule::item, &src[pos..]) {
            Ok(mut pairs) => {
                // `item` is silent: its one pair is the alternative that matched.
                let pair = pairs.next().expect("item rule yields one pair");
                let len = pair.as_span().end();
                parsed.file.items.push(item(pair, pos));
                pos += len;
            }
            Err(e) => {
                parsed.errors.push(item_error(src, pos, e));
                match recover(src, pos) {
                    Some(next) => pos = next,
                    None => break,
                }
            }
        }
    }
    pos
}

/// The fast path: every item of `src[start..end]` in one call of the parser (one parser state
/// for all of them). With `to_close` the text must run to the pipeline's closing brace, whose
/// position is returned; otherwise it must hold whole items only. `None` when that does not
/// parse: the caller then parses item by item, which reports every error.
fn parse_chunk(src: &str, start: usize, end: usize, to_close: bool) -> Option<(Vec<Item>, usize)> {
    let rule = if to_close {
        Rule::items_close
    } else {
        Rule::items_to_end
    };
    // pest skips trivia only between the elements of a rule, not before the first.
    let start = skip_trivia(src, start).min(end);
    let pair = Grammar::parse(rule, &src[start..end]).ok()?.next()?;
    let chunk_end = start + pair.as_span().end();
    let items = pair
        .into_inner()
        .filter(|p| p.as_rule() != Rule::EOI)
        .map(|p| item(p, start))
        .collect();
    Some((items, if to_close { chunk_end - 1 } else { chunk_end }))
}

/// Parses the items in two halves at once, split at an item boundary. `None` when either half
/// does not parse (the caller then parses sequentially and reports the errors).
fn parse_in_two(src: &str, start: usize) -> Option<(Vec<Item>, usize)> {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        return None;
    }
    let split = find_split(src, start)?;
    let (first, second) = std::thread::scope(|scope| {
        let second = scope.spawn(|| parse_chunk(src, split, src.len(), true));
        let first = parse_chunk(src, start, split, false);
        (first, second.join())
    });
    let (mut items, _) = first?;
    let (rest, brace) = second.ok()??;
    items.extend(rest);
    Some((items, brace))
}

/// The start of an item near the middle of the pipeline: a line whose first word is an item
/// keyword, outside any braces, strings and comments.
fn find_split(src: &str, start: usize) -> Option<usize> {
    let bytes = src.as_bytes();
    let middle = start + (src.len() - start) / 2;
    let mut depth = 0usize;
    let mut i = start;
    let mut line_start = true;
    while i < bytes.len() {
        let b = bytes[i];
        if line_start && i >= middle && depth == 0 {
            let rest = &src[i..];
            let word = rest.trim_start_matches([' ', '\t']);
            let at = i + (rest.len() - word.len());
            if ITEM_KEYWORDS
                .iter()
                .any(|k| word.starts_with(k) && word[k.len()..].starts_with([' ', '\t']))
            {
                return Some(at);
            }
        }
        line_start = false;
        match b {
            b'\n' => line_start = true,
            b'{' => depth += 1,
            b'}' => depth = depth.checked_sub(1)?,
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i = i + 3 + src[i + 3..].find("\"\"\"")? + 2;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\n' {
                        return None;
                    }
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                i += src[i..].find('\n')?;
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = i + 2 + src[i + 2..].find("*/")? + 1;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// How deeply brackets and `!` may nest. The parser recurses once per level, so a bound keeps
/// any input from exhausting the stack (a thread's stack holds thousands of levels).
const MAX_NESTING: usize = 256;

/// The first place where brackets (or a run of `!`) nest deeper than [`MAX_NESTING`], outside
/// strings and comments.
fn too_deep(src: &str) -> Option<Diagnostic> {
    let bytes = src.as_bytes();
    let mut depth = 0usize;
    let mut bangs = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            b'!' => bangs += 1,
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i = src[i + 3..]
                    .find("\"\"\"")
                    .map_or(bytes.len(), |n| i + 3 + n + 2);
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                i = src[i..].find('\n').map_or(bytes.len(), |n| i + n);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = src[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |n| i + 2 + n + 1);
            }
            b' ' | b'\t' | b'\r' | b'\n' => {}
            _ => bangs = 0,
        }
        if depth + bangs > MAX_NESTING {
            let at = i.min(src.len());
            return Some(
                Diagnostic::error("E0007", "nesting too deep")
                    .primary(
                        Span::char_at(src, at),
                        format!("more than {MAX_NESTING} levels of brackets or `!` here"),
                    )
                    .help("simplify the expression; no pipeline needs this much nesting"),
            );
        }
        i += 1;
    }
    None
}

/// Skips whitespace and comments (an unterminated block comment is left for the caller).
pub fn skip_trivia(src: &str, mut pos: usize) -> usize {
    let bytes = src.as_bytes();
    while pos < bytes.len() {
        match bytes[pos] {
            b' ' | b'\t' | b'\r' | b'\n' => pos += 1,
            b'/' if bytes.get(pos + 1) == Some(&b'/') => {
                pos = src[pos..].find('\n').map_or(src.len(), |n| pos + n);
            }
            b'/' if bytes.get(pos + 1) == Some(&b'*') => match src[pos + 2..].find("*/") {
                Some(n) => pos = pos + 2 + n + 2,
                None => return pos,
            },
            _ => break,
        }
    }
    pos
}

fn unterminated_comment(src: &str, pos: usize) -> Option<Diagnostic> {
    if src[pos..].starts_with("/*") {
        return Some(
            Diagnostic::error("E0003", "unterminated block comment")
                .primary(Span::new(pos, pos + 2), "this comment is never closed")
                .help("close it with `*/`"),
        );
    }
    None
}

/// The start of the next line that begins an item, or the pipeline's closing brace.
fn recover(src: &str, from: usize) -> Option<usize> {
    let mut line_start = src[from..].find('\n').map(|n| from + n + 1)?;
    while line_start < src.len() {
        let line_end = src[line_start..]
            .find('\n')
            .map_or(src.len(), |n| line_start + n);
        let line = &src[line_start..line_end];
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let starts_item = ITEM_KEYWORDS.iter().any(|k| {
            trimmed.starts_with(k)
                && !trimmed[k.len()..]
                    .starts_with(|c: char| c.is_alphanumeric() || c == '_' || c == '-')
        });
        if starts_item || (indent == 0 && trimmed.trim_end() == "}") {
            return Some(line_start + indent);
        }
        line_start = line_end + 1;
    }
    None
}

fn item_error(src: &str, pos: usize, e: pest::error::Error<Rule>) -> Diagnostic {
    // `jb foo {` or `jobs foo {`: a misspelt item keyword reads better than "expected `=`".
    let word_end = src[pos..]
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'))
        .map_or(src.len(), |n| pos + n);
    let word = &src[pos..word_end];
    let next = skip_trivia(src, word_end);
    let next_is_name = src[next..].starts_with(|c: char| c.is_alphabetic() || c == '_');
    if !word.is_empty() && next_is_name && !ITEM_KEYWORDS.contains(&word) {
        let span = Span::new(pos, word_end);
        let mut d = Diagnostic::error("E0005", format!("unknown item `{word}`")).primary(
            span,
            "expected `job`, `param`, `template`, `defaults` or `finally`",
        );
        if let Some(k) = did_you_mean(word, ITEM_KEYWORDS) {
            d = d.help(format!("did you mean `{k}`?")).fix(span, k);
        } else {
            d = d.help("a pipeline holds jobs (`job NAME { ... }`), params, templates, `defaults`, `finally` and settings (`NAME = VALUE`)");
        }
        return d;
    }
    syntax_error(Rule::item, src, pos, e)
}

/// Turns a pest error into a diagnostic in plain words.
fn syntax_error(rule: Rule, src: &str, offset: usize, e: pest::error::Error<Rule>) -> Diagnostic {
    let at = offset
        + match e.location {
            pest::error::InputLocation::Pos(p) => p,
            pest::error::InputLocation::Span((s, _)) => s,
        };
    // An unterminated string is reported where it starts, not where the parser gave up.
    if let Some(d) = unterminated_string(src, offset, at) {
        return d;
    }
    let mut expected: Vec<&'static str> = punctuation_expected(rule, src, offset, at);
    if let pest::error::ErrorVariant::ParsingError { positives, .. } = &e.variant {
        for r in positives {
            let words = describe(*r);
            if !expected.contains(&words) {
                expected.push(words);
            }
        }
    }
    if let Some(d) = unclosed_brace(src, offset, at) {
        return d;
    }
    const VALUE: &str = "a value (a string, number, name, list or map)";
    let is_value = |w: &&str| {
        [
            "a string",
            "a number",
            "a list",
            "`true` or `false`",
            "a name",
        ]
        .contains(w)
    };
    if expected.iter().filter(|w| is_value(w)).count() >= 3 {
        expected.retain(|w| !is_value(w) && *w != "a block `{ ... }`" && *w != "`{`");
        expected.push(VALUE);
    }
    if expected.contains(&"`{`") {
        expected.retain(|w| *w != "a block `{ ... }`");
    }
    if expected.contains(&"`}`") {
        expected.retain(|w| *w != "`,`");
    }
    if expected.contains(&"`&&`") {
        expected.retain(|w| *w != "`&&` or `||`");
    }
    let found = describe_found(src, at);
    let end = (at + found.1).min(src.len());
    let expected = join_or(&expected);
    let message = if expected.is_empty() {
        format!("unexpected {}", found.0)
    } else {
        format!("expected {expected}, found {}", found.0)
    };
    let mut d = Diagnostic::error("E0001", message).primary(
        Span::new(at, end),
        if expected.is_empty() {
            "unexpected here".to_string()
        } else {
            format!("expected {expected}")
        },
    );
    if let Some(h) = syntax_help(src, at) {
        d = d.help(h);
    }
    d
}

/// A block left open: the parser reaches the next item (or the end of the file) still inside it.
fn unclosed_brace(src: &str, offset: usize, at: usize) -> Option<Diagnostic> {
    let line_start = src[..at].rfind('\n').map_or(0, |i| i + 1);
    let line = src[line_start..].trim_start();
    let at_item = ITEM_KEYWORDS.iter().any(|k| {
        line.starts_with(k)
            && !line[k.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_' || c == '-')
    });
    if !(at >= src.len() || (at_item && line_start > offset)) {
        return None;
    }
    // The innermost `{` still open at the point the parser stopped, skipping strings and comments.
    let mut open = Vec::new();
    let bytes = src.as_bytes();
    let mut i = offset;
    let stop = if at >= src.len() {
        src.len()
    } else {
        line_start
    };
    while i < stop {
        match bytes[i] {
            b'{' => open.push(i),
            b'}' => {
                open.pop();
            }
            b'"' => {
                let close = if src[i..].starts_with("\"\"\"") {
                    src[i + 3..].find("\"\"\"").map(|n| i + 3 + n + 2)
                } else {
                    src[i + 1..].find(['"', '\n']).map(|n| i + 1 + n)
                };
                i = close.unwrap_or(stop);
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                i = src[i..].find('\n').map_or(stop, |n| i + n);
            }
            _ => {}
        }
        i += 1;
    }
    let brace = *open.last()?;
    let here = if at >= src.len() {
        "the file ends here".to_string()
    } else {
        "expected `}` before this".to_string()
    };
    let anchor = if at >= src.len() {
        Span::new(src.len(), src.len())
    } else {
        Span::new(
            line_start + (src[line_start..].len() - line.len()),
            line_start + (src[line_start..].len() - line.len()),
        )
    };
    Some(
        Diagnostic::error("E0006", "unclosed `{`")
            .primary(Span::new(brace, brace + 1), "this `{` is never closed")
            .secondary(anchor, here)
            .help("add the missing `}`"),
    )
}

fn syntax_help(src: &str, at: usize) -> Option<String> {
    let rest = &src[at..];
    let before = src[..at].trim_end();
    if rest.starts_with(|c: char| c.is_ascii_digit())
        && (before.ends_with("job") || before.ends_with("param"))
    {
        return Some("names start with a letter or `_`: `job step-2nd`, not `job 2nd`".into());
    }
    for (word, op) in [("and ", "&&"), ("or ", "||"), ("not ", "!")] {
        if rest.starts_with(word) {
            return Some(format!(
                "conditions combine with `{op}` (and `,` for and): `after a && b`"
            ));
        }
    }
    if rest.starts_with(':') {
        return Some("fields are written `name = value`, not `name: value`".into());
    }
    if rest.starts_with('\'') {
        return Some("strings use double quotes: \"...\"".into());
    }
    if rest.starts_with("==") {
        return Some("conditions are written `after x.failed`, not with `==`".into());
    }
    if rest.starts_with('.') && !rest.starts_with("..") {
        return Some("an outcome follows its job with no space: `x.failed`".into());
    }
    None
}

fn unterminated_string(src: &str, offset: usize, at: usize) -> Option<Diagnostic> {
    // Find the last `"` between the item start and the error that opens a string still open at
    // the error position, by scanning the item's text with a tiny string-aware lexer.
    let mut i = offset;
    let bytes = src.as_bytes();
    let mut open: Option<(usize, bool)> = None;
    while i < at.min(src.len()) {
        match open {
            None => {
                if bytes[i..].starts_with(b"\"\"\"") {
                    open = Some((i, true));
                    i += 3;
                    continue;
                }
                if bytes[i] == b'"' {
                    open = Some((i, false));
                } else if bytes[i..].starts_with(b"//") {
                    i = bytes[i..]
                        .iter()
                        .position(|&b| b == b'\n')
                        .map_or(src.len(), |n| i + n);
                    continue;
                }
            }
            Some((_, true)) => {
                if bytes[i..].starts_with(b"\"\"\"") {
                    open = None;
                    i += 3;
                    continue;
                }
            }
            Some((_, false)) => {
                if bytes[i] == b'\\' {
                    i += 2;
                    continue;
                }
                if bytes[i] == b'"' || bytes[i] == b'\n' {
                    open = None;
                }
            }
        }
        i += 1;
    }
    let (start, multi) = open?;
    // Where the string ends: its closing quotes, or (unterminated) the line's or file's end.
    let body = start + if multi { 3 } else { 1 };
    let close = if multi {
        src[body..].find("\"\"\"").map(|n| body + n)
    } else {
        let mut j = body;
        loop {
            match bytes.get(j) {
                Some(b'"') => break Some(j),
                Some(b'\n') | None => break None,
                Some(b'\\') => j += 2,
                Some(_) => j += 1,
            }
        }
    };
    let end = close.unwrap_or_else(|| {
        if multi {
            src.len()
        } else {
            src[start..].find('\n').map_or(src.len(), |n| start + n)
        }
    });
    if let Some(bad) = invalid_interpolation(src, body, end.min(src.len())) {
        return Some(bad);
    }
    if close.is_some() {
        return None;
    }
    let mut d = Diagnostic::error("E0002", "unterminated string").primary(
        Span::new(start, if multi { start + 3 } else { end }),
        "this string is never closed",
    );
    d = if multi {
        d.help("close the block with `\"\"\"`")
    } else {
        d.help(
            "close it with `\"` on the same line; use \"\"\"...\"\"\" for text over several lines",
        )
    };
    Some(d)
}

/// The first `${...}` in `src[from..to]` that is not `${name}` (and not the `$${` escape).
fn invalid_interpolation(src: &str, from: usize, to: usize) -> Option<Diagnostic> {
    let text = &src[from..to];
    let mut search = 0;
    while let Some(rel) = text[search..].find("${") {
        let dollar = search + rel;
        search = dollar + 2;
        if dollar > 0 && text.as_bytes()[dollar - 1] == b'$' {
            continue;
        }
        let inner = &text[dollar + 2..];
        let trimmed = inner.trim_start_matches(' ');
        let name_len = trimmed
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .unwrap_or(trimmed.len());
        let valid = name_len > 0
            && trimmed.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && trimmed[name_len..].trim_start_matches(' ').starts_with('}');
        if valid {
            continue;
        }
        let start = from + dollar;
        let line_end = src[start..].find('\n').map_or(src.len(), |n| start + n);
        let end = src[start..line_end]
            .find('}')
            .map_or(line_end, |n| start + n + 1);
        return Some(
            Diagnostic::error("E0004", "invalid interpolation")
                .primary(Span::new(start, end), "only a name can go inside `${...}`")
                .help("interpolations name a param or loop variable: `${name}`; for the shell's own `${...}`, write `$${...}`"),
        );
    }
    None
}

/// The punctuation the parser would have accepted where it stopped (`=`, `}`, ...). pest only
/// tracks literal tokens in its "error detail" mode, which is global; the failing item is parsed
/// again in that mode, under a lock so that concurrent parses see consistent messages.
fn punctuation_expected(rule: Rule, src: &str, offset: usize, at: usize) -> Vec<&'static str> {
    static DETAIL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let attempts = {
        let _guard = DETAIL.lock().unwrap_or_else(|e| e.into_inner());
        pest::set_error_detail(true);
        let result = Grammar::parse(rule, &src[offset..]);
        pest::set_error_detail(false);
        result.err().and_then(|e| e.parse_attempts())
    };
    let Some(attempts) = attempts else {
        return Vec::new();
    };
    if offset + attempts.max_position != at {
        return Vec::new();
    }
    let mut out = Vec::new();
    for t in attempts.expected_tokens() {
        // The token type is not exported; its text is its Display.
        {
            let token = t.to_string();
            let words = match token.as_str() {
                "=" => "`=`",
                "}" => "`}`",
                "{" => "`{`",
                ")" => "`)`",
                "(" => "`(`",
                "]" => "`]`",
                "," => "`,`",
                ":" => "`:`",
                ">" => "`>`",
                ".." => "`..`",
                "&&" => "`&&`",
                "||" => "`||`",
                _ => continue,
            };
            if !out.contains(&words) {
                out.push(words);
            }
        }
    }
    out
}

fn describe_found(src: &str, at: usize) -> (String, usize) {
    let rest = &src[at..];
    let Some(c) = rest.chars().next() else {
        return ("the end of the file".into(), 0);
    };
    if c == '\n' || c == '\r' {
        return ("the end of the line".into(), 1);
    }
    if c == ' ' || c == '\t' {
        return ("a space".into(), 1);
    }
    if c.is_alphanumeric() || c == '_' {
        let n = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-' || c == '.'))
            .unwrap_or(rest.len());
        return (format!("`{}`", &rest[..n]), n);
    }
    (format!("`{c}`"), c.len_utf8())
}

fn join_or(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} or {}", init.join(", "), last),
    }
}

/// The words users see for a grammar rule in "expected ..." messages.
fn describe(rule: Rule) -> &'static str {
    match rule {
        Rule::ident => "a name",
        Rule::header | Rule::kw_pipeline => "`pipeline NAME {`",
        Rule::item
        | Rule::param
        | Rule::defaults
        | Rule::template
        | Rule::finally
        | Rule::setting => "an item (`job`, `param`, `template`, `defaults`, `finally`) or `}`",
        Rule::job | Rule::kw_job => "`job`",
        Rule::kw_param => "`param`",
        Rule::kw_defaults => "`defaults`",
        Rule::kw_template => "`template`",
        Rule::kw_finally => "`finally`",
        Rule::kw_after | Rule::after_clause => "`after CONDITION`",
        Rule::kw_for | Rule::for_clause => "`for VAR in ...`",
        Rule::kw_in => "`in`",
        Rule::type_expr => "a type such as `string` or `int`",
        Rule::tparam => "a template parameter (`name: type`)",
        Rule::use_template => "`= TEMPLATE(...)`",
        Rule::arg => "an argument (`name = value`)",
        Rule::range => "a range such as `0..4`",
        Rule::cond | Rule::not | Rule::job_ref => "a job name",
        Rule::cond_op => "`&&` or `||`",
        Rule::outcome => "an outcome such as `failed`",
        Rule::block => "a block `{ ... }`",
        Rule::entry => "a field such as `image = \"...\"` or `run = \"...\"`",
        Rule::list => "a list",
        Rule::boolean => "`true` or `false`",
        Rule::number => "a number",
        Rule::string | Rule::mstring => "a string",
        Rule::text | Rule::mtext | Rule::escape | Rule::dollar | Rule::lone => {
            "more text or a closing `\"`"
        }
        Rule::interp => "an interpolation `${name}`",
        Rule::file | Rule::EOI => "the end of the file",
        _ => "more input",
    }
}

// ---------------------------------------------------------------- pairs to tree

fn span(p: &Pair<Rule>, base: usize) -> Span {
    let s = p.as_span();
    Span::new(base + s.start(), base + s.end())
}

fn ident(p: &Pair<Rule>, base: usize) -> Ident {
    Ident {
        name: p.as_str().to_string(),
        span: span(p, base),
    }
}

fn item(p: Pair<Rule>, base: usize) -> Item {
    match p.as_rule() {
        Rule::param => Item::Param(param(p, base)),
        Rule::defaults => {
            let sp = span(&p, base);
            let b = p
                .into_inner()
                .find(|p| p.as_rule() == Rule::block)
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
                    Rule::block => body = Some(block(q, base)),
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
            Rule::block => j.body = Some(block(q, base)),
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

fn block(p: Pair<Rule>, base: usize) -> Block {
    let sp = span(&p, base);
    Block {
        entries: p.into_inner().map(|e| entry(e, base)).collect(),
        span: sp,
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
