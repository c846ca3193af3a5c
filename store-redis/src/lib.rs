//! The shared store: runs, their events and their leases in Redis, so that any number of
//! `chainrc serve` processes (API, workers, notifiers) share one state. Writes that belong
//! together are Lua scripts (atomic in Redis), and a worker's writes are fenced by its lease
//! token; lease expiry is judged by the Redis server's clock (`TIME`), the same for every worker.
//! The connection is a `ConnectionManager`: it reconnects by itself after Redis restarts, and
//! every operation fails as `Unavailable` meanwhile.
//!
//! Keys (all under a prefix, `chainr:` by default; documented with their lifetimes in
//! `docs/redis.md`):
//! - `PREFIX:order`: counter, the creation order of runs (the list cursor);
//! - `PREFIX:runs`, `PREFIX:status:STATUS`, `PREFIX:pipeline:NAME`: sorted sets of run ids by
//!   creation order, for lists and their filters;
//! - `PREFIX:queue`: sorted set of the runs not finished, oldest first (claimed when unleased or
//!   their lease expired);
//! - `PREFIX:change`: counter, the last change id; `PREFIX:changes`: sorted set, the feed of every
//!   run's changes, `SEQ:ID` by change id;
//! - `PREFIX:finished`: sorted set of the finished runs by the time they finished (retention);
//! - `PREFIX:run:{ID}`: hash, the run (pipeline, document snapshot, status, last event number,
//!   lease token, holder and expiry, take-overs);
//! - `PREFIX:run:{ID}:events`: list, the run's events in order (event `n` at index `n - 1`);
//! - `PREFIX:run:{ID}:log:ATTEMPT:JOB`: string, an attempt's output (`APPEND`, `GETRANGE`), and
//!   `PREFIX:run:{ID}:logs`: hash, `ATTEMPT:JOB` → `1` once the attempt's log is complete;
//! - the outbox's keys (`PREFIX:notify:*`, `PREFIX:notification:ID`, `PREFIX:notifications*`,
//!   `PREFIX:run:{ID}:notifications`), described in `outbox.rs`.
//!
//! A run's keys share the hash tag `{ID}`. Claims scan the queue and touch run hashes that are
//! not declared keys: this store runs on a single Redis server, not a cluster.

use async_trait::async_trait;
use chainr_compiler::ir;
use chainr_runtime::event::{millis, RunEvent};
use chainr_runtime::log::{LogChunk, LogError, LogKey, LogSink};
use chainr_runtime::record::{Run, Status};
use chainr_runtime::store::{
    retry_events, status_change, Change, Cursor, Lease, ListQuery, NewRun, Page, Store, StoreError,
    StoredRun,
};
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script, ScriptInvocation};
use std::collections::HashMap;
use std::time::{Duration, SystemTime};

mod outbox;

/// The Run document snapshot is rewritten after this many events (a read folds the rest).
pub const SNAPSHOT_EVERY: u64 = 200;

/// What the scripts that write a run share. `change` adds a change to the feed: the next id
/// from the counter, the member `SEQ:RUN` (0: the run was created); every script that creates a
/// run or appends events writes its changes so. `set_status` moves the run between the status
/// sets.
const WRITES: &str = r#"
local function change(counter, feed, seq, run)
  redis.call('ZADD', feed, redis.call('INCR', counter), seq .. ':' .. run)
end
local function set_status(run, prefix, id, status)
  local old = redis.call('HGET', run, 'status')
  if old ~= status then
    redis.call('ZREM', prefix .. old, id)
    redis.call('ZADD', prefix .. status, redis.call('HGET', run, 'order'), id)
    redis.call('HSET', run, 'status', status)
  end
end
"#;

const CREATE: &str = r#"
-- KEYS: run hash, order counter, runs, status set, queue, pipeline set (or ""), change counter,
--       changes
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
change(KEYS[7], KEYS[8], 0, ARGV[1])
local order = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'pipeline', ARGV[2], 'pipeline_name', ARGV[3],
  'submitter', ARGV[4], 'created_at', ARGV[5], 'doc', ARGV[6], 'doc_seq', 0, 'status', ARGV[7],
  'last_seq', 0, 'takeovers', 0, 'finished', 0, 'order', order)
redis.call('ZADD', KEYS[3], order, ARGV[1])
redis.call('ZADD', KEYS[4], order, ARGV[1])
redis.call('ZADD', KEYS[5], order, ARGV[1])
if KEYS[6] ~= '' then redis.call('ZADD', KEYS[6], order, ARGV[1]) end
return 1
"#;

const CLAIM: &str = r#"
-- KEYS: queue. ARGV: run key prefix, worker, ttl ms, new token.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local from = 0
while true do
  local ids = redis.call('ZRANGE', KEYS[1], from, from + 99)
  if #ids == 0 then return false end
  for _, id in ipairs(ids) do
    local key = ARGV[1] .. '{' .. id .. '}'
    local token = redis.call('HGET', key, 'lease_token')
    local expires = tonumber(redis.call('HGET', key, 'lease_expires') or '0')
    if (not token) or expires <= now then
      local takeovers = tonumber(redis.call('HGET', key, 'takeovers') or '0')
      if token then takeovers = takeovers + 1 end
      redis.call('HSET', key, 'lease_token', ARGV[4], 'lease_worker', ARGV[2],
        'lease_expires', now + tonumber(ARGV[3]), 'takeovers', takeovers)
      return {id, takeovers}
    end
  end
  from = from + 100
end
"#;

/// The lease check every fenced script starts with.
const HELD: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local held = redis.call('HGET', KEYS[1], 'lease_token') == ARGV[1]
  and tonumber(redis.call('HGET', KEYS[1], 'lease_expires') or '0') > now
"#;

const RENEW: &str = r#"
-- KEYS: run hash. ARGV: token, ttl ms.
if not held then return 0 end
redis.call('HSET', KEYS[1], 'lease_expires', now + tonumber(ARGV[2]))
return 1
"#;

const RELEASE: &str = r#"
-- KEYS: run hash. ARGV: token.
if not held then return 0 end
redis.call('HDEL', KEYS[1], 'lease_token', 'lease_worker', 'lease_expires')
return 1
"#;

const APPEND: &str = r#"
-- KEYS: run hash, events list, queue, status set prefix, change counter, changes, finished.
-- ARGV: token, first seq, new status (or ""), when the run finished (ms, or ""), snapshot (or
--       ""), snapshot seq, run id, event bodies...
if not held then return {-1, 0} end
local last = tonumber(redis.call('HGET', KEYS[1], 'last_seq'))
if tonumber(ARGV[2]) ~= last + 1 then return {-2, last + 1} end
local n = #ARGV - 7
for i = 8, #ARGV do
  redis.call('RPUSH', KEYS[2], ARGV[i])
  change(KEYS[5], KEYS[6], last + i - 7, ARGV[7])
end
redis.call('HSET', KEYS[1], 'last_seq', last + n)
if ARGV[3] ~= '' then set_status(KEYS[1], KEYS[4], ARGV[7], ARGV[3]) end
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'finished', 1)
  redis.call('ZREM', KEYS[3], ARGV[7])
  redis.call('ZADD', KEYS[7], ARGV[4], ARGV[7])
end
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[1], 'doc', ARGV[5], 'doc_seq', ARGV[6])
end
return {0, last + n}
"#;

const RETRY: &str = r#"
-- KEYS: run hash, events list, queue, status set prefix, change counter, changes, finished.
-- ARGV: the last seq read, run id, the event's body. Not fenced: anyone may ask; a run that
-- changed since it was read (-2, -3) is read again.
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HGET', KEYS[1], 'finished') ~= '1' then return -2 end
local last = tonumber(redis.call('HGET', KEYS[1], 'last_seq'))
if last ~= tonumber(ARGV[1]) then return -3 end
redis.call('RPUSH', KEYS[2], ARGV[3])
change(KEYS[5], KEYS[6], last + 1, ARGV[2])
set_status(KEYS[1], KEYS[4], ARGV[2], 'PENDING')
redis.call('HSET', KEYS[1], 'last_seq', last + 1, 'finished', 0, 'takeovers', 0, 'cancels', 0)
redis.call('HDEL', KEYS[1], 'lease_token', 'lease_worker', 'lease_expires')
redis.call('ZADD', KEYS[3], redis.call('HGET', KEYS[1], 'order'), ARGV[2])
redis.call('ZREM', KEYS[7], ARGV[2])
return 0
"#;

const PRUNE: &str = r#"
-- KEYS: run hash, events list, logs hash, runs, status set prefix, pipeline set prefix,
--       finished, changes, the run's deliveries, all deliveries, the due deliveries, then the
--       run's log keys. ARGV: run id, delivery key prefix, delivery state set prefix.
-- A run that is not finished (retried since it was chosen) is kept.
if redis.call('HGET', KEYS[1], 'finished') ~= '1' then return 0 end
local id = ARGV[1]
local pipeline = redis.call('HGET', KEYS[1], 'pipeline_name')
redis.call('ZREM', KEYS[4], id)
redis.call('ZREM', KEYS[5] .. redis.call('HGET', KEYS[1], 'status'), id)
if pipeline and pipeline ~= '' then redis.call('ZREM', KEYS[6] .. pipeline, id) end
redis.call('ZREM', KEYS[7], id)
for seq = 0, tonumber(redis.call('HGET', KEYS[1], 'last_seq')) do
  redis.call('ZREM', KEYS[8], seq .. ':' .. id)
end
for _, d in ipairs(redis.call('SMEMBERS', KEYS[9])) do
  drop(ARGV[2] .. d, d, KEYS[10], ARGV[3], KEYS[11])
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[9])
for i = 12, #KEYS do redis.call('DEL', KEYS[i]) end
return 1
"#;

const CANCEL: &str = r#"
-- KEYS: run hash. Not fenced: anyone may ask.
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HGET', KEYS[1], 'finished') == '1' then return -2 end
return redis.call('HINCRBY', KEYS[1], 'cancels', 1)
"#;

/// Runs in Redis.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    create: Script,
    claim: Script,
    renew: Script,
    release: Script,
    append: Script,
    retry: Script,
    prune: Script,
    cancel: Script,
    outbox: outbox::Scripts,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// A fenced script's answer: 1 when the lease was held (and the write done).
fn held_or_lost(ok: i64, lease: &Lease) -> Result<(), StoreError> {
    if ok == 1 {
        Ok(())
    } else {
        Err(StoreError::LeaseLost(lease.run.clone()))
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

impl RedisStore {
    /// Connects to `url` (`redis://HOST:PORT/DB`), with keys under `chainr:`.
    pub async fn connect(url: &str) -> Result<RedisStore, StoreError> {
        RedisStore::connect_with_prefix(url, "chainr:").await
    }

    pub async fn connect_with_prefix(url: &str, prefix: &str) -> Result<RedisStore, StoreError> {
        let client = redis::Client::open(url).map_err(unavailable)?;
        let conn = client.get_connection_manager().await.map_err(unavailable)?;
        let fenced = |body: &str| Script::new(&format!("{HELD}\n{body}"));
        Ok(RedisStore {
            conn,
            prefix: prefix.to_string(),
            create: Script::new(&format!("{WRITES}\n{CREATE}")),
            claim: Script::new(CLAIM),
            renew: fenced(RENEW),
            release: fenced(RELEASE),
            append: fenced(&format!("{WRITES}\n{APPEND}")),
            retry: Script::new(&format!("{WRITES}\n{RETRY}")),
            prune: Script::new(&format!("{}\n{PRUNE}", outbox::DELIVERIES)),
            cancel: Script::new(CANCEL),
            outbox: outbox::Scripts::new(),
        })
    }

    fn run_key(&self, id: &str) -> String {
        format!("{}run:{{{id}}}", self.prefix)
    }

    fn events_key(&self, id: &str) -> String {
        format!("{}run:{{{id}}}:events", self.prefix)
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The run's document: its snapshot and the events after it.
    async fn current_doc(
        &self,
        id: &str,
        fields: &HashMap<String, String>,
    ) -> Result<Run, StoreError> {
        let doc = fields
            .get("doc")
            .ok_or_else(|| corrupt(format!("run {id} has no document")))?;
        let mut run: Run = serde_json::from_str(doc).map_err(corrupt)?;
        let doc_seq: isize = fields
            .get("doc_seq")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut conn = self.conn.clone();
        let bodies: Vec<String> = conn
            .lrange(self.events_key(id), doc_seq, -1)
            .await
            .map_err(unavailable)?;
        for body in bodies {
            let e: RunEvent = serde_json::from_str(&body).map_err(corrupt)?;
            run.apply(&e);
        }
        Ok(run)
    }

    /// The keys of a script that writes a run's events: the run's hash and events, the queue,
    /// the status sets' prefix, the feed's counter and set, the finished runs.
    fn event_keys<'c, 'a>(
        &self,
        call: &'c mut ScriptInvocation<'a>,
        id: &str,
    ) -> &'c mut ScriptInvocation<'a> {
        call.key(self.run_key(id))
            .key(self.events_key(id))
            .key(self.key("queue"))
            .key(self.key("status:"))
            .key(self.key("change"))
            .key(self.key("changes"))
            .key(self.key("finished"))
    }

    async fn fields(&self, id: &str) -> Result<HashMap<String, String>, StoreError> {
        let mut conn = self.conn.clone();
        conn.hgetall(self.run_key(id)).await.map_err(unavailable)
    }

    /// At most `count` members of sorted set `set` with their scores, highest first, from
    /// `upper` down (`+inf`, or `(N`: below `N`).
    async fn newest_first<T: redis::FromRedisValue>(
        &self,
        set: &str,
        upper: &str,
        count: usize,
    ) -> Result<Vec<(String, T)>, StoreError> {
        let mut conn = self.conn.clone();
        redis::cmd("ZREVRANGEBYSCORE")
            .arg(set)
            .arg(upper)
            .arg("-inf")
            .arg("WITHSCORES")
            .arg("LIMIT")
            .arg(0)
            .arg(count)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)
    }

    /// The sizes of sorted sets `keys`, in one round trip.
    async fn cardinalities(&self, keys: &[String]) -> Result<Vec<u64>, StoreError> {
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.zcard(key);
        }
        let mut conn = self.conn.clone();
        pipe.query_async(&mut conn).await.map_err(unavailable)
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn counts(&self) -> Result<Vec<(Status, u64)>, StoreError> {
        let sets = Status::ALL.map(|s| self.key(&format!("status:{}", s.word())));
        let counts = self.cardinalities(&sets).await?;
        Ok(Status::ALL.into_iter().zip(counts).collect())
    }

    async fn create(&self, run: NewRun) -> Result<(), StoreError> {
        let pipeline = serde_json::to_string(&run.pipeline).map_err(corrupt)?;
        let doc = run.document();
        let status = doc.status.word();
        let doc = serde_json::to_string(&doc).map_err(corrupt)?;
        let pipeline_key = run
            .pipeline
            .name
            .as_deref()
            .map(|n| self.key(&format!("pipeline:{n}")))
            .unwrap_or_default();
        let mut conn = self.conn.clone();
        let created: i64 = self
            .create
            .key(self.run_key(&run.id))
            .key(self.key("order"))
            .key(self.key("runs"))
            .key(self.key(&format!("status:{status}")))
            .key(self.key("queue"))
            .key(pipeline_key)
            .key(self.key("change"))
            .key(self.key("changes"))
            .arg(&run.id)
            .arg(pipeline)
            .arg(run.pipeline.name.as_deref().unwrap_or(""))
            .arg(run.submitter.as_deref().unwrap_or(""))
            .arg(millis::to_millis(run.created_at))
            .arg(doc)
            .arg(status)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if created == 1 {
            Ok(())
        } else {
            Err(StoreError::Exists(run.id))
        }
    }

    async fn get(&self, id: &str) -> Result<Option<StoredRun>, StoreError> {
        let fields = self.fields(id).await?;
        if fields.is_empty() {
            return Ok(None);
        }
        let get = |k: &str| fields.get(k).map(String::as_str).unwrap_or("");
        let pipeline: ir::Pipeline = serde_json::from_str(get("pipeline")).map_err(corrupt)?;
        let run = self.current_doc(id, &fields).await?;
        Ok(Some(StoredRun {
            pipeline,
            run,
            submitter: Some(get("submitter").to_string()).filter(|s| !s.is_empty()),
            created_at: millis::from_millis(get("created_at").parse().unwrap_or(0)),
            last_seq: get("last_seq").parse().unwrap_or(0),
            takeovers: get("takeovers").parse().unwrap_or(0),
        }))
    }

    async fn events(
        &self,
        id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<RunEvent>, StoreError> {
        let mut conn = self.conn.clone();
        let exists: bool = conn.exists(self.run_key(id)).await.map_err(unavailable)?;
        if !exists {
            return Err(StoreError::NotFound(id.to_string()));
        }
        if limit == 0 {
            return Ok(Vec::new());
        }
        let start = isize::try_from(after).unwrap_or(isize::MAX);
        let stop = start.saturating_add(isize::try_from(limit).unwrap_or(isize::MAX) - 1);
        let bodies: Vec<String> = conn
            .lrange(self.events_key(id), start, stop)
            .await
            .map_err(unavailable)?;
        bodies
            .iter()
            .map(|b| serde_json::from_str(b).map_err(corrupt))
            .collect()
    }

    async fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
        let limit = query.limit.max(1);
        let set = match (&query.status, &query.pipeline) {
            (Some(s), _) => self.key(&format!("status:{}", s.word())),
            (None, Some(p)) => self.key(&format!("pipeline:{p}")),
            (None, None) => self.key("runs"),
        };
        let max = match query.after {
            Some(c) => format!("({}", c.0),
            None => "+inf".to_string(),
        };
        let mut runs = Vec::new();
        let mut last = None;
        let mut more = false;
        let mut upper = max;
        // A status filter may also name a pipeline: read pages until enough runs match.
        'pages: loop {
            let batch: Vec<(String, f64)> = self.newest_first(&set, &upper, limit + 1).await?;
            if batch.is_empty() {
                break;
            }
            for (id, score) in &batch {
                upper = format!("({score}");
                let fields = self.fields(id).await?;
                if fields.is_empty() {
                    continue;
                }
                if let (Some(_), Some(p)) = (&query.status, &query.pipeline) {
                    if fields.get("pipeline_name") != Some(p) {
                        continue;
                    }
                }
                if runs.len() == limit {
                    more = true;
                    break 'pages;
                }
                runs.push(self.current_doc(id, &fields).await?);
                last = Some(*score as u64);
            }
            if batch.len() <= limit {
                break;
            }
        }
        Ok(Page {
            runs,
            next: if more { last.map(Cursor) } else { None },
        })
    }

    async fn claim(&self, worker: &str, ttl: Duration) -> Result<Option<Lease>, StoreError> {
        let token = uuid::Uuid::new_v4().to_string();
        let mut conn = self.conn.clone();
        let got: Option<(String, u32)> = self
            .claim
            .key(self.key("queue"))
            .arg(self.key("run:"))
            .arg(worker)
            .arg(ms(ttl))
            .arg(&token)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(got.map(|(run, takeovers)| Lease {
            run,
            worker: worker.to_string(),
            token,
            takeovers,
        }))
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let ok: i64 = self
            .renew
            .key(self.run_key(&lease.run))
            .arg(&lease.token)
            .arg(ms(ttl))
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        held_or_lost(ok, lease)
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let ok: i64 = self
            .release
            .key(self.run_key(&lease.run))
            .arg(&lease.token)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        held_or_lost(ok, lease)
    }

    async fn append(&self, lease: &Lease, events: &[RunEvent]) -> Result<(), StoreError> {
        let Some(first) = events.first() else {
            return Ok(());
        };
        for (i, e) in events.iter().enumerate() {
            if e.seq != first.seq + i as u64 {
                return Err(StoreError::OutOfOrder {
                    run: lease.run.clone(),
                    expected: first.seq + i as u64,
                    got: e.seq,
                });
            }
        }
        let change = status_change(events);
        let finished = change.finished_at.is_some();
        let status = change.status.map_or("", Status::word);
        let new_last = first.seq - 1 + events.len() as u64;
        // A new snapshot when the run finishes or enough events passed; the script refuses it
        // unless the events continue from what was read here.
        let mut snapshot = String::new();
        let fields = self.fields(&lease.run).await?;
        let doc_seq: u64 = fields
            .get("doc_seq")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if !fields.is_empty() && (finished || new_last.saturating_sub(doc_seq) >= SNAPSHOT_EVERY) {
            let mut run = self.current_doc(&lease.run, &fields).await?;
            for e in events {
                run.apply(e);
            }
            snapshot = serde_json::to_string(&run).map_err(corrupt)?;
        }
        let mut call = self.append.prepare_invoke();
        self.event_keys(&mut call, &lease.run)
            .arg(&lease.token)
            .arg(first.seq)
            .arg(status)
            .arg(
                change
                    .finished_at
                    .map(|t| millis::to_millis(t).to_string())
                    .unwrap_or_default(),
            )
            .arg(&snapshot)
            .arg(new_last)
            .arg(&lease.run);
        for e in events {
            call.arg(serde_json::to_string(e).map_err(corrupt)?);
        }
        let mut conn = self.conn.clone();
        let (code, value): (i64, u64) = call.invoke_async(&mut conn).await.map_err(unavailable)?;
        match code {
            0 => Ok(()),
            -1 => Err(StoreError::LeaseLost(lease.run.clone())),
            _ => Err(StoreError::OutOfOrder {
                run: lease.run.clone(),
                expected: value,
                got: first.seq,
            }),
        }
    }

    async fn retry(&self, id: &str) -> Result<Vec<RunEvent>, StoreError> {
        // Read, decide, write if nothing changed in between; a few times at most.
        for _ in 0..5 {
            let stored = self
                .get(id)
                .await?
                .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
            let events = retry_events(id, &stored, SystemTime::now())?;
            let mut call = self.retry.prepare_invoke();
            self.event_keys(&mut call, id)
                .arg(stored.last_seq)
                .arg(id)
                .arg(serde_json::to_string(&events[0]).map_err(corrupt)?);
            let mut conn = self.conn.clone();
            let code: i64 = call.invoke_async(&mut conn).await.map_err(unavailable)?;
            match code {
                0 => return Ok(events),
                -1 => return Err(StoreError::NotFound(id.to_string())),
                _ => continue,
            }
        }
        Err(StoreError::Conflict(format!(
            "run {id} kept changing while it was being retried"
        )))
    }

    async fn prune(
        &self,
        keep_runs: Option<usize>,
        older_than: Option<SystemTime>,
    ) -> Result<usize, StoreError> {
        let mut conn = self.conn.clone();
        let mut chosen = std::collections::BTreeSet::new();
        if let Some(keep) = keep_runs {
            let beyond: Vec<String> = conn
                .zrevrange(
                    self.key("finished"),
                    isize::try_from(keep).unwrap_or(isize::MAX),
                    -1,
                )
                .await
                .map_err(unavailable)?;
            chosen.extend(beyond);
        }
        if let Some(t) = older_than {
            let old: Vec<String> = conn
                .zrangebyscore(
                    self.key("finished"),
                    "-inf",
                    format!("({}", millis::to_millis(t)),
                )
                .await
                .map_err(unavailable)?;
            chosen.extend(old);
        }
        let mut deleted = 0;
        for id in chosen {
            let Some(stored) = self.get(&id).await? else {
                continue;
            };
            // Every log of the run: those finished, and those of every attempt it records.
            let logs = self.logs_key(&id);
            let finished_logs: Vec<String> = conn.hkeys(&logs).await.map_err(unavailable)?;
            let mut log_keys = std::collections::BTreeSet::new();
            for field in finished_logs {
                if let Some((attempt, job)) = field.split_once(':') {
                    log_keys.insert(self.log_key(&id, job, attempt.parse().unwrap_or(0)));
                }
            }
            for job in &stored.run.jobs {
                for a in &job.attempts {
                    log_keys.insert(self.log_key(&id, &job.name, a.attempt));
                }
            }
            let mut call = self.prune.prepare_invoke();
            call.key(self.run_key(&id))
                .key(self.events_key(&id))
                .key(logs)
                .key(self.key("runs"))
                .key(self.key("status:"))
                .key(self.key("pipeline:"))
                .key(self.key("finished"))
                .key(self.key("changes"))
                .key(self.run_deliveries_key(&id))
                .key(self.key("notifications"))
                .key(self.key("notify:due"))
                .arg(&id)
                .arg(self.key("notification:"))
                .arg(self.key("notifications:"));
            for key in log_keys {
                call.key(key);
            }
            let n: usize = call.invoke_async(&mut conn).await.map_err(unavailable)?;
            deleted += n;
        }
        Ok(deleted)
    }

    async fn feed(&self, after: u64, limit: usize) -> Result<Vec<Change>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let members: Vec<(String, u64)> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.key("changes"))
            .arg(format!("({after}"))
            .arg("+inf")
            .arg("WITHSCORES")
            .arg("LIMIT")
            .arg(0)
            .arg(limit.min(i64::MAX as usize))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let mut changes = Vec::with_capacity(members.len());
        let mut lookups = redis::pipe();
        for (member, id) in members {
            let (seq, run) = member
                .split_once(':')
                .and_then(|(seq, run)| Some((seq.parse::<u64>().ok()?, run)))
                .ok_or_else(|| corrupt(format!("change {id} is {member:?}")))?;
            if seq > 0 {
                lookups.cmd("LINDEX").arg(self.events_key(run)).arg(seq - 1);
            }
            changes.push((id, run.to_string(), seq));
        }
        let mut bodies: Vec<Option<String>> = Vec::new();
        if changes.iter().any(|(_, _, seq)| *seq > 0) {
            bodies = lookups.query_async(&mut conn).await.map_err(unavailable)?;
        }
        let mut bodies = bodies.into_iter();
        let mut out = Vec::with_capacity(changes.len());
        for (id, run, seq) in changes {
            let event = if seq == 0 {
                None
            } else {
                match bodies.next().flatten() {
                    Some(body) => Some(serde_json::from_str(&body).map_err(corrupt)?),
                    // The run was deleted after its changes were read: so are they.
                    None => continue,
                }
            };
            out.push(Change { id, run, event });
        }
        Ok(out)
    }

    async fn last_change(&self) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        let last: Option<u64> = conn.get(self.key("change")).await.map_err(unavailable)?;
        Ok(last.unwrap_or(0))
    }

    async fn cancel(&self, id: &str) -> Result<u32, StoreError> {
        let mut conn = self.conn.clone();
        let n: i64 = self
            .cancel
            .key(self.run_key(id))
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        match n {
            -1 => Err(StoreError::NotFound(id.to_string())),
            -2 => Err(StoreError::finished(id)),
            n => Ok(u32::try_from(n).unwrap_or(u32::MAX)),
        }
    }

    async fn cancel_requests(&self, id: &str) -> Result<u32, StoreError> {
        let mut conn = self.conn.clone();
        let (exists, n): (Option<String>, Option<u32>) = redis::cmd("HMGET")
            .arg(self.run_key(id))
            .arg("id")
            .arg("cancels")
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        match exists {
            Some(_) => Ok(n.unwrap_or(0)),
            None => Err(StoreError::NotFound(id.to_string())),
        }
    }
}

fn log_error(e: impl std::fmt::Display) -> LogError {
    LogError(e.to_string())
}

impl RedisStore {
    /// An attempt's output.
    fn log_key(&self, run: &str, job: &str, attempt: u32) -> String {
        format!("{}run:{{{run}}}:log:{attempt}:{job}", self.prefix)
    }

    /// Which of the run's attempts' logs are complete.
    fn logs_key(&self, run: &str) -> String {
        format!("{}run:{{{run}}}:logs", self.prefix)
    }

    fn attempt_log(&self, key: &LogKey) -> String {
        self.log_key(&key.run, &key.job, key.attempt)
    }
}

/// Attempts' output, next to their runs, readable by any API process while the attempt runs.
#[async_trait]
impl LogSink for RedisStore {
    async fn append(&self, key: &LogKey, bytes: &[u8]) -> Result<(), LogError> {
        let mut conn = self.conn.clone();
        let _: u64 = conn
            .append(self.attempt_log(key), bytes)
            .await
            .map_err(log_error)?;
        Ok(())
    }

    async fn finish(&self, key: &LogKey) -> Result<Option<String>, LogError> {
        let mut conn = self.conn.clone();
        let field = format!("{}:{}", key.attempt, key.job);
        let (size,): (u64,) = redis::pipe()
            .atomic()
            .hset(self.logs_key(&key.run), field, 1)
            .ignore()
            .strlen(self.attempt_log(key))
            .query_async(&mut conn)
            .await
            .map_err(log_error)?;
        Ok((size > 0).then(|| format!("store:{}/{}/{}", key.run, key.job, key.attempt)))
    }

    async fn reset(&self, key: &LogKey) -> Result<(), LogError> {
        let mut conn = self.conn.clone();
        let field = format!("{}:{}", key.attempt, key.job);
        redis::pipe()
            .atomic()
            .del(self.attempt_log(key))
            .ignore()
            .hdel(self.logs_key(&key.run), field)
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(log_error)
    }

    async fn read(&self, key: &LogKey, offset: u64, max: usize) -> Result<LogChunk, LogError> {
        let mut conn = self.conn.clone();
        let field = format!("{}:{}", key.attempt, key.job);
        let (size, done): (u64, Option<String>) = redis::pipe()
            .atomic()
            .strlen(self.attempt_log(key))
            .hget(self.logs_key(&key.run), field)
            .query_async(&mut conn)
            .await
            .map_err(log_error)?;
        let from = offset.min(size);
        let to = from.saturating_add(max as u64).min(size);
        let bytes: Vec<u8> = if to > from {
            conn.getrange(self.attempt_log(key), from as isize, (to - 1) as isize)
                .await
                .map_err(log_error)?
        } else {
            Vec::new()
        };
        let next = from + bytes.len() as u64;
        Ok(LogChunk {
            complete: done.is_some() && next >= size,
            next,
            bytes,
        })
    }
}
