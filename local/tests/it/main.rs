#![cfg(target_os = "linux")]
//! The local executor on real processes: output passed on while an attempt runs and when it
//! ends, exit codes and signals, stops, and a resumed attempt that first kills what an earlier
//! start left running.

use chainr_compiler::ir;
use chainr_local::{LocalExecutor, LocalOptions};
use chainr_runtime::event::Reason;
use chainr_runtime::scheduler::AttemptEnd;
use chainr_runtime::{AttemptResult, AttemptSpec, ExecEvent, Executor};
use std::time::Duration;

fn spec(run: &str) -> ir::Job {
    ir::Job::new("busybox", run)
}

/// Attempt 1 of job `j` of run `run`. Each test uses a run id of its own: a resumed start kills
/// every process that names its attempt, and tests run side by side in one process.
fn attempt<'a>(run: &'a str, job: &'a ir::Job, resume: Option<Option<&'a str>>) -> AttemptSpec<'a> {
    AttemptSpec {
        run_id: run,
        job: 0,
        name: "j",
        attempt: 1,
        spec: job,
        extra_env: &[],
        resume,
    }
}

/// Everything the executor reports until the attempt ends: its output and its result.
async fn until_end(ex: &mut LocalExecutor) -> (String, Vec<usize>, AttemptResult) {
    let mut output = Vec::new();
    let mut pieces = Vec::new();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(20), ex.next())
            .await
            .expect("the attempt ends")
            .expect("the executor reports");
        match event {
            ExecEvent::Output { bytes, .. } => {
                pieces.push(bytes.len());
                output.extend(bytes);
            }
            ExecEvent::Ended { result, .. } => {
                return (String::from_utf8(output).unwrap(), pieces, result)
            }
        }
    }
}

fn alive(pid: i32) -> bool {
    // A zombie still answers kill(0); a process is alive when its state is not Z.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z'))
        })
        .unwrap_or(false)
}

/// The leader's pid in an attempt's handle (`PID:BOOT`), once the process runs its command
/// (before its exec, a child's environment is still the parent's: it does not name its attempt
/// yet, and a resumed start would rightly not recognise it).
fn pid_of(handle: &str) -> i32 {
    let pid: i32 = handle.split(':').next().unwrap().parse().unwrap();
    for _ in 0..250 {
        // A process that is gone already (a quick command) has nothing to wait for.
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            break;
        };
        if environ
            .split(|b| *b == 0)
            .any(|v| v.starts_with(b"CHAINR_JOB="))
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    pid
}

/// The live (not zombie) processes of process group `pgid`.
fn group(pgid: i32) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // After the command's closing parenthesis: state, ppid, pgrp, ...
        let fields: Vec<&str> = stat
            .rsplit_once(") ")
            .map_or(Vec::new(), |(_, rest)| rest.split(' ').collect());
        if fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string() {
            found.push(pid);
        }
    }
    found
}

#[tokio::test]
async fn output_and_exit_code_are_reported() {
    let mut ex = LocalExecutor::new(LocalOptions { follow: None }).unwrap();
    let job = spec("echo one; echo two >&2; exit 3");
    let handle = ex
        .start(attempt("output_and_exit_code_are_reported", &job, None))
        .await
        .unwrap();
    assert!(pid_of(&handle.unwrap()) > 1);
    let (out, _, result) = until_end(&mut ex).await;
    assert_eq!(out, "one\ntwo\n");
    assert_eq!(result.end, AttemptEnd::Failed);
    assert_eq!(result.exit_code, Some(3));
    assert_eq!(result.reason, Some(Reason::ExitCode(3)));
}

#[tokio::test]
async fn output_is_passed_on_while_the_attempt_runs() {
    let mut ex = LocalExecutor::new(LocalOptions {
        follow: Some(Duration::from_millis(50)),
    })
    .unwrap();
    let job = spec("echo early; sleep 1; echo late");
    ex.start(attempt(
        "output_is_passed_on_while_the_attempt_runs",
        &job,
        None,
    ))
    .await
    .unwrap();
    let first = tokio::time::timeout(Duration::from_millis(800), ex.next())
        .await
        .expect("output arrives before the attempt ends");
    assert_eq!(
        first,
        Some(ExecEvent::Output {
            job: 0,
            attempt: 1,
            bytes: b"early\n".to_vec()
        })
    );
    let (rest, _, result) = until_end(&mut ex).await;
    assert_eq!(rest, "late\n");
    assert_eq!(result.end, AttemptEnd::Succeeded);
}

#[tokio::test]
async fn a_stop_ends_the_whole_group() {
    let mut ex = LocalExecutor::new(LocalOptions { follow: None }).unwrap();
    let job = spec("sleep 30 & sleep 30; wait");
    let handle = ex
        .start(attempt("a_stop_ends_the_whole_group", &job, None))
        .await
        .unwrap()
        .unwrap();
    let pid = pid_of(&handle);
    tokio::time::sleep(Duration::from_millis(200)).await;
    ex.stop(0, 1, false).await;
    let (_, _, result) = until_end(&mut ex).await;
    assert_eq!(result.reason, Some(Reason::Signal(15)));
    let mut left = group(pid);
    for _ in 0..50 {
        if left.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        left = group(pid);
    }
    assert_eq!(left, Vec::<i32>::new(), "processes of the group survived");
}

#[tokio::test]
async fn an_abandoned_attempt_is_killed_and_a_stale_handle_kills_nothing() {
    let mut first = LocalExecutor::new(LocalOptions { follow: None }).unwrap();
    let job = spec("sleep 30");
    let handle = first
        .start(attempt(
            "an_abandoned_attempt_is_killed_and_a_stale_handle_kills_nothing",
            &job,
            None,
        ))
        .await
        .unwrap()
        .unwrap();
    let old = pid_of(&handle);
    std::mem::forget(first);
    // Another run's attempt, whose pid a stale handle names (a pid reused, say).
    let mut other = LocalExecutor::new(LocalOptions { follow: None }).unwrap();
    let mut elsewhere = attempt(
        "an_abandoned_attempt_is_killed_and_a_stale_handle_kills_nothing",
        &job,
        None,
    );
    elsewhere.run_id = "an_abandoned_attempt_is_killed_and_a_stale_handle_kills_nothing-other";
    let other_handle = other.start(elsewhere).await.unwrap().unwrap();
    let mut second = LocalExecutor::new(LocalOptions { follow: None }).unwrap();
    second
        .abandon(attempt(
            "an_abandoned_attempt_is_killed_and_a_stale_handle_kills_nothing",
            &job,
            Some(Some(&other_handle)),
        ))
        .await;
    assert!(
        alive(pid_of(&other_handle)),
        "a process that is not the attempt's was killed"
    );
    second
        .abandon(attempt(
            "an_abandoned_attempt_is_killed_and_a_stale_handle_kills_nothing",
            &job,
            Some(Some(&handle)),
        ))
        .await;
    assert!(!alive(old), "the abandoned attempt still runs");
    other.stop(0, 1, true).await;
}

#[tokio::test]
async fn a_resumed_attempt_kills_what_its_earlier_start_left_running() {
    // The first executor stands for a worker that died: its attempt is still running.
    let mut first = LocalExecutor::new(LocalOptions { follow: None }).unwrap();
    let job = spec("sleep 30");
    let handle = first
        .start(attempt(
            "a_resumed_attempt_kills_what_its_earlier_start_left_running",
            &job,
            None,
        ))
        .await
        .unwrap()
        .unwrap();
    let old = pid_of(&handle);
    assert!(alive(old));
    std::mem::forget(first);
    let mut second = LocalExecutor::new(LocalOptions { follow: None }).unwrap();
    let quick = spec("echo again");
    second
        .start(attempt(
            "a_resumed_attempt_kills_what_its_earlier_start_left_running",
            &quick,
            Some(Some(&handle)),
        ))
        .await
        .unwrap();
    let (out, _, result) = until_end(&mut second).await;
    assert_eq!(out, "again\n");
    assert_eq!(result.end, AttemptEnd::Succeeded);
    let gone = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        !alive(old)
    });
    assert!(gone, "the earlier start of the attempt still runs");
}

#[tokio::test]
async fn a_start_that_was_never_recorded_is_found_by_its_identity_and_killed() {
    // The first worker started the attempt and died before recording its handle.
    let mut first = LocalExecutor::new(LocalOptions { follow: None }).unwrap();
    let job = spec("sleep 30");
    let handle = first
        .start(attempt(
            "a_start_that_was_never_recorded_is_found_by_its_identity_and_killed",
            &job,
            None,
        ))
        .await
        .unwrap()
        .unwrap();
    let old = pid_of(&handle);
    std::mem::forget(first);
    // Another attempt of another run is left alone.
    let mut other = LocalExecutor::new(LocalOptions { follow: None }).unwrap();
    let mut elsewhere = attempt(
        "a_start_that_was_never_recorded_is_found_by_its_identity_and_killed",
        &job,
        None,
    );
    elsewhere.run_id = "a_start_that_was_never_recorded_is_found_by_its_identity_and_killed-other";
    let bystander = pid_of(&other.start(elsewhere).await.unwrap().unwrap());
    let mut second = LocalExecutor::new(LocalOptions { follow: None }).unwrap();
    let quick = spec("echo again");
    second
        .start(attempt(
            "a_start_that_was_never_recorded_is_found_by_its_identity_and_killed",
            &quick,
            Some(None),
        ))
        .await
        .unwrap();
    let (out, _, _) = until_end(&mut second).await;
    assert_eq!(out, "again\n");
    let gone = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        !alive(old)
    });
    assert!(gone, "the unrecorded start still runs");
    assert!(alive(bystander), "another run's attempt was killed");
    other.stop(0, 1, true).await;
}
