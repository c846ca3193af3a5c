//! Checks of the repository itself (after rust-analyzer's `xtask/src/tidy.rs`): what the docs
//! promise exists. Every diagnostic code the compiler can emit is documented and has a fixture,
//! and every path ARCHITECTURE.md names is there.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `E0105`, `W0004`: a letter and four digits.
fn is_code(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 5 && (b[0] == b'E' || b[0] == b'W') && b[1..].iter().all(u8::is_ascii_digit)
}

/// The codes the compiler can emit: every `"E0000"` literal in `compiler/src` outside test
/// modules (codes are written where the diagnostic is made).
fn emitted_codes() -> BTreeSet<String> {
    let mut files = Vec::new();
    rust_files(&root().join("compiler/src"), &mut files);
    let mut codes = BTreeSet::new();
    for file in files {
        let text = read(&file);
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for (i, _) in code.match_indices('"') {
            let lit = code[i + 1..].split('"').next().unwrap_or("");
            if is_code(lit) {
                codes.insert(lit.to_string());
            }
        }
    }
    codes
}

/// The codes docs/language.md documents: the first cell of a table row.
fn documented_codes() -> BTreeSet<String> {
    read(&root().join("docs/language.md"))
        .lines()
        .filter_map(|l| l.strip_prefix("| "))
        .filter_map(|l| l.split(' ').next())
        .filter(|c| is_code(c))
        .map(str::to_string)
        .collect()
}

/// The codes the fixtures demonstrate, by their names (`e0105-kubernetes-name-collision.chainr`),
/// each with the folder it is in.
fn fixture_codes() -> BTreeSet<(String, &'static str)> {
    let mut out = BTreeSet::new();
    for dir in ["err", "err-json"] {
        for entry in std::fs::read_dir(root().join("tests/fixtures").join(dir)).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().to_string();
            let code = name.split('-').next().unwrap_or("").to_uppercase();
            assert!(
                is_code(&code),
                "tests/fixtures/{dir}/{name} is not named after a code"
            );
            out.insert((code, dir));
        }
    }
    out
}

#[test]
fn every_diagnostic_code_is_documented_and_has_a_fixture() {
    let emitted = emitted_codes();
    assert!(
        emitted.len() >= 60 && emitted.contains("E0001") && emitted.contains("E0910"),
        "the scan of compiler/src found too few codes: {emitted:?}"
    );
    let documented = documented_codes();
    let fixtures = fixture_codes();
    let mut problems = Vec::new();
    for code in &emitted {
        if !documented.contains(code) {
            problems.push(format!(
                "{code} is emitted but not documented in docs/language.md"
            ));
        }
        // IR JSON problems (E09xx) are demonstrated by JSON, the others by source.
        let dir = if code.starts_with("E09") {
            "err-json"
        } else {
            "err"
        };
        if !fixtures.contains(&(code.clone(), dir)) {
            problems.push(format!(
                "{code} has no fixture tests/fixtures/{dir}/{}-*",
                code.to_lowercase()
            ));
        }
    }
    for code in documented.difference(&emitted) {
        problems.push(format!(
            "{code} is documented in docs/language.md but the compiler never emits it"
        ));
    }
    for (code, dir) in &fixtures {
        if !emitted.contains(code) {
            problems.push(format!(
                "tests/fixtures/{dir}/{}-* is named after {code}, which the compiler never emits",
                code.to_lowercase()
            ));
        }
    }
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

/// `a{b,c}d` as `abd`, `acd` (one level of braces at a time).
fn expand_braces(s: &str) -> Vec<String> {
    let (Some(open), Some(close)) = (s.find('{'), s.find('}')) else {
        return vec![s.to_string()];
    };
    if close < open {
        return vec![s.to_string()];
    }
    s[open + 1..close]
        .split(',')
        .flat_map(|alt| expand_braces(&format!("{}{alt}{}", &s[..open], &s[close + 1..])))
        .collect()
}

/// Whether a path exists; `*` in its last component matches any characters.
fn exists(path: &str) -> bool {
    let full = root().join(path.trim_end_matches('/'));
    if !path.contains('*') {
        return full.exists();
    }
    let (dir, pattern) = path.rsplit_once('/').unwrap_or(("", path));
    let Ok(entries) = std::fs::read_dir(root().join(dir)) else {
        return false;
    };
    let parts: Vec<&str> = pattern.split('*').collect();
    entries.filter_map(Result::ok).any(|e| {
        let name = e.file_name().to_string_lossy().to_string();
        let mut rest = name.as_str();
        for (i, part) in parts.iter().enumerate() {
            match rest.find(part) {
                Some(at) if i > 0 || at == 0 => rest = &rest[at + part.len()..],
                _ => return false,
            }
        }
        parts.last().is_some_and(|p| p.is_empty()) || rest.is_empty()
    })
}

const EXTENSIONS: &[&str] = &[
    "rs", "md", "toml", "lock", "json", "pest", "chainr", "sh", "py", "ts", "js", "yaml", "yml",
    "txt", "snap",
];

/// A backticked text that names a path of the repository: path characters only, and a `/` or a
/// known extension. `.chainr` (an extension alone), commands and Rust paths are not.
fn as_path(code: &str) -> Option<&str> {
    let path_chars = code
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_-./{},*".contains(c));
    if !path_chars || code.starts_with('/') || code.is_empty() {
        return None;
    }
    let ext = code.rsplit_once('.').map(|(_, e)| e);
    let has_ext = ext.is_some_and(|e| EXTENSIONS.contains(&e.trim_end_matches('}')));
    if code.contains('/') || (has_ext && !code.starts_with('.')) {
        Some(code)
    } else {
        None
    }
}

fn backticked(line: &str) -> impl Iterator<Item = &str> {
    line.split('`').skip(1).step_by(2)
}

/// Every path ARCHITECTURE.md names in backticks exists. In a codemap row, a bare file name
/// (`units.rs`) is in the folder of the row's first path (`compiler/src/types.rs`, or
/// `runtime/src/kubernetes/` itself); elsewhere paths are from the repository's root.
#[test]
fn every_path_in_architecture_md_exists() {
    let text = read(&root().join("ARCHITECTURE.md"));
    let mut missing = Vec::new();
    let mut checked = 0;
    for line in text.lines() {
        let row = line.starts_with("| ");
        // The row's first cell holds its paths; its folder resolves bare names in the whole row.
        let folder = row
            .then(|| backticked(line).next())
            .flatten()
            .filter(|first| first.contains('/'))
            .map(|first| match first.rsplit_once('/') {
                Some((dir, _)) => format!("{dir}/"),
                None => String::new(),
            })
            .unwrap_or_default();
        for code in backticked(line) {
            let Some(path) = as_path(code) else {
                continue;
            };
            let path = if path.contains('/') {
                path.to_string()
            } else {
                format!("{folder}{path}")
            };
            for p in expand_braces(&path) {
                checked += 1;
                if !exists(&p) {
                    missing.push(format!("`{code}` ({p}) in: {line}"));
                }
            }
        }
    }
    assert!(
        checked >= 30,
        "only {checked} paths found in ARCHITECTURE.md"
    );
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names paths that do not exist:\n{}",
        missing.join("\n")
    );
}

#[test]
fn path_helpers() {
    assert_eq!(expand_braces("a/{b,c}.rs"), ["a/b.rs", "a/c.rs"]);
    assert_eq!(as_path("compiler/src/ir.rs"), Some("compiler/src/ir.rs"));
    assert_eq!(as_path("units.rs"), Some("units.rs"));
    assert_eq!(as_path(".ci/run"), Some(".ci/run"));
    for not_a_path in [
        ".chainr",
        "/bin/sh -c",
        "ir::Pipeline",
        "chainrc run",
        "json_schema()",
        "x.failed",
        "help:",
    ] {
        assert_eq!(as_path(not_a_path), None, "{not_a_path}");
    }
    assert!(exists("tests/fixtures/err/e01*.chainr"));
    assert!(!exists("tests/fixtures/err/e99*.chainr"));
}
