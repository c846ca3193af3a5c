//! Go to definition, find references and rename: the symbol index's definitions and uses of
//! jobs, params, templates and local names.

use super::Replacement;
use crate::document::Document;
use chainr_compiler::index::Occurrence;
use chainr_compiler::syntax::Span;

/// Where the symbol at `offset` is declared.
pub fn definition(doc: &Document, offset: usize) -> Option<Span> {
    let (_, occurrence) = doc.index.at(offset)?;
    let i = doc.index.symbol_of(occurrence)?;
    Some(doc.index.symbols[i].def)
}

/// Every place the symbol at `offset` is named (its declaration included when asked).
pub fn references(doc: &Document, offset: usize, with_declaration: bool) -> Vec<Span> {
    let Some((_, occurrence)) = doc.index.at(offset) else {
        return Vec::new();
    };
    let Some(i) = doc.index.symbol_of(occurrence) else {
        return Vec::new();
    };
    if matches!(occurrence, Occurrence::Outcome { .. }) {
        return Vec::new();
    }
    let s = &doc.index.symbols[i];
    let mut out = Vec::new();
    if with_declaration {
        out.push(s.def);
    }
    out.extend(s.refs.iter().copied());
    out
}

/// The name at `offset` when it can be renamed (a job, param, template or local name, not an
/// outcome or a field).
pub fn prepare_rename(doc: &Document, offset: usize) -> Option<Span> {
    let (span, occurrence) = doc.index.at(offset)?;
    doc.index.symbol_of(occurrence)?;
    if matches!(occurrence, Occurrence::Outcome { .. }) {
        return None;
    }
    Some(*span)
}

/// The edits that rename the symbol at `offset`; `Err` when the new name is not an identifier
/// or is a keyword.
pub fn rename(doc: &Document, offset: usize, new_name: &str) -> Result<Vec<Replacement>, String> {
    chainr_compiler::names::check_new_name(new_name)?;
    let spans = references(doc, offset, true);
    Ok(spans
        .into_iter()
        .map(|span| Replacement {
            span,
            text: new_name.to_string(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rename_refuses_keywords_and_non_names() {
        let text = "pipeline p {\n  job a { image = \"b\" run = \"r\" }\n  job b after a { image = \"b\" run = \"r\" }\n}\n";
        let doc = Document::new(text.to_string(), 0);
        let at = text.find("job a").unwrap() + 4;
        assert_eq!(rename(&doc, at, "build").map(|e| e.len()), Ok(2));
        for bad in ["after", "in", "true", "2fast", "a b"] {
            assert!(rename(&doc, at, bad).is_err(), "{bad}");
        }
    }
}
