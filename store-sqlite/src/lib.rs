//! The embedded store: runs, their events and their leases in one SQLite file, in WAL mode, for
//! a single `chainrc serve` process that needs nothing installed. Every write that belongs
//! together is one transaction, and a worker's writes are fenced by its lease token: a lease
//! that expired or moved on is refused (see `chainr_runtime::store::Store`).
//!
//! The schema is in [`SCHEMA`], its version in `PRAGMA user_version` ([`SCHEMA_VERSION`]): a
//! database of the previous version is migrated when it is opened (the outbox's tables are
//! added), one made by any other version is refused, not misread. Times are milliseconds since
//! the Unix epoch, by the wall clock.
//! The calls are blocking SQLite calls, run on tokio's blocking pool.
//!
//! The Run document is kept as a snapshot plus the events after it: an append writes its events
//! and the run's status, and rewrites the snapshot only when the run finishes or
//! [`SNAPSHOT_EVERY`] events have passed, so that a large run does not rewrite its whole
//! document on every event; a read folds the few events after the snapshot.

use async_trait::async_trait;
use chainr_compiler::ir;
use chainr_runtime::event::{millis, RunEvent};
use chainr_runtime::log::{LogChunk, LogError, LogKey, LogSink};
use chainr_runtime::record::{Run, Status};
use chainr_runtime::store::{
    retry_events, status_change, Change, Cursor, Lease, ListQuery, NewRun, Page, Store, StoreError,
    StoredRun,
};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

mod outbox;

/// The outbox's tables, added by version 4: `deliveries`, one row per notification (`seq` the
/// enqueue order, the list cursor; `state` and `due` beside the `Delivery` as JSON, for the
/// indexes that claims, lists and counts use; the claim's holder and its expiry), and
/// `notify_cursor`, one row: how far the feed has been turned into notifications.
macro_rules! outbox_schema {
    () => {
        "
CREATE TABLE IF NOT EXISTS deliveries (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    run         TEXT NOT NULL,
    state       TEXT NOT NULL,
    due         INTEGER NOT NULL,
    claim_owner TEXT,
    claim_until INTEGER,
    body        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (state, due, seq);
CREATE INDEX IF NOT EXISTS deliveries_by_state ON deliveries (state, seq);
CREATE INDEX IF NOT EXISTS deliveries_by_run ON deliveries (run);
CREATE TABLE IF NOT EXISTS notify_cursor (
    one    INTEGER PRIMARY KEY CHECK (one = 1),
    cursor INTEGER NOT NULL
);
"
    };
}

/// The tables. `runs.seq` orders runs by creation (the list cursor); the queue is the unfinished
/// runs without a live lease, oldest first. `changes` is the feed: each run created (`seq` 0)
/// and each event appended, written in the same transaction; `AUTOINCREMENT` never reuses an
/// id. Then the outbox's tables (`outbox_schema!`).
pub const SCHEMA: &str = concat!(
    "
CREATE TABLE IF NOT EXISTS runs (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    pipeline      TEXT NOT NULL,
    pipeline_name TEXT,
    submitter     TEXT,
    created_at    INTEGER NOT NULL,
    doc           TEXT NOT NULL,
    doc_seq       INTEGER NOT NULL DEFAULT 0,
    status        TEXT NOT NULL,
    last_seq      INTEGER NOT NULL DEFAULT 0,
    takeovers     INTEGER NOT NULL DEFAULT 0,
    cancels       INTEGER NOT NULL DEFAULT 0,
    finished      INTEGER NOT NULL DEFAULT 0,
    finished_at   INTEGER,
    lease_token   TEXT,
    lease_worker  TEXT,
    lease_expires INTEGER
);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status, seq);
CREATE INDEX IF NOT EXISTS runs_by_pipeline ON runs (pipeline_name, seq);
CREATE INDEX IF NOT EXISTS runs_queue ON runs (finished, seq);
CREATE INDEX IF NOT EXISTS runs_by_finish ON runs (finished, finished_at);
CREATE TABLE IF NOT EXISTS logs (
    run      TEXT NOT NULL,
    job      TEXT NOT NULL,
    attempt  INTEGER NOT NULL,
    size     INTEGER NOT NULL DEFAULT 0,
    complete INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run, job, attempt)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log_chunks (
    run     TEXT NOT NULL,
    job     TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    start   INTEGER NOT NULL,
    bytes   BLOB NOT NULL,
    PRIMARY KEY (run, job, attempt, start)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    run  TEXT NOT NULL,
    seq  INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (run, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS changes (
    id  INTEGER PRIMARY KEY AUTOINCREMENT,
    run TEXT NOT NULL,
    seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS changes_by_run ON changes (run);
",
    outbox_schema!()
);

/// The version of [`SCHEMA`]: 0 was the first, 1 added `runs.cancels`, 2 the `changes` table,
/// 3 `runs.finished_at` (for retention) and the indexes it needs, 4 the outbox's tables.
pub const SCHEMA_VERSION: i64 = 4;

/// How a file of an earlier version becomes the next version: from each version, what to run.
/// A file of a version not listed here (nor [`SCHEMA_VERSION`]) is refused.
const MIGRATIONS: &[(i64, &str)] = &[(3, outbox_schema!())];

/// Runs deleted per transaction by `prune`, so that other writers wait for no long one.
const PRUNE_BATCH: i64 = 100;

/// The snapshot of a run's document is rewritten after this many events.
pub const SNAPSHOT_EVERY: u64 = 200;

/// Runs in a SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn now_ms() -> i64 {
    millis::to_millis(SystemTime::now()) as i64
}

/// A stored count as a `u32`.
fn count(n: i64) -> u32 {
    n.clamp(0, i64::from(u32::MAX)) as u32
}

fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

impl SqliteStore {
    /// Opens (creating it if needed) the database at `path`, in WAL mode.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let mut conn = Connection::open(path).map_err(unavailable)?;
        // WAL: readers do not wait for the writer; `synchronous = FULL`: a committed write
        // survives a power loss, which is what a 202 promises.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(unavailable)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(unavailable)?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(unavailable)?;
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(unavailable)?;
        if tables == 0 {
            conn.execute_batch(SCHEMA).map_err(unavailable)?;
            conn.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(unavailable)?;
        }
        migrate(&mut conn, path)?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn
                .lock()
                .map_err(|_| unavailable("the database connection is poisoned"))?;
            f(&mut conn)
        })
        .await
        .map_err(unavailable)?
    }
}

/// Brings the file to [`SCHEMA_VERSION`], one version per transaction (each reads the version
/// again, so two processes opening the same file migrate it once), or refuses it.
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    loop {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(unavailable)?;
        let version: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(unavailable)?;
        if version == SCHEMA_VERSION {
            return Ok(());
        }
        let Some((_, step)) = MIGRATIONS.iter().find(|(from, _)| *from == version) else {
            return Err(corrupt(format!(
                "{} holds schema version {version} of the chainr store; this chainr reads version {SCHEMA_VERSION}",
                path.display()
            )));
        };
        tx.execute_batch(step).map_err(unavailable)?;
        tx.pragma_update(None, "user_version", version + 1)
            .map_err(unavailable)?;
        tx.commit().map_err(unavailable)?;
    }
}

/// The run's current document: its snapshot and the events after it.
fn current_doc(conn: &Connection, id: &str, doc: &str, doc_seq: i64) -> Result<Run, StoreError> {
    let mut run: Run = serde_json::from_str(doc).map_err(corrupt)?;
    let mut stmt = conn
        .prepare_cached("SELECT body FROM events WHERE run = ?1 AND seq > ?2 ORDER BY seq")
        .map_err(unavailable)?;
    let rows = stmt
        .query_map(params![id, doc_seq], |r| r.get::<_, String>(0))
        .map_err(unavailable)?;
    for body in rows {
        let e: RunEvent = serde_json::from_str(&body.map_err(unavailable)?).map_err(corrupt)?;
        run.apply(&e);
    }
    Ok(run)
}

/// The run as stored, its document folded from its snapshot and the events after it.
fn stored_run(conn: &Connection, id: &str) -> Result<Option<StoredRun>, StoreError> {
    let row = conn
        .query_row(
            "SELECT pipeline, doc, submitter, created_at, last_seq, takeovers, doc_seq
             FROM runs WHERE id = ?1",
            params![id],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, i64>(6)?,
                ))
            },
        )
        .optional()
        .map_err(unavailable)?;
    let Some((pipeline, doc, submitter, created, last_seq, takeovers, doc_seq)) = row else {
        return Ok(None);
    };
    Ok(Some(StoredRun {
        pipeline: serde_json::from_str::<ir::Pipeline>(&pipeline).map_err(corrupt)?,
        run: current_doc(conn, id, &doc, doc_seq)?,
        submitter,
        created_at: millis::from_millis(created.max(0) as u64),
        last_seq: last_seq.max(0) as u64,
        takeovers: count(takeovers),
    }))
}

/// Inserts events of run `run`, and their changes in the feed.
fn insert_events(conn: &Connection, run: &str, events: &[RunEvent]) -> Result<(), StoreError> {
    let mut insert = conn
        .prepare_cached("INSERT INTO events (run, seq, body) VALUES (?1, ?2, ?3)")
        .map_err(unavailable)?;
    for e in events {
        let body = serde_json::to_string(e).map_err(corrupt)?;
        insert
            .execute(params![run, e.seq as i64, body])
            .map_err(unavailable)?;
        add_change(conn, run, e.seq)?;
    }
    Ok(())
}

/// Adds the change of event `seq` of run `run` (0: its creation) to the feed.
fn add_change(conn: &Connection, run: &str, seq: u64) -> Result<(), StoreError> {
    conn.prepare_cached("INSERT INTO changes (run, seq) VALUES (?1, ?2)")
        .and_then(|mut insert| insert.execute(params![run, seq as i64]))
        .map_err(unavailable)?;
    Ok(())
}

/// The answer of `sql`, a `SELECT word, COUNT(*) ... GROUP BY word`, each word read by `parse`.
fn counted<K>(
    conn: &Connection,
    sql: &str,
    parse: impl Fn(&str) -> Option<K>,
) -> Result<Vec<(K, u64)>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(unavailable)?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .map_err(unavailable)?;
    let mut counts = Vec::new();
    for row in rows {
        let (word, n) = row.map_err(unavailable)?;
        let key = parse(&word).ok_or_else(|| corrupt(format!("unknown state {word}")))?;
        counts.push((key, n.max(0) as u64));
    }
    Ok(counts)
}

/// A column of the run's row (or any expression over it); `NotFound` when there is no such run.
fn run_field<T: rusqlite::types::FromSql>(
    conn: &Connection,
    id: &str,
    column: &str,
) -> Result<T, StoreError> {
    conn.query_row(
        &format!("SELECT {column} FROM runs WHERE id = ?1"),
        params![id],
        |r| r.get(0),
    )
    .optional()
    .map_err(unavailable)?
    .ok_or_else(|| StoreError::NotFound(id.to_string()))
}

/// Checks that `lease` is held now; the run's row is then locked by the transaction.
fn check_lease(tx: &rusqlite::Transaction<'_>, lease: &Lease) -> Result<(), StoreError> {
    let held: Option<i64> = tx
        .query_row(
            "SELECT 1 FROM runs WHERE id = ?1 AND lease_token = ?2 AND lease_expires > ?3",
            params![lease.run, lease.token, now_ms()],
            |r| r.get(0),
        )
        .optional()
        .map_err(unavailable)?;
    match held {
        Some(_) => Ok(()),
        None => Err(StoreError::LeaseLost(lease.run.clone())),
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn counts(&self) -> Result<Vec<(Status, u64)>, StoreError> {
        self.with(|conn| {
            counted(
                conn,
                "SELECT status, COUNT(*) FROM runs GROUP BY status",
                Status::from_word,
            )
        })
        .await
    }

    async fn create(&self, run: NewRun) -> Result<(), StoreError> {
        let pipeline = serde_json::to_string(&run.pipeline).map_err(corrupt)?;
        let doc = run.document();
        let status = doc.status.word();
        let doc = serde_json::to_string(&doc).map_err(corrupt)?;
        let created = millis::to_millis(run.created_at) as i64;
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            let inserted = tx.execute(
                "INSERT INTO runs (id, pipeline, pipeline_name, submitter, created_at, doc, status)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (id) DO NOTHING",
                params![
                    run.id,
                    pipeline,
                    run.pipeline.name,
                    run.submitter,
                    created,
                    doc,
                    status
                ],
            );
            if inserted.map_err(unavailable)? == 0 {
                return Err(StoreError::Exists(run.id));
            }
            add_change(&tx, &run.id, 0)?;
            tx.commit().map_err(unavailable)
        })
        .await
    }

    async fn get(&self, id: &str) -> Result<Option<StoredRun>, StoreError> {
        let id = id.to_string();
        self.with(move |conn| stored_run(conn, &id)).await
    }

    async fn events(
        &self,
        id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<RunEvent>, StoreError> {
        let id = id.to_string();
        self.with(move |conn| {
            run_field::<i64>(conn, &id, "1")?;
            let mut stmt = conn
                .prepare_cached(
                    "SELECT body FROM events WHERE run = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
                )
                .map_err(unavailable)?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let after = i64::try_from(after).unwrap_or(i64::MAX);
            let rows = stmt
                .query_map(params![id, after, limit], |r| r.get::<_, String>(0))
                .map_err(unavailable)?;
            let mut out = Vec::new();
            for body in rows {
                let body = body.map_err(unavailable)?;
                out.push(serde_json::from_str(&body).map_err(corrupt)?);
            }
            Ok(out)
        })
        .await
    }

    async fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
        let limit = query.limit.max(1);
        let before = query
            .after
            .map_or(i64::MAX, |c| i64::try_from(c.0).unwrap_or(i64::MAX));
        let status = query.status.map(Status::word);
        let pipeline = query.pipeline.clone();
        self.with(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT seq, id, doc, doc_seq FROM runs
                     WHERE seq < ?1 AND (?2 IS NULL OR status = ?2)
                       AND (?3 IS NULL OR pipeline_name = ?3)
                     ORDER BY seq DESC LIMIT ?4",
                )
                .map_err(unavailable)?;
            let rows = stmt
                .query_map(params![before, status, pipeline, (limit + 1) as i64], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                })
                .map_err(unavailable)?;
            let mut found = Vec::new();
            for row in rows {
                found.push(row.map_err(unavailable)?);
            }
            let more = found.len() > limit;
            found.truncate(limit);
            let last = found.last().map(|(seq, ..)| *seq);
            let mut runs = Vec::with_capacity(found.len());
            for (_, id, doc, doc_seq) in &found {
                runs.push(current_doc(conn, id, doc, *doc_seq)?);
            }
            Ok(Page {
                runs,
                next: if more {
                    last.map(|s| Cursor(s as u64))
                } else {
                    None
                },
            })
        })
        .await
    }

    async fn claim(&self, worker: &str, ttl: Duration) -> Result<Option<Lease>, StoreError> {
        let worker = worker.to_string();
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            let now = now_ms();
            let found: Option<(String, Option<String>, i64)> = tx
                .query_row(
                    "SELECT id, lease_token, takeovers FROM runs
                     WHERE finished = 0 AND (lease_token IS NULL OR lease_expires <= ?1)
                     ORDER BY seq LIMIT 1",
                    params![now],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(unavailable)?;
            let Some((id, previous, takeovers)) = found else {
                return Ok(None);
            };
            let takeovers = takeovers + i64::from(previous.is_some());
            let token = uuid::Uuid::new_v4().to_string();
            tx.execute(
                "UPDATE runs SET lease_token = ?2, lease_worker = ?3, lease_expires = ?4,
                 takeovers = ?5 WHERE id = ?1",
                params![id, token, worker, now + ms(ttl), takeovers],
            )
            .map_err(unavailable)?;
            tx.commit().map_err(unavailable)?;
            Ok(Some(Lease {
                run: id,
                worker,
                token,
                takeovers: count(takeovers),
            }))
        })
        .await
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<(), StoreError> {
        let lease = lease.clone();
        self.with(move |conn| {
            let now = now_ms();
            let n = conn
                .execute(
                    "UPDATE runs SET lease_expires = ?4
                     WHERE id = ?1 AND lease_token = ?2 AND lease_expires > ?3",
                    params![lease.run, lease.token, now, now + ms(ttl)],
                )
                .map_err(unavailable)?;
            if n == 1 {
                Ok(())
            } else {
                Err(StoreError::LeaseLost(lease.run))
            }
        })
        .await
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        let lease = lease.clone();
        self.with(move |conn| {
            let n = conn
                .execute(
                    "UPDATE runs SET lease_token = NULL, lease_worker = NULL, lease_expires = NULL
                     WHERE id = ?1 AND lease_token = ?2 AND lease_expires > ?3",
                    params![lease.run, lease.token, now_ms()],
                )
                .map_err(unavailable)?;
            if n == 1 {
                Ok(())
            } else {
                Err(StoreError::LeaseLost(lease.run))
            }
        })
        .await
    }

    async fn append(&self, lease: &Lease, events: &[RunEvent]) -> Result<(), StoreError> {
        let lease = lease.clone();
        let events = events.to_vec();
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            check_lease(&tx, &lease)?;
            let (last_seq, doc, doc_seq, status): (i64, String, i64, String) = tx
                .query_row(
                    "SELECT last_seq, doc, doc_seq, status FROM runs WHERE id = ?1",
                    params![lease.run],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .map_err(unavailable)?;
            let last_seq = last_seq.max(0) as u64;
            for (i, e) in events.iter().enumerate() {
                let expected = last_seq + 1 + i as u64;
                if e.seq != expected {
                    return Err(StoreError::OutOfOrder {
                        run: lease.run.clone(),
                        expected,
                        got: e.seq,
                    });
                }
            }
            let change = status_change(&events);
            let finished = change.finished_at.is_some();
            let status = change.status.map_or(status, |s| s.word().to_string());
            insert_events(&tx, &lease.run, &events)?;
            let new_last = last_seq + events.len() as u64;
            tx.execute(
                "UPDATE runs SET status = ?2, last_seq = ?3, finished = MAX(finished, ?4),
                 finished_at = COALESCE(?5, finished_at) WHERE id = ?1",
                params![
                    lease.run,
                    status,
                    new_last as i64,
                    i64::from(finished),
                    change.finished_at.map(|t| millis::to_millis(t) as i64)
                ],
            )
            .map_err(unavailable)?;
            if finished || new_last.saturating_sub(doc_seq.max(0) as u64) >= SNAPSHOT_EVERY {
                let run = current_doc(&tx, &lease.run, &doc, doc_seq)?;
                tx.execute(
                    "UPDATE runs SET doc = ?2, doc_seq = ?3 WHERE id = ?1",
                    params![
                        lease.run,
                        serde_json::to_string(&run).map_err(corrupt)?,
                        new_last as i64
                    ],
                )
                .map_err(unavailable)?;
            }
            tx.commit().map_err(unavailable)
        })
        .await
    }

    async fn retry(&self, id: &str) -> Result<Vec<RunEvent>, StoreError> {
        let id = id.to_string();
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            let stored = stored_run(&tx, &id)?.ok_or_else(|| StoreError::NotFound(id.clone()))?;
            let events = retry_events(&id, &stored, SystemTime::now())?;
            insert_events(&tx, &id, &events)?;
            tx.execute(
                "UPDATE runs SET status = ?2, last_seq = ?3, finished = 0, finished_at = NULL,
                 takeovers = 0, cancels = 0, lease_token = NULL, lease_worker = NULL,
                 lease_expires = NULL WHERE id = ?1",
                params![
                    id,
                    Status::Pending.word(),
                    (stored.last_seq + events.len() as u64) as i64
                ],
            )
            .map_err(unavailable)?;
            tx.commit().map_err(unavailable)?;
            Ok(events)
        })
        .await
    }

    async fn prune(
        &self,
        keep_runs: Option<usize>,
        older_than: Option<SystemTime>,
    ) -> Result<usize, StoreError> {
        if keep_runs.is_none() && older_than.is_none() {
            return Ok(0);
        }
        let keep = keep_runs.map_or(i64::MAX, |k| i64::try_from(k).unwrap_or(i64::MAX));
        let before = older_than.map_or(i64::MIN, |t| millis::to_millis(t) as i64);
        self.with(move |conn| {
            let mut deleted = 0;
            loop {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(unavailable)?;
                let ids: Vec<String> = {
                    let mut stmt = tx
                        .prepare_cached(
                            "SELECT id FROM (
                               SELECT id, finished_at,
                                 ROW_NUMBER() OVER (ORDER BY finished_at DESC, seq DESC) AS newest
                               FROM runs WHERE finished = 1)
                             WHERE newest > ?1 OR finished_at < ?2 LIMIT ?3",
                        )
                        .map_err(unavailable)?;
                    let rows = stmt
                        .query_map(params![keep, before, PRUNE_BATCH], |r| r.get(0))
                        .map_err(unavailable)?;
                    rows.collect::<Result<_, _>>().map_err(unavailable)?
                };
                if ids.is_empty() {
                    return Ok(deleted);
                }
                for id in &ids {
                    for (table, column) in [
                        ("events", "run"),
                        ("changes", "run"),
                        ("log_chunks", "run"),
                        ("logs", "run"),
                        ("deliveries", "run"),
                        ("runs", "id"),
                    ] {
                        tx.prepare_cached(&format!("DELETE FROM {table} WHERE {column} = ?1"))
                            .and_then(|mut delete| delete.execute(params![id]))
                            .map_err(unavailable)?;
                    }
                }
                tx.commit().map_err(unavailable)?;
                deleted += ids.len();
            }
        })
        .await
    }

    async fn feed(&self, after: u64, limit: usize) -> Result<Vec<Change>, StoreError> {
        self.with(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT c.id, c.run, e.body FROM changes c
                     LEFT JOIN events e ON e.run = c.run AND e.seq = c.seq AND c.seq > 0
                     WHERE c.id > ?1 ORDER BY c.id LIMIT ?2",
                )
                .map_err(unavailable)?;
            let after = i64::try_from(after).unwrap_or(i64::MAX);
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = stmt
                .query_map(params![after, limit], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                    ))
                })
                .map_err(unavailable)?;
            let mut out = Vec::new();
            for row in rows {
                let (id, run, body) = row.map_err(unavailable)?;
                let event = match body {
                    Some(b) => Some(serde_json::from_str(&b).map_err(corrupt)?),
                    None => None,
                };
                out.push(Change {
                    id: id as u64,
                    run,
                    event,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn last_change(&self) -> Result<u64, StoreError> {
        self.with(|conn| {
            // AUTOINCREMENT's own record of the largest id given, even if it was deleted since.
            let last: Option<i64> = conn
                .query_row(
                    "SELECT seq FROM sqlite_sequence WHERE name = 'changes'",
                    [],
                    |r| r.get(0),
                )
                .optional()
                .map_err(unavailable)?;
            Ok(last.unwrap_or(0).max(0) as u64)
        })
        .await
    }

    async fn cancel(&self, id: &str) -> Result<u32, StoreError> {
        let id = id.to_string();
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            if run_field::<i64>(&tx, &id, "finished")? == 1 {
                return Err(StoreError::finished(&id));
            }
            let n: i64 = tx
                .query_row(
                    "UPDATE runs SET cancels = cancels + 1 WHERE id = ?1 RETURNING cancels",
                    params![id],
                    |r| r.get(0),
                )
                .map_err(unavailable)?;
            tx.commit().map_err(unavailable)?;
            Ok(count(n))
        })
        .await
    }

    async fn cancel_requests(&self, id: &str) -> Result<u32, StoreError> {
        let id = id.to_string();
        self.with(move |conn| run_field(conn, &id, "cancels").map(count))
            .await
    }
}

/// The bytes kept of an attempt's log so far.
fn log_size(conn: &Connection, key: &LogKey) -> Result<i64, StoreError> {
    conn.query_row(
        "SELECT size FROM logs WHERE run = ?1 AND job = ?2 AND attempt = ?3",
        params![key.run, key.job, key.attempt],
        |r| r.get(0),
    )
    .map_err(unavailable)
}

fn log_error(e: impl std::fmt::Display) -> LogError {
    LogError(e.to_string())
}

/// Attempts' output, next to their runs: each append a chunk at its offset, so that any reader
/// (another API request, while the attempt runs) reads it from any offset.
#[async_trait]
impl LogSink for SqliteStore {
    async fn append(&self, key: &LogKey, bytes: &[u8]) -> Result<(), LogError> {
        let key = key.clone();
        let bytes = bytes.to_vec();
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            tx.execute(
                "INSERT INTO logs (run, job, attempt) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                params![key.run, key.job, key.attempt],
            )
            .map_err(unavailable)?;
            let size = log_size(&tx, &key)?;
            tx.execute(
                "INSERT INTO log_chunks (run, job, attempt, start, bytes) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![key.run, key.job, key.attempt, size, bytes],
            )
            .map_err(unavailable)?;
            tx.execute(
                "UPDATE logs SET size = size + ?4 WHERE run = ?1 AND job = ?2 AND attempt = ?3",
                params![key.run, key.job, key.attempt, bytes.len() as i64],
            )
            .map_err(unavailable)?;
            tx.commit().map_err(unavailable)
        })
        .await
        .map_err(log_error)
    }

    async fn finish(&self, key: &LogKey) -> Result<Option<String>, LogError> {
        let key = key.clone();
        self.with(move |conn| {
            conn.execute(
                "INSERT INTO logs (run, job, attempt, complete) VALUES (?1, ?2, ?3, 1)
                 ON CONFLICT DO UPDATE SET complete = 1",
                params![key.run, key.job, key.attempt],
            )
            .map_err(unavailable)?;
            let size = log_size(conn, &key)?;
            Ok((size > 0).then(|| format!("store:{}/{}/{}", key.run, key.job, key.attempt)))
        })
        .await
        .map_err(log_error)
    }

    async fn reset(&self, key: &LogKey) -> Result<(), LogError> {
        let key = key.clone();
        self.with(move |conn| {
            let tx = conn.transaction().map_err(unavailable)?;
            for table in ["log_chunks", "logs"] {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE run = ?1 AND job = ?2 AND attempt = ?3"),
                    params![key.run, key.job, key.attempt],
                )
                .map_err(unavailable)?;
            }
            tx.commit().map_err(unavailable)
        })
        .await
        .map_err(log_error)
    }

    async fn read(&self, key: &LogKey, offset: u64, max: usize) -> Result<LogChunk, LogError> {
        let key = key.clone();
        self.with(move |conn| {
            let state: Option<(i64, i64)> = conn
                .query_row(
                    "SELECT size, complete FROM logs WHERE run = ?1 AND job = ?2 AND attempt = ?3",
                    params![key.run, key.job, key.attempt],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(unavailable)?;
            let Some((size, complete)) = state else {
                return Ok(LogChunk {
                    bytes: Vec::new(),
                    next: offset,
                    complete: false,
                });
            };
            let size = size.max(0) as u64;
            let from = offset.min(size);
            let to = from.saturating_add(max as u64).min(size);
            let mut bytes = Vec::with_capacity((to - from) as usize);
            let mut stmt = conn
                .prepare_cached(
                    "SELECT start, bytes FROM log_chunks
                     WHERE run = ?1 AND job = ?2 AND attempt = ?3
                       AND start + length(bytes) > ?4 AND start < ?5
                     ORDER BY start",
                )
                .map_err(unavailable)?;
            let rows = stmt
                .query_map(
                    params![key.run, key.job, key.attempt, from as i64, to as i64],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)),
                )
                .map_err(unavailable)?;
            for row in rows {
                let (start, chunk) = row.map_err(unavailable)?;
                let start = start.max(0) as u64;
                let lo = from.saturating_sub(start) as usize;
                let hi = ((to - start) as usize).min(chunk.len());
                bytes.extend_from_slice(&chunk[lo..hi]);
            }
            Ok(LogChunk {
                next: from + bytes.len() as u64,
                complete: complete == 1 && from + bytes.len() as u64 >= size,
                bytes,
            })
        })
        .await
        .map_err(log_error)
    }
}
