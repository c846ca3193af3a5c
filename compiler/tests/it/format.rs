//! The formatter keeps meaning and comments, and formatting twice changes nothing.

use chainr_compiler::format::{comments, format};
use chainr_compiler::parse::parse;
use chainr_compiler::{compile, render, Params};
use proptest::prelude::*;

fn comment_texts(src: &str) -> Vec<String> {
    comments(src)
        .iter()
        .map(|c| src[c.range()].trim_end().to_string())
        .collect()
}

/// Formatting keeps the IR (or the diagnostics' codes), every comment, and is idempotent. `src`
/// must format.
fn check(src: &str, params: &Params) {
    let once = format(src).unwrap_or_else(|errors| {
        panic!(
            "the formatter rejects this file:\n{}\n{src}",
            render(&errors, "src", src, false)
        )
    });
    let twice = format(&once).expect("formatted output parses");
    assert_eq!(once, twice, "formatting is not idempotent:\n{once}");
    let before = compile(src, params);
    let after = compile(&once, params);
    assert_eq!(
        before.pipeline, after.pipeline,
        "the IR changed:\n--- before\n{src}\n--- after\n{once}"
    );
    let codes = |d: &[chainr_compiler::Diagnostic]| d.iter().map(|d| d.code).collect::<Vec<_>>();
    assert_eq!(codes(&before.diagnostics), codes(&after.diagnostics));
    assert_eq!(
        comment_texts(src),
        comment_texts(&once),
        "comments changed:\n{once}"
    );
}

/// [`check`] for a file that may have a syntax error: only a syntax error stops the formatter.
fn check_unless_syntax_error(src: &str, params: &Params) {
    if parse(src).errors.is_empty() {
        check(src, params);
    } else {
        assert!(
            format(src).is_err(),
            "a file with syntax errors was formatted"
        );
    }
}

fn files(dir: &str) -> Vec<(String, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(dir);
    let mut out: Vec<(String, String)> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "chainr"))
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn examples_and_fixtures_keep_their_meaning_and_comments() {
    for dir in ["examples", "tests/fixtures/ok"] {
        let files = files(dir);
        assert!(!files.is_empty(), "no files in {dir}");
        for (path, src) in files {
            eprintln!("{path}");
            check(&src, &chainr_params(&src));
        }
    }
    // Error fixtures format too, unless their error is a syntax error.
    for (path, src) in files("tests/fixtures/err") {
        eprintln!("{path}");
        check_unless_syntax_error(&src, &chainr_params(&src));
    }
}

fn chainr_params(src: &str) -> Params {
    let mut params = Vec::new();
    if let Some(rest) = src
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("// params: "))
    {
        for pair in rest.split(", ") {
            if let Some((k, v)) = pair.split_once('=') {
                params.push((k.to_string(), v.to_string()));
            }
        }
    }
    Params(params)
}

#[test]
fn the_canonical_layout() {
    let src = "// ci\npipeline   ci{\n\n  param  n :int=2\n  job a{image=\"busybox\";run=\"true\"}   // fast\n\n\n  job b after a,(a.failed||a.skipped)&&!a.cancelled {\n image = \"busybox\"\n     run = \"\"\"\n       echo b\n     \"\"\"\n  }\n  job s for i in 0..n after b{ image=\"x\" , run=\"y\" }\n}\n";
    let expected = "// ci\npipeline ci {\n  param n: int = 2\n  job a { image = \"busybox\", run = \"true\" }  // fast\n\n  job b after a, (a.failed || a.skipped) && !a.cancelled {\n    image = \"busybox\"\n    run = \"\"\"\n       echo b\n     \"\"\"\n  }\n  job s for i in 0..n after b { image = \"x\", run = \"y\" }\n}\n";
    assert_eq!(format(src).unwrap(), expected);
    check(src, &Params::default());
}

#[test]
fn notifications_in_the_canonical_layout() {
    let src = "pipeline p {\n  notify   on failed ,cancelled{to=[\"a\",\"b\"]}\n  notify on running_longer_than 2h {\n    to = [\"a\"]\n  }\n  job a { image = \"x\"; notify on failed; run = \"y\" }\n  job b {\n    image = \"x\" run = \"y\"\n    notify on failed, // why\n      errored\n  }\n  job d { image = \"x\" run = \"y\" notify on failed { to = [\"a\"] } } // trailing\n}\n";
    // A `notify` goes on one line when it fits; it stays last in a body on one line, since
    // after `notify on failed, ` a word and a block would read as one more event.
    let expected = "pipeline p {\n  notify on failed, cancelled { to = [\"a\", \"b\"] }\n  notify on running_longer_than 2h { to = [\"a\"] }\n  job a {\n    image = \"x\"\n    notify on failed\n    run = \"y\"\n  }\n  job b {\n    image = \"x\"\n    run = \"y\"\n    notify on failed, // why\n      errored\n  }\n  job d { image = \"x\", run = \"y\", notify on failed { to = [\"a\"] } }  // trailing\n}\n";
    assert_eq!(format(src).unwrap(), expected);
    check(src, &Params::default());
    // Too long for one line: the block on lines of its own.
    let media: Vec<String> = (0..12).map(|i| format!("\"medium-{i}\"")).collect();
    let long = format!(
        "pipeline p {{\n  notify on failed {{ to = [{}] }}\n  job a {{ image = \"x\" run = \"y\" }}\n}}\n",
        media.join(", ")
    );
    let formatted = format(&long).unwrap();
    assert!(
        formatted.contains("  notify on failed {\n    to = [\"medium-0\""),
        "{formatted}"
    );
    check(&long, &Params::default());
}

#[test]
fn syntax_errors_are_not_formatted() {
    let errors = format("pipeline p { job a { image: \"x\" } }").unwrap_err();
    assert_eq!(errors[0].code, "E0001");
}

const TOKENS: &[&str] = &[
    "\n",
    "\n\n",
    " ",
    "// note\n",
    "/* c */",
    ",",
    ";",
    "\n  job x after a { run = \"r\" }\n",
    "\n  notify on failed\n",
    " notify on succeeded { to = [\"team-slack\"] }",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    /// Blanks, separators and comments inserted anywhere between tokens of a real pipeline.
    #[test]
    fn formatting_never_changes_the_ir(inserts in proptest::collection::vec((any::<usize>(), 0..TOKENS.len()), 0..8)) {
        let base = files("examples").into_iter().find(|(p, _)| p.ends_with("warehouse.chainr")).unwrap().1;
        let mut src = base.clone();
        for (at, t) in inserts {
            // Insert only at line ends, where any of these keep the file valid or make it fail to parse.
            let ends: Vec<usize> = src.match_indices('\n').map(|(i, _)| i).collect();
            let i = ends[at % ends.len()];
            src.insert_str(i, TOKENS[t]);
        }
        check_unless_syntax_error(&src, &Params::default());
    }
}

#[test]
fn a_comment_inside_a_list_printed_as_written_is_not_repeated() {
    let src = "pipeline p {\n  param xs: list<string> = [\n    \"\"\"\n    a\n    \"\"\", // note\n  ]\n  job j for x in xs { image = \"busybox\" run = \"${x}\" }\n}\n";
    check(src, &Params::default());
    assert_eq!(format(src).unwrap().matches("// note").count(), 1);
}
