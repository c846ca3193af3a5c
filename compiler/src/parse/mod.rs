//! The parser: source text to a [`File`] syntax tree, with friendly syntax errors.
//!
//! pest has no error recovery, so the pipeline is parsed one item at a time: after a syntax error
//! the parser skips to the next line that starts an item and goes on, so a file with three broken
//! jobs reports three errors. Items that parsed are kept (an editor can still use them).
//!
//! The paths, one module each, give one result (property tests check that they agree):
//! - `fast.rs`: the fast path, every item of the pipeline in one call of pest, taken first;
//! - `recover.rs`: item by item with error recovery, taken only when the fast path fails;
//! - `reparse.rs`: only the items around an edit, for the language server.
//!
//! `errors.rs` turns pest's errors into plain words, and `build.rs` turns pest's pairs into the
//! syntax tree.

mod build;
mod errors;
mod fast;
mod recover;
mod reparse;

pub use build::dedent;
pub use reparse::{reparse, Edit};

use crate::diagnostic::Diagnostic;
use crate::lex;
use crate::syntax::*;
use build::ident;
use errors::{syntax_error, too_deep, unterminated_comment};
use fast::{parse_chunk, parse_in_two, PARALLEL_MIN};
use pest::Parser as _;
use recover::parse_items;

#[derive(pest_derive::Parser)]
#[grammar = "../../grammar/chainr.pest"]
struct Grammar;

/// What [`parse`] returns: the items that parsed, and the syntax errors.
#[derive(Debug, Default)]
pub struct Parsed {
    pub file: File,
    pub errors: Vec<Diagnostic>,
}

pub(crate) const ITEM_KEYWORDS: [&str; 5] = ["job", "param", "template", "defaults", "finally"];

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

/// Skips whitespace and comments (an unterminated block comment is left for the caller).
pub fn skip_trivia(src: &str, pos: usize) -> usize {
    lex::tokens_from(src, pos)
        .find(|t| !t.kind.is_trivia())
        .map_or(src.len().max(pos), |t| t.start)
}
