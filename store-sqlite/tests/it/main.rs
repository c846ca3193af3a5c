//! The SQLite store on real files: the store conformance suite, and what is written survives
//! closing and reopening the database.

use chainr_runtime::store::conformance::{new_run, started};
use chainr_runtime::store::Store;
use chainr_store_sqlite::SqliteStore;
use std::time::Duration;

/// A store in a new file of its own, removed with its directory when the test ends.
struct Fresh {
    store: SqliteStore,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for Fresh {
    type Target = SqliteStore;
    fn deref(&self) -> &SqliteStore {
        &self.store
    }
}

async fn fresh() -> Fresh {
    let dir = tempfile::tempdir().unwrap();
    Fresh {
        store: SqliteStore::open(&dir.path().join("chainr.db")).unwrap(),
        _dir: dir,
    }
}

chainr_runtime::store_conformance!(fresh());

#[tokio::test]
async fn what_was_written_survives_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chainr.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        store.create(new_run("r1", "p")).await.unwrap();
        store.create(new_run("r2", "p")).await.unwrap();
        let lease = store
            .claim("w1", Duration::from_secs(60))
            .await
            .unwrap()
            .unwrap();
        store.append(&lease, &started(1, 0)).await.unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let r1 = store.get("r1").await.unwrap().unwrap();
    assert_eq!(r1.last_seq, 2);
    assert_eq!(r1.run.jobs[0].attempts.len(), 1);
    assert_eq!(store.events("r1", 0, 10).await.unwrap(), started(1, 0));
    // r1 is still leased to w1; the next claim takes r2.
    let next = store
        .claim("w2", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next.run, "r2");
}

#[tokio::test]
async fn a_long_run_reads_the_same_across_snapshots() {
    use chainr_runtime::event::{EventKind, RunEvent};
    let store = fresh().await;
    store.create(new_run("r", "p")).await.unwrap();
    let lease = store
        .claim("w", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    let mut events = started(1, 0);
    // Attempts of job 0 started again and again: more events than a snapshot covers.
    for seq in 3..=(2 * chainr_store_sqlite::SNAPSHOT_EVERY + 7) {
        events.push(RunEvent {
            seq,
            at: chainr_runtime::event::millis::from_millis(1_700_000_000_000 + seq),
            kind: EventKind::AttemptStarted {
                job: (seq % 3) as usize,
                attempt: 1,
                handle: Some(format!("h{seq}")),
            },
        });
    }
    for batch in events.chunks(7) {
        store.append(&lease, batch).await.unwrap();
    }
    let stored = store.get("r").await.unwrap().unwrap();
    let replayed = chainr_runtime::Run::replay("r".into(), &stored.pipeline, &events);
    assert_eq!(stored.run, replayed);
    let listed = store
        .list(&chainr_runtime::store::ListQuery {
            limit: 5,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.runs, vec![replayed]);
}
