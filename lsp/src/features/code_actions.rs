//! Quick fixes: the did-you-mean corrections the diagnostics carry.

use super::Replacement;
use crate::document::Document;
use chainr_compiler::diagnostic::Diagnostic;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuickFix<'a> {
    pub title: String,
    /// The diagnostic it fixes.
    pub diagnostic: &'a Diagnostic,
    pub edit: Replacement,
}

/// The fixes of the diagnostics whose primary span touches the bytes `start..end`.
pub fn quick_fixes(doc: &Document, start: usize, end: usize) -> Vec<QuickFix<'_>> {
    doc.diagnostics
        .iter()
        .filter_map(|d| {
            let fix = d.fix.as_ref()?;
            let span = d.primary_span()?;
            if (span.end as usize) < start || (span.start as usize) > end {
                return None;
            }
            Some(QuickFix {
                title: format!("Replace with `{}`", fix.replacement.trim_matches('"')),
                diagnostic: d,
                edit: Replacement {
                    span: fix.span,
                    text: fix.replacement.clone(),
                },
            })
        })
        .collect()
}
