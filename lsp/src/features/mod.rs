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

/// What each outcome means, for hover and completion.
pub fn outcome_doc(name: &str) -> &'static str {
    match name {
        "succeeded" => "The job exited 0. For a fan-out job: every instance succeeded.",
        "failed" => "The job exited non-zero or ran past its timeout (after its retries). For a fan-out job: some instance failed.",
        "errored" => "The job could not run: image pull failure, unschedulable, evicted, executor error.",
        "skipped" => "The job's own condition was false, so it did not run.",
        "cancelled" => "The run was cancelled (or stopped by fail_fast) before the job finished.",
        "done" => "The job has ended, whatever its outcome: any of the others.",
        _ => "Not an outcome: the outcomes are succeeded, failed, errored, skipped, cancelled and done.",
    }
}
