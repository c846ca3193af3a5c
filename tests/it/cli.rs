//! The `chainrc` binary driven as a user would: files in, output, exit codes.

use assert_cmd::Command;
use predicates::prelude::*;
use std::path::{Path, PathBuf};

fn chainrc() -> Command {
    let mut cmd = Command::cargo_bin("chainrc").unwrap();
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("NO_COLOR");
    cmd
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn compile_prints_the_ir() {
    let out = chainrc()
        .args(["compile", "examples/seed.chainr"])
        .assert()
        .success();
    let json: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(json["kind"], "Pipeline");
    assert_eq!(
        json["jobs"]["error"]["dependsOn"][0]["conditions"]["failure"],
        true
    );
}

#[test]
fn compile_writes_to_a_file_with_params() {
    let dir = tempfile::tempdir().unwrap();
    let src = write(
        dir.path(),
        "p.chainr",
        r#"pipeline p {
  param who: string = "world"
  param n: int = 1
  job a for i in 0..n { image = "busybox" run = "echo ${who} ${i}" }
}"#,
    );
    let out = dir.path().join("out.json");
    chainrc()
        .arg("compile")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .args(["-p", "who=chainr", "-p", "n=2"])
        .assert()
        .success()
        .stdout("");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
    assert_eq!(json["jobs"]["a-1"]["run"], "echo chainr 1");
    assert!(json["jobs"].get("a-2").is_none());
}

#[test]
fn compile_errors_go_to_stderr_with_codes_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let src = write(
        dir.path(),
        "bad.chainr",
        "pipeline p {\n  job a after b { image = \"busybox\" run = \"true\" }\n  job b after a { image = \"busybox\" run = \"true\" imag = \"x\" }\n}\n",
    );
    chainrc()
        .arg("compile")
        .arg(&src)
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains(
            "error[E0103]: dependency cycle: a → b → a",
        ))
        .stderr(predicate::str::contains(
            "error[E0200]: unknown field `imag`",
        ))
        .stderr(predicate::str::contains("help: did you mean `image`?"))
        .stderr(predicate::str::contains("2 errors"))
        // Not a terminal: no colour codes.
        .stderr(predicate::str::contains("\x1b[").not());
}

#[test]
fn color_always_colours_and_no_color_wins_over_auto() {
    let dir = tempfile::tempdir().unwrap();
    let src = write(
        dir.path(),
        "bad.chainr",
        "pipeline p { job a { image = \"busybox\" } }",
    );
    chainrc()
        .args(["--color", "always", "check"])
        .arg(&src)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("\x1b["));
    chainrc()
        .env("NO_COLOR", "1")
        .arg("check")
        .arg(&src)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("\x1b[").not());
}

#[test]
fn check_reports_every_file_and_only_reports() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(
        dir.path(),
        "good.chainr",
        "pipeline p { job a { image = \"busybox\" run = \"true\" } }",
    );
    let bad = write(
        dir.path(),
        "bad.json",
        r#"{"kind": "Pipeline", "jobs": {"a": {"image": "busybox", "run": "true", "dependsOn": [{"job": "ghost"}]}}}"#,
    );
    chainrc()
        .arg("check")
        .arg(&good)
        .arg(&bad)
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains(
            "error[E0901]: the job `a` depends on `ghost`, which does not exist",
        ))
        .stderr(predicate::str::contains(
            "checked 2 files: 1 error, 0 warnings",
        ));
    chainrc()
        .arg("check")
        .arg(&good)
        .arg("examples/seed.chainr")
        .assert()
        .success()
        .stderr(predicate::str::contains("checked 2 files: no problems"));
}

#[test]
fn ir_json_cycles_and_unknown_fields_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let cyclic = write(
        dir.path(),
        "cyclic.json",
        r#"{"kind": "Pipeline", "jobs": {
  "a": {"image": "busybox", "run": "true", "dependsOn": [{"job": "c"}]},
  "b": {"image": "busybox", "run": "true", "dependsOn": [{"job": "a"}]},
  "c": {"image": "busybox", "run": "true", "dependsOn": [{"job": "b"}]}
}}"#,
    );
    chainrc()
        .arg("compile")
        .arg(&cyclic)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("dependency cycle: a → c → b → a"));
    let unknown = write(
        dir.path(),
        "unknown.json",
        r#"{"kind": "Pipeline", "jobs": {"a": {"image": "busybox", "run": "true", "imagePolicy": "x"}}}"#,
    );
    chainrc()
        .arg("check")
        .arg(&unknown)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("unknown field `imagePolicy`"));
}

#[test]
fn the_original_json_compiles_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let original = r#"{
  "kind": "Pipeline",
  "jobs": {
    "first": {"image": "busybox", "run": "exit 0"},
    "second": {"image": "busybox", "run": "exit 0"},
    "success": {"dependsOn": [{"job": "first"}], "image": "busybox", "run": "exit 0"},
    "error": {"dependsOn": [{"job": "first", "conditions": {"failure": true}}], "image": "busybox", "run": "exit 0"}
  }
}"#;
    let path = write(dir.path(), "seed.json", original);
    let out = chainrc().arg("compile").arg(&path).assert().success();
    let ours: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let theirs: serde_json::Value = serde_json::from_str(original).unwrap();
    assert_eq!(ours, theirs);
}

#[test]
fn unreadable_files_and_bad_params_are_clear_errors() {
    chainrc()
        .args(["compile", "no/such/file.chainr"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "error: cannot read no/such/file.chainr",
        ));
    chainrc()
        .args(["compile", "examples/seed.chainr", "-p", "novalue"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("expected NAME=VALUE"));
    chainrc()
        .args(["compile", "examples/seed.chainr", "-p", "shards=3"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("error[E0306]"));
}

#[test]
fn help_version_completions_and_schema() {
    chainrc()
        .arg("--version")
        .assert()
        .success()
        .stdout(predicate::str::starts_with("chainrc "));
    for sub in ["compile", "check", "schema", "completions"] {
        chainrc()
            .args([sub, "--help"])
            .assert()
            .success()
            .stdout(predicate::str::contains("Usage: chainrc"));
    }
    chainrc()
        .args(["completions", "bash"])
        .assert()
        .success()
        .stdout(predicate::str::contains("_chainrc()"));
    let out = chainrc().arg("schema").assert().success();
    let schema: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(schema["title"], "chainr Pipeline IR");
}

#[test]
fn ir_json_duplicate_jobs_are_rejected_and_nulls_read_as_empty() {
    let dir = tempfile::tempdir().unwrap();
    let dup = write(
        dir.path(),
        "dup.json",
        r#"{"kind": "Pipeline", "jobs": {"a": {"image": "busybox", "run": "x"}, "a": {"image": "busybox", "run": "y"}}}"#,
    );
    chainrc()
        .arg("check")
        .arg(&dup)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("the job `a` is defined twice"));
    // Go clients of the original send `null` for an empty list.
    let nulls = write(
        dir.path(),
        "nulls.json",
        r#"{"kind": "Pipeline", "jobs": {"a": {"image": "busybox", "run": "x", "dependsOn": null, "env": null}}}"#,
    );
    let out = chainrc().arg("compile").arg(&nulls).assert().success();
    let json: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(
        json["jobs"]["a"],
        serde_json::json!({"image": "busybox", "run": "x"})
    );
}

#[test]
fn fmt_rewrites_files_and_check_reports_them() {
    let dir = tempfile::tempdir().unwrap();
    let messy = write(
        dir.path(),
        "messy.chainr",
        "pipeline p{job a{image=\"busybox\";run=\"true\"} // a\n}\n",
    );
    let tidy = write(
        dir.path(),
        "tidy.chainr",
        "pipeline p {\n  job a { image = \"busybox\", run = \"true\" }\n}\n",
    );
    chainrc()
        .args(["fmt", "--check"])
        .arg(&messy)
        .arg(&tidy)
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("would reformat")
                .and(predicate::str::contains("messy.chainr")),
        )
        .stderr(predicate::str::contains("tidy.chainr").not());
    chainrc().arg("fmt").arg(&messy).assert().success();
    assert_eq!(
        std::fs::read_to_string(&messy).unwrap(),
        "pipeline p {\n  job a { image = \"busybox\", run = \"true\" }  // a\n}\n"
    );
    chainrc()
        .args(["fmt", "--check"])
        .arg(&messy)
        .arg(&tidy)
        .assert()
        .success();
    let broken = write(
        dir.path(),
        "broken.chainr",
        "pipeline p { job a { image: \"x\" } }",
    );
    chainrc()
        .arg("fmt")
        .arg(&broken)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("error[E0001]"))
        .stderr(predicate::str::contains("was not formatted"));
    assert_eq!(
        std::fs::read_to_string(&broken).unwrap(),
        "pipeline p { job a { image: \"x\" } }"
    );
}

#[test]
fn params_on_ir_and_a_run_that_cannot_start_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let ir = write(
        dir.path(),
        "p.json",
        r#"{"kind": "Pipeline", "jobs": {"a": {"image": "busybox", "run": "true"}}}"#,
    );
    for sub in ["compile", "check", "run"] {
        chainrc()
            .arg(sub)
            .arg(&ir)
            .args(["-p", "x=1"])
            .assert()
            .code(2)
            .stderr(predicate::str::contains(
                "is IR, whose values are already concrete",
            ));
    }
    let not_a_dir = write(dir.path(), "file", "");
    chainrc()
        .args(["run", "--logs"])
        .arg(not_a_dir.join("logs"))
        .arg(&ir)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot create the log directory"));
}
