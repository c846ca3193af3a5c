//! Document symbols: the pipeline, and in it its params, templates and jobs.

use crate::document::Document;
use chainr_compiler::index::SymbolKind;
use chainr_compiler::syntax::Span;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Pipeline,
    Job,
    Param,
    Template,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbol {
    pub name: String,
    /// `pipeline`, `job`, `finally job`, `param` or `template`.
    pub detail: &'static str,
    pub kind: Kind,
    /// The whole declaration.
    pub span: Span,
    /// The name in the declaration.
    pub name_span: Span,
    /// The pipeline's params, templates and jobs; `None` for those.
    pub children: Option<Vec<Symbol>>,
}

/// The pipeline with its params, templates and jobs in it; without a pipeline name (the
/// header does not parse), those alone.
pub fn document_symbols(doc: &Document) -> Vec<Symbol> {
    let mut children = Vec::new();
    for s in &doc.index.symbols {
        let (kind, detail) = match s.kind {
            SymbolKind::Job if s.finally => (Kind::Job, "finally job"),
            SymbolKind::Job => (Kind::Job, "job"),
            SymbolKind::Param => (Kind::Param, "param"),
            SymbolKind::Template => (Kind::Template, "template"),
            SymbolKind::TemplateParam | SymbolKind::LoopVar => continue,
        };
        children.push(Symbol {
            name: s.name.clone(),
            detail,
            kind,
            span: s.decl,
            name_span: s.def,
            children: None,
        });
    }
    let Some(name) = &doc.file.pipeline else {
        return children;
    };
    vec![Symbol {
        name: name.name.clone(),
        detail: "pipeline",
        kind: Kind::Pipeline,
        span: Span::new(0, doc.text.len()),
        name_span: name.span,
        children: Some(children),
    }]
}
