//! The parser: source text to a [`File`] syntax tree, with friendly syntax errors.
//!
//! pest has no error recovery, so the pipeline is parsed one item at a time: after a syntax error
//! the parser skips to the next line that starts an item and goes on, so a file with three broken
//! jobs reports three errors. Items that parsed are kept (an editor can still use them).
//!
//! The paths, one module each, give one result (property tests check that they agree):
//! - `fast.rs`: the fast path, every item of the pipeline in one call of pest, taken first;
//! - `parts.rs`: the fast path over parts of the file cut at item boundaries, for a caller that
//!   wants to parse the parts on threads of its own;
//! - `recover.rs`: item by item with error recovery, taken only when the fast path fails;
//! - `reparse.rs`: only the items around an edit, for the language server.
//!
//! `errors.rs` turns pest's errors into plain words, and `build.rs` turns pest's pairs into the
//! syntax tree.
//!
//! The parser runs on the calling thread and keeps no state between calls: it starts no thread
//! and touches no global (not even pest's process-wide error-detail switch), so any number of
//! parses may run at once. Parallelism is the caller's choice, through [`split`].

mod build;
mod errors;
mod fast;
mod parts;
mod recover;
mod reparse;

pub use build::dedent;
pub use parts::{split, Part, Split};
pub use reparse::{reparse, Edit};

use crate::diagnostic::Diagnostic;
use crate::lex;
use crate::syntax::*;
use build::ident;
use errors::{syntax_error, too_deep, unterminated_comment};
use fast::parse_chunk;
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

/// The keywords that start an item on a line of its own: where recovery after a syntax error
/// resumes and where a file may be cut into parts. Not `notify`: it starts lines inside job
/// bodies too, so a line starting with it may well be inside the broken item.
pub(crate) const ITEM_KEYWORDS: [&str; 5] = ["job", "param", "template", "defaults", "finally"];

/// Every word that starts an item (for "unknown item" and its suggestion).
pub(crate) const ITEM_WORDS: [&str; 6] =
    ["job", "param", "template", "defaults", "finally", "notify"];

/// Parses a file, on the calling thread: every item in one call of pest, or, when the file
/// has a syntax error, item by item so that every error is reported.
pub fn parse(src: &str) -> Parsed {
    parse_file(src, true)
}

/// The same as [`parse`] (which once used two threads for large files; see [`split`] for that).
pub fn parse_sequential(src: &str) -> Parsed {
    parse(src)
}

/// Parses a file item by item, the error-recovering path that [`parse`] takes only when the
/// file has a syntax error; for tests that both paths agree.
pub fn parse_item_by_item(src: &str) -> Parsed {
    parse_file(src, false)
}

fn parse_file(src: &str, fast: bool) -> Parsed {
    let mut parsed = Parsed::default();
    if let Some(err) = too_deep(src) {
        parsed.errors.push(err);
        return parsed;
    }
    let Some((header_span, mut pos)) = header(src, &mut parsed) else {
        return parsed;
    };
    if fast {
        if let Some((items, brace)) = parse_chunk(src, pos, src.len(), true) {
            parsed.file.items = items;
            pos = brace;
        }
    }
    // From the closing brace (what follows it), or item by item with error recovery.
    parse_items(src, pos, header_span, &mut parsed);
    parsed
}

/// Parses the pipeline's header (`pipeline NAME {`, after blanks and comments) into `parsed`:
/// its span and where the items start, or `None` after an error.
fn header(src: &str, parsed: &mut Parsed) -> Option<(Span, usize)> {
    let pos = skip_trivia(src, 0);
    if let Some(err) = unterminated_comment(src, pos) {
        parsed.errors.push(err);
        return None;
    }
    match Grammar::parse(Rule::header, &src[pos..]) {
        Ok(mut pairs) => {
            let header = pairs.next().expect("header rule yields one pair");
            let end = pos + header.as_span().end();
            let name = header
                .into_inner()
                .find(|p| p.as_rule() == Rule::ident)
                .expect("header has a name");
            parsed.file.pipeline = Some(ident(&name, pos));
            Some((Span::new(pos, end), end))
        }
        Err(e) => {
            let mut d = syntax_error(Rule::header, src, pos, e);
            if ITEM_WORDS.iter().any(|k| src[pos..].starts_with(k)) {
                d = Diagnostic::error("E0010", "a file must start with `pipeline NAME {`")
                    .primary(Span::new(pos, pos), "expected `pipeline` here")
                    .help("wrap the jobs in a pipeline: `pipeline my-pipeline { ... }`");
            }
            parsed.errors.push(d);
            None
        }
    }
}

/// Skips whitespace and comments (an unterminated block comment is left for the caller).
pub fn skip_trivia(src: &str, pos: usize) -> usize {
    lex::tokens_from(src, pos)
        .find(|t| !t.kind.is_trivia())
        .map_or(src.len().max(pos), |t| t.start)
}
