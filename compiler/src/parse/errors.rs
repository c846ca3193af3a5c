//! Syntax errors in plain words: pest errors turned into sentences, unclosed braces,
//! unterminated strings and comments, bad interpolations, nesting too deep.

use super::{skip_trivia, Grammar, Rule, ITEM_KEYWORDS, ITEM_WORDS};
use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::lex::{self, Token, TokenKind};
use crate::syntax::*;
use pest::Parser as _;

/// How deeply brackets and `!` may nest. The parser recurses once per level, so a bound keeps
/// any input from exhausting the stack (a thread's stack holds thousands of levels).
const MAX_NESTING: usize = 256;

/// The first place where brackets (or a run of `!`) nest deeper than [`MAX_NESTING`], outside
/// strings and comments.
pub(super) fn too_deep(src: &str) -> Option<Diagnostic> {
    let mut nesting = Nesting::default();
    let t = lex::tokens(src).find(|t| nesting.count(src, t))?;
    Some(
        Diagnostic::error("E0007", "nesting too deep")
            .primary(
                Span::char_at(src, t.start),
                format!("more than {MAX_NESTING} levels of brackets or `!` here"),
            )
            .help("simplify the expression; no pipeline needs this much nesting"),
    )
}

/// Open brackets and the current run of `!`, token by token.
#[derive(Clone, Copy, Default)]
pub(super) struct Nesting {
    /// Brackets open (`(`, `[`, `{`); a closing one too many is ignored.
    pub depth: usize,
    bangs: usize,
}

impl Nesting {
    /// Starting inside `depth` brackets.
    pub fn inside(depth: usize) -> Nesting {
        Nesting { depth, bangs: 0 }
    }

    /// Counts a token; true when brackets and `!` now nest deeper than [`MAX_NESTING`]. Blanks,
    /// comments and strings leave a run of `!` going.
    pub fn count(&mut self, src: &str, t: &Token) -> bool {
        match t.kind {
            TokenKind::Punct => match src.as_bytes()[t.start] {
                b'(' | b'[' | b'{' => self.depth += 1,
                b')' | b']' | b'}' => self.depth = self.depth.saturating_sub(1),
                b'!' => self.bangs += 1,
                _ => self.bangs = 0,
            },
            TokenKind::Whitespace
            | TokenKind::LineComment
            | TokenKind::BlockComment { .. }
            | TokenKind::Str { .. }
            | TokenKind::TextBlock { .. } => {}
            TokenKind::Word | TokenKind::Number | TokenKind::Other => self.bangs = 0,
        }
        self.depth + self.bangs > MAX_NESTING
    }
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
    if !word.is_empty() && next_is_name && !ITEM_WORDS.contains(&word) {
        let span = Span::new(pos, word_end);
        let mut d = Diagnostic::error("E0005", format!("unknown item `{word}`")).primary(
            span,
            "expected `job`, `param`, `template`, `defaults`, `finally` or `notify`",
        );
        if let Some(k) = did_you_mean(word, ITEM_WORDS) {
            d = d.help(format!("did you mean `{k}`?")).fix(span, k);
        } else {
            d = d.help("a pipeline holds jobs (`job NAME { ... }`), params, templates, `defaults`, `finally`, notifications (`notify on EVENT { ... }`) and settings (`NAME = VALUE`)");
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
    let at = offset + error_position(&e);
    // An unterminated string is reported where it starts, not where the parser gave up.
    if let Some(d) = unterminated_string(src, offset, at) {
        return d;
    }
    let positives = match &e.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } => positives.as_slice(),
        pest::error::ErrorVariant::CustomError { .. } => &[],
    };
    // Inside a string any punctuation is text: only the string's own rules are worth naming.
    let in_string = positives.iter().any(|r| {
        matches!(
            r,
            Rule::text | Rule::mtext | Rule::escape | Rule::dollar | Rule::lone | Rule::interp
        )
    });
    let mut expected: Vec<&'static str> = if in_string {
        Vec::new()
    } else {
        punctuation_expected(rule, src, offset, at)
    };
    for r in positives {
        let words = describe(*r);
        if !expected.contains(&words) {
            expected.push(words);
        }
    }
    if let Some(d) = unclosed_brace(src, offset, at) {
        return d;
    }
    if crate::notify::expects_event(src, offset, at) {
        // `notify on` and a `job` on the next line: no event is named like an item.
        expected.retain(|w| *w != "a name");
        expected.insert(0, "an event such as `failed`");
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
    // The innermost `{` still open at the point the parser stopped (not one in a string or a
    // comment).
    let stop = if at >= src.len() {
        src.len()
    } else {
        line_start
    };
    let mut open = Vec::new();
    for t in lex::tokens_from(src, offset).take_while(|t| t.start < stop) {
        if t.is_punct(src, "{") {
            open.push(t.start);
        } else if t.is_punct(src, "}") {
            open.pop();
        }
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

/// The string or text block, from the item at `offset` on, that is still open at `at`: its
/// closing quotes are not before `at` (nor the end of its line, for a string never closed).
fn open_string(src: &str, offset: usize, at: usize) -> Option<Token> {
    let open_at = |t: &Token| match t.kind {
        TokenKind::Str { terminated: true } => t.end > at,
        TokenKind::Str { terminated: false } => t.end >= at,
        TokenKind::TextBlock { terminated: true } => t.end >= at + 3,
        TokenKind::TextBlock { terminated: false } => true,
        _ => false,
    };
    lex::tokens_from(src, offset)
        .take_while(|t| t.start < at)
        .find(open_at)
}

/// The string or text block still open where the parser stopped (at `at`): an invalid
/// interpolation in it, or the string itself when it is never closed.
fn unterminated_string(src: &str, offset: usize, at: usize) -> Option<Diagnostic> {
    let string = open_string(src, offset, at)?;
    if let Some(bad) = invalid_interpolation(src, string) {
        return Some(bad);
    }
    let start = string.start;
    // The label stays on the string's first line (a backslash can carry it over a newline).
    let line_end = src[start..].find('\n').map_or(src.len(), |n| start + n);
    let d = Diagnostic::error("E0002", "unterminated string");
    Some(match string.kind {
        TokenKind::TextBlock { terminated: false } => d
            .primary(Span::new(start, start + 3), "this string is never closed")
            .help("close the block with `\"\"\"`"),
        TokenKind::Str { terminated: false } => d
            .primary(Span::new(start, line_end), "this string is never closed")
            .help(
                "close it with `\"` on the same line; use \"\"\"...\"\"\" for text over several lines",
            ),
        _ => return None,
    })
}

/// The first `${...}` of a string or text block that is not `${name}`.
fn invalid_interpolation(src: &str, string: Token) -> Option<Diagnostic> {
    let bad = lex::interpolations(src, string).find(|i| i.name.is_none())?;
    let start = bad.start;
    let line_end = src[start..].find('\n').map_or(src.len(), |n| start + n);
    let end = src[start..line_end]
        .find('}')
        .map_or(line_end, |n| start + n + 1);
    Some(
        Diagnostic::error("E0004", "invalid interpolation")
            .primary(Span::new(start, end), "only a name can go inside `${...}`")
            .help("interpolations name a param or loop variable: `${name}`; for the shell's own `${...}`, write `$${...}`"),
    )
}

/// The punctuation the parser would have accepted where it stopped (`=`, `}`, ...).
///
/// pest's errors name the rules it tried where it stopped, not the literal tokens. It records
/// those only in its "error detail" mode, and that mode is a process-wide switch
/// (`pest::set_error_detail`, read when a parse starts): turning it on for one parse turns it on
/// for every parse running at that moment, on any thread. So each candidate is put where the
/// parser stopped instead, and the text from the rule's start up to there is parsed again: the
/// candidate was expected there when the parser now gets past it. Only the failing item is
/// parsed again, a few times, and only for a syntax error.
fn punctuation_expected(rule: Rule, src: &str, offset: usize, at: usize) -> Vec<&'static str> {
    // In the order of their text, as pest's error-detail mode listed them.
    const CANDIDATES: [(&str, &str); 12] = [
        ("&&", "`&&`"),
        ("(", "`(`"),
        (")", "`)`"),
        (",", "`,`"),
        ("..", "`..`"),
        (":", "`:`"),
        ("=", "`=`"),
        (">", "`>`"),
        ("]", "`]`"),
        ("{", "`{`"),
        ("||", "`||`"),
        ("}", "`}`"),
    ];
    // What may follow a closing bracket before the grammar tries a rule again (`{}` then `)` in
    // `t(a: T = {}) { ... }`): a closer that the parser took is not seen as progress without it.
    const THEN: [&str; 4] = [",", ")", "]", "}"];
    let Some(before) = src.get(offset..at) else {
        return Vec::new();
    };
    let mut probe = String::with_capacity(before.len() + 4);
    let mut gets_past = |tokens: &[&str]| {
        probe.clear();
        probe.push_str(before);
        for t in tokens {
            probe.push_str(t);
        }
        let past = before.len() + tokens[0].len();
        match Grammar::parse(rule, &probe) {
            Ok(mut pairs) => pairs.next().is_some_and(|p| p.as_span().end() >= past),
            Err(e) => error_position(&e) >= past,
        }
    };
    CANDIDATES
        .into_iter()
        .filter(|(token, _)| {
            gets_past(&[token])
                || (matches!(*token, ")" | "]" | "}" | ">")
                    && THEN.iter().any(|then| gets_past(&[token, then])))
        })
        .map(|(_, words)| words)
        .collect()
}

/// Where pest stopped, relative to the start of the text it parsed.
fn error_position(e: &pest::error::Error<Rule>) -> usize {
    match e.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((s, _)) => s,
    }
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
        | Rule::setting => {
            "an item (`job`, `param`, `template`, `defaults`, `finally`, `notify`) or `}`"
        }
        Rule::job | Rule::kw_job => "`job`",
        Rule::kw_param => "`param`",
        Rule::kw_defaults => "`defaults`",
        Rule::kw_template => "`template`",
        Rule::kw_finally => "`finally`",
        Rule::kw_after | Rule::after_clause => "`after CONDITION`",
        Rule::kw_for | Rule::for_clause => "`for VAR in ...`",
        Rule::kw_in => "`in`",
        Rule::notify | Rule::kw_notify => "`notify on EVENT`",
        Rule::kw_on => "`on`",
        Rule::notify_event => "an event such as `failed`",
        Rule::type_expr => "a type such as `string` or `int`",
        Rule::tparam => "a template parameter (`name: type`)",
        Rule::use_template => "`= TEMPLATE(...)`",
        Rule::arg => "an argument (`name = value`)",
        Rule::range => "a range such as `0..4`",
        Rule::cond | Rule::not | Rule::job_ref => "a job name",
        Rule::cond_op => "`&&` or `||`",
        Rule::outcome => "an outcome such as `failed`",
        Rule::block | Rule::body => "a block `{ ... }`",
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

#[cfg(test)]
mod tests {
    use crate::parse::parse;

    /// The code of the first error and the text under its primary label.
    fn first_error(src: &str) -> (&'static str, &str) {
        let errors = parse(src).errors;
        let d = errors.first().expect("a syntax error");
        (d.code, &src[d.primary_span().expect("a label").range()])
    }

    fn unclosed_brace_at(src: &str) -> usize {
        let errors = parse(src).errors;
        assert_eq!(errors[0].code, "E0006", "{errors:?}");
        errors[0].primary_span().unwrap().start as usize
    }

    #[test]
    fn a_brace_in_a_comment_is_not_an_unclosed_brace() {
        let src = "pipeline p {\n  job a {\n    image = \"busybox\"\n    run = \"x\"  /* { */\n  job b { image = \"busybox\" run = \"y\" }\n}\n";
        assert_eq!(unclosed_brace_at(src), src.find("a {").unwrap() + 2);
        let src = "pipeline p {\n  job a {\n    image = \"busybox\" /* {\n    */ run = \"x\"\n  job b { image = \"busybox\" run = \"y\" }\n}\n";
        assert_eq!(unclosed_brace_at(src), src.find("a {").unwrap() + 2);
    }

    #[test]
    fn a_brace_in_a_string_is_not_an_unclosed_brace() {
        // The escaped quote does not end the string.
        let src = "pipeline p {\n  job a {\n    image = \"busybox\"\n    run = \"echo \\\"{\\\"\"\n  job b { image = \"busybox\" run = \"y\" }\n}\n";
        assert_eq!(unclosed_brace_at(src), src.find("a {").unwrap() + 2);
        let src = "pipeline p {\n  job a {\n    image = \"busybox\"\n    run = \"\"\"\n      echo {\n    \"\"\"\n  job b { image = \"busybox\" run = \"y\" }\n}\n";
        assert_eq!(unclosed_brace_at(src), src.find("a {").unwrap() + 2);
    }

    #[test]
    fn an_escaped_dollar_is_not_an_interpolation() {
        let src =
            "pipeline p {\n  job a { image = \"busybox\" run = \"echo \\${HOME} ${1}\" }\n}\n";
        assert_eq!(first_error(src), ("E0004", "${1}"));
        // In a text block a backslash is text, so `\${1}` is an interpolation.
        let src = "pipeline p {\n  job a {\n    image = \"busybox\"\n    run = \"\"\"\n      echo \\${1}\n    \"\"\"\n  }\n}\n";
        assert_eq!(first_error(src), ("E0004", "${1}"));
        let src = "pipeline p {\n  job a { image = \"busybox\" run = \"echo \\${HOME\n}\n";
        assert_eq!(first_error(src), ("E0002", "\"echo \\${HOME"));
    }

    /// pest's error-detail mode is one switch for the whole process: the parser must leave it as
    /// it finds it (it used to turn it on and off around every syntax error, under a lock).
    #[test]
    fn syntax_errors_leave_pest_process_settings_alone() {
        use crate::parse::{Grammar, Rule};
        use pest::Parser as _;
        let detail = || {
            Grammar::parse(Rule::header, "pipeline")
                .unwrap_err()
                .parse_attempts()
                .is_some()
        };
        pest::set_error_detail(true);
        let (code, _) = first_error("pipeline p { job a { image: \"x\" } }");
        let still_on = detail();
        pest::set_error_detail(false);
        assert_eq!(code, "E0001");
        assert!(still_on, "the parser switched pest's error detail off");
    }

    #[test]
    fn expected_punctuation() {
        let message = |src: &str| parse(src).errors[0].message.clone();
        assert_eq!(
            message("pipeline p { job a { image: \"x\" } }"),
            "expected `=` or `{`, found `:`"
        );
        assert_eq!(
            message("pipeline p { job a after (b || c { } }"),
            "expected `&&`, `)` or `||`, found `{`"
        );
        // `}` closes the default's block, and `)` may follow (seen only by trying both).
        assert_eq!(
            message("pipeline p { template t(a: map = { 1 }) { } }"),
            "expected `}` or a field such as `image = \"...\"` or `run = \"...\"`, found `1`"
        );
        // Inside a string, punctuation is text: none is suggested.
        assert_eq!(
            message("pipeline p { job a = t(x = \"a = \"b\") }"),
            "expected more text or a closing `\"` or an interpolation `${name}`, found `\"`"
        );
    }

    #[test]
    fn an_event_is_expected_after_notify_on() {
        let message = |src: &str| parse(src).errors[0].message.clone();
        assert_eq!(
            message("pipeline p {\n  notify on\n  job b { image = \"x\" run = \"y\" }\n}\n"),
            "expected an event such as `failed`, found `job`"
        );
        assert_eq!(
            message("pipeline p { notify on } "),
            "expected an event such as `failed`, found `}`"
        );
    }

    #[test]
    fn a_quote_in_a_comment_opens_no_string() {
        let src = "pipeline p {\n  job a { image = \"busybox\" /* \" */ run: x }\n}\n";
        assert_eq!(first_error(src), ("E0001", ":"));
    }
}
