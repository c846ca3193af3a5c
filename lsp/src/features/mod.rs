//! Editor features computed from a document, one module each: hover, completion, definitions
//! and references (with rename), document symbols, semantic tokens, quick fixes, formatting.
//! Plain functions of a `Document` that answer in their own types (spans of the text, names,
//! kinds); `server.rs` alone turns those into the protocol's.

pub mod code_actions;
pub mod completion;
pub mod formatting;
pub mod hover;
pub mod references;
pub mod semantic_tokens;
pub mod symbols;

use chainr_compiler::syntax::Span;

/// Replace `span` of the document's text with `text`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replacement {
    pub span: Span,
    pub text: String,
}

/// What an outcome word means, for hover and completion: the compiler's one description.
pub fn outcome_doc(name: &str) -> &'static str {
    chainr_compiler::outcome::OutcomeTest::from_word(name).map_or(
        "Not an outcome: the outcomes are succeeded, failed, errored, skipped, cancelled and done.",
        |t| t.doc(),
    )
}
