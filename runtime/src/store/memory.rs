//! The in-memory store: for tests and for `chainrc run`. Leases expire by the monotonic clock.
//! A clone shares the runs of the store it was cloned from.

use super::{
    retry_events, status_change, Change, Cursor, Lease, ListQuery, NewRun, Page, Store, StoreError,
    StoredRun,
};
use crate::event::RunEvent;
use crate::outbox::{Delivery, DeliveryPage, DeliveryState, Outbox, Settle};
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

struct Entry {
    stored: StoredRun,
    events: Vec<RunEvent>,
    /// Token, holder and expiry of the current lease.
    lease: Option<(String, Instant)>,
    finished: bool,
    cancels: u32,
}

#[derive(Default)]
struct Inner {
    runs: HashMap<String, Entry>,
    /// Creation order → id.
    order: BTreeMap<u64, String>,
    next_order: u64,
    next_token: u64,
    /// The feed: change id → run and event number (0: the run was created).
    changes: BTreeMap<u64, (String, u64)>,
    last_change: u64,
    /// Notifications (the [`Outbox`]).
    outbox: crate::outbox::memory::Deliveries,
}

#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, StoreError> {
        self.inner
            .lock()
            .map_err(|_| StoreError::Unavailable("the memory store is poisoned".into()))
    }
}

impl Inner {
    fn entry(&mut self, id: &str) -> Result<&mut Entry, StoreError> {
        self.runs
            .get_mut(id)
            .ok_or_else(|| StoreError::NotFound(id.to_string()))
    }

    /// Adds the change of event `seq` of run `run` (0: its creation) to the feed.
    fn change(&mut self, run: &str, seq: u64) {
        self.last_change += 1;
        self.changes
            .insert(self.last_change, (run.to_string(), seq));
    }

    /// Writes events that continue the run's numbering: its document, whether it is finished,
    /// the feed.
    fn write(&mut self, id: &str, events: &[RunEvent]) {
        let Some(entry) = self.runs.get_mut(id) else {
            return;
        };
        for e in events {
            entry.stored.run.apply(e);
        }
        if let Some(status) = status_change(events).status {
            entry.finished = status.is_terminal();
        }
        entry.stored.last_seq += events.len() as u64;
        entry.events.extend_from_slice(events);
        for e in events {
            self.change(id, e.seq);
        }
    }
}

/// The entry of a lease that is still held.
fn held<'a>(inner: &'a mut Inner, lease: &Lease) -> Result<&'a mut Entry, StoreError> {
    let lost = || StoreError::LeaseLost(lease.run.clone());
    let entry = inner.runs.get_mut(&lease.run).ok_or_else(lost)?;
    match &entry.lease {
        Some((token, expires)) if *token == lease.token && *expires > Instant::now() => Ok(entry),
        _ => Err(lost()),
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn counts(&self) -> Result<Vec<(crate::record::Status, u64)>, StoreError> {
        let inner = self.lock()?;
        let mut counts: Vec<(crate::record::Status, u64)> = Vec::new();
        for e in inner.runs.values() {
            let status = e.stored.run.status;
            match counts.iter_mut().find(|(s, _)| *s == status) {
                Some((_, n)) => *n += 1,
                None => counts.push((status, 1)),
            }
        }
        Ok(counts)
    }

    async fn create(&self, run: NewRun) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        if inner.runs.contains_key(&run.id) {
            return Err(StoreError::Exists(run.id));
        }
        inner.next_order += 1;
        let order = inner.next_order;
        let doc = run.document();
        inner.order.insert(order, run.id.clone());
        inner.change(&run.id, 0);
        inner.runs.insert(
            run.id,
            Entry {
                stored: StoredRun {
                    pipeline: run.pipeline,
                    run: doc,
                    submitter: run.submitter,
                    created_at: run.created_at,
                    last_seq: 0,
                    takeovers: 0,
                },
                events: Vec::new(),
                lease: None,
                finished: false,
                cancels: 0,
            },
        );
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<StoredRun>, StoreError> {
        Ok(self.lock()?.runs.get(id).map(|e| e.stored.clone()))
    }

    async fn events(
        &self,
        id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<RunEvent>, StoreError> {
        let inner = self.lock()?;
        let entry = inner
            .runs
            .get(id)
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        // Events are numbered from 1 without gaps: event `seq` is at index `seq - 1`.
        let from = (after as usize).min(entry.events.len());
        Ok(entry.events[from..].iter().take(limit).cloned().collect())
    }

    async fn list(&self, query: &ListQuery) -> Result<Page, StoreError> {
        let inner = self.lock()?;
        let limit = query.limit.max(1);
        let upper = query.after.map_or(u64::MAX, |c| c.0);
        let mut runs = Vec::new();
        let mut last = None;
        let mut more = false;
        for (&order, id) in inner.order.range(..upper).rev() {
            let e = &inner.runs[id];
            if query.status.is_some_and(|s| e.stored.run.status != s) {
                continue;
            }
            if query
                .pipeline
                .as_deref()
                .is_some_and(|p| e.stored.pipeline.name.as_deref() != Some(p))
            {
                continue;
            }
            if runs.len() == limit {
                more = true;
                break;
            }
            runs.push(e.stored.run.clone());
            last = Some(order);
        }
        Ok(Page {
            runs,
            next: if more { last.map(Cursor) } else { None },
        })
    }

    async fn claim(&self, worker: &str, ttl: Duration) -> Result<Option<Lease>, StoreError> {
        let mut inner = self.lock()?;
        let now = Instant::now();
        let found = inner.order.values().find(|id| {
            let e = &inner.runs[*id];
            !e.finished && e.lease.as_ref().is_none_or(|(_, exp)| *exp <= now)
        });
        let Some(id) = found.cloned() else {
            return Ok(None);
        };
        inner.next_token += 1;
        let token = format!("{worker}:{}", inner.next_token);
        let entry = inner.runs.get_mut(&id).expect("listed runs exist");
        if entry.lease.is_some() {
            entry.stored.takeovers += 1;
        }
        entry.lease = Some((token.clone(), now + ttl));
        Ok(Some(Lease {
            run: id,
            worker: worker.to_string(),
            token,
            takeovers: entry.stored.takeovers,
        }))
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        let entry = held(&mut inner, lease)?;
        entry.lease = Some((lease.token.clone(), Instant::now() + ttl));
        Ok(())
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        let entry = held(&mut inner, lease)?;
        entry.lease = None;
        Ok(())
    }

    async fn append(&self, lease: &Lease, events: &[RunEvent]) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        let entry = held(&mut inner, lease)?;
        for (i, e) in events.iter().enumerate() {
            let expected = entry.stored.last_seq + 1 + i as u64;
            if e.seq != expected {
                return Err(StoreError::OutOfOrder {
                    run: lease.run.clone(),
                    expected,
                    got: e.seq,
                });
            }
        }
        inner.write(&lease.run, events);
        Ok(())
    }

    async fn retry(&self, id: &str) -> Result<Vec<RunEvent>, StoreError> {
        let mut inner = self.lock()?;
        let entry = inner.entry(id)?;
        let events = retry_events(id, &entry.stored, SystemTime::now())?;
        entry.lease = None;
        entry.stored.takeovers = 0;
        entry.cancels = 0;
        inner.write(id, &events);
        Ok(events)
    }

    async fn prune(
        &self,
        keep_runs: Option<usize>,
        older_than: Option<SystemTime>,
    ) -> Result<usize, StoreError> {
        let mut inner = self.lock()?;
        // Finished runs, newest first by the time they finished.
        let mut finished: Vec<(SystemTime, u64, String)> = inner
            .order
            .iter()
            .filter_map(|(&order, id)| {
                let e = &inner.runs[id];
                let at = e.stored.run.finished_at.filter(|_| e.finished)?;
                Some((at, order, id.clone()))
            })
            .collect();
        finished.sort_by(|a, b| b.cmp(a));
        let doomed: Vec<(u64, String)> = finished
            .into_iter()
            .enumerate()
            .filter(|(i, (at, ..))| {
                keep_runs.is_some_and(|k| *i >= k) || older_than.is_some_and(|t| *at < t)
            })
            .map(|(_, (_, order, id))| (order, id))
            .collect();
        for (order, id) in &doomed {
            inner.order.remove(order);
            inner.runs.remove(id);
        }
        let gone: std::collections::HashSet<&str> =
            doomed.iter().map(|(_, id)| id.as_str()).collect();
        inner
            .changes
            .retain(|_, (run, _)| !gone.contains(run.as_str()));
        inner.outbox.forget_runs(&gone);
        Ok(doomed.len())
    }

    async fn feed(&self, after: u64, limit: usize) -> Result<Vec<Change>, StoreError> {
        let inner = self.lock()?;
        let changes = inner.changes.range(after.saturating_add(1)..).take(limit);
        Ok(changes
            .map(|(&id, (run, seq))| Change {
                id,
                run: run.clone(),
                event: (*seq > 0).then(|| inner.runs[run].events[*seq as usize - 1].clone()),
            })
            .collect())
    }

    async fn last_change(&self) -> Result<u64, StoreError> {
        Ok(self.lock()?.last_change)
    }

    async fn cancel(&self, id: &str) -> Result<u32, StoreError> {
        let mut inner = self.lock()?;
        let entry = inner.entry(id)?;
        if entry.finished {
            return Err(StoreError::finished(id));
        }
        entry.cancels += 1;
        Ok(entry.cancels)
    }

    async fn cancel_requests(&self, id: &str) -> Result<u32, StoreError> {
        Ok(self.lock()?.entry(id)?.cancels)
    }
}

#[async_trait]
impl Outbox for MemoryStore {
    async fn notify_cursor(&self) -> Result<u64, StoreError> {
        Ok(self.lock()?.outbox.cursor())
    }

    async fn enqueue(&self, from: u64, to: u64, deliveries: &[Delivery]) -> Result<(), StoreError> {
        self.lock()?.outbox.enqueue(from, to, deliveries)
    }

    async fn claim_due(
        &self,
        owner: &str,
        now: SystemTime,
        ttl: Duration,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        Ok(self.lock()?.outbox.claim_due(owner, now, ttl, limit))
    }

    async fn settle(&self, id: &str, owner: &str, how: Settle) -> Result<(), StoreError> {
        self.lock()?.outbox.settle(id, owner, &how)
    }

    async fn delivery(&self, id: &str) -> Result<Option<Delivery>, StoreError> {
        Ok(self.lock()?.outbox.get(id))
    }

    async fn deliveries(
        &self,
        state: Option<DeliveryState>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<DeliveryPage, StoreError> {
        Ok(self.lock()?.outbox.list(state, after, limit))
    }

    async fn run_deliveries(&self, run: &str, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        Ok(self.lock()?.outbox.of_run(run, limit))
    }

    async fn resend(&self, id: &str, now: SystemTime) -> Result<Delivery, StoreError> {
        self.lock()?.outbox.resend(id, now)
    }

    async fn delivery_counts(&self) -> Result<Vec<(DeliveryState, u64)>, StoreError> {
        Ok(self.lock()?.outbox.counts())
    }
}
