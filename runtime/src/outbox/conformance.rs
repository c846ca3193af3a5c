//! The behaviour every [`Outbox`] must have, as async functions that panic on a violation.
//! [`outbox_conformance!`](crate::outbox_conformance) turns them into one test each:
//!
//! ```text
//! chainr_runtime::outbox_conformance!(async { Box::new(MyStore::open_for_tests().await) });
//! ```
//!
//! Times are passed in (`now`), so claims expire without waiting.

use super::{notification_id, Delivery, DeliveryState, Notification, Outbox, Settle};
use crate::event::millis::from_millis;
use crate::store::conformance::{finished_run, futures_join_all};
use crate::store::{Store, StoreError};
use chainr_compiler::ir::NotifyEvent;
use std::collections::HashSet;
use std::time::{Duration, SystemTime};

const TTL: Duration = Duration::from_secs(30);

/// A time `s` seconds into the tests' day.
pub fn t(s: u64) -> SystemTime {
    from_millis(1_700_000_000_000 + s * 1000)
}

/// A notification about event `seq` of `run` for `medium`, due at `t(due)`.
pub fn delivery(run: &str, seq: u64, medium: &str, due: u64) -> Delivery {
    let event = NotifyEvent::Failed;
    Delivery::new(
        Notification {
            id: notification_id(run, seq, event, None, medium),
            run: run.to_string(),
            pipeline: "nightly".into(),
            seq,
            event,
            job: None,
            medium: medium.to_string(),
            at: t(0),
            after: None,
        },
        t(due),
    )
}

fn ids(ds: &[Delivery]) -> Vec<String> {
    ds.iter().map(|d| d.notification.id.clone()).collect()
}

async fn get(outbox: &dyn Outbox, d: &Delivery) -> Delivery {
    outbox
        .delivery(&d.notification.id)
        .await
        .unwrap()
        .expect("the delivery is stored")
}

pub async fn enqueueing_adds_and_moves_the_cursor(outbox: &dyn Outbox) {
    assert_eq!(outbox.notify_cursor().await.unwrap(), 0);
    let (a, b) = (delivery("r1", 3, "slack", 0), delivery("r1", 3, "mail", 0));
    outbox.enqueue(0, 5, &[a.clone(), b.clone()]).await.unwrap();
    assert_eq!(outbox.notify_cursor().await.unwrap(), 5);
    assert_eq!(get(outbox, &a).await, a, "stored as given");
    assert_eq!(get(outbox, &b).await, b);
    // Changes that make no notification still move the cursor.
    outbox.enqueue(5, 9, &[]).await.unwrap();
    assert_eq!(outbox.notify_cursor().await.unwrap(), 9);
    assert!(outbox.delivery("no-such-id").await.unwrap().is_none());
}

pub async fn enqueueing_from_a_stale_cursor_adds_nothing(outbox: &dyn Outbox) {
    outbox
        .enqueue(0, 5, &[delivery("r1", 1, "slack", 0)])
        .await
        .unwrap();
    let late = delivery("r2", 1, "slack", 0);
    let err = outbox
        .enqueue(0, 7, std::slice::from_ref(&late))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(outbox.notify_cursor().await.unwrap(), 5);
    assert!(outbox
        .delivery(&late.notification.id)
        .await
        .unwrap()
        .is_none());
}

pub async fn a_notification_enqueued_twice_is_kept_as_it_was(outbox: &dyn Outbox) {
    let a = delivery("r1", 2, "slack", 0);
    outbox
        .enqueue(0, 1, std::slice::from_ref(&a))
        .await
        .unwrap();
    let claimed = outbox.claim_due("n1", t(1), TTL, 10).await.unwrap();
    assert_eq!(ids(&claimed), ids(std::slice::from_ref(&a)));
    outbox
        .settle(&a.notification.id, "n1", Settle::Sent { at: t(2) })
        .await
        .unwrap();
    // A notifier that read the same change again plans the same notification.
    outbox
        .enqueue(1, 2, std::slice::from_ref(&a))
        .await
        .unwrap();
    let stored = get(outbox, &a).await;
    assert_eq!(stored.state, DeliveryState::Sent);
    assert_eq!(stored.attempts, 1);
    assert!(outbox
        .claim_due("n2", t(3), TTL, 10)
        .await
        .unwrap()
        .is_empty());
    let page = outbox.deliveries(None, None, 10).await.unwrap();
    assert_eq!(page.deliveries.len(), 1, "one delivery, not two");
}

pub async fn due_deliveries_are_claimed_once_soonest_first(outbox: &dyn Outbox) {
    let later = delivery("r1", 1, "slack", 100);
    let second = delivery("r2", 1, "slack", 5);
    let first = delivery("r3", 1, "slack", 1);
    outbox
        .enqueue(0, 3, &[later.clone(), second.clone(), first.clone()])
        .await
        .unwrap();
    let claimed = outbox.claim_due("n1", t(10), TTL, 10).await.unwrap();
    assert_eq!(ids(&claimed), ids(&[first.clone(), second.clone()]));
    assert!(
        outbox
            .claim_due("n2", t(11), TTL, 10)
            .await
            .unwrap()
            .is_empty(),
        "claimed ones are held"
    );
    let one = outbox.claim_due("n2", t(200), TTL, 1).await.unwrap();
    assert_eq!(
        ids(&one),
        ids(std::slice::from_ref(&first)),
        "expired claims go back, soonest first, up to the limit"
    );
    let rest = outbox.claim_due("n3", t(200), TTL, 10).await.unwrap();
    assert_eq!(ids(&rest), ids(&[second, later]));
}

pub async fn settling_records_each_outcome(outbox: &dyn Outbox) {
    let (sent, retried, dead, skipped) = (
        delivery("r1", 1, "a", 0),
        delivery("r1", 1, "b", 0),
        delivery("r1", 1, "c", 0),
        delivery("r1", 1, "d", 0),
    );
    let all = [sent.clone(), retried.clone(), dead.clone(), skipped.clone()];
    outbox.enqueue(0, 1, &all).await.unwrap();
    assert_eq!(outbox.claim_due("n", t(1), TTL, 10).await.unwrap().len(), 4);
    let settle = |d: &Delivery, how| {
        let id = d.notification.id.clone();
        async move { outbox.settle(&id, "n", how).await.unwrap() }
    };
    settle(&sent, Settle::Sent { at: t(2) }).await;
    settle(
        &retried,
        Settle::Retry {
            due: t(60),
            error: "HTTP 500".into(),
        },
    )
    .await;
    settle(
        &dead,
        Settle::Dead {
            error: "HTTP 410".into(),
        },
    )
    .await;
    settle(
        &skipped,
        Settle::Skipped {
            why: "the run finished in time".into(),
        },
    )
    .await;

    let s = get(outbox, &sent).await;
    assert_eq!(
        (s.state, s.attempts, s.sent_at),
        (DeliveryState::Sent, 1, Some(t(2)))
    );
    let r = get(outbox, &retried).await;
    assert_eq!(
        (r.state, r.attempts, r.due, r.last_error.as_deref()),
        (DeliveryState::Pending, 1, t(60), Some("HTTP 500"))
    );
    let d = get(outbox, &dead).await;
    assert_eq!(
        (d.state, d.attempts, d.last_error.as_deref()),
        (DeliveryState::Dead, 1, Some("HTTP 410"))
    );
    let k = get(outbox, &skipped).await;
    assert_eq!((k.state, k.attempts), (DeliveryState::Skipped, 0));

    assert!(
        outbox
            .claim_due("n", t(59), TTL, 10)
            .await
            .unwrap()
            .is_empty(),
        "a retry waits until it is due"
    );
    let again = outbox.claim_due("n", t(60), TTL, 10).await.unwrap();
    assert_eq!(ids(&again), ids(&[retried]), "only the retry comes back");
    assert_eq!(again[0].attempts, 1);
}

pub async fn settling_needs_the_claim(outbox: &dyn Outbox) {
    let a = delivery("r1", 1, "slack", 0);
    let id = a.notification.id.clone();
    outbox
        .enqueue(0, 1, std::slice::from_ref(&a))
        .await
        .unwrap();
    let sent = || Settle::Sent { at: t(1) };
    let conflict = |r: Result<(), StoreError>| matches!(r, Err(StoreError::Conflict(_)));
    assert!(
        conflict(outbox.settle(&id, "n1", sent()).await),
        "not claimed"
    );
    outbox.claim_due("n1", t(1), TTL, 10).await.unwrap();
    assert!(
        conflict(outbox.settle(&id, "n2", sent()).await),
        "claimed by another"
    );
    // n1's claim expires and n2 takes the delivery: n1 can no longer settle it.
    let taken = outbox.claim_due("n2", t(100), TTL, 10).await.unwrap();
    assert_eq!(ids(&taken), std::slice::from_ref(&id));
    assert!(conflict(outbox.settle(&id, "n1", sent()).await));
    outbox.settle(&id, "n2", sent()).await.unwrap();
    assert!(
        conflict(outbox.settle(&id, "n2", sent()).await),
        "settled once"
    );
    assert!(matches!(
        outbox.settle("no-such-id", "n2", sent()).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(get(outbox, &a).await.attempts, 1);
}

pub async fn deliveries_list_newest_first_by_state_and_page(outbox: &dyn Outbox) {
    let all: Vec<Delivery> = (1..=5).map(|i| delivery("r1", i, "slack", 0)).collect();
    outbox.enqueue(0, 1, &all[..3]).await.unwrap();
    outbox.enqueue(1, 2, &all[3..]).await.unwrap();
    outbox.claim_due("n", t(1), TTL, 10).await.unwrap();
    for d in [&all[1], &all[3]] {
        outbox
            .settle(
                &d.notification.id,
                "n",
                Settle::Dead {
                    error: "down".into(),
                },
            )
            .await
            .unwrap();
    }
    let newest_first: Vec<String> = all
        .iter()
        .rev()
        .map(|d| d.notification.id.clone())
        .collect();
    let first = outbox.deliveries(None, None, 2).await.unwrap();
    assert_eq!(ids(&first.deliveries), newest_first[..2]);
    let second = outbox.deliveries(None, first.next, 2).await.unwrap();
    assert_eq!(ids(&second.deliveries), newest_first[2..4]);
    let third = outbox.deliveries(None, second.next, 2).await.unwrap();
    assert_eq!(ids(&third.deliveries), newest_first[4..]);
    assert_eq!(third.next, None, "the last page says so");

    let dead = outbox
        .deliveries(Some(DeliveryState::Dead), None, 10)
        .await
        .unwrap();
    assert_eq!(
        ids(&dead.deliveries),
        ids(&[all[3].clone(), all[1].clone()])
    );
    assert!(dead
        .deliveries
        .iter()
        .all(|d| d.state == DeliveryState::Dead));
    let sent = outbox
        .deliveries(Some(DeliveryState::Sent), None, 10)
        .await
        .unwrap();
    assert!(sent.deliveries.is_empty());
}

pub async fn a_runs_deliveries_are_listed_newest_first(outbox: &dyn Outbox) {
    let mine: Vec<Delivery> = (1..=3).map(|i| delivery("r1", i, "slack", 0)).collect();
    let other = delivery("r2", 1, "slack", 0);
    outbox.enqueue(0, 1, &mine[..2]).await.unwrap();
    outbox
        .enqueue(1, 2, std::slice::from_ref(&other))
        .await
        .unwrap();
    outbox.enqueue(2, 3, &mine[2..]).await.unwrap();
    let listed = outbox.run_deliveries("r1", 10).await.unwrap();
    let newest_first: Vec<Delivery> = mine.iter().rev().cloned().collect();
    assert_eq!(ids(&listed), ids(&newest_first));
    assert_eq!(
        ids(&outbox.run_deliveries("r1", 2).await.unwrap()),
        ids(&newest_first[..2])
    );
    assert_eq!(
        ids(&outbox.run_deliveries("r2", 10).await.unwrap()),
        ids(&[other])
    );
    assert!(outbox.run_deliveries("r3", 10).await.unwrap().is_empty());
}

pub async fn a_dead_letter_is_resent(outbox: &dyn Outbox) {
    let a = delivery("r1", 1, "slack", 0);
    let id = a.notification.id.clone();
    outbox
        .enqueue(0, 1, std::slice::from_ref(&a))
        .await
        .unwrap();
    assert!(matches!(
        outbox.resend(&id, t(1)).await,
        Err(StoreError::Conflict(_))
    ));
    outbox.claim_due("n", t(1), TTL, 10).await.unwrap();
    outbox
        .settle(
            &id,
            "n",
            Settle::Dead {
                error: "down".into(),
            },
        )
        .await
        .unwrap();
    assert!(outbox
        .claim_due("n", t(1000), TTL, 10)
        .await
        .unwrap()
        .is_empty());
    let resent = outbox.resend(&id, t(50)).await.unwrap();
    assert_eq!(
        (resent.state, resent.attempts, resent.due),
        (DeliveryState::Pending, 0, t(50))
    );
    assert_eq!(get(outbox, &a).await, resent);
    let claimed = outbox.claim_due("n2", t(50), TTL, 10).await.unwrap();
    assert_eq!(ids(&claimed), std::slice::from_ref(&id));
    assert!(matches!(
        outbox.resend("no-such-id", t(50)).await,
        Err(StoreError::NotFound(_))
    ));
}

pub async fn deliveries_are_counted_by_state(outbox: &dyn Outbox) {
    let all: Vec<Delivery> = (1..=4).map(|i| delivery("r1", i, "slack", 0)).collect();
    outbox.enqueue(0, 1, &all).await.unwrap();
    outbox.claim_due("n", t(1), TTL, 10).await.unwrap();
    outbox
        .settle(&all[0].notification.id, "n", Settle::Sent { at: t(1) })
        .await
        .unwrap();
    outbox
        .settle(
            &all[1].notification.id,
            "n",
            Settle::Dead { error: "x".into() },
        )
        .await
        .unwrap();
    let mut counts: Vec<(DeliveryState, u64)> = outbox
        .delivery_counts()
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect();
    counts.sort();
    assert_eq!(
        counts,
        [
            (DeliveryState::Pending, 2),
            (DeliveryState::Sent, 1),
            (DeliveryState::Dead, 1)
        ]
    );
}

pub async fn concurrent_claims_give_a_delivery_to_one_notifier(outbox: &dyn Outbox) {
    let all: Vec<Delivery> = (1..=40).map(|i| delivery("r1", i, "slack", 0)).collect();
    outbox.enqueue(0, 1, &all).await.unwrap();
    let owners: Vec<String> = (0..4).map(|i| format!("n{i}")).collect();
    let claims = futures_join_all(
        owners
            .iter()
            .map(|o| async move { outbox.claim_due(o, t(1), TTL, 15).await.unwrap() }),
    )
    .await;
    let mut seen = HashSet::new();
    for c in &claims {
        for d in c {
            assert!(
                seen.insert(d.notification.id.clone()),
                "claimed twice: {d:?}"
            );
        }
    }
    assert_eq!(seen.len(), 40, "every delivery was claimed by someone");
}

/// Deleting a run deletes its notifications.
pub async fn pruned_runs_take_their_notifications<S: Store + Outbox>(store: &S) {
    finished_run(store, "old", t(1)).await;
    finished_run(store, "new", t(2)).await;
    let (old, new) = (
        delivery("old", 1, "slack", 0),
        delivery("new", 1, "slack", 0),
    );
    store
        .enqueue(0, 1, &[old.clone(), new.clone()])
        .await
        .unwrap();
    assert_eq!(store.prune(Some(1), None).await.unwrap(), 1);
    assert!(store
        .delivery(&old.notification.id)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .delivery(&new.notification.id)
        .await
        .unwrap()
        .is_some());
    let page = store.deliveries(None, None, 10).await.unwrap();
    assert_eq!(ids(&page.deliveries), ids(&[new]));
    assert_eq!(store.claim_due("n", t(5), TTL, 10).await.unwrap().len(), 1);
}

/// One test per case for an outbox; `$make` is an async expression giving a fresh
/// `Box<S>` where `S: Store + Outbox`.
#[macro_export]
macro_rules! outbox_conformance {
    ($make:expr) => {
        $crate::outbox_conformance!(@cases $make;
            enqueueing_adds_and_moves_the_cursor,
            enqueueing_from_a_stale_cursor_adds_nothing,
            a_notification_enqueued_twice_is_kept_as_it_was,
            due_deliveries_are_claimed_once_soonest_first,
            settling_records_each_outcome,
            settling_needs_the_claim,
            deliveries_list_newest_first_by_state_and_page,
            a_dead_letter_is_resent,
            a_runs_deliveries_are_listed_newest_first,
            deliveries_are_counted_by_state,
            concurrent_claims_give_a_delivery_to_one_notifier,
        );
        #[tokio::test]
        async fn pruned_runs_take_their_notifications() {
            let store = $make.await;
            $crate::outbox::conformance::pruned_runs_take_their_notifications(&*store).await;
        }
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let store = $make.await;
                $crate::outbox::conformance::$case(&*store).await;
            }
        )*
    };
}
