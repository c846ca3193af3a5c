//! The `.chainr` language: parse, check and lower pipelines to the JSON Pipeline IR.
//!
//! Pure: this crate does no IO, spawns no thread, keeps no global state and reads no clock.
//! Callers hand it text and get back an IR value and diagnostics; rendering diagnostics to text
//! is also pure.
//!
//! ```
//! let src = r#"pipeline hello { job greet { image = "busybox" run = "echo hi" } }"#;
//! let out = chainr_compiler::compile(src, &Default::default());
//! assert!(out.diagnostics.is_empty());
//! assert_eq!(out.pipeline.unwrap().jobs["greet"].run, "echo hi");
//! ```

// The grammar derive expands to `alloc::` paths when pest is built without `std`, which spares
// the parser a stack probe per rule (nesting depth is bounded in `parse` instead).
extern crate alloc;

mod check;
pub mod diagnostic;
pub mod fields;
pub mod format;
mod graph;
pub mod index;
pub mod ir;
pub mod lex;
pub mod limits;
pub mod names;
pub mod notify;
pub mod outcome;
pub mod parse;
pub mod syntax;
pub mod types;
pub mod units;
mod validate;

pub use check::Params;
pub use diagnostic::{render, Diagnostic, Severity};
pub use validate::{validate, validate_json};

/// The result of compiling: the IR when there is no error, and every diagnostic found.
#[derive(Debug)]
pub struct Compiled {
    pub pipeline: Option<ir::Pipeline>,
    pub diagnostics: Vec<Diagnostic>,
    /// Every place the pipeline names a notification medium, for
    /// [`notify::check_media`] (complete when there is no error).
    pub media: Vec<notify::MediumUse>,
}

impl Compiled {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// Adds an error for each notification medium the pipeline names that `known` (the media of
    /// a server's configuration) does not have ([`notify::check_media`]); with one, there is no
    /// pipeline to run.
    pub fn check_media<S: AsRef<str>>(&mut self, known: &[S]) {
        let unknown = notify::check_media(self, known);
        if unknown.iter().any(Diagnostic::is_error) {
            self.pipeline = None;
        }
        self.diagnostics.extend(unknown);
    }
}

/// Compiles `.chainr` source with the given param values.
pub fn compile(src: &str, params: &Params) -> Compiled {
    compile_parsed(parse::parse(src), params)
}

/// Compiles source that the caller parsed, for instance in parts on threads of its own
/// ([`parse::split`]): what [`compile`] gives for the same text.
pub fn compile_parsed(parsed: parse::Parsed, params: &Params) -> Compiled {
    if !parsed.errors.is_empty() {
        let mut diagnostics = parsed.errors;
        diagnostic::normalize(&mut diagnostics);
        return Compiled {
            pipeline: None,
            diagnostics,
            media: Vec::new(),
        };
    }
    check_file(&parsed.file, params)
}

/// Checks and lowers a file that parsed without error: editors parse once and reuse the tree.
pub fn check_file(file: &syntax::File, params: &Params) -> Compiled {
    let (pipeline, mut diagnostics, media) = check::check(file, params);
    diagnostic::normalize(&mut diagnostics);
    Compiled {
        pipeline,
        diagnostics,
        media,
    }
}

/// Reads IR JSON (the original chainr format or its superset) and validates it.
pub fn compile_json(src: &str) -> Compiled {
    let (pipeline, mut diagnostics) = validate_json(src);
    diagnostic::normalize(&mut diagnostics);
    let media = pipeline
        .as_ref()
        .map_or_else(Vec::new, |p| notify::media_in_json(p, src));
    Compiled {
        pipeline,
        diagnostics,
        media,
    }
}

/// Whether a file is source or IR, from its name: `.json` is IR, anything else is source.
pub fn is_ir_file(name: &str) -> bool {
    name.ends_with(".json")
}

/// Compiles a file by kind: IR JSON is validated, source is compiled (params apply to source only).
pub fn compile_file(name: &str, src: &str, params: &Params) -> Compiled {
    if is_ir_file(name) {
        compile_json(src)
    } else {
        compile(src, params)
    }
}

/// The IR as pretty JSON with a final newline, as `chainrc compile` prints it.
pub fn to_json(p: &ir::Pipeline) -> String {
    let mut out = serde_json::to_string_pretty(p).expect("the IR always serializes");
    out.push('\n');
    out
}
