//! Notifications waiting to be delivered, and those delivered or given up: the [`Outbox`]
//! trait every store implements beside [`Store`](crate::store::Store), and its conformance
//! suite (`conformance`).
//!
//! A notifier reads the store's feed of run changes from the outbox's cursor, turns each change
//! into notifications (one per medium) and hands them to [`Outbox::enqueue`], which adds them and
//! moves the cursor in one step: a notifier that dies between reading and enqueueing reads the
//! same changes again, and the ids (derived from the run, the event and the medium by
//! [`notification_id`]) make enqueueing them twice add nothing. Deliveries are then claimed like
//! runs are (a claim that expires goes back to the others), and each attempt is settled: sent,
//! retried later, dead, or skipped. Nothing is acknowledged before it was delivered: a delivery
//! whose notifier died after sending and before settling is sent again with the same id, which
//! is how receivers recognise it (`webhook-id`, `Message-ID`).

pub mod conformance;
pub(crate) mod memory;

use crate::store::StoreError;
use async_trait::async_trait;
use chainr_compiler::ir::NotifyEvent;
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime};

/// One message for one medium about one event of one run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// Derived from the run, the event and the medium ([`notification_id`]).
    pub id: String,
    pub run: String,
    /// The pipeline's name.
    pub pipeline: String,
    /// The number of the run's event this is about (for `running_longer_than`: the run's start).
    pub seq: u64,
    pub event: NotifyEvent,
    /// The job, for a job's events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// The medium's name in the notifier's configuration.
    pub medium: String,
    /// When the event happened (for `running_longer_than`: when the run had run that long).
    #[serde(with = "crate::record::time_always")]
    #[schemars(with = "String")]
    pub at: SystemTime,
    /// For `running_longer_than`: how long, as written (`2h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// The id of the notification about event `seq` of `run` (`event`, `job`) for `medium`: the same
/// inputs give the same id in every process, so a notification planned twice is one
/// notification. A UUID (version 5, name-based).
pub fn notification_id(
    run: &str,
    seq: u64,
    event: NotifyEvent,
    job: Option<&str>,
    medium: &str,
) -> String {
    let name = format!(
        "{run}\n{seq}\n{}\n{}\n{medium}",
        event.name(),
        job.unwrap_or("")
    );
    uuid::Uuid::new_v5(&NAMESPACE, name.as_bytes()).to_string()
}

/// The namespace of notification ids (a random UUID, fixed once).
const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6f1d_3c4e_9b2a_4d71_8e55_0c7a_21f4_b903);

/// Where a delivery stands.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Waiting for its first attempt or for its next one (`due`).
    Pending,
    /// The medium accepted it.
    Sent,
    /// Every attempt failed, or it can never succeed: a dead letter, until it is resent.
    Dead,
    /// Not sent, and never to be: a `running_longer_than` for a run that finished in time, or a
    /// run that was deleted.
    Skipped,
}

impl DeliveryState {
    pub const ALL: [DeliveryState; 4] = [
        DeliveryState::Pending,
        DeliveryState::Sent,
        DeliveryState::Dead,
        DeliveryState::Skipped,
    ];

    pub fn word(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Sent => "sent",
            DeliveryState::Dead => "dead",
            DeliveryState::Skipped => "skipped",
        }
    }
}

impl std::str::FromStr for DeliveryState {
    type Err = String;
    fn from_str(s: &str) -> Result<DeliveryState, String> {
        DeliveryState::ALL
            .into_iter()
            .find(|d| d.word() == s)
            .ok_or_else(|| format!("unknown state {s:?}: expected pending, sent, dead or skipped"))
    }
}

/// A notification and how its delivery goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    #[serde(flatten)]
    pub notification: Notification,
    pub state: DeliveryState,
    /// Attempts made so far (since it was last resent).
    pub attempts: u32,
    /// Not attempted before this time (pending ones).
    #[serde(with = "crate::record::time_always")]
    #[schemars(with = "String")]
    pub due: SystemTime,
    /// Why the last attempt failed, or why it was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the medium accepted it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::record::time"
    )]
    #[schemars(with = "Option<String>")]
    pub sent_at: Option<SystemTime>,
}

impl Delivery {
    /// A notification not yet attempted, due at `due`.
    pub fn new(notification: Notification, due: SystemTime) -> Delivery {
        Delivery {
            notification,
            state: DeliveryState::Pending,
            attempts: 0,
            due: crate::event::millis::whole(due),
            last_error: None,
            sent_at: None,
        }
    }
}

/// How an attempt of a claimed delivery ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settle {
    /// The medium accepted it.
    Sent { at: SystemTime },
    /// It failed; try again at `due`.
    Retry { due: SystemTime, error: String },
    /// It failed for good: a dead letter.
    Dead { error: String },
    /// It is not to be sent (no attempt is counted).
    Skipped { why: String },
}

/// One page of deliveries, newest first; `next` reads the following page.
#[derive(Clone, Debug)]
pub struct DeliveryPage {
    pub deliveries: Vec<Delivery>,
    pub next: Option<u64>,
}

#[async_trait]
pub trait Outbox: Send + Sync {
    /// The position in the store's feed up to which changes have been turned into
    /// notifications (0: none yet).
    async fn notify_cursor(&self) -> Result<u64, StoreError>;

    /// Adds `deliveries` (one whose id is already there is left as it is) and moves the cursor
    /// from `from` to `to`, all at once. `Conflict` if the cursor is no longer at `from` (another
    /// notifier moved it): then nothing is added.
    async fn enqueue(&self, from: u64, to: u64, deliveries: &[Delivery]) -> Result<(), StoreError>;

    /// Claims for `owner`, until `now + ttl`, at most `limit` pending deliveries due by `now`
    /// that nobody holds (or whose claim expired), soonest due first.
    async fn claim_due(
        &self,
        owner: &str,
        now: SystemTime,
        ttl: Duration,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError>;

    /// Records how an attempt of a delivery claimed by `owner` ended, and lets the claim go.
    /// `Conflict` if `owner` no longer holds it (its claim expired and another notifier claimed
    /// it, or it was settled); `NotFound` if there is no such delivery.
    async fn settle(&self, id: &str, owner: &str, how: Settle) -> Result<(), StoreError>;

    async fn delivery(&self, id: &str) -> Result<Option<Delivery>, StoreError>;

    /// Deliveries newest first (by when they were enqueued), with `state` if given, older than
    /// position `after`, at most `limit`.
    async fn deliveries(
        &self,
        state: Option<DeliveryState>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<DeliveryPage, StoreError>;

    /// A run's deliveries, newest first (by when they were enqueued), at most `limit`.
    async fn run_deliveries(&self, run: &str, limit: usize) -> Result<Vec<Delivery>, StoreError>;

    /// Makes a dead letter pending again, due at `now`, with no attempts counted; answers it.
    /// `Conflict` for a delivery that is not dead, `NotFound` for an unknown id.
    async fn resend(&self, id: &str, now: SystemTime) -> Result<Delivery, StoreError>;

    /// How many deliveries are in each state (a state none is in may be left out).
    async fn delivery_counts(&self) -> Result<Vec<(DeliveryState, u64)>, StoreError>;
}

/// What settling does to a delivery: the rules every store applies (stores keep the fields;
/// this says what they become).
pub fn settled(mut d: Delivery, how: &Settle) -> Delivery {
    match how {
        Settle::Sent { at } => {
            d.attempts += 1;
            d.state = DeliveryState::Sent;
            d.sent_at = Some(crate::event::millis::whole(*at));
            d.last_error = None;
        }
        Settle::Retry { due, error } => {
            d.attempts += 1;
            d.due = crate::event::millis::whole(*due);
            d.last_error = Some(error.clone());
        }
        Settle::Dead { error } => {
            d.attempts += 1;
            d.state = DeliveryState::Dead;
            d.last_error = Some(error.clone());
        }
        Settle::Skipped { why } => {
            d.state = DeliveryState::Skipped;
            d.last_error = Some(why.clone());
        }
    }
    d
}

/// What a resend does to a dead letter (`Conflict` for one that is not dead).
pub fn resent(mut d: Delivery, now: SystemTime) -> Result<Delivery, StoreError> {
    if d.state != DeliveryState::Dead {
        return Err(StoreError::Conflict(format!(
            "notification {} is {}; only a dead one can be resent",
            d.notification.id,
            d.state.word()
        )));
    }
    d.state = DeliveryState::Pending;
    d.attempts = 0;
    d.due = crate::event::millis::whole(now);
    Ok(d)
}
