//! The fast path in parts: a file cut at item boundaries, each part parsed on its own, the parts
//! joined into the tree [`parse`](super::parse) gives. The compiler itself runs on one thread; a
//! caller that wants to use more (the `chainrc` binary does for large files) parses the parts of
//! a [`Split`] on threads of its own.
//!
//! Why the result is the tree of a whole parse: a part starts where a line starts with an item
//! keyword (`job`, `param`, ...) followed by a blank, outside brackets, strings and comments.
//! When the text before that point parses as whole items, nothing in an item can run on into
//! the keyword (no item continues with a keyword, and blanks separate them), so a whole parse
//! reads the same items; and a string or comment left open before the cut would have made that
//! part fail. When any part fails (a syntax error, or nesting too deep), [`Split::join`] parses
//! the file again on its own, which finds and reports every error.

use super::errors::Nesting;
use super::fast::parse_chunk;
use super::recover::parse_items;
use super::{header, parse, Parsed, ITEM_KEYWORDS};
use crate::lex::{self, TokenKind};
use crate::syntax::*;
use std::ops::Range;

/// A file cut at item boundaries into parts that parse independently; see [`split`].
#[derive(Clone, Debug)]
pub struct Split<'a> {
    src: &'a str,
    /// Where each part starts (the first at 0), then the end of the text.
    bounds: Vec<usize>,
}

/// One part of a [`Split`], parsed by [`Split::parse_part`]; [`Split::join`] takes them all.
#[derive(Debug)]
pub struct Part {
    range: Range<usize>,
    outcome: Outcome,
}

#[derive(Debug)]
enum Outcome {
    /// The only part, the whole file: what [`parse`] gives.
    Whole(Parsed),
    /// The items of a part. The first part has the pipeline's name and header, the last one the
    /// position of the pipeline's closing brace.
    Items {
        header: Option<(Ident, Span)>,
        items: Vec<Item>,
        close: Option<usize>,
    },
    /// The part does not parse (or nests too deeply): the file is parsed again, as a whole.
    Failed,
}

/// Cuts `src` into at most `parts` parts of about the same size, each starting with an item of
/// the pipeline (the first one with the header), to be parsed each on its own with
/// [`Split::parse_part`], on any thread, and joined with [`Split::join`]. Fewer parts when the
/// file has fewer items, or when it cannot be cut safely (an unterminated string or comment,
/// unbalanced brackets): one part is the whole file. Cutting reads the text once, up to the
/// last cut, with the lexer; how large a file must be for threads to pay is the caller's call.
///
/// ```
/// use chainr_compiler::parse::{parse, split};
/// let src = "pipeline p {\n  job a { image = \"busybox\" run = \"a\" }\n  job b { image = \"busybox\" run = \"b\" }\n}\n";
/// let split = split(src, 2);
/// assert_eq!(split.len(), 2);
/// let parts = std::thread::scope(|s| {
///     let second = s.spawn(|| split.parse_part(1));
///     vec![split.parse_part(0), second.join().unwrap()]
/// });
/// let parsed = split.join(parts);
/// assert_eq!(format!("{:?}", parsed.file), format!("{:?}", parse(src).file));
/// ```
pub fn split(src: &str, parts: usize) -> Split<'_> {
    let whole = Split {
        src,
        bounds: vec![0, src.len()],
    };
    if parts < 2 {
        return whole;
    }
    let share = src.len() / parts;
    let bytes = src.as_bytes();
    let mut bounds = vec![0];
    let mut depth = 0usize;
    for t in lex::tokens(src) {
        match t.kind {
            TokenKind::Punct => match bytes[t.start] {
                b'{' | b'(' | b'[' => depth += 1,
                b'}' | b')' | b']' => match depth.checked_sub(1) {
                    Some(d) => depth = d,
                    None => return whole,
                },
                _ => {}
            },
            TokenKind::Word
                if depth == 1
                    && t.start >= bounds.len() * share
                    && first_of_line(bytes, t.start)
                    && is_cut(src, t.start) =>
            {
                bounds.push(t.start);
                if bounds.len() == parts {
                    break;
                }
            }
            k if k.is_unterminated() => return whole,
            _ => {}
        }
    }
    bounds.push(src.len());
    Split { src, bounds }
}

/// Whether only spaces and tabs come before `pos` on its line (and it is not the first line).
fn first_of_line(bytes: &[u8], pos: usize) -> bool {
    let indent = bytes[..pos]
        .iter()
        .rev()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    pos > indent && bytes[pos - indent - 1] == b'\n'
}

/// Whether a part may start at `pos`: an item keyword followed by a blank, after a blank.
fn is_cut(src: &str, pos: usize) -> bool {
    let bytes = src.as_bytes();
    pos > 0
        && matches!(bytes[pos - 1], b' ' | b'\t' | b'\r' | b'\n')
        && ITEM_KEYWORDS.iter().any(|k| {
            bytes[pos..].starts_with(k.as_bytes())
                && matches!(bytes.get(pos + k.len()), Some(b' ' | b'\t'))
        })
}

impl Split<'_> {
    /// How many parts (at least one).
    pub fn len(&self) -> usize {
        self.bounds.len() - 1
    }

    /// Never: a split has at least one part.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The bytes of part `i` (`0..self.len()`).
    pub fn range(&self, i: usize) -> Range<usize> {
        self.bounds[i]..self.bounds[i + 1]
    }

    /// Parses part `i`; independent of the other parts, so each may run on a thread of its own.
    /// Spans in the items are offsets in the whole text.
    pub fn parse_part(&self, i: usize) -> Part {
        let range = self.range(i);
        let (src, last) = (self.src, i + 1 == self.len());
        let outcome = if self.len() == 1 {
            Outcome::Whole(parse(src))
        } else if too_deep(src, &range, i) {
            Outcome::Failed
        } else if i == 0 {
            let mut parsed = Parsed::default();
            match header(src, &mut parsed) {
                Some((span, body)) if body <= range.end => {
                    let name = parsed.file.pipeline.take().expect("the header has a name");
                    match parse_chunk(src, body, range.end, false) {
                        Some((items, _)) => Outcome::Items {
                            header: Some((name, span)),
                            items,
                            close: None,
                        },
                        None => Outcome::Failed,
                    }
                }
                _ => Outcome::Failed,
            }
        } else {
            match parse_chunk(src, range.start, range.end, last) {
                Some((items, end)) => Outcome::Items {
                    header: None,
                    items,
                    close: last.then_some(end),
                },
                None => Outcome::Failed,
            }
        };
        Part { range, outcome }
    }

    /// Joins the parts, in order, into what [`parse`] gives for the whole text. When a part did
    /// not parse, or the parts are not this split's, the text is parsed again on the calling
    /// thread, with error recovery.
    pub fn join(&self, parts: Vec<Part>) -> Parsed {
        let ours = parts.len() == self.len()
            && parts
                .iter()
                .enumerate()
                .all(|(i, p)| p.range == self.range(i));
        if !ours {
            return parse(self.src);
        }
        let mut header = None;
        let mut items = Vec::new();
        let mut close = None;
        for part in parts {
            match part.outcome {
                Outcome::Whole(parsed) => return parsed,
                Outcome::Items {
                    header: h,
                    items: mut more,
                    close: c,
                } => {
                    header = header.or(h);
                    items.append(&mut more);
                    close = c;
                }
                Outcome::Failed => return parse(self.src),
            }
        }
        let (Some((name, header_span)), Some(close)) = (header, close) else {
            return parse(self.src);
        };
        let mut parsed = Parsed {
            file: File {
                pipeline: Some(name),
                items,
                end: None,
            },
            errors: Vec::new(),
        };
        // What follows the closing brace.
        parse_items(self.src, close, header_span, &mut parsed);
        parsed
    }
}

/// Whether brackets and `!` nest too deeply in part `i`. Parts after the first start inside the
/// pipeline's braces, where a whole parse counts one level already; when every part parses, the
/// count at each cut is exactly that, so the parts agree with the whole file's check.
fn too_deep(src: &str, range: &Range<usize>, i: usize) -> bool {
    let mut nesting = Nesting::inside(if i == 0 { 0 } else { 1 });
    lex::tokens_from(src, range.start)
        .take_while(|t| t.start < range.end)
        .any(|t| nesting.count(src, &t))
}
