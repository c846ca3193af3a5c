//! The outbox ([`Outbox`]) in the same file as the runs: notifications in `deliveries`, the
//! notifier's cursor over the feed in `notify_cursor` (see `outbox_schema!`). Enqueueing,
//! claiming, settling and resending are each one transaction; a delivery's JSON is the
//! `Delivery` as serde writes it, its `state` and `due` columns kept beside it for the indexes.

use super::{corrupt, counted, ms, unavailable, SqliteStore};
use async_trait::async_trait;
use chainr_runtime::event::millis;
use chainr_runtime::outbox::{
    resent, settled, Delivery, DeliveryPage, DeliveryState, Outbox, Settle,
};
use chainr_runtime::store::StoreError;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::time::{Duration, SystemTime};

fn at_ms(t: SystemTime) -> i64 {
    millis::to_millis(t).min(i64::MAX as u64) as i64
}

fn json(d: &Delivery) -> Result<String, StoreError> {
    serde_json::to_string(d).map_err(corrupt)
}

fn parse(body: &str) -> Result<Delivery, StoreError> {
    serde_json::from_str(body).map_err(corrupt)
}

fn cursor(conn: &Connection) -> Result<u64, StoreError> {
    let cursor: Option<i64> = conn
        .query_row("SELECT cursor FROM notify_cursor WHERE one = 1", [], |r| {
            r.get(0)
        })
        .optional()
        .map_err(unavailable)?;
    // Stored as the same 64 bits: every u64 comes back as it went in.
    Ok(cursor.unwrap_or(0) as u64)
}

/// Reads delivery `id` and its claim's holder, changes it with `change` and writes it back, its
/// claim let go, in one transaction. `NotFound` for an unknown id; `Conflict` if `owner` is
/// given and does not hold it.
fn rewrite(
    conn: &mut Connection,
    id: &str,
    owner: Option<&str>,
    change: impl FnOnce(Delivery) -> Result<Delivery, StoreError>,
) -> Result<Delivery, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(unavailable)?;
    let (body, holder): (String, Option<String>) = tx
        .query_row(
            "SELECT body, claim_owner FROM deliveries WHERE id = ?1",
            params![id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(unavailable)?
        .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
    if let Some(owner) = owner {
        if holder.as_deref() != Some(owner) {
            return Err(StoreError::Conflict(format!(
                "notification {id} is not held by {owner}"
            )));
        }
    }
    let d = change(parse(&body)?)?;
    tx.execute(
        "UPDATE deliveries SET body = ?2, state = ?3, due = ?4, claim_owner = NULL,
         claim_until = NULL WHERE id = ?1",
        params![id, json(&d)?, d.state.word(), at_ms(d.due)],
    )
    .map_err(unavailable)?;
    tx.commit().map_err(unavailable)?;
    Ok(d)
}

/// The bodies of the rows `stmt` answers (`seq`, `body`), parsed.
fn bodies(
    stmt: &mut rusqlite::CachedStatement<'_>,
    params: impl rusqlite::Params,
) -> Result<Vec<(i64, Delivery)>, StoreError> {
    let rows = stmt
        .query_map(params, |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })
        .map_err(unavailable)?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, body) = row.map_err(unavailable)?;
        out.push((seq, parse(&body)?));
    }
    Ok(out)
}

#[async_trait]
impl Outbox for SqliteStore {
    async fn notify_cursor(&self) -> Result<u64, StoreError> {
        self.with(|conn| cursor(conn)).await
    }

    async fn enqueue(&self, from: u64, to: u64, deliveries: &[Delivery]) -> Result<(), StoreError> {
        let rows = deliveries
            .iter()
            .map(|d| {
                Ok((
                    d.notification.id.clone(),
                    d.notification.run.clone(),
                    d.state.word(),
                    at_ms(d.due),
                    json(d)?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            let at = cursor(&tx)?;
            if at != from {
                return Err(StoreError::Conflict(format!(
                    "the notifications' cursor is at {at}, not {from}"
                )));
            }
            {
                let mut insert = tx
                    .prepare_cached(
                        "INSERT INTO deliveries (id, run, state, due, body)
                         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (id) DO NOTHING",
                    )
                    .map_err(unavailable)?;
                for (id, run, state, due, body) in &rows {
                    insert
                        .execute(params![id, run, state, due, body])
                        .map_err(unavailable)?;
                }
            }
            tx.execute(
                "INSERT INTO notify_cursor (one, cursor) VALUES (1, ?1)
                 ON CONFLICT (one) DO UPDATE SET cursor = excluded.cursor",
                params![to as i64],
            )
            .map_err(unavailable)?;
            tx.commit().map_err(unavailable)
        })
        .await
    }

    async fn claim_due(
        &self,
        owner: &str,
        now: SystemTime,
        ttl: Duration,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let owner = owner.to_string();
        let now = at_ms(now);
        let until = now.saturating_add(ms(ttl));
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            let due = {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT seq, body FROM deliveries
                         WHERE state = ?1 AND due <= ?2
                           AND (claim_owner IS NULL OR claim_until <= ?2)
                         ORDER BY due, seq LIMIT ?3",
                    )
                    .map_err(unavailable)?;
                bodies(
                    &mut stmt,
                    params![DeliveryState::Pending.word(), now, limit],
                )?
            };
            {
                let mut hold = tx
                    .prepare_cached(
                        "UPDATE deliveries SET claim_owner = ?2, claim_until = ?3 WHERE seq = ?1",
                    )
                    .map_err(unavailable)?;
                for (seq, _) in &due {
                    hold.execute(params![seq, owner, until])
                        .map_err(unavailable)?;
                }
            }
            tx.commit().map_err(unavailable)?;
            Ok(due.into_iter().map(|(_, d)| d).collect())
        })
        .await
    }

    async fn settle(&self, id: &str, owner: &str, how: Settle) -> Result<(), StoreError> {
        let (id, owner) = (id.to_string(), owner.to_string());
        self.with(move |conn| rewrite(conn, &id, Some(&owner), |d| Ok(settled(d, &how))))
            .await
            .map(|_| ())
    }

    async fn delivery(&self, id: &str) -> Result<Option<Delivery>, StoreError> {
        let id = id.to_string();
        self.with(move |conn| {
            let body: Option<String> = conn
                .query_row(
                    "SELECT body FROM deliveries WHERE id = ?1",
                    params![id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(unavailable)?;
            body.as_deref().map(parse).transpose()
        })
        .await
    }

    async fn deliveries(
        &self,
        state: Option<DeliveryState>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<DeliveryPage, StoreError> {
        let limit = limit.max(1);
        let before = after.map_or(i64::MAX, |a| i64::try_from(a).unwrap_or(i64::MAX));
        let fetch = i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1);
        self.with(move |conn| {
            let mut found = match state {
                Some(state) => bodies(
                    &mut conn
                        .prepare_cached(
                            "SELECT seq, body FROM deliveries WHERE state = ?1 AND seq < ?2
                             ORDER BY seq DESC LIMIT ?3",
                        )
                        .map_err(unavailable)?,
                    params![state.word(), before, fetch],
                )?,
                None => bodies(
                    &mut conn
                        .prepare_cached(
                            "SELECT seq, body FROM deliveries WHERE seq < ?1
                             ORDER BY seq DESC LIMIT ?2",
                        )
                        .map_err(unavailable)?,
                    params![before, fetch],
                )?,
            };
            let more = found.len() > limit;
            found.truncate(limit);
            let next = found.last().filter(|_| more).map(|(seq, _)| *seq as u64);
            Ok(DeliveryPage {
                deliveries: found.into_iter().map(|(_, d)| d).collect(),
                next,
            })
        })
        .await
    }

    async fn run_deliveries(&self, run: &str, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        let run = run.to_string();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with(move |conn| {
            let found = bodies(
                &mut conn
                    .prepare_cached(
                        "SELECT seq, body FROM deliveries WHERE run = ?1 ORDER BY seq DESC LIMIT ?2",
                    )
                    .map_err(unavailable)?,
                params![run, limit],
            )?;
            Ok(found.into_iter().map(|(_, d)| d).collect())
        })
        .await
    }

    async fn resend(&self, id: &str, now: SystemTime) -> Result<Delivery, StoreError> {
        let id = id.to_string();
        self.with(move |conn| rewrite(conn, &id, None, |d| resent(d, now)))
            .await
    }

    async fn delivery_counts(&self) -> Result<Vec<(DeliveryState, u64)>, StoreError> {
        self.with(|conn| {
            counted(
                conn,
                "SELECT state, COUNT(*) FROM deliveries GROUP BY state",
                |word| word.parse().ok(),
            )
        })
        .await
    }
}
