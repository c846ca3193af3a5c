//! The notifier: two loops over the store. Planning reads the store's feed from the outbox's
//! cursor and enqueues the notifications each change makes, moving the cursor with them in one
//! step. Delivering claims due notifications, sends each (on the blocking pool, a few at once),
//! and settles it: sent, retried after the schedule's next wait (or the receiver's
//! `Retry-After`), dead after the last, skipped when there is nothing to say any more. Any
//! number of notifiers may share a store.

use crate::config::Config;
use crate::message::{jobs_to_show, Context, MAX_JOBS_SHOWN};
use crate::plan::plan;
use crate::send::{send, SendError};
use chainr_compiler::ir::{self, NotifyEvent};
use chainr_runtime::log::{tail, LogKey, LogSink};
use chainr_runtime::outbox::{Delivery, Outbox, Settle};
use chainr_runtime::store::{Store, StoreError};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Changes read from the feed at once.
const FEED_BATCH: usize = 500;

/// Told of each attempt: the medium, and how it ended.
pub type Observer = Arc<dyn Fn(&str, &'static str) + Send + Sync>;

pub struct Notifier {
    pub store: Arc<dyn Store>,
    pub outbox: Arc<dyn Outbox>,
    pub logs: Arc<dyn LogSink>,
    pub config: Arc<Config>,
    /// This notifier's name in claims (unique among the store's notifiers).
    pub owner: String,
    /// Told of each attempt: the medium, and `sent`, `retried`, `dead` or `skipped` (metrics).
    pub observer: Option<Observer>,
    /// How often the feed and the due deliveries are looked at when idle.
    pub poll: Duration,
}

impl Notifier {
    /// Plans and delivers until `stop` turns true; deliveries in flight then finish (each
    /// within the configured timeout) and are settled.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let planner = {
            let me = self.clone();
            let mut stop = stop.clone();
            tokio::spawn(async move {
                let mut complaint = Complaint::default();
                loop {
                    let busy = match me.plan_once().await {
                        Ok(n) => {
                            complaint.over("the notifier reads the store's changes again");
                            n > 0
                        }
                        Err(e) => {
                            complaint.say(&e, "the notifier cannot read the store's changes");
                            false
                        }
                    };
                    if !busy && wait(&mut stop, me.poll).await {
                        return;
                    }
                    if *stop.borrow() {
                        return;
                    }
                }
            })
        };
        let mut flying: JoinSet<()> = JoinSet::new();
        let mut complaint = Complaint::default();
        loop {
            while flying.try_join_next().is_some() {}
            let room = self.config.concurrency.saturating_sub(flying.len());
            let mut claimed = 0;
            if room > 0 {
                match self
                    .outbox
                    .claim_due(&self.owner, SystemTime::now(), self.claim_ttl(), room)
                    .await
                {
                    Ok(ds) => {
                        complaint.over("the notifier claims notifications again");
                        claimed = ds.len();
                        for d in ds {
                            let me = self.clone();
                            flying.spawn(async move { me.deliver(d).await });
                        }
                    }
                    Err(e) => complaint.say(&e, "the notifier cannot claim notifications"),
                }
            }
            if claimed == 0 || room == 0 {
                let idle = tokio::select! {
                    _ = flying.join_next(), if !flying.is_empty() => false,
                    s = wait(&mut stop, self.poll) => s,
                };
                if idle {
                    break;
                }
            }
            if *stop.borrow() {
                break;
            }
        }
        while flying.join_next().await.is_some() {}
        let _ = planner.await;
    }

    /// A claim outlives an attempt: its timeout, reading the run and its logs, settling.
    fn claim_ttl(&self) -> Duration {
        self.config.timeout * 2 + Duration::from_secs(5)
    }

    /// Reads the next changes and enqueues their notifications; answers how many changes.
    pub async fn plan_once(&self) -> Result<usize, StoreError> {
        let cursor = self.outbox.notify_cursor().await?;
        let changes = self.store.feed(cursor, FEED_BATCH).await?;
        let Some(last) = changes.last().map(|c| c.id) else {
            return Ok(0);
        };
        let mut pipelines: HashMap<String, Option<Arc<ir::Pipeline>>> = HashMap::new();
        let mut deliveries = Vec::new();
        for change in &changes {
            let Some(event) = &change.event else { continue };
            if !pipelines.contains_key(&change.run) {
                let p = self
                    .store
                    .get(&change.run)
                    .await?
                    .map(|s| Arc::new(s.pipeline));
                pipelines.insert(change.run.clone(), p);
            }
            // A run deleted since has nothing to say.
            if let Some(Some(p)) = pipelines.get(&change.run) {
                deliveries.extend(plan(&change.run, p, event, &self.config.routes));
            }
        }
        match self.outbox.enqueue(cursor, last, &deliveries).await {
            // Another notifier planned these: read on from where it got.
            Ok(()) | Err(StoreError::Conflict(_)) => Ok(changes.len()),
            Err(e) => Err(e),
        }
    }

    /// One attempt of a claimed delivery, settled.
    pub async fn deliver(&self, d: Delivery) {
        let how = self.attempt(&d).await;
        let medium = d.notification.medium.clone();
        let result = match &how {
            Settle::Sent { .. } => "sent",
            Settle::Retry { .. } => "retried",
            Settle::Dead { .. } => "dead",
            Settle::Skipped { .. } => "skipped",
        };
        match &how {
            Settle::Retry { error, due } => tracing::info!(
                id = %d.notification.id, medium = %medium, error = %error,
                retry_in = ?due.duration_since(SystemTime::now()).unwrap_or_default(),
                "a notification will be sent again"
            ),
            Settle::Dead { error } => tracing::warn!(
                id = %d.notification.id, medium = %medium, error = %error,
                "a notification could not be delivered: it is a dead letter"
            ),
            _ => {}
        }
        match self
            .outbox
            .settle(&d.notification.id, &self.owner, how)
            .await
        {
            Ok(()) => {
                if let Some(observe) = &self.observer {
                    observe(&medium, result);
                }
            }
            // It was sent, but another notifier holds it now (this one was too slow): it may be
            // sent again, with the same id.
            Err(e) => {
                tracing::warn!(id = %d.notification.id, error = %e, "a notification's attempt could not be recorded")
            }
        }
    }

    async fn attempt(&self, d: &Delivery) -> Settle {
        let n = &d.notification;
        let Some(medium) = self.config.media.get(&n.medium).cloned() else {
            return Settle::Dead {
                error: format!(
                    "no medium is named {:?} in this notifier's configuration",
                    n.medium
                ),
            };
        };
        let stored = match self.store.get(&n.run).await {
            Ok(Some(s)) => s,
            Ok(None) => {
                return Settle::Skipped {
                    why: "the run was deleted".into(),
                }
            }
            Err(e) => return self.retry(d, format!("cannot read the run: {e}"), None),
        };
        let run = stored.run;
        if n.event == NotifyEvent::RunningLongerThan {
            if let Some(end) = run.finished_at.filter(|_| run.status.is_terminal()) {
                if end <= n.at {
                    return Settle::Skipped {
                        why: "the run finished in time".into(),
                    };
                }
            }
        }
        let mut jobs = jobs_to_show(n, &run);
        for j in jobs.iter_mut().take(MAX_JOBS_SHOWN) {
            let Some(attempt) = j.last_attempt else {
                continue;
            };
            let key = LogKey {
                run: n.run.clone(),
                job: j.name.clone(),
                attempt,
            };
            j.tail = tail(&*self.logs, &key, self.config.log_lines).await.ok();
        }
        let config = self.config.clone();
        let notification = n.clone();
        let sent = tokio::task::spawn_blocking(move || {
            let context = Context {
                notification: &notification,
                run: &run,
                jobs,
                ui_url: config.ui_url.as_deref(),
            };
            send(&medium, &context, config.timeout, SystemTime::now())
        })
        .await;
        match sent {
            Ok(Ok(())) => Settle::Sent {
                at: SystemTime::now(),
            },
            Ok(Err(SendError::Permanent(error))) => Settle::Dead { error },
            Ok(Err(SendError::Retry { error, after })) => self.retry(d, error, after),
            Err(e) => self.retry(d, format!("the attempt stopped: {e}"), None),
        }
    }

    /// The next attempt by the schedule (or when the receiver asked), or a dead letter after
    /// the last.
    fn retry(&self, d: &Delivery, error: String, after: Option<Duration>) -> Settle {
        match self.config.schedule.after_attempt(d.attempts + 1) {
            Some(wait) => Settle::Retry {
                due: SystemTime::now() + after.unwrap_or(wait),
                error,
            },
            None => Settle::Dead {
                error: format!("{error} (after {} attempts)", d.attempts + 1),
            },
        }
    }
}

/// A store that keeps failing is said once a minute, not at every poll, and its recovery once.
#[derive(Default)]
struct Complaint {
    last: Option<std::time::Instant>,
    missed: u64,
}

impl Complaint {
    const EVERY: Duration = Duration::from_secs(60);

    fn say(&mut self, error: &StoreError, what: &str) {
        match self.last {
            Some(at) if at.elapsed() < Self::EVERY => self.missed += 1,
            _ => {
                tracing::warn!(error = %error, unreported_failures = self.missed, "{what}");
                self.last = Some(std::time::Instant::now());
                self.missed = 0;
            }
        }
    }

    fn over(&mut self, what: &str) {
        if self.last.take().is_some() {
            tracing::info!("{what}");
            self.missed = 0;
        }
    }
}

/// Waits `d` or until `stop` turns true; answers whether it did.
async fn wait(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        r = stop.changed() => r.is_err() || *stop.borrow(),
    }
}
