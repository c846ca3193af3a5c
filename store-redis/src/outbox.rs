//! The outbox ([`Outbox`]) in Redis (keys in `docs/redis.md`):
//! - `PREFIX:notify:cursor`: string, how far the feed has been turned into notifications;
//! - `PREFIX:notify:order`: counter, the enqueue order of deliveries (the list cursor);
//! - `PREFIX:notification:ID`: hash, a delivery: `body` (the `Delivery` as serde writes it),
//!   `state`, `order`, and while claimed `claim_owner` and `claim_until` (ms);
//! - `PREFIX:notifications`, `PREFIX:notifications:STATE`: sorted sets of delivery ids by
//!   enqueue order, for lists and counts;
//! - `PREFIX:notify:due`: sorted set of the pending deliveries by due time (ms), member
//!   `ORDER:ID` with `ORDER` zero-padded, so that deliveries due at the same time are claimed in
//!   the order they were enqueued;
//! - `PREFIX:run:{ID}:notifications`: set, the ids of a run's deliveries, deleted with the run.
//!
//! Enqueueing, claiming and each change of a delivery are Lua scripts. A settle or a resend
//! computes the new delivery in Rust (`settled`, `resent`) and hands it to a script that writes
//! it only if the delivery is still the one read (and, for a settle, still held by its owner);
//! otherwise it is read again.

use super::{corrupt, unavailable, RedisStore};
use async_trait::async_trait;
use chainr_runtime::event::millis;
use chainr_runtime::outbox::{
    resent, settled, Delivery, DeliveryPage, DeliveryState, Outbox, Settle,
};
use chainr_runtime::store::StoreError;
use redis::{AsyncCommands, Script};
use std::time::{Duration, SystemTime};

/// What the scripts that write deliveries share. `place` puts a delivery in a state: in that
/// state's set, and in the due set while it is pending; `drop` deletes it and its entries.
pub(crate) const DELIVERIES: &str = r#"
local function due_member(order, id)
  return string.format('%020d', tonumber(order)) .. ':' .. id
end
local function place(key, id, states, dueset, state, due)
  local order = redis.call('HGET', key, 'order')
  local old = redis.call('HGET', key, 'state')
  if old then redis.call('ZREM', states .. old, id) end
  redis.call('ZADD', states .. state, order, id)
  if state == 'pending' then
    redis.call('ZADD', dueset, due, due_member(order, id))
  else
    redis.call('ZREM', dueset, due_member(order, id))
  end
  redis.call('HSET', key, 'state', state)
end
local function drop(key, id, all, states, dueset)
  local order = redis.call('HGET', key, 'order')
  if not order then return end
  redis.call('ZREM', all, id)
  redis.call('ZREM', states .. redis.call('HGET', key, 'state'), id)
  redis.call('ZREM', dueset, due_member(order, id))
  redis.call('DEL', key)
end
"#;

const ENQUEUE: &str = r#"
-- KEYS: cursor, order counter, all deliveries, due set, then for each delivery its hash and its
--       run's set. ARGV: from, to, state set prefix, then for each delivery its id, state, due
--       (ms) and JSON. Answers nil, or the cursor where it is when that is not `from`.
local at = redis.call('GET', KEYS[1]) or '0'
if at ~= ARGV[1] then return at end
for i = 0, (#ARGV - 3) / 4 - 1 do
  local key, id = KEYS[5 + 2 * i], ARGV[4 + 4 * i]
  if redis.call('EXISTS', key) == 0 then
    local order = redis.call('INCR', KEYS[2])
    redis.call('HSET', key, 'body', ARGV[7 + 4 * i], 'order', order)
    redis.call('ZADD', KEYS[3], order, id)
    redis.call('SADD', KEYS[6 + 2 * i], id)
    place(key, id, ARGV[3], KEYS[4], ARGV[5 + 4 * i], ARGV[6 + 4 * i])
  end
end
redis.call('SET', KEYS[1], ARGV[2])
return false
"#;

const CLAIM_DUE: &str = r#"
-- KEYS: due set. ARGV: delivery key prefix, owner, now (ms), claimed until (ms), limit.
-- The deliveries due by now, soonest first, whose claim is free or expired.
local now, limit = tonumber(ARGV[3]), tonumber(ARGV[5])
local out = {}
local from = 0
while #out < limit do
  local members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[3], 'LIMIT', from, 100)
  if #members == 0 then break end
  for _, m in ipairs(members) do
    local key = ARGV[1] .. string.sub(m, 22)
    if tonumber(redis.call('HGET', key, 'claim_until') or '0') <= now then
      redis.call('HSET', key, 'claim_owner', ARGV[2], 'claim_until', ARGV[4])
      out[#out + 1] = redis.call('HGET', key, 'body')
      if #out == limit then break end
    end
  end
  from = from + 100
end
return out
"#;

const REWRITE: &str = r#"
-- KEYS: delivery hash, due set. ARGV: id, whether the owner is checked (1 or 0), owner, the
-- JSON read, the new JSON, its state, its due time (ms), state set prefix.
-- Answers 1 (written), -1 (no such delivery), -2 (not held by owner), -3 (changed since read).
local body = redis.call('HGET', KEYS[1], 'body')
if not body then return -1 end
if ARGV[2] == '1' and redis.call('HGET', KEYS[1], 'claim_owner') ~= ARGV[3] then return -2 end
if body ~= ARGV[4] then return -3 end
redis.call('HSET', KEYS[1], 'body', ARGV[5])
redis.call('HDEL', KEYS[1], 'claim_owner', 'claim_until')
place(KEYS[1], ARGV[1], ARGV[8], KEYS[2], ARGV[6], ARGV[7])
return 1
"#;

/// The outbox's scripts.
#[derive(Clone)]
pub(crate) struct Scripts {
    enqueue: Script,
    claim_due: Script,
    rewrite: Script,
}

impl Scripts {
    pub(crate) fn new() -> Scripts {
        Scripts {
            enqueue: Script::new(&format!("{DELIVERIES}\n{ENQUEUE}")),
            claim_due: Script::new(CLAIM_DUE),
            rewrite: Script::new(&format!("{DELIVERIES}\n{REWRITE}")),
        }
    }
}

fn json(d: &Delivery) -> Result<String, StoreError> {
    serde_json::to_string(d).map_err(corrupt)
}

fn parse(body: &str) -> Result<Delivery, StoreError> {
    serde_json::from_str(body).map_err(corrupt)
}

impl RedisStore {
    /// A delivery's hash.
    pub(crate) fn delivery_key(&self, id: &str) -> String {
        self.key(&format!("notification:{id}"))
    }

    /// The ids of a run's deliveries.
    pub(crate) fn run_deliveries_key(&self, run: &str) -> String {
        format!("{}:notifications", self.run_key(run))
    }

    /// Reads delivery `id`, changes it with `change` and writes it back with its claim let go,
    /// if it was not changed meanwhile (and, with an `owner`, if `owner` holds it). `NotFound`
    /// for an unknown id; `Conflict` if `owner` does not hold it.
    async fn rewrite(
        &self,
        id: &str,
        owner: Option<&str>,
        change: impl Fn(Delivery) -> Result<Delivery, StoreError>,
    ) -> Result<Delivery, StoreError> {
        let key = self.delivery_key(id);
        let mut conn = self.conn.clone();
        for _ in 0..5 {
            let body: Option<String> = conn.hget(&key, "body").await.map_err(unavailable)?;
            let body = body.ok_or_else(|| StoreError::NotFound(id.to_string()))?;
            let new = change(parse(&body)?)?;
            let code: i64 = self
                .outbox
                .rewrite
                .key(&key)
                .key(self.key("notify:due"))
                .arg(id)
                .arg(i32::from(owner.is_some()))
                .arg(owner.unwrap_or(""))
                .arg(&body)
                .arg(json(&new)?)
                .arg(new.state.word())
                .arg(millis::to_millis(new.due))
                .arg(self.key("notifications:"))
                .invoke_async(&mut conn)
                .await
                .map_err(unavailable)?;
            match code {
                1 => return Ok(new),
                -1 => return Err(StoreError::NotFound(id.to_string())),
                -2 => {
                    return Err(StoreError::Conflict(format!(
                        "notification {id} is not held by {}",
                        owner.unwrap_or_default()
                    )))
                }
                _ => continue,
            }
        }
        Err(StoreError::Conflict(format!(
            "notification {id} kept changing while it was being written"
        )))
    }
}

#[async_trait]
impl Outbox for RedisStore {
    async fn notify_cursor(&self) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        let at: Option<u64> = conn
            .get(self.key("notify:cursor"))
            .await
            .map_err(unavailable)?;
        Ok(at.unwrap_or(0))
    }

    async fn enqueue(&self, from: u64, to: u64, deliveries: &[Delivery]) -> Result<(), StoreError> {
        let mut call = self.outbox.enqueue.prepare_invoke();
        call.key(self.key("notify:cursor"))
            .key(self.key("notify:order"))
            .key(self.key("notifications"))
            .key(self.key("notify:due"))
            .arg(from)
            .arg(to)
            .arg(self.key("notifications:"));
        for d in deliveries {
            let id = &d.notification.id;
            call.key(self.delivery_key(id))
                .key(self.run_deliveries_key(&d.notification.run))
                .arg(id)
                .arg(d.state.word())
                .arg(millis::to_millis(d.due))
                .arg(json(d)?);
        }
        let mut conn = self.conn.clone();
        let at: Option<String> = call.invoke_async(&mut conn).await.map_err(unavailable)?;
        match at {
            None => Ok(()),
            Some(at) => Err(StoreError::Conflict(format!(
                "the notifications' cursor is at {at}, not {from}"
            ))),
        }
    }

    async fn claim_due(
        &self,
        owner: &str,
        now: SystemTime,
        ttl: Duration,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let now = millis::to_millis(now);
        let mut conn = self.conn.clone();
        let bodies: Vec<String> = self
            .outbox
            .claim_due
            .key(self.key("notify:due"))
            .arg(self.key("notification:"))
            .arg(owner)
            .arg(now)
            .arg(now.saturating_add(super::ms(ttl)))
            .arg(limit)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        bodies.iter().map(|b| parse(b)).collect()
    }

    async fn settle(&self, id: &str, owner: &str, how: Settle) -> Result<(), StoreError> {
        self.rewrite(id, Some(owner), |d| Ok(settled(d, &how)))
            .await
            .map(|_| ())
    }

    async fn delivery(&self, id: &str) -> Result<Option<Delivery>, StoreError> {
        let mut conn = self.conn.clone();
        let body: Option<String> = conn
            .hget(self.delivery_key(id), "body")
            .await
            .map_err(unavailable)?;
        body.as_deref().map(parse).transpose()
    }

    async fn deliveries(
        &self,
        state: Option<DeliveryState>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<DeliveryPage, StoreError> {
        let limit = limit.max(1);
        let set = match state {
            Some(s) => self.key(&format!("notifications:{}", s.word())),
            None => self.key("notifications"),
        };
        let upper = after.map_or("+inf".to_string(), |a| format!("({a}"));
        let mut found: Vec<(String, u64)> = self.newest_first(&set, &upper, limit + 1).await?;
        let more = found.len() > limit;
        found.truncate(limit);
        let mut bodies = redis::pipe();
        for (id, _) in &found {
            bodies.hget(self.delivery_key(id), "body");
        }
        let bodies: Vec<Option<String>> = if found.is_empty() {
            Vec::new()
        } else {
            let mut conn = self.conn.clone();
            bodies.query_async(&mut conn).await.map_err(unavailable)?
        };
        let mut deliveries = Vec::with_capacity(found.len());
        // A delivery pruned since its id was read is left out.
        for body in bodies.into_iter().flatten() {
            deliveries.push(parse(&body)?);
        }
        Ok(DeliveryPage {
            deliveries,
            next: found.last().filter(|_| more).map(|(_, order)| *order),
        })
    }

    async fn run_deliveries(&self, run: &str, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        let mut conn = self.conn.clone();
        let ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.run_deliveries_key(run))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut read = redis::pipe();
        for id in &ids {
            read.cmd("HMGET")
                .arg(self.delivery_key(id))
                .arg("order")
                .arg("body");
        }
        let rows: Vec<(Option<u64>, Option<String>)> =
            read.query_async(&mut conn).await.map_err(unavailable)?;
        // Newest first by the order they were enqueued in; one deleted meanwhile is left out.
        let mut found: Vec<(u64, String)> = rows
            .into_iter()
            .filter_map(|(order, body)| Some((order?, body?)))
            .collect();
        found.sort_by_key(|f| std::cmp::Reverse(f.0));
        found
            .into_iter()
            .take(limit)
            .map(|(_, body)| parse(&body))
            .collect()
    }

    async fn resend(&self, id: &str, now: SystemTime) -> Result<Delivery, StoreError> {
        self.rewrite(id, None, |d| resent(d, now)).await
    }

    async fn delivery_counts(&self) -> Result<Vec<(DeliveryState, u64)>, StoreError> {
        let sets = DeliveryState::ALL.map(|s| self.key(&format!("notifications:{}", s.word())));
        let counts = self.cardinalities(&sets).await?;
        Ok(DeliveryState::ALL.into_iter().zip(counts).collect())
    }
}
