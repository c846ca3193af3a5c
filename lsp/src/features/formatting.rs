//! Formatting: the whole document in `chainrc fmt`'s layout.

use super::Replacement;
use crate::document::Document;
use chainr_compiler::syntax::Span;

/// The edit that formats the document: none when it is formatted already, `None` when it does
/// not parse.
pub fn format(doc: &Document) -> Option<Vec<Replacement>> {
    let formatted = chainr_compiler::format::format(&doc.text).ok()?;
    if formatted == doc.text {
        return Some(Vec::new());
    }
    Some(vec![Replacement {
        span: Span::new(0, doc.text.len()),
        text: formatted,
    }])
}
