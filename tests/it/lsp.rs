//! The language server over its real stdio, as an editor drives it. Data-driven: each file in
//! `tests/fixtures/lsp/` marks the cursor with `$0` and says what to expect in its first lines:
//!
//! - `// hover: TEXT` — the hover at the cursor contains TEXT (each such line);
//! - `// definition: TEXT` — go to definition lands on a line that contains TEXT;
//! - `// references: N` — N places name the symbol at the cursor, its declaration included;
//! - `// rename: NEW -> N` — renaming it to NEW edits N places;
//! - `// completion: A, B` — completion at the cursor offers at least these;
//! - `// diagnostics: CODE, CODE` — the published diagnostics have exactly these codes.

use crate::lsp_client::{position, Client};
use serde_json::json;
use std::path::Path;

fn start() -> Client {
    Client::start(Path::new(env!("CARGO_BIN_EXE_chainrc")))
}

fn line_text(text: &str, line: u64) -> &str {
    text.lines().nth(line as usize).unwrap_or("")
}

#[test]
fn fixtures() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lsp");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    assert!(paths.len() >= 10);
    let mut client = start();
    for path in paths {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let marked = std::fs::read_to_string(&path).unwrap();
        let cursor = marked
            .find("$0")
            .unwrap_or_else(|| panic!("{name} has no $0"));
        let text = marked.replace("$0", "");
        let uri = format!("file:///fixtures/{name}");
        let diagnostics = client.open(&uri, &text);
        let at = json!({"textDocument": {"uri": uri}, "position": position(&text, cursor)});
        for line in marked.lines().take_while(|l| l.starts_with("// ")) {
            let (what, expect) = line[3..].split_once(": ").unwrap();
            match what {
                "hover" => {
                    let hover = client.request("textDocument/hover", at.clone());
                    let value = hover["contents"]["value"].as_str().unwrap_or("");
                    assert!(
                        value.contains(expect),
                        "{name}: hover {value:?} lacks {expect:?}"
                    );
                }
                "definition" => {
                    let def = client.request("textDocument/definition", at.clone());
                    let line = def["range"]["start"]["line"].as_u64().unwrap_or(u64::MAX);
                    assert!(
                        line_text(&text, line).contains(expect),
                        "{name}: definition at {def}"
                    );
                }
                "references" => {
                    let mut params = at.clone();
                    params["context"] = json!({"includeDeclaration": true});
                    let refs = client.request("textDocument/references", params);
                    let n: usize = expect.parse().unwrap();
                    assert_eq!(refs.as_array().map_or(0, Vec::len), n, "{name}: {refs}");
                }
                "rename" => {
                    let (new, n) = expect.split_once(" -> ").unwrap();
                    let prepared = client.request("textDocument/prepareRename", at.clone());
                    assert!(
                        prepared.get("start").is_some(),
                        "{name}: prepareRename {prepared}"
                    );
                    let mut params = at.clone();
                    params["newName"] = json!(new);
                    let edit = client.request("textDocument/rename", params);
                    let edits = edit["changes"][&uri].as_array().unwrap();
                    assert_eq!(edits.len(), n.parse::<usize>().unwrap(), "{name}: {edit}");
                    assert!(edits.iter().all(|e| e["newText"] == new));
                }
                "completion" => {
                    let items = client.request("textDocument/completion", at.clone());
                    let labels: Vec<&str> = items.as_array().map_or(Vec::new(), |a| {
                        a.iter().filter_map(|i| i["label"].as_str()).collect()
                    });
                    for want in expect.split(", ") {
                        assert!(
                            labels.contains(&want),
                            "{name}: completion {labels:?} lacks {want}"
                        );
                    }
                }
                "diagnostics" => {
                    let mut codes: Vec<&str> = diagnostics
                        .iter()
                        .filter_map(|d| d["code"].as_str())
                        .collect();
                    codes.sort();
                    let mut want: Vec<&str> = expect.split(", ").collect();
                    want.sort();
                    assert_eq!(codes, want, "{name}: {diagnostics:?}");
                }
                other => panic!("{name}: unknown expectation {other}"),
            }
        }
    }
    client.shutdown();
}

#[test]
fn incremental_edits_update_diagnostics_and_fixes_apply() {
    let mut c = start();
    let uri = "file:///edit.chainr";
    let text = "pipeline p {\n  job build { image = \"busybox\" run = \"make\" }\n  job test after build { image = \"busybox\" run = \"make test\" }\n}\n";
    assert!(c.open(uri, text).is_empty());
    // Rename `build` in the condition to `biuld` with a range edit: one error, with a fix.
    let at = text.find("after build").unwrap() + "after ".len();
    c.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{
            "range": {"start": position(text, at + 1), "end": position(text, at + 3)}, "text": "iu"
        }]}),
    );
    let d = c.diagnostics(uri);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0]["code"], "E0100");
    assert!(d[0]["message"]
        .as_str()
        .unwrap()
        .contains("did you mean `build`?"));
    let actions = c.request(
        "textDocument/codeAction",
        json!({"textDocument": {"uri": uri}, "range": d[0]["range"], "context": {"diagnostics": d}}),
    );
    let edit = &actions[0]["edit"]["changes"][uri][0];
    assert_eq!(edit["newText"], "build");
    assert_eq!(edit["range"], d[0]["range"]);
    // A syntax error, then its repair: errors come and go with each edit.
    let edited = text.replace("after build", "after biuld");
    let brace = edited.rfind('}').unwrap();
    c.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 3}, "contentChanges": [{
            "range": {"start": position(&edited, brace), "end": position(&edited, brace + 1)}, "text": ""
        }]}),
    );
    let d = c.diagnostics(uri);
    assert!(d.iter().any(|d| d["code"] == "E0011"), "{d:?}");
    c.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 4}, "contentChanges": [{"text": text}]}),
    );
    assert!(c.diagnostics(uri).is_empty());
    // Whole-text changes of an error-free file (re-parsed around what differs): the typo, then
    // its correction; hover follows the text.
    c.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 5}, "contentChanges": [{"text": edited}]}),
    );
    let d = c.diagnostics(uri);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0]["code"], "E0100");
    let renamed = text.replace("job test", "job check");
    c.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 6}, "contentChanges": [{"text": renamed}]}),
    );
    assert!(c.diagnostics(uri).is_empty());
    let at = renamed.find("job check").unwrap() + "job ch".len();
    let hover = c.request(
        "textDocument/hover",
        json!({"textDocument": {"uri": uri}, "position": position(&renamed, at)}),
    );
    assert!(
        hover["contents"]["value"]
            .as_str()
            .unwrap()
            .contains("**job check**"),
        "{hover}"
    );
    c.shutdown();
}

#[test]
fn symbols_formatting_and_semantic_tokens() {
    let mut c = start();
    let uri = "file:///s.chainr";
    let text = "pipeline p{\nparam n:int=2\njob a{image=\"busybox\";run=\"echo ${n}\"} // a\nfinally { job r after a.done { image = \"busybox\" run = \"r\" } }\n}\n";
    c.open(uri, text);
    let symbols = c.request(
        "textDocument/documentSymbol",
        json!({"textDocument": {"uri": uri}}),
    );
    assert_eq!(symbols[0]["name"], "p");
    let children: Vec<&str> = symbols[0]["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(children, ["n", "a", "r"]);
    let edits = c.request(
        "textDocument/formatting",
        json!({"textDocument": {"uri": uri}, "options": {"tabSize": 2, "insertSpaces": true}}),
    );
    let formatted = edits[0]["newText"].as_str().unwrap();
    assert_eq!(formatted, chainr_compiler::format::format(text).unwrap());
    let tokens = c.request(
        "textDocument/semanticTokens/full",
        json!({"textDocument": {"uri": uri}}),
    );
    let data = tokens["data"].as_array().unwrap();
    assert_eq!(data.len() % 5, 0);
    // Decode: the token types present include keyword (0), comment (1), string (2), function (4).
    let types: std::collections::BTreeSet<u64> =
        data.chunks(5).map(|t| t[3].as_u64().unwrap()).collect();
    for t in [0, 1, 2, 4, 5, 7, 8] {
        assert!(types.contains(&t), "token type {t} missing: {types:?}");
    }
    c.shutdown();
}
