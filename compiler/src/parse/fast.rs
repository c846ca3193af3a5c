//! The fast path: many items in one call of the parser.

use super::build::item;
use super::{skip_trivia, Grammar, Rule, ITEM_KEYWORDS};
use crate::lex::{self, TokenKind};
use crate::syntax::*;
use pest::Parser as _;

/// Files at least this large are parsed on two threads, split at an item boundary.
pub(super) const PARALLEL_MIN: usize = 128 * 1024;

/// The fast path: every item of `src[start..end]` in one call of the parser (one parser state
/// for all of them). With `to_close` the text must run to the pipeline's closing brace, whose
/// position is returned; otherwise it must hold whole items only. `None` when that does not
/// parse: the caller then parses item by item, which reports every error.
pub(super) fn parse_chunk(
    src: &str,
    start: usize,
    end: usize,
    to_close: bool,
) -> Option<(Vec<Item>, usize)> {
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
pub(super) fn parse_in_two(src: &str, start: usize) -> Option<(Vec<Item>, usize)> {
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
    let middle = start + (src.len() - start) / 2;
    let mut depth = 0usize;
    // Whether the token is the first of its line.
    let mut line_start = false;
    for t in lex::tokens_from(src, start) {
        match t.kind {
            TokenKind::Punct if t.is_punct(src, "{") => depth += 1,
            TokenKind::Punct if t.is_punct(src, "}") => depth = depth.checked_sub(1)?,
            TokenKind::Word
                if line_start
                    && depth == 0
                    && t.start >= middle
                    && ITEM_KEYWORDS.contains(&t.text(src))
                    && matches!(src.as_bytes().get(t.end), Some(b' ' | b'\t')) =>
            {
                return Some(t.start);
            }
            k if k.is_unterminated() => return None,
            _ => {}
        }
        line_start = t.kind == TokenKind::Whitespace && {
            let text = t.text(src);
            text.rfind('\n')
                .is_some_and(|n| text[n + 1..].bytes().all(|b| b == b' ' || b == b'\t'))
        };
    }
    None
}
