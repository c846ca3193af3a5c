//! The chainr language server (`chainrc lsp`): diagnostics, hover, go to definition, references,
//! rename, completion, document symbols, formatting, semantic tokens and quick fixes, over the
//! compiler's API. This crate translates LSP to and from the compiler; it holds no language
//! knowledge of its own beyond the editing context (what the text before the cursor asks for).

mod document;
pub mod features;
mod server;

pub use document::{Document, Lines};

/// Serves the protocol on standard input and output until the client says `exit`.
pub fn serve_stdio() -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(server::serve());
    Ok(())
}
