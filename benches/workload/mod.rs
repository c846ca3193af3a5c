//! Benchmark workloads: the DAG shapes of bench/gen_dag.py (chain, wide, layered), written in
//! equivalent forms for chainr and for the reference tools. Every job runs `true`.

use std::fmt::Write as _;
use std::path::Path;

pub struct Dag {
    pub names: Vec<String>,
    pub deps: Vec<Vec<usize>>,
}

/// `layered`: 20 layers, each job after up to 3 distinct jobs of the layer before (a fixed
/// pseudo-random choice); `chain`: each job after the one before; `wide`: no dependencies.
pub fn dag(shape: &str, n: usize) -> Dag {
    let names: Vec<String> = (0..n).map(|i| format!("j{i:05}")).collect();
    let per = (n / 20).max(1);
    let mut state: u64 = 7;
    let mut next = |bound: usize| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as usize % bound
    };
    let deps = (0..n)
        .map(|i| match shape {
            "chain" => {
                if i > 0 {
                    vec![i - 1]
                } else {
                    Vec::new()
                }
            }
            "wide" => Vec::new(),
            "layered" => {
                let layer = i / per;
                let mut d = Vec::new();
                if layer > 0 {
                    let prev = (layer - 1) * per;
                    while d.len() < 3.min(per) {
                        let pick = prev + next(per);
                        if !d.contains(&pick) {
                            d.push(pick);
                        }
                    }
                    d.sort_unstable();
                }
                d
            }
            other => panic!("unknown shape {other}"),
        })
        .collect();
    Dag { names, deps }
}

impl Dag {
    fn dep_names(&self, i: usize) -> Vec<&str> {
        self.deps[i]
            .iter()
            .map(|&d| self.names[d].as_str())
            .collect()
    }

    pub fn chainr(&self) -> String {
        let mut s = String::from("pipeline bench {\n");
        for (i, name) in self.names.iter().enumerate() {
            let d = self.dep_names(i);
            let after = if d.is_empty() {
                String::new()
            } else {
                format!(" after {}", d.join(", "))
            };
            let _ = writeln!(
                s,
                "  job {name}{after} {{ image = \"busybox\"  run = \"true\" }}"
            );
        }
        s.push_str("}\n");
        s
    }

    pub fn ir_json(&self) -> String {
        let mut jobs = serde_json::Map::new();
        for (i, name) in self.names.iter().enumerate() {
            let mut job = serde_json::json!({"image": "busybox", "run": "true"});
            let d = self.dep_names(i);
            if !d.is_empty() {
                job["dependsOn"] = d.iter().map(|d| serde_json::json!({"job": d})).collect();
            }
            jobs.insert(name.clone(), job);
        }
        serde_json::to_string_pretty(&serde_json::json!({"kind": "Pipeline", "jobs": jobs}))
            .unwrap()
    }

    pub fn jsonnet(&self) -> String {
        let mut s = String::from(
            "local job(deps) = { image: 'busybox', run: 'true' } + (if std.length(deps) > 0 then { dependsOn: [{ job: d } for d in deps] } else {});\n{ kind: 'Pipeline', jobs: {\n",
        );
        for (i, name) in self.names.iter().enumerate() {
            let _ = writeln!(
                s,
                "  {name}: job({}),",
                serde_json::to_string(&self.dep_names(i)).unwrap()
            );
        }
        s.push_str("} }\n");
        s
    }

    pub fn makefile(&self) -> String {
        let mut s = format!(
            ".PHONY: all {}\nall: {}\n",
            self.names.join(" "),
            self.names.join(" ")
        );
        for (i, name) in self.names.iter().enumerate() {
            let _ = writeln!(s, "{name}: {}\n\t@true", self.dep_names(i).join(" "));
        }
        s
    }

    pub fn ninja(&self) -> String {
        let mut s = String::from("rule t\n  command = true\n");
        for (i, name) in self.names.iter().enumerate() {
            let d = self.dep_names(i);
            let extra = if d.is_empty() {
                String::new()
            } else {
                format!(
                    " | {}",
                    d.iter()
                        .map(|d| format!("{d}.x"))
                        .collect::<Vec<_>>()
                        .join(" ")
                )
            };
            let _ = writeln!(s, "build {name}.x: t{extra}");
        }
        let all: Vec<String> = self.names.iter().map(|n| format!("{n}.x")).collect();
        let _ = writeln!(s, "default {}", all.join(" "));
        s
    }

    pub fn write_all(&self, dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("pipeline.chainr"), self.chainr()).unwrap();
        std::fs::write(dir.join("pipeline.json"), self.ir_json()).unwrap();
        std::fs::write(dir.join("pipeline.jsonnet"), self.jsonnet()).unwrap();
        std::fs::write(dir.join("Makefile"), self.makefile()).unwrap();
        std::fs::write(dir.join("build.ninja"), self.ninja()).unwrap();
    }
}
