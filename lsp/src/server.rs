//! The protocol side: documents by URI, requests answered from `features`, and every
//! translation between the protocol's types and theirs (byte spans to UTF-16 ranges, kinds to
//! the protocol's kinds, diagnostics to its diagnostics).

use crate::document::Document;
use crate::features::{self, completion, semantic_tokens::TokenType, symbols, Replacement};
use chainr_compiler::diagnostic::{Diagnostic as CDiagnostic, Severity};
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
        let found = self.with(&uri, |d| (diagnostics(d, &uri), d.version));
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
                                token_types: TokenType::ALL.map(token_type).to_vec(),
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
                let h = features::hover::hover(d, d.offset(p.position))?;
                Some(Hover {
                    contents: HoverContents::Markup(MarkupContent {
                        kind: MarkupKind::Markdown,
                        value: h.markdown,
                    }),
                    range: Some(d.range(h.span)),
                })
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
                features::references::definition(d, d.offset(p.position))
                    .map(|s| GotoDefinitionResponse::Scalar(Location::new(uri.clone(), d.range(s))))
            })
            .flatten())
    }

    async fn references(&self, params: ReferenceParams) -> Result<Option<Vec<Location>>> {
        let p = params.text_document_position;
        let uri = p.text_document.uri;
        let with_decl = params.context.include_declaration;
        Ok(self.with(&uri, |d| {
            features::references::references(d, d.offset(p.position), with_decl)
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
                features::references::prepare_rename(d, d.offset(params.position))
                    .map(|span| PrepareRenameResponse::Range(d.range(span)))
            })
            .flatten())
    }

    async fn rename(&self, params: RenameParams) -> Result<Option<WorkspaceEdit>> {
        let p = params.text_document_position;
        let uri = p.text_document.uri;
        let result = self.with(&uri, |d| {
            features::references::rename(d, d.offset(p.position), &params.new_name)
                .map(|edits| text_edits(d, edits))
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
                completion::completion(d, d.offset(p.position))
                    .into_iter()
                    .map(completion_item)
                    .collect::<Vec<_>>()
            })
            .filter(|items| !items.is_empty())
            .map(CompletionResponse::Array))
    }

    async fn document_symbol(
        &self,
        params: DocumentSymbolParams,
    ) -> Result<Option<DocumentSymbolResponse>> {
        Ok(self
            .with(&params.text_document.uri, |d| {
                symbols::document_symbols(d)
                    .into_iter()
                    .map(|s| document_symbol(d, s))
                    .collect()
            })
            .map(DocumentSymbolResponse::Nested))
    }

    async fn formatting(&self, params: DocumentFormattingParams) -> Result<Option<Vec<TextEdit>>> {
        Ok(self
            .with(&params.text_document.uri, |d| {
                features::formatting::format(d).map(|edits| text_edits(d, edits))
            })
            .flatten())
    }

    async fn code_action(&self, params: CodeActionParams) -> Result<Option<CodeActionResponse>> {
        let uri = params.text_document.uri;
        Ok(self.with(&uri, |d| code_actions(d, &uri, params.range)))
    }

    async fn semantic_tokens_full(
        &self,
        params: SemanticTokensParams,
    ) -> Result<Option<SemanticTokensResult>> {
        Ok(self.with(&params.text_document.uri, |d| {
            SemanticTokensResult::Tokens(SemanticTokens {
                result_id: None,
                data: semantic_tokens(d),
            })
        }))
    }
}

fn text_edits(doc: &Document, edits: Vec<Replacement>) -> Vec<TextEdit> {
    edits
        .into_iter()
        .map(|e| TextEdit::new(doc.range(e.span), e.text))
        .collect()
}

fn diagnostics(doc: &Document, uri: &Uri) -> Vec<Diagnostic> {
    doc.diagnostics
        .iter()
        .map(|d| diagnostic(doc, uri, d))
        .collect()
}

/// A compiler diagnostic as the protocol's: the primary label and the `help:` in the message,
/// the other labels as related information.
fn diagnostic(doc: &Document, uri: &Uri, d: &CDiagnostic) -> Diagnostic {
    let primary = d.primary_span().unwrap_or_default();
    let label = d
        .labels
        .iter()
        .find(|l| l.primary)
        .map(|l| l.message.as_str())
        .unwrap_or("");
    let mut message = d.message.clone();
    if !label.is_empty() && !d.message.contains(label) {
        message.push_str(": ");
        message.push_str(label);
    }
    if let Some(h) = &d.help {
        message.push_str("\nhelp: ");
        message.push_str(h);
    }
    let related: Vec<DiagnosticRelatedInformation> = d
        .labels
        .iter()
        .filter(|l| !l.primary)
        .map(|l| DiagnosticRelatedInformation {
            location: Location::new(uri.clone(), doc.range(l.span)),
            message: l.message.clone(),
        })
        .collect();
    Diagnostic {
        range: doc.range(primary),
        severity: Some(match d.severity {
            Severity::Error => DiagnosticSeverity::ERROR,
            Severity::Warning => DiagnosticSeverity::WARNING,
        }),
        code: Some(NumberOrString::String(d.code.to_string())),
        source: Some("chainr".into()),
        message,
        related_information: (!related.is_empty()).then_some(related),
        ..Default::default()
    }
}

fn code_actions(doc: &Document, uri: &Uri, range: Range) -> Vec<CodeActionOrCommand> {
    let fixes =
        features::code_actions::quick_fixes(doc, doc.offset(range.start), doc.offset(range.end));
    fixes
        .into_iter()
        .map(|fix| {
            let mut changes = HashMap::new();
            changes.insert(uri.clone(), text_edits(doc, vec![fix.edit]));
            CodeActionOrCommand::CodeAction(CodeAction {
                title: fix.title,
                kind: Some(CodeActionKind::QUICKFIX),
                diagnostics: Some(vec![diagnostic(doc, uri, fix.diagnostic)]),
                edit: Some(WorkspaceEdit {
                    changes: Some(changes),
                    ..Default::default()
                }),
                is_preferred: Some(true),
                ..Default::default()
            })
        })
        .collect()
}

fn completion_item(item: completion::Item) -> CompletionItem {
    CompletionItem {
        label: item.label,
        kind: Some(match item.kind {
            completion::Kind::Outcome | completion::Kind::Event => CompletionItemKind::ENUM_MEMBER,
            completion::Kind::Job => CompletionItemKind::FUNCTION,
            completion::Kind::Template => CompletionItemKind::CLASS,
            completion::Kind::Variable => CompletionItemKind::VARIABLE,
            completion::Kind::Field => CompletionItemKind::PROPERTY,
            completion::Kind::Keyword => CompletionItemKind::KEYWORD,
        }),
        detail: item.detail,
        documentation: item.documentation.map(Documentation::String),
        ..Default::default()
    }
}

fn document_symbol(doc: &Document, s: symbols::Symbol) -> DocumentSymbol {
    #[allow(deprecated)]
    DocumentSymbol {
        name: s.name,
        detail: Some(s.detail.to_string()),
        kind: match s.kind {
            symbols::Kind::Pipeline => SymbolKind::MODULE,
            symbols::Kind::Job => SymbolKind::FUNCTION,
            symbols::Kind::Param => SymbolKind::VARIABLE,
            symbols::Kind::Template => SymbolKind::CLASS,
        },
        tags: None,
        deprecated: None,
        range: doc.range(s.span),
        selection_range: doc.range(s.name_span),
        children: s
            .children
            .map(|c| c.into_iter().map(|s| document_symbol(doc, s)).collect()),
    }
}

fn token_type(t: TokenType) -> SemanticTokenType {
    match t {
        TokenType::Keyword => SemanticTokenType::KEYWORD,
        TokenType::Comment => SemanticTokenType::COMMENT,
        TokenType::String => SemanticTokenType::STRING,
        TokenType::Number => SemanticTokenType::NUMBER,
        TokenType::Function => SemanticTokenType::FUNCTION,
        TokenType::Variable => SemanticTokenType::VARIABLE,
        TokenType::Parameter => SemanticTokenType::PARAMETER,
        TokenType::Property => SemanticTokenType::PROPERTY,
        TokenType::EnumMember => SemanticTokenType::ENUM_MEMBER,
        TokenType::Class => SemanticTokenType::CLASS,
    }
}

/// The document's tokens in the protocol's encoding: relative positions, UTF-16 lengths, and one
/// token per line of a token that spans lines (clients need not support multi-line tokens).
fn semantic_tokens(doc: &Document) -> Vec<SemanticToken> {
    let mut out = Vec::new();
    let (mut line, mut col) = (0u32, 0u32);
    for (span, t) in features::semantic_tokens::semantic_tokens(doc) {
        // The legend lists `TokenType::ALL`, which is in declaration order.
        let token_type = t as u32;
        let text = &doc.text[span.range()];
        let mut offset = span.start as usize;
        for piece in text.split_inclusive(['\n', '\r']) {
            let len = piece.trim_end_matches(['\n', '\r']);
            if !len.is_empty() {
                let p = doc.lines.position(&doc.text, offset);
                let delta_line = p.line - line;
                let delta_start = if delta_line == 0 {
                    p.character - col
                } else {
                    p.character
                };
                let length: u32 = len.chars().map(|c| c.len_utf16() as u32).sum();
                out.push(SemanticToken {
                    delta_line,
                    delta_start,
                    length,
                    token_type,
                    token_modifiers_bitset: 0,
                });
                line = p.line;
                col = p.character;
            }
            offset += piece.len();
        }
    }
    out
}
