"""chainr's language server driven by an independent client: pytest-lsp (pygls), over stdio.

Run with `pytest tests/lsp` after building `chainrc`; CHAINRC names the binary (default: the one
on PATH).
"""

import os
import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

CHAINRC = os.environ.get("CHAINRC", "chainrc")

SOURCE = """pipeline ci {
  param sha: string = "HEAD"
  defaults { image = "rust:1.80" }

  job build { run = "cargo build --release # ${sha}" }
  job test after biuld { run = "cargo test" }
  job deploy after build.failed { run = "deploy" }
}
"""
URI = "file:///project/ci.chainr"


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[CHAINRC, "lsp"]))
async def client(lsp_client: LanguageClient):
    initialized = await lsp_client.initialize_session(
        types.InitializeParams(capabilities=types.ClientCapabilities())
    )
    lsp_client.server_capabilities = initialized.capabilities
    yield
    await lsp_client.shutdown_session()


def position_of(text: str, needle: str, delta: int = 0) -> types.Position:
    offset = text.index(needle) + delta
    before = text[:offset]
    return types.Position(line=before.count("\n"), character=offset - (before.rfind("\n") + 1))


async def open_document(client: LanguageClient, text: str = SOURCE):
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=URI, language_id="chainr", version=1, text=text)
        )
    )
    await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)


@pytest.mark.asyncio
async def test_diagnostics_on_open(client: LanguageClient):
    await open_document(client)
    diagnostics = client.diagnostics[URI]
    assert [d.code for d in diagnostics] == ["E0100"]
    (unknown,) = diagnostics
    assert unknown.severity == types.DiagnosticSeverity.Error
    assert "unknown job `biuld`" in unknown.message
    assert "did you mean `build`?" in unknown.message
    assert unknown.range.start == position_of(SOURCE, "biuld")
    assert unknown.source == "chainr"


async def hover_at(client: LanguageClient, text: str, needle: str, delta: int):
    return await client.text_document_hover_async(
        types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=URI),
            position=position_of(text, needle, delta),
        )
    )


@pytest.mark.asyncio
async def test_hover_on_a_job_reference(client: LanguageClient):
    text = SOURCE.replace("biuld", "build")
    await open_document(client, text)
    assert len(client.diagnostics[URI]) == 0
    hover = await hover_at(client, text, "build.failed", 2)
    assert hover is not None
    value = hover.contents.value
    assert "**job build**" in value
    assert "image: `rust:1.80`" in value  # from `defaults`, as compiled
    assert "cargo build --release # HEAD" in value  # the param interpolated
    assert hover.range.start == position_of(text, "build.failed")


@pytest.mark.asyncio
async def test_definition_of_a_job_and_a_param(client: LanguageClient):
    await open_document(client)
    result = await client.text_document_definition_async(
        types.DefinitionParams(
            text_document=types.TextDocumentIdentifier(uri=URI),
            position=position_of(SOURCE, "build.failed", 1),
        )
    )
    location = result if isinstance(result, types.Location) else result[0]
    assert location.range.start == position_of(SOURCE, "build {")
    result = await client.text_document_definition_async(
        types.DefinitionParams(
            text_document=types.TextDocumentIdentifier(uri=URI),
            position=position_of(SOURCE, "${sha}", 3),
        )
    )
    location = result if isinstance(result, types.Location) else result[0]
    assert location.range.start == position_of(SOURCE, "sha: string")


@pytest.mark.asyncio
async def test_completion_of_outcomes_and_jobs(client: LanguageClient):
    text = SOURCE.replace("build.failed", "build.")
    await open_document(client, text)
    result = await client.text_document_completion_async(
        types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri=URI),
            position=position_of(text, "build. {", len("build.")),
        )
    )
    items = result.items if isinstance(result, types.CompletionList) else result
    labels = {i.label for i in items}
    assert {"succeeded", "failed", "errored", "skipped", "cancelled", "done"} <= labels


NOTIFIED = """pipeline ci {
  notify on failed { to = ["team-slack"] }
  job build {
    image = "rust:1.80"
    run = "cargo build"
    notify on errored
  }
}
"""


@pytest.mark.asyncio
async def test_notifications_hover_completion_and_highlighting(client: LanguageClient):
    await open_document(client, NOTIFIED)
    assert len(client.diagnostics[URI]) == 0
    hover = await hover_at(client, NOTIFIED, "errored", 1)
    assert hover is not None
    assert "**errored**: an event of a job" in hover.contents.value
    # Events of a job after `notify on` in a job's body.
    text = NOTIFIED.replace("notify on errored", "notify on ")
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=URI, version=2),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
        )
    )
    result = await client.text_document_completion_async(
        types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri=URI),
            position=position_of(text, "notify on \n", len("notify on ")),
        )
    )
    items = result.items if isinstance(result, types.CompletionList) else result
    assert {i.label for i in items} == {"succeeded", "failed", "errored"}
    # `notify` and `on` are keywords, `failed` an enum member, `to` a property.
    legend = client.server_capabilities.semantic_tokens_provider.legend.token_types
    tokens = await client.text_document_semantic_tokens_full_async(
        types.SemanticTokensParams(text_document=types.TextDocumentIdentifier(uri=URI))
    )
    line = col = 0
    kinds = {}
    data = tokens.data
    lines = text.split("\n")
    for i in range(0, len(data), 5):
        line += data[i]
        col = data[i + 1] if data[i] else col + data[i + 1]
        kinds[lines[line][col : col + data[i + 2]]] = legend[data[i + 3]]
    assert kinds["notify"] == "keyword"
    assert kinds["on"] == "keyword"
    assert kinds["failed"] == "enumMember"
    assert kinds["to"] == "property"
