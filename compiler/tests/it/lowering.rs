//! What the compiler emits means what the source says: conditions, fan-out, defaults,
//! templates, params and strings, each checked on the IR.

use chainr_compiler::{compile, render, Params};
use serde_json::{json, Value};

/// Compiles `jobs` inside a pipeline (with a default image) and returns the IR jobs as JSON.
fn ir_with(jobs: &str, params: &[(&str, &str)]) -> Value {
    let src = format!("pipeline t {{\n  defaults {{ image = \"busybox\" }}\n{jobs}\n}}\n");
    let params = Params(
        params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    let out = compile(&src, &params);
    assert!(
        !out.has_errors(),
        "{}",
        render(&out.diagnostics, "t.chainr", &src, false)
    );
    serde_json::to_value(out.pipeline.unwrap()).unwrap()["jobs"].clone()
}

fn ir(jobs: &str) -> Value {
    ir_with(jobs, &[])
}

const AB: &str = "job a { run = \"a\" }\njob b { run = \"b\" }\n";

#[test]
fn a_conjunction_of_successes_and_failures_is_the_original_form() {
    let jobs = ir(&format!("{AB}job c after a, b.failed {{ run = \"c\" }}"));
    assert_eq!(
        jobs["c"]["dependsOn"],
        json!([{"job": "a"}, {"job": "b", "conditions": {"failure": true}}])
    );
    assert!(jobs["c"].get("condition").is_none());
    let same = ir(&format!(
        "{AB}job c after a.succeeded && b.failed {{ run = \"c\" }}"
    ));
    assert_eq!(same["c"], jobs["c"]);
}

#[test]
fn a_dependency_named_twice_is_listed_once() {
    let jobs = ir(&format!(
        "{AB}job c after a, a.succeeded, b, a {{ run = \"c\" }}"
    ));
    assert_eq!(jobs["c"]["dependsOn"], json!([{"job": "a"}, {"job": "b"}]));
}

#[test]
fn other_conditions_become_a_condition_tree() {
    let jobs = ir(&format!(
        "{AB}job c after a || !b.failed {{ run = \"c\" }}\njob d after a, (b.errored || b.cancelled), a.done {{ run = \"d\" }}"
    ));
    assert_eq!(
        jobs["c"]["condition"],
        json!({"any": [{"succeeded": "a"}, {"not": {"failed": "b"}}]})
    );
    assert_eq!(jobs["d"]["dependsOn"], json!([{"job": "a"}]));
    assert_eq!(
        jobs["d"]["condition"],
        json!({"all": [{"any": [{"errored": "b"}, {"cancelled": "b"}]}, {"done": "a"}]})
    );
}

#[test]
fn allow_failure_makes_a_bare_reference_accept_failure() {
    let jobs = ir(
        "job a { run = \"a\" allow_failure = true }\njob b { run = \"b\" }\n\
                   job c after a { run = \"c\" }\njob d after a.succeeded { run = \"d\" }\n\
                   job e after a || b { run = \"e\" }",
    );
    // `dependsOn` means "after a" (accepting an allowed failure); `a.succeeded` stays strict.
    assert_eq!(jobs["c"]["dependsOn"], json!([{"job": "a"}]));
    assert_eq!(jobs["d"]["condition"], json!({"succeeded": "a"}));
    assert_eq!(
        jobs["e"]["condition"],
        json!({"any": [{"any": [{"succeeded": "a"}, {"failed": "a"}, {"errored": "a"}]}, {"succeeded": "b"}]})
    );
}

#[test]
fn fan_out_instances_and_group_conditions() {
    let jobs = ir("job s for i in 0..3 { run = \"s ${i}\" }\n\
                   job all after s { run = \"all\" }\n\
                   job any-failed after s.failed { run = \"f\" }\n\
                   job errored after s.errored { run = \"e\" }");
    assert_eq!(jobs["s-2"]["run"], "s 2");
    assert_eq!(jobs["s-0"]["group"], "s");
    assert!(jobs.get("s-3").is_none());
    assert_eq!(
        jobs["all"]["dependsOn"],
        json!([{"job": "s-0"}, {"job": "s-1"}, {"job": "s-2"}])
    );
    assert_eq!(
        jobs["any-failed"]["condition"],
        json!({"any": [{"failed": "s-0"}, {"failed": "s-1"}, {"failed": "s-2"}]})
    );
    assert_eq!(
        jobs["errored"]["condition"],
        json!({"all": [
            {"not": {"any": [{"failed": "s-0"}, {"failed": "s-1"}, {"failed": "s-2"}]}},
            {"any": [{"errored": "s-0"}, {"errored": "s-1"}, {"errored": "s-2"}]}
        ]})
    );
}

#[test]
fn fan_out_over_a_list_param_names_instances_by_value() {
    let src = "param tables: list<string> = [\"users\", \"orders\"]\njob load for t in tables { run = \"load ${t}\" }";
    let jobs = ir(src);
    assert_eq!(jobs["load-users"]["run"], "load users");
    assert_eq!(jobs["load-orders"]["run"], "load orders");
    let jobs = ir_with(src, &[("tables", "a,b,c.d")]);
    let names: Vec<&String> = jobs.as_object().unwrap().keys().collect();
    assert_eq!(names, ["load-a", "load-b", "load-c-d"]);
}

#[test]
fn defaults_templates_and_jobs_layer_in_that_order() {
    let src = "template t(cmd: string, cpu: quantity = 250m) {\n  run = \"do ${cmd}\"\n  env { FROM = \"template\", T = \"1\" }\n  resources { cpu = cpu }\n  retries = 2\n}\n\
               job x = t(cmd = \"it\") { retries = 5  env { FROM = \"job\" } }\n\
               job y = t(cmd = \"other\", cpu = 2) after x";
    let src = format!("{src}\n");
    let out = compile(
        &format!("pipeline p {{\n defaults {{ image = \"alpine:3.20\" env {{ FROM = \"defaults\", D = \"1\" }} timeout = 10m }}\n{src}}}"),
        &Params::default(),
    );
    assert!(!out.has_errors(), "{:?}", out.diagnostics);
    let jobs = serde_json::to_value(out.pipeline.unwrap()).unwrap()["jobs"].clone();
    assert_eq!(jobs["x"]["run"], "do it");
    assert_eq!(jobs["x"]["retries"], 5);
    assert_eq!(jobs["x"]["timeout"], "10m");
    assert_eq!(jobs["x"]["env"], json!({"FROM": "job", "D": "1", "T": "1"}));
    assert_eq!(jobs["x"]["resources"], json!({"cpu": "250m"}));
    assert_eq!(jobs["y"]["resources"], json!({"cpu": "2"}));
    assert_eq!(jobs["y"]["retries"], 2);
    assert_eq!(jobs["y"]["dependsOn"], json!([{"job": "x"}]));
}

#[test]
fn params_take_defaults_or_command_line_values_of_their_type() {
    let src = "param n: int = 2\nparam t: duration = 90s\nparam mem: quantity = 64Mi\nparam dry: bool = false\nparam who: string\n\
               job a { run = \"echo ${who} ${n} ${dry}\" timeout = t resources { memory = mem } }";
    let jobs = ir_with(src, &[("who", "ops"), ("t", "1h30m")]);
    assert_eq!(jobs["a"]["run"], "echo ops 2 false");
    assert_eq!(jobs["a"]["timeout"], "1h30m");
    assert_eq!(jobs["a"]["resources"]["memory"], "64Mi");
}

#[test]
fn strings_escapes_interpolation_and_blocks() {
    let jobs = ir("param who: string = \"you\"\n\
                   job a { run = \"tab\\there \\\"${who}\\\" $${HOME} \\${x} $HOME\" }\n\
                   job b { run = \"\"\"\n      if true; then\n        echo ${who}\n      fi\n    \"\"\" }");
    assert_eq!(jobs["a"]["run"], "tab\there \"you\" ${HOME} ${x} $HOME");
    assert_eq!(jobs["b"]["run"], "if true; then\n  echo you\nfi");
}

#[test]
fn settings_and_finally() {
    let src = "pipeline p {\n  description = \"d\"\n  fail_fast = true\n  concurrency = 3\n  job a { image = \"busybox\" run = \"a\" }\n  finally { job r after a.done { image = \"busybox\" run = \"r\" } }\n}\n";
    let out = compile(src, &Params::default());
    let p = serde_json::to_value(out.pipeline.unwrap()).unwrap();
    assert_eq!(p["description"], "d");
    assert_eq!(p["failFast"], true);
    assert_eq!(p["concurrency"], 3);
    assert_eq!(p["jobs"]["r"]["finally"], true);
    assert_eq!(p["jobs"]["r"]["condition"], json!({"done": "a"}));
}

#[test]
fn defaults_see_params_not_the_loop_variable() {
    let out = compile(
        "pipeline p {\n  param region: string = \"eu\"\n  defaults { image = \"busybox\" env { REGION = region } }\n  job x for region in [\"us\", \"ap\"] { run = \"deploy\" }\n}\n",
        &Params::default(),
    );
    assert!(!out.has_errors(), "{:?}", out.diagnostics);
    let jobs = serde_json::to_value(out.pipeline.unwrap()).unwrap()["jobs"].clone();
    assert_eq!(jobs["x-us"]["env"]["REGION"], "eu");
    assert_eq!(jobs["x-ap"]["env"]["REGION"], "eu");
}

#[test]
fn allow_failure_is_per_instance_in_a_fan_out() {
    let jobs = ir("job s for b in [false, true] { run = \"r\" allow_failure = b }\njob x after s || s.skipped { run = \"x\" }");
    assert_eq!(
        jobs["x"]["condition"],
        json!({"any": [
            {"all": [{"succeeded": "s-false"}, {"any": [{"succeeded": "s-true"}, {"failed": "s-true"}, {"errored": "s-true"}]}]},
            {"all": [{"skipped": "s-false"}, {"skipped": "s-true"}]}
        ]})
    );
}

/// What a user can write that once panicked or gave the wrong diagnostic.
#[test]
fn edge_cases_get_the_right_diagnostic() {
    let codes = |src: &str| {
        let out = compile(&format!("pipeline p {{\n{src}\n}}\n"), &Params::default());
        out.diagnostics.iter().map(|d| d.code).collect::<Vec<_>>()
    };
    // A range bound that overflows a subtraction: an empty range, not a panic.
    assert_eq!(
        codes("job a for i in 1..-9223372036854775808 { image = \"busybox\" run = \"x\" }"),
        ["E0501"]
    );
    // A nested list param fits a nested list parameter, even with an empty first element.
    assert_eq!(
        codes("param l: list<list<int>> = [[], [1]]\ntemplate t(x: list<list<int>>) { image = \"busybox\" run = \"echo\" }\njob j = t(x = l)"),
        Vec::<&str>::new()
    );
    // Fan-out values are scalars.
    assert_eq!(codes("param l: list<list<string>> = [[\"a\"]]\njob a for t in l { image = \"busybox\" run = \"x\" }"), ["E0500"]);
    // A template's defaults are checked even when no job uses it (and the template is unused).
    assert_eq!(
        codes("template t(n: int = \"bad\") { image = \"busybox\" run = \"x\" }"),
        ["W0002", "E0203"]
    );
    // An integer too large for 64 bits is out of range, not of the wrong type.
    assert_eq!(
        codes("job a { image = \"busybox\" run = \"x\" retries = 99999999999999999999 }"),
        ["E0207"]
    );
}

#[test]
fn a_param_used_in_its_own_default_says_so() {
    let out = compile(
        "pipeline p {\n  param a: int = a\n  job j { image = \"busybox\" run = \"${a}\" }\n}\n",
        &Params::default(),
    );
    let d = out.diagnostics.iter().find(|d| d.code == "E0309").unwrap();
    assert_eq!(d.labels[0].message, "used in its own default");
}

/// Kubernetes names carry a hash of the whole job name, so names that differ only in case or in
/// `_` and `-` get distinct Jobs and compile; only names whose derived Kubernetes names really
/// are equal collide (E0105 in source, E0907 in IR JSON).
#[test]
fn only_real_kubernetes_name_collisions_are_errors() {
    let jobs = ir(
        "job build_it { run = \"a\" }\njob build-it { run = \"b\" }\njob Build-It { run = \"c\" }",
    );
    assert_eq!(jobs.as_object().unwrap().len(), 3);
    let ir_json = r#"{"kind": "Pipeline", "jobs": {"my_job": {"image": "busybox", "run": "a"}, "my-job": {"image": "busybox", "run": "b"}}}"#;
    let out = chainr_compiler::compile_json(ir_json);
    assert!(out.diagnostics.is_empty(), "{:?}", out.diagnostics);

    // Two names that agree on their first 27 characters and whose hashes collide.
    let (a, b) = (
        "export_customer_orders_to_warehouse_32879",
        "export_customer_orders_to_warehouse_41464",
    );
    assert_eq!(
        chainr_compiler::names::job_object_name("run", a, 1),
        chainr_compiler::names::job_object_name("run", b, 1)
    );
    let src = format!(
        "pipeline t {{\n  defaults {{ image = \"busybox\" }}\n  job {a} {{ run = \"a\" }}\n  job {b} {{ run = \"b\" }}\n}}\n"
    );
    let codes: Vec<&str> = compile(&src, &Params::default())
        .diagnostics
        .iter()
        .map(|d| d.code)
        .collect();
    assert_eq!(codes, ["E0105"]);
    let ir_json = format!(
        r#"{{"kind": "Pipeline", "jobs": {{"{a}": {{"image": "busybox", "run": "a"}}, "{b}": {{"image": "busybox", "run": "b"}}}}}}"#
    );
    let codes: Vec<&str> = chainr_compiler::compile_json(&ir_json)
        .diagnostics
        .iter()
        .map(|d| d.code)
        .collect();
    assert_eq!(codes, ["E0907"]);
}

#[test]
fn what_a_job_waits_for_reads_in_the_words_of_the_language() {
    let src = format!(
        "pipeline t {{\n  defaults {{ image = \"busybox\" }}\n{AB}job c after a, b.failed {{ run = \"c\" }}\njob d after a, (b.errored || b.cancelled), !(a.done && b.skipped) {{ run = \"d\" }}\njob e after b.errored || b.done && a {{ run = \"e\" }}\n}}\n"
    );
    let pipeline = compile(&src, &Params::default()).pipeline.unwrap();
    let text = |name: &str| pipeline.jobs[name].condition_text();
    assert_eq!(text("a"), None);
    assert_eq!(text("c").as_deref(), Some("a && b.failed"));
    assert_eq!(
        text("d").as_deref(),
        Some("a && (b.errored || b.cancelled) && !(a.done && b.skipped)")
    );
    assert_eq!(
        text("e").as_deref(),
        Some("b.errored || b.done && a.succeeded")
    );
}
