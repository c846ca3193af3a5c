//! No input makes the compiler panic, and large pipelines compile.

use chainr_compiler::{compile, compile_json, render, to_json, Params};
use proptest::prelude::*;

const SEED: &str = include_str!("../../../examples/seed.chainr");

/// A pipeline in the full language, the base that mutations start from.
const RICH: &str = r#"pipeline nightly {
  param date: string = "2026-01-01"
  param shards: int = 3
  param tables: list<string> = ["users", "orders"]
  description = "nightly load"
  notify on failed, cancelled { to = ["team-slack", "mail-${date}"] }
  notify on running_longer_than 2h { to = ["team-slack"] }
  defaults { image = "busybox:1.36", retries = 1, timeout = 30m }
  job extract {
    notify on failed
    run = """
      extract --date ${date}
      echo $${HOME}
    """
    env { MODE = "full", DATE = date }
    resources { cpu = 500m, memory = 256Mi }
  }
  job shard for i in 0..shards after extract { run = "process ${i}" }
  template etl(table: string, cpu: quantity = 250m) {
    run = "load ${table}"
    resources { cpu = cpu }
  }
  job load for t in tables = etl(table = t) after shard
  job rollback after load.failed || (extract.failed && !shard.skipped) {
    run = "rollback"; allow_failure = true; notify on errored, failed { to = ["pager"] }
  }
  finally { job report after rollback.done { run = "report" } }
}
"#;

/// Tokens of the language, for mutations that stay close to real source.
const TOKENS: &[&str] = &[
    "{", "}", "(", ")", "[", "]", "=", ",", ";", ".", "..", "&&", "||", "!", "\"", "\"\"\"", "${",
    "$${", "job", "after", "for", "in", "param", "template", "defaults", "finally", "pipeline",
    "notify", "on", "failed", "to", "2h", "x", "x.failed", "10m", "256Mi", "-1", "true", "\n",
    "//", "/*", "*/", "\\", "é", "\u{0}", "\u{a0}", "\u{E000}", "\u{3000}",
];

fn assert_no_panic(src: &str) {
    let out = compile(src, &Params::default());
    // Rendering must work for every diagnostic (spans inside the text, on char boundaries).
    let _ = render(&out.diagnostics, "fuzz.chainr", src, false);
    for d in &out.diagnostics {
        for l in &d.labels {
            assert!(
                l.span.end as usize <= src.len(),
                "label outside the file: {d:?}"
            );
            assert!(
                src.is_char_boundary(l.span.start as usize)
                    && src.is_char_boundary(l.span.end as usize),
                "label not on a char boundary: {d:?}"
            );
        }
    }
    // What compiles must pass the IR validation that JSON input gets.
    if let Some(p) = out.pipeline {
        let again = compile_json(&to_json(&p));
        assert!(!again.has_errors(), "{:?}", again.diagnostics);
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize, usize),
    Insert(usize, usize),
    Duplicate(usize, usize),
}

fn mutate(src: &str, mutations: &[Mutation]) -> String {
    let mut s = src.to_string();
    for m in mutations {
        let at = |i: usize, s: &str| {
            let mut i = i % (s.len() + 1);
            while !s.is_char_boundary(i) {
                i -= 1;
            }
            i
        };
        match *m {
            Mutation::Delete(i, n) => {
                let a = at(i, &s);
                let b = at(a + n % 12, &s).max(a);
                s.replace_range(a..b, "");
            }
            Mutation::Insert(i, t) => {
                let a = at(i, &s);
                s.insert_str(a, TOKENS[t % TOKENS.len()]);
            }
            Mutation::Duplicate(i, n) => {
                let a = at(i, &s);
                let b = at(a + n % 40, &s).max(a);
                let chunk = s[a..b].to_string();
                s.insert_str(b, &chunk);
            }
        }
    }
    s
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<usize>()).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<usize>(), any::<usize>()).prop_map(|(i, t)| Mutation::Insert(i, t)),
        (any::<usize>(), any::<usize>()).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_text_never_panics(src in "\\PC{0,200}") {
        assert_no_panic(&src);
    }

    #[test]
    fn token_soup_never_panics(tokens in proptest::collection::vec(0..TOKENS.len(), 0..60)) {
        let src: String = tokens.iter().map(|&t| TOKENS[t]).collect::<Vec<_>>().join(" ");
        assert_no_panic(&format!("pipeline p {{ {src} }}"));
    }

    #[test]
    fn mutated_pipelines_never_panic(
        base in prop_oneof![Just(SEED), Just(RICH)],
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        assert_no_panic(&mutate(base, &mutations));
    }
}

const SEED_JSON: &str = r#"{"kind": "Pipeline", "jobs": {
  "first": {"image": "busybox", "run": "exit 0"},
  "second": {"image": "busybox", "run": "exit 0", "env": {"A": "é"}, "timeout": "1m"},
  "success": {"dependsOn": [{"job": "first"}], "image": "busybox", "run": "exit 0"},
  "error": {"dependsOn": [{"job": "first", "conditions": {"failure": true}}], "image": "busybox", "run": "exit 0",
            "condition": {"any": [{"failed": "second"}, {"not": {"done": "success"}}]}}
}}"#;

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn mutated_ir_json_never_panics(mutations in proptest::collection::vec(mutation(), 1..6)) {
        let src = mutate(SEED_JSON, &mutations);
        let out = compile_json(&src);
        let _ = render(&out.diagnostics, "fuzz.json", &src, false);
        for d in &out.diagnostics {
            for l in &d.labels {
                prop_assert!(src.is_char_boundary(l.span.start as usize) && src.is_char_boundary(l.span.end as usize));
            }
        }
    }
}

#[test]
fn the_rich_base_compiles() {
    let out = compile(RICH, &Params::default());
    assert!(
        out.diagnostics.is_empty(),
        "{}",
        render(&out.diagnostics, "rich", RICH, false)
    );
}

/// `layered` as in the benchmarks: 20 layers, each job after up to 3 jobs of the layer before.
fn layered(n: usize) -> String {
    let per = (n / 20).max(1);
    let mut src = String::from("pipeline big {\n");
    let mut state: u64 = 7;
    for i in 0..n {
        let layer = i / per;
        src.push_str(&format!("  job j{i:05}"));
        if layer > 0 {
            let prev = (layer - 1) * per;
            let mut deps: Vec<usize> = (0..3)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    prev + (state >> 33) as usize % per
                })
                .collect();
            deps.sort_unstable();
            deps.dedup();
            let names: Vec<String> = deps.iter().map(|d| format!("j{d:05}")).collect();
            src.push_str(&format!(" after {}", names.join(", ")));
        }
        src.push_str(" { image = \"busybox\"  run = \"true\" }\n");
    }
    src.push_str("}\n");
    src
}

/// The ways of parsing (one call, item by item, in parts) give the same tree.
fn assert_parsers_agree(src: &str) {
    use chainr_compiler::parse::{parse, parse_item_by_item, parse_sequential};
    let items = |p: chainr_compiler::parse::Parsed| (format!("{:?}", p.file), p.errors.len());
    let by_item = items(parse_item_by_item(src));
    assert_eq!(items(parse_sequential(src)), by_item);
    assert_eq!(items(parse(src)), by_item);
    assert_split_agrees(src);
}

/// Cut into parts, parsed part by part and joined, a file gives what `parse` gives: the same
/// tree, and the same errors when it has any.
fn assert_split_agrees(src: &str) -> usize {
    use chainr_compiler::parse::{parse, split};
    let whole = format!("{:?}", parse(src));
    let mut most = 1;
    for n in 1..=4 {
        let split = split(src, n);
        assert!(split.len() <= n.max(1));
        most = most.max(split.len());
        let parts = (0..split.len()).map(|i| split.parse_part(i)).collect();
        assert_eq!(format!("{:?}", split.join(parts)), whole, "{n} parts");
    }
    most
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn parsers_agree_on_mutated_pipelines(mutations in proptest::collection::vec(mutation(), 0..3)) {
        let src = mutate(RICH, &mutations);
        if chainr_compiler::parse::parse_item_by_item(&src).errors.is_empty() {
            assert_parsers_agree(&src);
        } else {
            assert_split_agrees(&src);
        }
    }
}

#[test]
fn parsers_agree_on_a_large_file() {
    let src = layered(5_000);
    assert_parsers_agree(&src);
    assert_eq!(assert_split_agrees(&src), 4, "the file is cut into 4 parts");
    // A syntax error in one part: the file is parsed again as a whole, and the error reported.
    let at = src.find("job j04000").unwrap();
    let broken = format!(
        "{}{}",
        &src[..at],
        src[at..].replacen("image = ", "image: ", 1)
    );
    assert_eq!(chainr_compiler::parse::parse(&broken).errors.len(), 1);
    assert_split_agrees(&broken);
}

/// Notifications at both levels, with and without blocks, next to every other item: one tree
/// whichever way the file is parsed, cut or re-parsed.
#[test]
fn parsers_agree_on_notifications() {
    let mut src = String::from("pipeline n {\n  notify on failed { to = [\"team\"] }\n");
    for i in 0..400 {
        src.push_str(&format!(
            "  notify on running_longer_than {}m {{ to = [\"team\"] }}\n  job j{i} {{\n    image = \"busybox\"\n    notify on failed, errored\n    run = \"true\"; notify on succeeded {{ to = [\"m{i}\"] }}\n  }}\n  job t{i} = t() after j{i}\n  notify on cancelled {{\n    to = [\"team\"]\n  }}\n",
            i + 1
        ));
    }
    src.push_str("  template t() { image = \"busybox\" run = \"x\" notify on failed }\n}\n");
    assert!(compile(&src, &Params::default()).diagnostics.is_empty());
    assert_parsers_agree(&src);
    assert_eq!(assert_split_agrees(&src), 4);
    // Broken notifications: every path reports them alike.
    for broken in [
        "notify on\n  job a { image = \"b\" run = \"c\" }",
        "notify on failed,\n  job a { image = \"b\" run = \"c\" }",
        "notify on failed { to = [ }\n  job a { image = \"b\" run = \"c\" }",
        "job a { image = \"b\" run = \"c\" notify on }\n  job b { image = \"b\" run = \"c\" }",
    ] {
        let text = format!("{}  {broken}\n}}\n", &src[..src.len() - 2]);
        let parsed = chainr_compiler::parse::parse(&text);
        assert!(!parsed.errors.is_empty(), "{broken}");
        assert_split_agrees(&text);
    }
}

#[test]
fn parts_start_with_items() {
    use chainr_compiler::parse::split;
    let parts = split(RICH, 3);
    assert_eq!(parts.len(), 3);
    for i in 1..parts.len() {
        let part = &RICH[parts.range(i)];
        assert!(
            ["job ", "template ", "param ", "defaults ", "finally "]
                .iter()
                .any(|k| part.starts_with(k)),
            "{part}"
        );
    }
    // Nothing to cut in a pipeline of one item.
    let one = "pipeline p { job a { image = \"busybox\" run = \"x\" } }";
    assert_eq!(split(one, 4).len(), 1);
}

#[test]
fn ten_thousand_jobs_compile() {
    let src = layered(10_000);
    let out = compile(&src, &Params::default());
    assert!(out.diagnostics.is_empty());
    let p = out.pipeline.unwrap();
    assert_eq!(p.jobs.len(), 10_000);
    assert!(p.jobs["j09999"]
        .depends_on
        .iter()
        .all(|d| d.job.as_str() >= "j09000"));
}

#[test]
fn a_one_megabyte_file_compiles() {
    let script: String = (0..40)
        .map(|i| format!("      echo line {i} of a long script\n"))
        .collect();
    let mut src = String::from("pipeline mb {\n");
    let mut i = 0;
    while src.len() < 1 << 20 {
        let after = if i > 0 {
            format!(" after j{}", i - 1)
        } else {
            String::new()
        };
        src.push_str(&format!(
            "  // job {i}\n  job j{i}{after} {{\n    image = \"busybox\"\n    run = \"\"\"\n{script}    \"\"\"\n  }}\n"
        ));
        i += 1;
    }
    src.push_str("}\n");
    assert!(src.len() >= 1 << 20);
    let out = compile(&src, &Params::default());
    assert!(out.diagnostics.is_empty());
    let p = out.pipeline.unwrap();
    assert_eq!(p.jobs.len(), i);
    assert!(p.jobs["j0"]
        .run
        .starts_with("echo line 0 of a long script\necho line 1"));
}

#[test]
fn a_cycle_through_ten_thousand_jobs_is_one_error() {
    let mut src = String::from("pipeline ring {\n");
    for i in 0..10_000 {
        let prev = if i == 0 { 9_999 } else { i - 1 };
        src.push_str(&format!(
            "  job j{i} after j{prev} {{ image = \"busybox\" run = \"true\" }}\n"
        ));
    }
    src.push_str("}\n");
    let out = compile(&src, &Params::default());
    let codes: Vec<&str> = out.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, ["E0103"]);
    assert_eq!(
        out.diagnostics[0].labels.len(),
        10_000,
        "one label per edge of the cycle"
    );
}

#[test]
fn block_strings_with_unusual_whitespace_and_private_use_characters() {
    // A line of spaces and a no-break space inside an indented block; a private-use character.
    let src = "pipeline p {\n  job a {\n    image = \"busybox\"\n    run = \"\"\"\n        echo a\n       \u{a0}\n        echo \u{E000} ${x}\n    \"\"\"\n  }\n  param x: string = \"v\"\n}\n";
    let out = compile(src, &Params::default());
    assert!(!out.has_errors(), "{:?}", out.diagnostics);
    let run = &out.pipeline.unwrap().jobs["a"].run;
    // A no-break space is content, not indentation: that line sets the common indentation.
    assert_eq!(run, " echo a\n\u{a0}\n echo \u{E000} v");
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    for (open, close) in [("(", ")"), ("[", "]"), ("{", "}"), ("!", "")] {
        let deep = format!(
            "pipeline p {{ job a after {} b {} {{ image = \"busybox\" run = \"x\" }} job b {{ image = \"busybox\" run = \"y\" }} }}",
            open.repeat(100_000),
            close.repeat(100_000)
        );
        let out = compile(&deep, &Params::default());
        assert_eq!(
            out.diagnostics.iter().map(|d| d.code).collect::<Vec<_>>(),
            ["E0007"],
            "{open}"
        );
        // Just below the limit still parses (and fails or not on its merits, without crashing).
        let fine = format!("pipeline p {{ job a after {}b{} {{ image = \"busybox\" run = \"x\" }} job b {{ image = \"busybox\" run = \"y\" }} }}", open.repeat(250), close.repeat(250));
        let out = compile(&fine, &Params::default());
        assert!(!out.diagnostics.iter().any(|d| d.code == "E0007"), "{open}");
    }
}

#[test]
fn every_syntax_error_in_a_file_is_reported() {
    let src = "pipeline p {\n  job a { image = \"busybox\" run: \"true\" }\n  job b { image = \"busybox\" run = \"true\" }\n  job c after b. { image = \"busybox\" run = \"true\" }\n  job d { image = 'busybox' run = \"true\" }\n}\n";
    let out = compile(src, &Params::default());
    let lines: Vec<usize> = out
        .diagnostics
        .iter()
        .map(|d| {
            src[..d.primary_span().unwrap().start as usize]
                .lines()
                .count()
        })
        .collect();
    assert_eq!(
        lines,
        [2, 4, 5],
        "{}",
        render(&out.diagnostics, "t", src, false)
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Re-parsing only around an edit gives the tree a full parse gives.
    #[test]
    fn reparsing_an_edit_agrees_with_a_full_parse(
        at in any::<usize>(),
        len in 0usize..12,
        insert in 0..TOKENS.len(),
    ) {
        use chainr_compiler::parse::{parse, reparse, Edit};
        let old = parse(RICH);
        prop_assume!(old.errors.is_empty());
        let mut start = at % RICH.len();
        while !RICH.is_char_boundary(start) { start -= 1; }
        let mut old_end = (start + len).min(RICH.len());
        while !RICH.is_char_boundary(old_end) { old_end -= 1; }
        let text = TOKENS[insert];
        let mut src = RICH.to_string();
        src.replace_range(start..old_end, text);
        let edit = Edit { start, old_end, new_end: start + text.len() };
        let full = parse(&src);
        if let Some(re) = reparse(old.file, &src, edit) {
            prop_assert!(full.errors.is_empty(), "reparse accepted what a full parse rejects: {src}");
            prop_assert_eq!(format!("{:?}", re.file), format!("{:?}", full.file));
        }
    }
}

#[test]
fn reparsing_touches_only_the_edited_item() {
    use chainr_compiler::parse::{parse, reparse, Edit};
    let old = parse(RICH);
    let at = RICH.find("process ${i}").unwrap();
    let mut src = RICH.to_string();
    src.replace_range(at..at + "process".len(), "handle");
    let edit = Edit {
        start: at,
        old_end: at + "process".len(),
        new_end: at + "handle".len(),
    };
    let re = reparse(old.file, &src, edit).expect("an edit inside a job re-parses that job only");
    assert_eq!(format!("{:?}", re.file), format!("{:?}", parse(&src).file));
    // An edit of the header cannot be re-parsed piecewise.
    let old = parse(RICH);
    let edit = Edit {
        start: 9,
        old_end: 10,
        new_end: 10,
    };
    let mut src = RICH.to_string();
    src.replace_range(9..10, "N");
    assert!(reparse(old.file, &src, edit).is_none());
}

#[test]
fn joining_a_line_to_a_comment_is_re_parsed_from_scratch() {
    use chainr_compiler::parse::{parse, reparse, Edit};
    let src = "pipeline p {\n  job a { image = \"busybox\" run = \"x\" }  // note\n  job b { image = \"busybox\" run = \"y\" }\n}\n";
    let old = parse(src);
    assert!(old.errors.is_empty());
    // Delete the newline after the comment: `job b` is now inside the comment.
    let nl = src.find("// note").unwrap() + "// note".len();
    let mut new = src.to_string();
    new.replace_range(nl..nl + 1, "");
    let edit = Edit {
        start: nl,
        old_end: nl + 1,
        new_end: nl,
    };
    let full = parse(&new);
    match reparse(old.file, &new, edit) {
        None => {}
        Some(re) => assert_eq!(format!("{:?}", re.file), format!("{:?}", full.file)),
    }
}

proptest! {
    /// `names::is_identifier` is the grammar's `ident`: a word is a valid name exactly when the
    /// parser takes it as a job's name.
    #[test]
    fn the_identifier_rule_is_the_grammars(word in "[a-zA-Z0-9_.$é -]{1,6}") {
        let src = format!("pipeline p {{\n  job {word} {{ image = \"busybox\" run = \"x\" }}\n}}\n");
        let parsed = chainr_compiler::parse::parse(&src);
        let takes_it = parsed.errors.is_empty()
            && parsed.file.items.len() == 1
            && matches!(&parsed.file.items[0], chainr_compiler::syntax::Item::Job(j) if j.name.name == word);
        prop_assert_eq!(chainr_compiler::names::is_identifier(&word), takes_it, "{:?}", word);
    }
}
