//! The SQLite store on real files: the store and outbox conformance suites, what is written
//! survives closing and reopening the database, a database of the previous schema version is
//! migrated and one of another version refused, and a pruned run leaves no row behind.

use chainr_runtime::outbox::conformance::{delivery, t};
use chainr_runtime::outbox::{DeliveryState, Outbox};
use chainr_runtime::store::conformance::{new_run, started};
use chainr_runtime::store::{Store, StoreError};
use chainr_store_sqlite::SqliteStore;
use std::path::Path;
use std::time::Duration;

/// A store in a new file of its own, removed with its directory when the test ends.
struct Fresh {
    store: SqliteStore,
    dir: tempfile::TempDir,
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
        dir,
    }
}

chainr_runtime::store_conformance!(fresh());

mod outbox {
    chainr_runtime::outbox_conformance!(super::fresh());
}

/// Writes a new database at `path` with runs `r1`, claimed by `w1` and started, and `r2`,
/// waiting.
async fn write_two_runs(path: &Path) {
    let store = SqliteStore::open(path).unwrap();
    store.create(new_run("r1", "p")).await.unwrap();
    store.create(new_run("r2", "p")).await.unwrap();
    let lease = store
        .claim("w1", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    store.append(&lease, &started(1, 0)).await.unwrap();
}

/// Reads `r1` back as [`write_two_runs`] left it.
async fn r1_reads_back_started(store: &SqliteStore) {
    let r1 = store.get("r1").await.unwrap().unwrap();
    assert_eq!(r1.last_seq, 2);
    assert_eq!(r1.run.jobs[0].attempts.len(), 1);
    assert_eq!(store.events("r1", 0, 10).await.unwrap(), started(1, 0));
}

#[tokio::test]
async fn what_was_written_survives_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chainr.db");
    write_two_runs(&path).await;
    let store = SqliteStore::open(&path).unwrap();
    r1_reads_back_started(&store).await;
    // r1 is still leased to w1; the next claim takes r2.
    let next = store
        .claim("w2", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next.run, "r2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_on_one_database_run_every_job_once() {
    let f = fresh().await;
    chainr_runtime::store::conformance::two_workers_run_every_job_once(std::sync::Arc::new(
        f.store.clone(),
    ))
    .await;
}

chainr_runtime::log_sink_conformance!(fresh());

#[tokio::test]
async fn a_database_of_another_schema_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE runs (id TEXT)").unwrap();
    }
    match SqliteStore::open(&path) {
        Err(StoreError::Corrupt(why)) => assert!(why.contains("schema version 0"), "{why}"),
        Err(e) => panic!("refused for another reason: {e}"),
        Ok(_) => panic!("an old database was opened"),
    }
}

#[tokio::test]
async fn a_database_of_the_previous_version_gains_the_outbox_and_keeps_its_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v3.db");
    write_two_runs(&path).await;
    {
        // Version 3 was this schema without the outbox's tables.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "DROP TABLE deliveries; DROP TABLE notify_cursor;
             DELETE FROM sqlite_sequence WHERE name = 'deliveries';
             PRAGMA user_version = 3;",
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, chainr_store_sqlite::SCHEMA_VERSION);
    r1_reads_back_started(&store).await;
    assert_eq!(store.feed(0, 10).await.unwrap().len(), 4);
    // The outbox starts empty, at the beginning of the feed.
    assert_eq!(store.notify_cursor().await.unwrap(), 0);
    let d = delivery("r1", 2, "slack", 0);
    store.enqueue(0, 4, std::slice::from_ref(&d)).await.unwrap();
    let claimed = store
        .claim_due("n", t(1), Duration::from_secs(30), 10)
        .await
        .unwrap();
    assert_eq!(claimed, [d]);
    assert_eq!(
        store.delivery_counts().await.unwrap(),
        [(DeliveryState::Pending, 1)]
    );
    drop(store);
    // Opened again, it is the current version: nothing more to do.
    SqliteStore::open(&path).unwrap();
}

#[tokio::test]
async fn a_pruned_run_leaves_no_row_behind() {
    let f = fresh().await;
    chainr_runtime::store::conformance::a_finished_run_with_logs(&f.store).await;
    f.store
        .enqueue(0, 1, &[delivery("r", 4, "slack", 0)])
        .await
        .unwrap();
    assert_eq!(f.store.prune(Some(0), None).await.unwrap(), 1);
    let conn = rusqlite::Connection::open(f.dir.path().join("chainr.db")).unwrap();
    for table in [
        "runs",
        "events",
        "changes",
        "logs",
        "log_chunks",
        "deliveries",
    ] {
        let n: i64 = conn
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0, "{table}");
    }
}
