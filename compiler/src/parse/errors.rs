//! Syntax errors in plain words: pest errors turned into sentences, unclosed braces,
//! unterminated strings and comments, bad interpolations, nesting too deep.

use super::{skip_trivia, Grammar, Rule, ITEM_KEYWORDS};
use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::syntax::*;
use pest::Parser as _;

/// How deeply brackets and `!` may nest. The parser recurses once per level, so a bound keeps
/// any input from exhausting the stack (a thread's stack holds thousands of levels).
const MAX_NESTING: usize = 256;

/// The first place where brackets (or a run of `!`) nest deeper than [`MAX_NESTING`], outside
/// strings and comments.
pub(super) fn too_deep(src: &str) -> Option<Diagnostic> {
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

pub(super) fn unterminated_comment(src: &str, pos: usize) -> Option<Diagnostic> {
    if src[pos..].starts_with("/*") {
        return Some(
            Diagnostic::error("E0003", "unterminated block comment")
                .primary(Span::new(pos, pos + 2), "this comment is never closed")
                .help("close it with `*/`"),
        );
    }
    None
}

pub(super) fn item_error(src: &str, pos: usize, e: pest::error::Error<Rule>) -> Diagnostic {
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
pub(super) fn syntax_error(
    rule: Rule,
    src: &str,
    offset: usize,
    e: pest::error::Error<Rule>,
) -> Diagnostic {
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
