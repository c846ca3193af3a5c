//! The fast path: many items in one call of the parser.

use super::build::item;
use super::{skip_trivia, Grammar, Rule, ITEM_KEYWORDS};
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
