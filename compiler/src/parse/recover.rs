//! The error-recovering path: item by item, skipping to the next item after a syntax error.

use super::build::item;
use super::errors::{item_error, unterminated_comment};
use super::{skip_trivia, Grammar, Parsed, Rule, ITEM_KEYWORDS};
use crate::diagnostic::Diagnostic;
use crate::syntax::*;
use pest::Parser as _;

/// Parses items from `pos` until the pipeline's closing brace or the end of the text, then
/// checks what follows the brace.
pub(super) fn parse_items(src: &str, mut pos: usize, header_span: Span, parsed: &mut Parsed) {
    loop {
        pos = skip_trivia(src, pos);
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
}

/// The start of the next line that begins an item, or the pipeline's closing brace.
///
/// This goes by lines and does not use the lexer on purpose: the broken item may have opened a
/// string, text block or comment by mistake (a stray `"""` or `/*`), and read as tokens it would
/// swallow the good items after it. Resynchronising on lines keeps those items (an editor still
/// knows them) at the price of a second error for a line inside a text block that starts with
/// an item keyword.
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
