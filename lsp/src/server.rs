//! The protocol side: documents by URI, requests answered from `features`.

use crate::document::Document;
use crate::features;
use std::collections::HashMap;
use std::sync::Mutex;
use tower_lsp_server::jsonrpc::{Error, Result};
use tower_lsp_server::ls_types::*;
use tower_lsp_server::{Client, LanguageServer, LspService, Server};

pub async fn serve() {
    let (service, socket) = LspService::new(|client| Backend {
        client,
        docs: Mutex::new(HashMap::new()),
    });
    Server::new(tokio::io::stdin(), tokio::io::stdout(), socket)
        .serve(service)
        .await;
}

struct Backend {
    client: Client,
    docs: Mutex<HashMap<Uri, Document>>,
}

impl Backend {
    fn with<T>(&self, uri: &Uri, f: impl FnOnce(&Document) -> T) -> Option<T> {
        let docs = self.docs.lock().unwrap_or_else(|e| e.into_inner());
        docs.get(uri).map(f)
    }

    async fn publish(&self, uri: Uri) {
        let found = self.with(&uri, |d| (features::diagnostics(d, &uri), d.version));
        if let Some((diagnostics, version)) = found {
            self.client
                .publish_diagnostics(uri, diagnostics, Some(version))
                .await;
        }
    }
}

impl LanguageServer for Backend {
    async fn initialize(&self, _: InitializeParams) -> Result<InitializeResult> {
        Ok(InitializeResult {
            server_info: Some(ServerInfo {
                name: "chainr".into(),
                version: Some(env!("CARGO_PKG_VERSION").into()),
            }),
            capabilities: ServerCapabilities {
                text_document_sync: Some(TextDocumentSyncCapability::Kind(
                    TextDocumentSyncKind::INCREMENTAL,
                )),
                hover_provider: Some(HoverProviderCapability::Simple(true)),
                definition_provider: Some(OneOf::Left(true)),
                references_provider: Some(OneOf::Left(true)),
                rename_provider: Some(OneOf::Right(RenameOptions {
                    prepare_provider: Some(true),
                    work_done_progress_options: Default::default(),
                })),
                completion_provider: Some(CompletionOptions {
                    trigger_characters: Some(vec![".".into(), "{".into(), " ".into()]),
                    ..Default::default()
                }),
                document_symbol_provider: Some(OneOf::Left(true)),
                document_formatting_provider: Some(OneOf::Left(true)),
                code_action_provider: Some(CodeActionProviderCapability::Simple(true)),
                semantic_tokens_provider: Some(
                    SemanticTokensServerCapabilities::SemanticTokensOptions(
                        SemanticTokensOptions {
                            legend: SemanticTokensLegend {
                                token_types: features::TOKEN_TYPES.to_vec(),
                                token_modifiers: Vec::new(),
                            },
                            full: Some(SemanticTokensFullOptions::Bool(true)),
                            range: None,
                            work_done_progress_options: Default::default(),
                        },
                    ),
                ),
                ..Default::default()
            },
            offset_encoding: None,
        })
    }

    async fn shutdown(&self) -> Result<()> {
        Ok(())
    }

    async fn did_open(&self, params: DidOpenTextDocumentParams) {
        let doc = Document::new(params.text_document.text, params.text_document.version);
        let uri = params.text_document.uri;
        self.docs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(uri.clone(), doc);
        self.publish(uri).await;
    }

    async fn did_change(&self, params: DidChangeTextDocumentParams) {
        let uri = params.text_document.uri;
        {
            let mut docs = self.docs.lock().unwrap_or_else(|e| e.into_inner());
            match docs.get_mut(&uri) {
                Some(d) => d.change(params.text_document.version, params.content_changes),
                None => return,
            }
        }
        self.publish(uri).await;
    }

    async fn did_close(&self, params: DidCloseTextDocumentParams) {
        let uri = params.text_document.uri;
        self.docs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&uri);
        self.client.publish_diagnostics(uri, Vec::new(), None).await;
    }

    async fn hover(&self, params: HoverParams) -> Result<Option<Hover>> {
        let p = params.text_document_position_params;
        Ok(self
            .with(&p.text_document.uri, |d| {
                features::hover(d, d.offset(p.position))
            })
            .flatten())
    }

    async fn goto_definition(
        &self,
        params: GotoDefinitionParams,
    ) -> Result<Option<GotoDefinitionResponse>> {
        let p = params.text_document_position_params;
        let uri = p.text_document.uri;
        Ok(self
            .with(&uri, |d| {
                features::definition(d, d.offset(p.position))
                    .map(|s| GotoDefinitionResponse::Scalar(Location::new(uri.clone(), d.range(s))))
            })
            .flatten())
    }

    async fn references(&self, params: ReferenceParams) -> Result<Option<Vec<Location>>> {
        let p = params.text_document_position;
        let uri = p.text_document.uri;
        let with_decl = params.context.include_declaration;
        Ok(self.with(&uri, |d| {
            features::references(d, d.offset(p.position), with_decl)
                .into_iter()
                .map(|s| Location::new(uri.clone(), d.range(s)))
                .collect()
        }))
    }

    async fn prepare_rename(
        &self,
        params: TextDocumentPositionParams,
    ) -> Result<Option<PrepareRenameResponse>> {
        let uri = params.text_document.uri;
        Ok(self
            .with(&uri, |d| {
                let offset = d.offset(params.position);
                let (span, occurrence) = d.index.at(offset)?;
                d.index.symbol_of(occurrence)?;
                if matches!(
                    occurrence,
                    chainr_compiler::index::Occurrence::Outcome { .. }
                ) {
                    return None;
                }
                Some(PrepareRenameResponse::Range(d.range(*span)))
            })
            .flatten())
    }

    async fn rename(&self, params: RenameParams) -> Result<Option<WorkspaceEdit>> {
        let p = params.text_document_position;
        let uri = p.text_document.uri;
        let result = self.with(&uri, |d| {
            features::rename(d, d.offset(p.position), &params.new_name).map(|edits| {
                edits
                    .into_iter()
                    .map(|(s, t)| TextEdit::new(d.range(s), t))
                    .collect::<Vec<_>>()
            })
        });
        match result {
            None => Ok(None),
            Some(Err(why)) => Err(Error::invalid_params(why)),
            Some(Ok(edits)) if edits.is_empty() => Ok(None),
            Some(Ok(edits)) => {
                let mut changes = HashMap::new();
                changes.insert(uri, edits);
                Ok(Some(WorkspaceEdit {
                    changes: Some(changes),
                    ..Default::default()
                }))
            }
        }
    }

    async fn completion(&self, params: CompletionParams) -> Result<Option<CompletionResponse>> {
        let p = params.text_document_position;
        Ok(self
            .with(&p.text_document.uri, |d| {
                features::completion(d, d.offset(p.position))
            })
            .filter(|items| !items.is_empty())
            .map(CompletionResponse::Array))
    }

    async fn document_symbol(
        &self,
        params: DocumentSymbolParams,
    ) -> Result<Option<DocumentSymbolResponse>> {
        Ok(self
            .with(&params.text_document.uri, features::document_symbols)
            .map(DocumentSymbolResponse::Nested))
    }

    async fn formatting(&self, params: DocumentFormattingParams) -> Result<Option<Vec<TextEdit>>> {
        Ok(self
            .with(&params.text_document.uri, |d| {
                let formatted = chainr_compiler::format::format(&d.text).ok()?;
                if formatted == d.text {
                    return Some(Vec::new());
                }
                let whole = chainr_compiler::syntax::Span::new(0, d.text.len());
                Some(vec![TextEdit::new(d.range(whole), formatted)])
            })
            .flatten())
    }

    async fn code_action(&self, params: CodeActionParams) -> Result<Option<CodeActionResponse>> {
        let uri = params.text_document.uri;
        Ok(self.with(&uri, |d| features::code_actions(d, &uri, params.range)))
    }

    async fn semantic_tokens_full(
        &self,
        params: SemanticTokensParams,
    ) -> Result<Option<SemanticTokensResult>> {
        Ok(self.with(&params.text_document.uri, |d| {
            SemanticTokensResult::Tokens(SemanticTokens {
                result_id: None,
                data: features::semantic_tokens(d),
            })
        }))
    }
}
