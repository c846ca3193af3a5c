//! The outbox of the in-memory store ([`MemoryStore`](crate::store::MemoryStore)): the same
//! rules as the durable stores, kept in maps.

use super::{resent, settled, Delivery, DeliveryPage, DeliveryState, Settle};
use crate::store::StoreError;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, SystemTime};

struct Held {
    order: u64,
    delivery: Delivery,
    /// Who claimed it, until when.
    claim: Option<(String, SystemTime)>,
}

#[derive(Default)]
pub(crate) struct Deliveries {
    cursor: u64,
    by_id: HashMap<String, Held>,
    /// Enqueue order → id.
    order: BTreeMap<u64, String>,
    next: u64,
}

impl Deliveries {
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    pub fn enqueue(&mut self, from: u64, to: u64, ds: &[Delivery]) -> Result<(), StoreError> {
        if self.cursor != from {
            return Err(StoreError::Conflict(format!(
                "the notifications' cursor is at {}, not {from}",
                self.cursor
            )));
        }
        for d in ds {
            if self.by_id.contains_key(&d.notification.id) {
                continue;
            }
            self.next += 1;
            self.order.insert(self.next, d.notification.id.clone());
            self.by_id.insert(
                d.notification.id.clone(),
                Held {
                    order: self.next,
                    delivery: d.clone(),
                    claim: None,
                },
            );
        }
        self.cursor = to;
        Ok(())
    }

    pub fn claim_due(
        &mut self,
        owner: &str,
        now: SystemTime,
        ttl: Duration,
        limit: usize,
    ) -> Vec<Delivery> {
        let mut due: Vec<(SystemTime, u64, &mut Held)> = self
            .by_id
            .values_mut()
            .filter(|h| {
                h.delivery.state == DeliveryState::Pending
                    && h.delivery.due <= now
                    && h.claim.as_ref().is_none_or(|(_, until)| *until <= now)
            })
            .map(|h| (h.delivery.due, h.order, h))
            .collect();
        due.sort_by_key(|(due, order, _)| (*due, *order));
        due.into_iter()
            .take(limit)
            .map(|(_, _, h)| {
                h.claim = Some((owner.to_string(), now + ttl));
                h.delivery.clone()
            })
            .collect()
    }

    pub fn settle(&mut self, id: &str, owner: &str, how: &Settle) -> Result<(), StoreError> {
        let h = self
            .by_id
            .get_mut(id)
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        match &h.claim {
            Some((o, _)) if o == owner => {}
            _ => {
                return Err(StoreError::Conflict(format!(
                    "notification {id} is not held by {owner}"
                )))
            }
        }
        h.delivery = settled(h.delivery.clone(), how);
        h.claim = None;
        Ok(())
    }

    pub fn get(&self, id: &str) -> Option<Delivery> {
        self.by_id.get(id).map(|h| h.delivery.clone())
    }

    pub fn list(
        &self,
        state: Option<DeliveryState>,
        after: Option<u64>,
        limit: usize,
    ) -> DeliveryPage {
        let limit = limit.max(1);
        let mut out = Vec::new();
        let mut next = None;
        for (&order, id) in self.order.range(..after.unwrap_or(u64::MAX)).rev() {
            let d = &self.by_id[id].delivery;
            if state.is_some_and(|s| s != d.state) {
                continue;
            }
            if out.len() == limit {
                next = Some(order + 1);
                break;
            }
            out.push(d.clone());
        }
        DeliveryPage {
            deliveries: out,
            next,
        }
    }

    pub fn of_run(&self, run: &str, limit: usize) -> Vec<Delivery> {
        self.order
            .values()
            .rev()
            .map(|id| &self.by_id[id].delivery)
            .filter(|d| d.notification.run == run)
            .take(limit)
            .cloned()
            .collect()
    }

    pub fn resend(&mut self, id: &str, now: SystemTime) -> Result<Delivery, StoreError> {
        let h = self
            .by_id
            .get_mut(id)
            .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        h.delivery = resent(h.delivery.clone(), now)?;
        h.claim = None;
        Ok(h.delivery.clone())
    }

    pub fn counts(&self) -> Vec<(DeliveryState, u64)> {
        let mut counts: BTreeMap<DeliveryState, u64> = BTreeMap::new();
        for h in self.by_id.values() {
            *counts.entry(h.delivery.state).or_default() += 1;
        }
        counts.into_iter().collect()
    }

    /// Forgets the notifications of deleted runs.
    pub fn forget_runs(&mut self, runs: &HashSet<&str>) {
        let order = &mut self.order;
        self.by_id.retain(|_, h| {
            let keep = !runs.contains(h.delivery.notification.run.as_str());
            if !keep {
                order.remove(&h.order);
            }
            keep
        });
    }
}
