//! The conformance suite of [`Store`]: what every implementation must do, as async functions
//! that panic on a violation. [`store_conformance!`](crate::store_conformance) turns them into
//! one test each for an implementation:
//!
//! ```text
//! chainr_runtime::store_conformance!(async { Box::new(MyStore::open_for_tests().await) });
//! ```
//!
//! Lease expiry is tested with real time and short leases (a few hundred milliseconds).

use super::{Cursor, ListQuery, NewRun, Store, StoreError, StoredRun};
use crate::event::{EventKind, RunEvent};
use crate::log::{LogKey, LogSink, MemoryLogs};
use crate::record::Status;
use crate::scheduler::{AttemptEnd, JobId, RunOutcome};
use crate::worker::{work, Held, InstantExecutors, WorkerOptions};
use chainr_compiler::ir;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A pipeline of three jobs named `NAME`.
pub fn pipeline(name: &str) -> ir::Pipeline {
    let src = format!(
        "pipeline {name} {{\n  job a {{ image = \"busybox\" run = \"true\" }}\n  job b after a {{ image = \"busybox\" run = \"true\" }}\n  job c after b {{ image = \"busybox\" run = \"true\" }}\n}}\n"
    );
    let out = chainr_compiler::compile(&src, &Default::default());
    out.pipeline.expect("the conformance pipeline compiles")
}

pub fn new_run(id: &str, pipeline_name: &str) -> NewRun {
    NewRun {
        id: id.to_string(),
        pipeline: pipeline(pipeline_name),
        submitter: Some("tester".into()),
        created_at: SystemTime::now(),
        source: None,
    }
}

fn event(seq: u64, kind: EventKind) -> RunEvent {
    RunEvent {
        seq,
        at: crate::event::millis::from_millis(1_700_000_000_000 + seq),
        kind,
    }
}

/// Events that start the run and its job `job`.
pub fn started(from: u64, job: JobId) -> Vec<RunEvent> {
    vec![
        event(from, EventKind::RunStarted { resumed: false }),
        event(
            from + 1,
            EventKind::AttemptStarted {
                job,
                attempt: 1,
                handle: Some("h".into()),
            },
        ),
    ]
}

const TTL: Duration = Duration::from_secs(30);
const SHORT: Duration = Duration::from_millis(300);

pub async fn a_created_run_reads_back_pending(store: &dyn Store) {
    store.create(new_run("r1", "nightly")).await.unwrap();
    let got = store.get("r1").await.unwrap().expect("the run is stored");
    assert_eq!(got.run.metadata.uid, "r1");
    assert_eq!(got.run.status, Status::Pending);
    assert_eq!(got.run.jobs.len(), 3);
    assert_eq!(got.pipeline, pipeline("nightly"));
    assert_eq!(got.submitter.as_deref(), Some("tester"));
    assert_eq!(got.last_seq, 0);
    assert!(store.get("nope").await.unwrap().is_none());
    assert!(store.events("r1", 0, 100).await.unwrap().is_empty());
    assert!(matches!(
        store.events("nope", 0, 100).await,
        Err(StoreError::NotFound(_))
    ));
}

pub async fn an_id_is_taken_once(store: &dyn Store) {
    store.create(new_run("r1", "a")).await.unwrap();
    let again = store.create(new_run("r1", "b")).await;
    assert!(matches!(again, Err(StoreError::Exists(id)) if id == "r1"));
    let got = store.get("r1").await.unwrap().unwrap();
    assert_eq!(
        got.pipeline.name.as_deref(),
        Some("a"),
        "the first run is kept"
    );
}

pub async fn lists_are_newest_first_and_paged_by_cursor(store: &dyn Store) {
    for i in 0..7 {
        store.create(new_run(&format!("r{i}"), "p")).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut after: Option<Cursor> = None;
    let mut pages = 0;
    loop {
        let page = store
            .list(&ListQuery {
                limit: 3,
                after,
                ..Default::default()
            })
            .await
            .unwrap();
        pages += 1;
        assert!(page.runs.len() <= 3);
        seen.extend(page.runs.iter().map(|r| r.metadata.uid.clone()));
        match page.next {
            Some(c) => after = Some(c),
            None => break,
        }
        assert!(pages < 10, "the cursor does not advance");
    }
    let expected: Vec<String> = (0..7).rev().map(|i| format!("r{i}")).collect();
    assert_eq!(seen, expected);
    assert_eq!(pages, 3);
    // A run created after a page was read does not shift the next page.
    let first = store
        .list(&ListQuery {
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    store.create(new_run("late", "p")).await.unwrap();
    let second = store
        .list(&ListQuery {
            limit: 2,
            after: first.next,
            ..Default::default()
        })
        .await
        .unwrap();
    let ids: Vec<_> = second
        .runs
        .iter()
        .map(|r| r.metadata.uid.as_str())
        .collect();
    assert_eq!(ids, ["r4", "r3"]);
}

pub async fn lists_filter_by_status_and_pipeline(store: &dyn Store) {
    store.create(new_run("a1", "alpha")).await.unwrap();
    store.create(new_run("b1", "beta")).await.unwrap();
    store.create(new_run("a2", "alpha")).await.unwrap();
    let lease = store.claim("w", TTL).await.unwrap().unwrap();
    assert_eq!(lease.run, "a1");
    store.append(&lease, &started(1, 0)).await.unwrap();
    let by_pipeline = store
        .list(&ListQuery {
            limit: 10,
            pipeline: Some("alpha".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let ids: Vec<_> = by_pipeline
        .runs
        .iter()
        .map(|r| r.metadata.uid.as_str())
        .collect();
    assert_eq!(ids, ["a2", "a1"]);
    let running = store
        .list(&ListQuery {
            limit: 10,
            status: Some(Status::Running),
            ..Default::default()
        })
        .await
        .unwrap();
    let ids: Vec<_> = running
        .runs
        .iter()
        .map(|r| r.metadata.uid.as_str())
        .collect();
    assert_eq!(ids, ["a1"]);
    // A filtered page that is full still says whether more follow.
    let one = store
        .list(&ListQuery {
            limit: 1,
            pipeline: Some("alpha".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(one.next.is_some());
}

pub async fn each_run_is_claimed_by_one_worker_oldest_first(store: &dyn Store) {
    for id in ["r1", "r2", "r3"] {
        store.create(new_run(id, "p")).await.unwrap();
    }
    let mut got = Vec::new();
    for w in ["w1", "w2", "w3"] {
        let lease = store
            .claim(w, TTL)
            .await
            .unwrap()
            .expect("a run is waiting");
        assert_eq!(lease.worker, w);
        assert_eq!(lease.takeovers, 0);
        got.push(lease.run);
    }
    assert_eq!(got, ["r1", "r2", "r3"]);
    assert!(store.claim("w4", TTL).await.unwrap().is_none());
}

pub async fn appends_need_the_lease_and_fold_into_the_document(store: &dyn Store) {
    store.create(new_run("r1", "p")).await.unwrap();
    let lease = store.claim("w1", TTL).await.unwrap().unwrap();
    let mut forged = lease.clone();
    forged.token.push('x');
    assert!(matches!(
        store.append(&forged, &started(1, 0)).await,
        Err(StoreError::LeaseLost(_))
    ));
    assert_eq!(store.get("r1").await.unwrap().unwrap().last_seq, 0);
    store.append(&lease, &started(1, 0)).await.unwrap();
    let got = store.get("r1").await.unwrap().unwrap();
    assert_eq!(got.last_seq, 2);
    assert_eq!(got.run.status, Status::Running);
    assert_eq!(got.run.jobs[0].status, Status::Running);
    assert_eq!(got.run.jobs[0].attempts.len(), 1);
    let events = store.events("r1", 0, 100).await.unwrap();
    assert_eq!(events, started(1, 0));
    let tail = store.events("r1", 1, 100).await.unwrap();
    assert_eq!(tail, started(1, 0)[1..].to_vec());
    assert_eq!(store.events("r1", 0, 1).await.unwrap().len(), 1);
}

pub async fn appends_continue_the_numbering_or_store_nothing(store: &dyn Store) {
    store.create(new_run("r1", "p")).await.unwrap();
    let lease = store.claim("w1", TTL).await.unwrap().unwrap();
    store.append(&lease, &started(1, 0)).await.unwrap();
    // A gap, a repeat, and a batch that goes wrong in its middle: all refused whole.
    for bad in [started(4, 1), started(2, 1), {
        let mut b = started(3, 1);
        b[1].seq = 9;
        b
    }] {
        assert!(matches!(
            store.append(&lease, &bad).await,
            Err(StoreError::OutOfOrder { .. })
        ));
    }
    let got = store.get("r1").await.unwrap().unwrap();
    assert_eq!(got.last_seq, 2);
    assert_eq!(store.events("r1", 0, 100).await.unwrap().len(), 2);
}

pub async fn an_expired_lease_is_taken_over_and_fenced(store: &dyn Store) {
    store.create(new_run("r1", "p")).await.unwrap();
    let old = store.claim("w1", SHORT).await.unwrap().unwrap();
    assert!(
        store.claim("w2", TTL).await.unwrap().is_none(),
        "still held"
    );
    tokio::time::sleep(SHORT + Duration::from_millis(200)).await;
    let new = store.claim("w2", TTL).await.unwrap().expect("taken over");
    assert_eq!(new.run, "r1");
    assert_eq!(new.takeovers, 1);
    assert_ne!(new.token, old.token);
    assert!(matches!(
        store.append(&old, &started(1, 0)).await,
        Err(StoreError::LeaseLost(_))
    ));
    assert!(matches!(
        store.renew(&old, TTL).await,
        Err(StoreError::LeaseLost(_))
    ));
    assert!(matches!(
        store.release(&old).await,
        Err(StoreError::LeaseLost(_))
    ));
    store.append(&new, &started(1, 0)).await.unwrap();
    assert_eq!(store.get("r1").await.unwrap().unwrap().takeovers, 1);
}

pub async fn a_lease_that_expired_is_lost_even_before_a_takeover(store: &dyn Store) {
    store.create(new_run("r1", "p")).await.unwrap();
    let lease = store.claim("w1", SHORT).await.unwrap().unwrap();
    tokio::time::sleep(SHORT + Duration::from_millis(200)).await;
    assert!(matches!(
        store.append(&lease, &started(1, 0)).await,
        Err(StoreError::LeaseLost(_))
    ));
    assert!(matches!(
        store.renew(&lease, TTL).await,
        Err(StoreError::LeaseLost(_))
    ));
}

pub async fn a_renewed_lease_is_kept(store: &dyn Store) {
    // Renewed well within its time (a loaded machine may delay a renewal by a few hundred ms),
    // for longer than one lease lasts.
    let ttl = Duration::from_millis(800);
    store.create(new_run("r1", "p")).await.unwrap();
    let lease = store.claim("w1", ttl).await.unwrap().unwrap();
    for _ in 0..6 {
        tokio::time::sleep(ttl / 4).await;
        store.renew(&lease, ttl).await.unwrap();
    }
    assert!(store.claim("w2", TTL).await.unwrap().is_none());
    store.append(&lease, &started(1, 0)).await.unwrap();
}

pub async fn a_released_run_is_claimed_again_at_once(store: &dyn Store) {
    store.create(new_run("r1", "p")).await.unwrap();
    let lease = store.claim("w1", TTL).await.unwrap().unwrap();
    store.append(&lease, &started(1, 0)).await.unwrap();
    store.release(&lease).await.unwrap();
    assert!(matches!(
        store.append(&lease, &started(3, 1)).await,
        Err(StoreError::LeaseLost(_))
    ));
    let again = store.claim("w2", TTL).await.unwrap().expect("claimable");
    assert_eq!(again.run, "r1");
    assert_eq!(again.takeovers, 0, "a release is not a take-over");
    let events = store.events("r1", 0, 100).await.unwrap();
    assert_eq!(events.len(), 2, "the new holder sees what was written");
}

pub async fn a_finished_run_is_never_claimed_again(store: &dyn Store) {
    store.create(new_run("r1", "p")).await.unwrap();
    let lease = store.claim("w1", SHORT).await.unwrap().unwrap();
    let mut events = started(1, 0);
    events.push(event(
        3,
        EventKind::RunFinished {
            outcome: RunOutcome::Cancelled,
        },
    ));
    store.append(&lease, &events).await.unwrap();
    assert_eq!(
        store.get("r1").await.unwrap().unwrap().run.status,
        Status::Cancelled
    );
    store.release(&lease).await.unwrap();
    tokio::time::sleep(SHORT + Duration::from_millis(100)).await;
    assert!(store.claim("w2", TTL).await.unwrap().is_none());
}

pub async fn concurrent_claims_give_a_run_to_one_worker(store: &dyn Store) {
    store.create(new_run("r1", "p")).await.unwrap();
    let claims = (0..8).map(|i| async move { store.claim(&format!("w{i}"), TTL).await.unwrap() });
    let got: Vec<_> = futures_join_all(claims).await;
    assert_eq!(got.iter().filter(|l| l.is_some()).count(), 1, "{got:?}");
}

/// Awaits every future, concurrently (no dependency on a futures crate).
pub(crate) async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futures {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter()
        .map(|v| v.expect("every future finished"))
        .collect()
}

pub async fn every_takeover_counts_and_a_new_claim_has_a_new_token(store: &dyn Store) {
    store.create(new_run("r1", "p")).await.unwrap();
    let first = store.claim("w1", SHORT).await.unwrap().unwrap();
    tokio::time::sleep(SHORT + Duration::from_millis(200)).await;
    // The same worker, after its own lease expired, gets the run with a new token.
    let second = store.claim("w1", SHORT).await.unwrap().unwrap();
    assert_ne!(second.token, first.token);
    assert_eq!(second.takeovers, 1);
    assert!(matches!(
        store.append(&first, &started(1, 0)).await,
        Err(StoreError::LeaseLost(_))
    ));
    tokio::time::sleep(SHORT + Duration::from_millis(200)).await;
    let third = store.claim("w2", TTL).await.unwrap().unwrap();
    assert_eq!(third.takeovers, 2);
    assert_eq!(store.get("r1").await.unwrap().unwrap().takeovers, 2);
}

pub async fn a_finished_run_whose_lease_expires_is_not_claimed(store: &dyn Store) {
    store.create(new_run("r1", "p")).await.unwrap();
    let lease = store.claim("w1", SHORT).await.unwrap().unwrap();
    let mut events = started(1, 0);
    events.push(event(
        3,
        EventKind::RunFinished {
            outcome: RunOutcome::Succeeded,
        },
    ));
    store.append(&lease, &events).await.unwrap();
    // No release: the worker died after its last write.
    tokio::time::sleep(SHORT + Duration::from_millis(200)).await;
    assert!(store.claim("w2", TTL).await.unwrap().is_none());
}

pub async fn a_refused_append_changes_nothing(store: &dyn Store) {
    store.create(new_run("r1", "p")).await.unwrap();
    let lease = store.claim("w1", TTL).await.unwrap().unwrap();
    store.append(&lease, &started(1, 0)).await.unwrap();
    let before = store.get("r1").await.unwrap().unwrap();
    let mut forged = lease.clone();
    forged.token = "not-the-token".into();
    let mut finish = started(3, 1);
    finish.push(event(
        5,
        EventKind::RunFinished {
            outcome: RunOutcome::Failed,
        },
    ));
    assert!(store.append(&forged, &finish).await.is_err());
    assert!(store.append(&lease, &finish[1..]).await.is_err());
    let after = store.get("r1").await.unwrap().unwrap();
    assert_eq!(after.run, before.run);
    assert_eq!(after.last_seq, 2);
    let page = store
        .list(&ListQuery {
            limit: 10,
            status: Some(Status::Failed),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(page.runs.is_empty());
}

pub async fn a_long_run_reads_as_its_events_replayed(store: &dyn Store) {
    store.create(new_run("r", "p")).await.unwrap();
    let lease = store.claim("w", TTL).await.unwrap().unwrap();
    let mut events = started(1, 0);
    // More events than a store may keep between snapshots of the document, in odd batches.
    for seq in 3..=457 {
        events.push(event(
            seq,
            EventKind::AttemptStarted {
                job: (seq % 3) as usize,
                attempt: 1,
                handle: Some(format!("h{seq}")),
            },
        ));
    }
    for batch in events.chunks(7) {
        store.append(&lease, batch).await.unwrap();
    }
    let stored = store.get("r").await.unwrap().unwrap();
    // The document is the submitted one with every event folded in.
    assert_eq!(stored.run.metadata.submitter.as_deref(), Some("tester"));
    let mut replayed = crate::record::Run::replay("r".into(), &stored.pipeline, &events);
    replayed.metadata = stored.run.metadata.clone();
    assert_eq!(stored.run, replayed);
    assert_eq!(stored.last_seq, 457);
    let listed = store
        .list(&ListQuery {
            limit: 5,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.runs, vec![replayed]);
    assert_eq!(
        store.events("r", 450, 100).await.unwrap(),
        events[450..].to_vec()
    );
}

pub async fn runs_are_counted_by_status(store: &dyn Store) {
    finished_run(store, "c0", SystemTime::now()).await;
    for id in ["c1", "c2", "c3"] {
        store.create(new_run(id, "p")).await.unwrap();
    }
    let counts = store.counts().await.unwrap();
    let of = |status: Status| {
        counts
            .iter()
            .filter(|(s, _)| *s == status)
            .map(|(_, n)| *n)
            .sum::<u64>()
    };
    assert_eq!(of(Status::Pending), 3, "{counts:?}");
    assert_eq!(of(Status::Running), 0, "{counts:?}");
    assert_eq!(counts.iter().map(|(_, n)| n).sum::<u64>(), 4, "{counts:?}");
}

pub async fn cancel_requests_are_counted_until_the_run_finishes(store: &dyn Store) {
    store.create(new_run("r1", "p")).await.unwrap();
    assert_eq!(store.cancel_requests("r1").await.unwrap(), 0);
    assert_eq!(store.cancel("r1").await.unwrap(), 1);
    // Not fenced: a request counts while a worker holds the run.
    let lease = store.claim("w1", TTL).await.unwrap().unwrap();
    assert_eq!(store.cancel("r1").await.unwrap(), 2);
    assert_eq!(store.cancel_requests("r1").await.unwrap(), 2);
    for unknown in [
        store.cancel("nope").await,
        store.cancel_requests("nope").await,
    ] {
        assert!(matches!(unknown, Err(StoreError::NotFound(id)) if id == "nope"));
    }
    let mut events = started(1, 0);
    events.push(event(
        3,
        EventKind::RunFinished {
            outcome: RunOutcome::Cancelled,
        },
    ));
    store.append(&lease, &events).await.unwrap();
    match store.cancel("r1").await {
        Err(StoreError::Conflict(why)) => assert_eq!(why, "run r1 has finished"),
        other => panic!("a finished run was cancelled: {other:?}"),
    }
    assert_eq!(store.cancel_requests("r1").await.unwrap(), 2);
}

pub async fn the_feed_has_every_creation_and_event_in_order(store: &dyn Store) {
    assert_eq!(store.last_change().await.unwrap(), 0);
    assert!(store.feed(0, 10).await.unwrap().is_empty());
    store.create(new_run("r1", "p")).await.unwrap();
    store.create(new_run("r2", "p")).await.unwrap();
    let lease = store.claim("w", TTL).await.unwrap().unwrap();
    store.append(&lease, &started(1, 0)).await.unwrap();
    // Nothing for what was refused.
    let mut forged = lease.clone();
    forged.token.push('x');
    assert!(store.append(&forged, &started(3, 1)).await.is_err());
    assert!(store.create(new_run("r1", "again")).await.is_err());
    let feed = store.feed(0, 100).await.unwrap();
    let what: Vec<(&str, Option<&RunEvent>)> = feed
        .iter()
        .map(|c| (c.run.as_str(), c.event.as_ref()))
        .collect();
    let events = started(1, 0);
    assert_eq!(
        what,
        [
            ("r1", None),
            ("r2", None),
            ("r1", Some(&events[0])),
            ("r1", Some(&events[1]))
        ]
    );
    let ids: Vec<u64> = feed.iter().map(|c| c.id).collect();
    assert!(ids[0] > 0 && ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert_eq!(store.last_change().await.unwrap(), ids[3]);
    assert_eq!(store.feed(ids[1], 100).await.unwrap(), feed[2..].to_vec());
    assert_eq!(store.feed(0, 2).await.unwrap(), feed[..2].to_vec());
    assert!(store.feed(ids[3], 100).await.unwrap().is_empty());
}

pub async fn the_feed_misses_nothing_when_writers_interleave(store: &dyn Store) {
    const RUNS: usize = 4;
    const EVENTS: u64 = 30;
    let mut leases = Vec::new();
    for i in 0..RUNS {
        store.create(new_run(&format!("r{i}"), "p")).await.unwrap();
        leases.push(store.claim(&format!("w{i}"), TTL).await.unwrap().unwrap());
    }
    let from = store.last_change().await.unwrap();
    // Each writer appends its run's events in batches of one to three, while a reader follows
    // the feed from where it last read.
    let writers = leases.iter().map(|lease| async move {
        let mut seq = 1;
        while seq <= EVENTS {
            let n = (seq % 3 + 1).min(EVENTS - seq + 1);
            let batch: Vec<RunEvent> = (seq..seq + n)
                .map(|s| {
                    event(
                        s,
                        EventKind::RetryDue {
                            job: 0,
                            attempt: s as u32,
                        },
                    )
                })
                .collect();
            store.append(lease, &batch).await.unwrap();
            seq += n;
            tokio::task::yield_now().await;
        }
    });
    let reader = async {
        let mut seen = Vec::new();
        let mut cursor = from;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while seen.len() < RUNS * EVENTS as usize {
            for change in store.feed(cursor, 7).await.unwrap() {
                assert!(change.id > cursor, "{} after {cursor}", change.id);
                cursor = change.id;
                seen.push(change);
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} seen",
                seen.len()
            );
            tokio::task::yield_now().await;
        }
        seen
    };
    let (_, seen) = tokio::join!(futures_join_all(writers), reader);
    // What the reader saw as it went is the whole feed: nothing was written behind its cursor.
    assert_eq!(seen, store.feed(from, usize::MAX).await.unwrap());
    for i in 0..RUNS {
        let run = format!("r{i}");
        let seqs: Vec<u64> = seen
            .iter()
            .filter(|c| c.run == run)
            .map(|c| c.event.as_ref().expect("an event").seq)
            .collect();
        assert_eq!(seqs, (1..=EVENTS).collect::<Vec<_>>(), "{run}");
    }
}

pub async fn a_finished_run_is_retried_and_claimed_again(store: &dyn Store) {
    use crate::event::{AttemptResult, Decision};
    use crate::scheduler::Outcome;
    store.create(new_run("r1", "p")).await.unwrap();
    let refused = |got: Result<Vec<RunEvent>, StoreError>, status: &str| match got {
        Err(StoreError::Conflict(why)) => assert_eq!(
            why,
            format!("run r1 is {status}; only a finished run can be retried")
        ),
        other => panic!("a {status} run was retried: {other:?}"),
    };
    refused(store.retry("r1").await, "pending");
    assert!(matches!(
        store.retry("nope").await,
        Err(StoreError::NotFound(_))
    ));
    let lease = store.claim("w1", TTL).await.unwrap().unwrap();
    store.append(&lease, &started(1, 0)).await.unwrap();
    refused(store.retry("r1").await, "running");
    store.cancel("r1").await.unwrap();
    // Job a fails, b and c are skipped, the run fails.
    let decided = |seq, job, outcome, why| event(seq, EventKind::JobDecided { job, outcome, why });
    let skipped = Some(Decision::ConditionFalse);
    let finish = [
        event(
            3,
            EventKind::AttemptEnded {
                job: 0,
                attempt: 1,
                result: AttemptResult::exited(1),
            },
        ),
        decided(4, 0, Outcome::Failed, None),
        decided(5, 1, Outcome::Skipped, skipped),
        decided(6, 2, Outcome::Skipped, skipped),
        event(
            7,
            EventKind::RunFinished {
                outcome: RunOutcome::Failed,
            },
        ),
    ];
    store.append(&lease, &finish).await.unwrap();
    let retried = store.retry("r1").await.unwrap();
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].seq, 8);
    assert_eq!(
        retried[0].kind,
        EventKind::RunRetried {
            jobs: vec![0, 1, 2]
        }
    );
    let got = store.get("r1").await.unwrap().unwrap();
    assert_eq!(got.last_seq, 8);
    assert_eq!(got.run.status, Status::Pending);
    assert_eq!(got.run.finished_at, None);
    assert!(got.run.jobs.iter().all(|j| j.status == Status::Pending));
    assert_eq!(got.run.jobs[0].attempts.len(), 1, "attempts are kept");
    assert_eq!(store.events("r1", 7, 10).await.unwrap(), retried);
    let last = store
        .feed(store.last_change().await.unwrap() - 1, 10)
        .await
        .unwrap();
    assert_eq!(last.len(), 1);
    assert_eq!(
        (last[0].run.as_str(), last[0].event.as_ref()),
        ("r1", Some(&retried[0]))
    );
    assert_eq!(
        store.cancel_requests("r1").await.unwrap(),
        0,
        "cancels start afresh"
    );
    let listed = |status| async move {
        let query = ListQuery {
            limit: 10,
            status: Some(status),
            ..Default::default()
        };
        let page = store.list(&query).await.unwrap();
        page.runs.len()
    };
    assert_eq!(
        (listed(Status::Pending).await, listed(Status::Failed).await),
        (1, 0)
    );
    refused(store.retry("r1").await, "pending");
    // The lease held before is gone: the run is claimed again at once, and not as a take-over.
    assert!(matches!(
        store.append(&lease, &started(9, 0)).await,
        Err(StoreError::LeaseLost(_))
    ));
    let again = store.claim("w2", TTL).await.unwrap().expect("queued again");
    assert_eq!((again.run.as_str(), again.takeovers), ("r1", 0));
    store.append(&again, &started(9, 0)).await.unwrap();
    assert_eq!(listed(Status::Running).await, 1);
    assert_eq!(
        store.get("r1").await.unwrap().unwrap().run.jobs[0]
            .attempts
            .len(),
        1
    );
}

/// Creates run `id` and finishes it at `at` (the only run waiting for a worker).
pub(crate) async fn finished_run(store: &dyn Store, id: &str, at: SystemTime) {
    store.create(new_run(id, "p")).await.unwrap();
    let lease = store.claim("w", TTL).await.unwrap().expect("the run waits");
    assert_eq!(lease.run, id);
    let mut events = started(1, 0);
    events.push(RunEvent {
        seq: 3,
        at,
        kind: EventKind::RunFinished {
            outcome: RunOutcome::Succeeded,
        },
    });
    store.append(&lease, &events).await.unwrap();
    store.release(&lease).await.unwrap();
}

pub async fn prune_deletes_finished_runs_beyond_the_newest_and_the_old(store: &dyn Store) {
    let t = |s: u64| crate::event::millis::from_millis(1_700_000_000_000 + s * 1000);
    // Finished out of their creation order: the newest by finish time are r3, then r0.
    for (id, at) in [("r0", t(2)), ("r1", t(0)), ("r2", t(1)), ("r3", t(3))] {
        finished_run(store, id, at).await;
    }
    store.create(new_run("running", "p")).await.unwrap();
    let lease = store.claim("w", TTL).await.unwrap().unwrap();
    store.append(&lease, &started(1, 0)).await.unwrap();
    store.create(new_run("pending", "p")).await.unwrap();
    let last_change = store.last_change().await.unwrap();
    let ids = || async {
        let query = ListQuery {
            limit: 100,
            ..Default::default()
        };
        let page = store.list(&query).await.unwrap();
        let ids: Vec<String> = page.runs.iter().map(|r| r.metadata.uid.clone()).collect();
        ids
    };
    assert_eq!(store.prune(None, None).await.unwrap(), 0);
    assert_eq!(store.prune(Some(2), None).await.unwrap(), 2);
    assert_eq!(ids().await, ["pending", "running", "r3", "r0"]);
    for gone in ["r1", "r2"] {
        assert!(store.get(gone).await.unwrap().is_none());
        assert!(matches!(
            store.events(gone, 0, 10).await,
            Err(StoreError::NotFound(_))
        ));
    }
    let feed = store.feed(0, 1000).await.unwrap();
    assert!(
        feed.iter().all(|c| c.run != "r1" && c.run != "r2"),
        "{feed:?}"
    );
    assert_eq!(feed.len(), 2 * 4 + 3 + 1, "the kept runs' changes");
    assert_eq!(
        store.last_change().await.unwrap(),
        last_change,
        "ids are not reused"
    );
    // Finished before r3 did: r0 only.
    assert_eq!(store.prune(None, Some(t(3))).await.unwrap(), 1);
    assert_eq!(ids().await, ["pending", "running", "r3"]);
    // What has not finished is never deleted, nor is a run retried since it finished.
    store.retry("r3").await.unwrap();
    let far = SystemTime::now() + Duration::from_secs(86_400 * 365);
    assert_eq!(store.prune(Some(0), Some(far)).await.unwrap(), 0);
    assert_eq!(ids().await, ["pending", "running", "r3"]);
}

/// Run `r`, finished, with the output of two attempts: one log complete, one left incomplete.
/// For stores that keep logs too, to see that pruning the run takes them.
pub async fn a_finished_run_with_logs<S: Store + LogSink>(store: &S) {
    store.create(new_run("r", "p")).await.unwrap();
    let lease = store.claim("w", TTL).await.unwrap().unwrap();
    let mut events = started(1, 0);
    events.push(event(
        3,
        EventKind::AttemptStarted {
            job: 1,
            attempt: 1,
            handle: None,
        },
    ));
    events.push(event(
        4,
        EventKind::RunFinished {
            outcome: RunOutcome::Cancelled,
        },
    ));
    for (job, done) in [("a", true), ("b", false)] {
        let key = LogKey {
            run: "r".into(),
            job: job.into(),
            attempt: 1,
        };
        LogSink::append(store, &key, b"output\n").await.unwrap();
        if done {
            store.finish(&key).await.unwrap();
        }
    }
    Store::append(store, &lease, &events).await.unwrap();
}

/// A worker on `store` that polls for cancels often; `stop` tells it to stop.
fn worker(
    store: &Arc<dyn Store>,
    executors: InstantExecutors,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<Vec<(String, Held)>> {
    let options = WorkerOptions {
        lease: Duration::from_secs(10),
        renew_every: Duration::from_secs(2),
        idle: Duration::from_millis(20),
        poll: Duration::from_millis(20),
        ..WorkerOptions::new("w")
    };
    tokio::spawn(work(
        store.clone(),
        Arc::new(executors),
        Arc::new(MemoryLogs::new()),
        options,
        stop.clone(),
    ))
}

/// Waits (at most 20 s) until the stored run `id` is as `what` says.
async fn wait_until(store: &dyn Store, id: &str, what: &str, test: impl Fn(&StoredRun) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let run = store.get(id).await.unwrap().expect("the run is stored");
        if test(&run) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "run {id} is not {what}: {:#?}",
            run.run
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn is_finished(run: &StoredRun) -> bool {
    run.run.status.is_terminal()
}

/// `long` (which runs until it is stopped, in [`long_runs_until_stopped`]), `next` after it, and
/// a `finally` job `cleanup`.
pub fn long_then_cleanup() -> ir::Pipeline {
    let src = "pipeline long {\n defaults { image = \"busybox\" run = \"true\" }\n job long {}\n job next after long {}\n finally { job cleanup {} }\n}";
    chainr_compiler::compile(src, &Default::default())
        .pipeline
        .expect("the long pipeline compiles")
}

/// Executors whose job `long` runs until it is stopped; every other attempt succeeds at once.
pub fn long_runs_until_stopped() -> InstantExecutors {
    InstantExecutors::scripted(|job, _| (job != "long").then_some(AttemptEnd::Succeeded))
}

/// Job names started, in order.
fn starts(executors: &InstantExecutors) -> Vec<String> {
    let started = executors.started.lock().unwrap();
    started.iter().map(|(_, job, _)| job.clone()).collect()
}

pub async fn a_run_cancelled_through_the_store_stops_and_runs_finally(store: Arc<dyn Store>) {
    let mut run = new_run("r", "long");
    run.pipeline = long_then_cleanup();
    store.create(run).await.unwrap();
    let executors = long_runs_until_stopped();
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let w = worker(&store, executors.clone(), &stop);
    wait_until(&*store, "r", "running job long", |r| {
        r.run.jobs[0].status == Status::Running
    })
    .await;
    assert_eq!(store.cancel("r").await.unwrap(), 1);
    wait_until(&*store, "r", "finished", is_finished).await;
    stop_tx.send(true).unwrap();
    assert_eq!(w.await.unwrap(), [("r".to_string(), Held::Finished)]);
    let got = store.get("r").await.unwrap().unwrap().run;
    let statuses: Vec<Status> = got.jobs.iter().map(|j| j.status).collect();
    assert_eq!(got.status, Status::Cancelled);
    assert_eq!(
        statuses,
        [Status::Cancelled, Status::Cancelled, Status::Successful]
    );
    assert_eq!(starts(&executors), ["long", "cleanup"]);
}

pub async fn a_run_cancelled_before_it_is_claimed_launches_nothing(store: Arc<dyn Store>) {
    let mut run = new_run("five", "five");
    run.pipeline = five_jobs();
    store.create(run).await.unwrap();
    let mut run = new_run("twice", "long");
    run.pipeline = long_then_cleanup();
    store.create(run).await.unwrap();
    store.cancel("five").await.unwrap();
    store.cancel("twice").await.unwrap();
    store.cancel("twice").await.unwrap();
    let executors = long_runs_until_stopped();
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let w = worker(&store, executors.clone(), &stop);
    for id in ["five", "twice"] {
        wait_until(&*store, id, "finished", is_finished).await;
        let got = store.get(id).await.unwrap().unwrap().run;
        assert_eq!(got.status, Status::Cancelled);
        for j in &got.jobs {
            assert_eq!(j.status, Status::Cancelled, "{id}: {j:?}");
            assert!(j.attempts.is_empty(), "{id}: {j:?}");
            assert_eq!(
                j.reason.as_deref(),
                Some("the run was cancelled before it started"),
                "{id}: {j:?}"
            );
        }
    }
    stop_tx.send(true).unwrap();
    assert_eq!(w.await.unwrap().len(), 2);
    assert_eq!(starts(&executors), Vec::<String>::new());
}

pub async fn a_retried_run_runs_again_what_did_not_succeed(store: Arc<dyn Store>) {
    // Job c fails its first two attempts; a retry gives it one more each time.
    let executors = InstantExecutors::scripted(|job, attempt| {
        Some(if job == "c" && attempt <= 2 {
            AttemptEnd::Failed
        } else {
            AttemptEnd::Succeeded
        })
    });
    let mut run = new_run("r", "five");
    run.pipeline = five_jobs();
    store.create(run).await.unwrap();
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let w = worker(&store, executors.clone(), &stop);
    let mut outcomes = Vec::new();
    for round in 0..3 {
        if round > 0 {
            store.retry("r").await.unwrap();
        }
        wait_until(&*store, "r", "finished", is_finished).await;
        let run = store.get("r").await.unwrap().unwrap().run;
        let statuses: Vec<Status> = run.jobs.iter().map(|j| j.status).collect();
        outcomes.push((run.status, statuses));
    }
    stop_tx.send(true).unwrap();
    assert_eq!(w.await.unwrap().len(), 3, "claimed once a round");
    use Status::{Failed as F, Skipped as K, Successful as S};
    let failed = (F, vec![S, S, F, K, K]);
    assert_eq!(outcomes, [failed.clone(), failed, (S, vec![S; 5])]);
    let times = |name: &str| starts(&executors).iter().filter(|j| *j == name).count();
    assert_eq!(
        ["a", "b", "c", "d", "e"].map(times),
        [1, 1, 3, 1, 1],
        "what succeeded did not run again"
    );
    let run = store.get("r").await.unwrap().unwrap().run;
    let attempts = |job: usize| -> Vec<(u32, Status)> {
        run.jobs[job]
            .attempts
            .iter()
            .map(|a| (a.attempt, a.status))
            .collect()
    };
    assert_eq!(attempts(2), [(1, F), (2, F), (3, S)]);
    assert_eq!(attempts(3), [(1, S)]);
}

/// Two workers on one store and 50 runs of 5 jobs: every job ran exactly once, and every run
/// succeeded: claims, leases and fenced appends hold up under workers racing for runs.
pub async fn two_workers_run_every_job_once(store: Arc<dyn Store>) {
    // Leases long enough that none expires on a loaded machine: no take-over is expected here.
    let options = |id: &str| WorkerOptions {
        lease: Duration::from_secs(10),
        renew_every: Duration::from_secs(2),
        idle: Duration::from_millis(20),
        runs_at_once: 4,
        ..WorkerOptions::new(id)
    };
    for i in 0..50 {
        let mut run = new_run(&format!("run-{i:02}"), "five");
        run.pipeline = five_jobs();
        store.create(run).await.unwrap();
    }
    let executors = Arc::new(InstantExecutors::default());
    let started = executors.started.clone();
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let workers: Vec<_> = ["w1", "w2"]
        .into_iter()
        .map(|w| {
            tokio::spawn(work(
                store.clone(),
                executors.clone(),
                Arc::new(MemoryLogs::new()),
                options(w),
                stop.clone(),
            ))
        })
        .collect();
    // Wait until every run finished, then stop the workers.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut done = 0;
        for i in 0..50 {
            let run = store.get(&format!("run-{i:02}")).await.unwrap().unwrap();
            done += usize::from(run.run.status.is_terminal());
        }
        if done == 50 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{done} of 50 runs finished"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_tx.send(true).unwrap();
    let mut by_worker = Vec::new();
    for w in workers {
        let ended = w.await.unwrap();
        assert!(ended.iter().all(|(_, h)| *h == Held::Finished), "{ended:?}");
        by_worker.push(ended.len());
    }
    assert_eq!(by_worker.iter().sum::<usize>(), 50);
    let mut starts = started.lock().unwrap().clone();
    assert_eq!(starts.len(), 250, "every job of every run once");
    starts.sort();
    starts.dedup();
    assert_eq!(starts.len(), 250, "no job ran twice");
    for i in 0..50 {
        let run = store.get(&format!("run-{i:02}")).await.unwrap().unwrap();
        assert_eq!(run.run.status, Status::Successful);
    }
}

/// Five jobs: `a`, then `b` and `c`, then `d`, then `e`.
pub fn five_jobs() -> ir::Pipeline {
    let src = "pipeline five {\n defaults { image = \"busybox\" run = \"true\" }\n job a {}\n job b after a {}\n job c after a {}\n job d after b, c {}\n job e after d {}\n}";
    chainr_compiler::compile(src, &Default::default())
        .pipeline
        .expect("the five-job pipeline compiles")
}

/// One `#[tokio::test]` per conformance case for the store that `$make` (an async expression)
/// gives; each test gets a fresh store. `$make` gives anything that dereferences to the store
/// (a `Box`, or a guard that also holds the store's files), dropped when the test ends. The
/// store must be `Clone`, its clones sharing its runs: cases with workers share it.
#[macro_export]
macro_rules! store_conformance {
    ($make:expr) => {
        $crate::store_conformance!(@cases $make;
            a_created_run_reads_back_pending,
            an_id_is_taken_once,
            lists_are_newest_first_and_paged_by_cursor,
            lists_filter_by_status_and_pipeline,
            each_run_is_claimed_by_one_worker_oldest_first,
            appends_need_the_lease_and_fold_into_the_document,
            appends_continue_the_numbering_or_store_nothing,
            an_expired_lease_is_taken_over_and_fenced,
            a_lease_that_expired_is_lost_even_before_a_takeover,
            a_renewed_lease_is_kept,
            a_released_run_is_claimed_again_at_once,
            a_finished_run_is_never_claimed_again,
            a_long_run_reads_as_its_events_replayed,
            concurrent_claims_give_a_run_to_one_worker,
            every_takeover_counts_and_a_new_claim_has_a_new_token,
            a_finished_run_whose_lease_expires_is_not_claimed,
            a_refused_append_changes_nothing,
            cancel_requests_are_counted_until_the_run_finishes,
            runs_are_counted_by_status,
            the_feed_has_every_creation_and_event_in_order,
            the_feed_misses_nothing_when_writers_interleave,
            a_finished_run_is_retried_and_claimed_again,
            prune_deletes_finished_runs_beyond_the_newest_and_the_old,
        );
        $crate::store_conformance!(@shared $make;
            a_run_cancelled_through_the_store_stops_and_runs_finally,
            a_run_cancelled_before_it_is_claimed_launches_nothing,
            a_retried_run_runs_again_what_did_not_succeed,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let store = $make.await;
                $crate::store::conformance::$case(&*store).await;
            }
        )*
    };
    // Cases with workers, which share the store (a clone of it: every store's clones share).
    (@shared $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let store = $make.await;
                $crate::store::conformance::$case(std::sync::Arc::new((*store).clone())).await;
            }
        )*
    };
}
