//! One snapshot per file: the source and what the compiler made of it, side by side.
//! `examples/*.chainr` and `tests/fixtures/ok/*.chainr` must compile (IR snapshot);
//! `tests/fixtures/err/*.chainr` must not (rendered diagnostics snapshot), nor
//! `tests/fixtures/err-json/*.json` (IR that arrives as JSON). A fixture whose leading comments
//! say `// media: a, b` is also checked against those notification media, as a server that
//! defines them would check it.

use chainr_compiler::{compile, render, to_json, Params};
use std::path::Path;

fn snapshot_text(path: &Path, src: &str, output: &str) -> String {
    let name = path.file_name().unwrap().to_string_lossy();
    format!("----- SOURCE: {name} -----\n{src}\n----- OUTPUT -----\n{output}")
}

/// Params that a fixture asks for in its first line: `// params: name=value, other=value`.
fn params_of(src: &str) -> Params {
    let mut params = Vec::new();
    if let Some(rest) = src
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("// params: "))
    {
        for pair in rest.split(", ") {
            let (k, v) = pair.split_once('=').expect("params are name=value");
            params.push((k.to_string(), v.to_string()));
        }
    }
    Params(params)
}

/// The notification media a fixture's leading comments define: `// media: team-slack, pager`.
fn media_of(src: &str) -> Option<Vec<&str>> {
    src.lines()
        .take_while(|l| l.starts_with("//"))
        .find_map(|l| l.strip_prefix("// media: "))
        .map(|rest| rest.split(", ").collect())
}

fn compiled(path: &Path) -> String {
    let src = std::fs::read_to_string(path).unwrap();
    let mut out = compile(&src, &params_of(&src));
    if let Some(media) = media_of(&src) {
        out.check_media(&media);
    }
    let rendered = render(&out.diagnostics, "input.chainr", &src, false);
    let pipeline = out
        .pipeline
        .unwrap_or_else(|| panic!("{} should compile:\n{rendered}", path.display()));
    assert!(
        out.diagnostics.is_empty(),
        "{} should compile without warnings:\n{rendered}",
        path.display()
    );
    // What the compiler emits must pass the same validation as IR submitted as JSON.
    let json = to_json(&pipeline);
    let again = chainr_compiler::compile_json(&json);
    assert!(again.diagnostics.is_empty(), "{:?}", again.diagnostics);
    assert_eq!(
        again.pipeline.as_ref(),
        Some(&pipeline),
        "the IR must round-trip through JSON"
    );
    snapshot_text(path, &src, &json)
}

#[test]
fn examples() {
    insta::glob!(
        "../../examples",
        "*.chainr",
        |path| insta::assert_snapshot!(compiled(path))
    );
}

#[test]
fn ok_fixtures() {
    insta::glob!(
        "../fixtures/ok",
        "*.chainr",
        |path| insta::assert_snapshot!(compiled(path))
    );
}

#[test]
fn error_fixtures() {
    insta::glob!("../fixtures/err", "*.chainr", |path| {
        let src = std::fs::read_to_string(path).unwrap();
        let mut out = compile(&src, &params_of(&src));
        if let Some(media) = media_of(&src) {
            out.check_media(&media);
        }
        assert!(
            out.has_errors() || !out.diagnostics.is_empty(),
            "{} should report a problem",
            path.display()
        );
        // The fixture's name starts with the code it demonstrates, which must be reported.
        let stem = path.file_stem().unwrap().to_string_lossy();
        let code = stem.split('-').next().unwrap().to_uppercase();
        assert!(
            out.diagnostics.iter().any(|d| d.code == code),
            "{} should report {code}, got {:?}",
            path.display(),
            out.diagnostics.iter().map(|d| d.code).collect::<Vec<_>>()
        );
        let name = path.file_name().unwrap().to_string_lossy();
        let rendered = render(&out.diagnostics, &name, &src, false);
        insta::assert_snapshot!(snapshot_text(path, &src, &rendered));
    });
}

/// IR JSON with one mistake each: the same rigour as source, reported by job name.
#[test]
fn ir_error_fixtures() {
    insta::glob!("../fixtures/err-json", "*.json", |path| {
        let src = std::fs::read_to_string(path).unwrap();
        let out = chainr_compiler::compile_json(&src);
        let stem = path.file_stem().unwrap().to_string_lossy();
        let code = stem.split('-').next().unwrap().to_uppercase();
        assert!(
            out.pipeline.is_none(),
            "{} should not be accepted",
            path.display()
        );
        assert!(
            out.diagnostics.iter().any(|d| d.code == code),
            "{} should report {code}, got {:?}",
            path.display(),
            out.diagnostics.iter().map(|d| d.code).collect::<Vec<_>>()
        );
        let name = path.file_name().unwrap().to_string_lossy();
        let rendered = render(&out.diagnostics, &name, &src, false);
        insta::assert_snapshot!(snapshot_text(path, &src, &rendered));
    });
}

/// The original chainr README's example, as JSON: `chainrc compile` of the seed source must
/// give exactly this, plus `"name"`.

#[test]
fn seed_example_compiles_to_the_original_json() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = std::fs::read_to_string(root.join("examples/seed.chainr")).unwrap();
    let out = compile(&src, &Params::default());
    let mut ours: serde_json::Value = serde_json::to_value(out.pipeline.unwrap()).unwrap();
    assert_eq!(ours["name"], "example");
    ours.as_object_mut().unwrap().remove("name");
    // The original README's example, as it printed it.
    let original = std::fs::read_to_string(root.join("examples/seed.json")).unwrap();
    let original: serde_json::Value = serde_json::from_str(&original).unwrap();
    assert_eq!(ours, original);
}

#[test]
fn json_schema_in_docs_is_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = root.join("docs/pipeline.schema.json");
    let current = chainr_compiler::ir::json_schema();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &current).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == current,
        "docs/pipeline.schema.json is out of date: run `UPDATE_SCHEMA=1 cargo test json_schema` and commit it"
    );
}
