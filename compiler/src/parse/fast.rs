//! The fast path: many items in one call of the parser.

use super::build::item;
use super::{skip_trivia, Grammar, Rule};
use crate::syntax::*;
use pest::Parser as _;

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
