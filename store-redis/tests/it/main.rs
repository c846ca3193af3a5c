//! The Redis store against real `redis-server` processes (started on free ports, with AOF, in
//! directories of their own): the store and outbox conformance suites, and a Redis killed with
//! SIGKILL and restarted loses nothing that was acknowledged, while the store reconnects by
//! itself; a pruned run leaves no key behind, its notifications included.

mod server;

use chainr_runtime::outbox::conformance::{delivery, t};
use chainr_runtime::outbox::Outbox;
use chainr_runtime::store::conformance::{new_run, started};
use chainr_runtime::store::{Store, StoreError};
use chainr_store_redis::RedisStore;
use server::RedisServer;
use std::time::Duration;

/// A store on a Redis server of its own, stopped when the test ends.
struct Fresh {
    store: RedisStore,
    server: RedisServer,
}

impl std::ops::Deref for Fresh {
    type Target = RedisStore;
    fn deref(&self) -> &RedisStore {
        &self.store
    }
}

async fn fresh() -> Fresh {
    let server = RedisServer::start();
    Fresh {
        store: RedisStore::connect(&server.url()).await.unwrap(),
        server,
    }
}

chainr_runtime::store_conformance!(fresh());

mod outbox {
    chainr_runtime::outbox_conformance!(super::fresh());
}

#[tokio::test]
async fn a_redis_killed_and_restarted_keeps_what_it_acknowledged() {
    let mut server = RedisServer::start();
    let store = RedisStore::connect(&server.url()).await.unwrap();
    store.create(new_run("r1", "p")).await.unwrap();
    let lease = store
        .claim("w1", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    store.append(&lease, &started(1, 0)).await.unwrap();
    server.kill();
    // While Redis is down, operations fail as unavailable rather than hang or panic.
    let down = tokio::time::timeout(Duration::from_secs(10), store.get("r1")).await;
    assert!(
        matches!(down, Ok(Err(StoreError::Unavailable(_)))),
        "{down:?}"
    );
    server.restart();
    // The same store (its connection manager) reconnects by itself.
    let mut back = None;
    for _ in 0..100 {
        if let Ok(Some(run)) = store.get("r1").await {
            back = Some(run);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let run = back.expect("the store reconnects and finds the run");
    assert_eq!(run.last_seq, 2);
    assert_eq!(run.run.jobs[0].attempts.len(), 1);
    // The lease survived too: its holder can go on writing.
    store
        .append(&lease, &started(3, 1))
        .await
        .expect("the lease holder writes after the restart");
    assert_eq!(store.events("r1", 0, 10).await.unwrap().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_on_one_redis_run_every_job_once() {
    let f = fresh().await;
    chainr_runtime::store::conformance::two_workers_run_every_job_once(std::sync::Arc::new(
        f.store.clone(),
    ))
    .await;
}

chainr_runtime::log_sink_conformance!(fresh());

#[tokio::test]
async fn claims_pass_over_held_deliveries_and_keep_the_enqueue_order() {
    let f = fresh().await;
    // All due at the same time: the order they were enqueued in decides, not their ids, and
    // a claim reads on past the first 100 due, held by another.
    let all: Vec<_> = (1..=150).map(|i| delivery("r1", i, "slack", 0)).collect();
    f.store.enqueue(0, 1, &all).await.unwrap();
    let ttl = Duration::from_secs(30);
    let seqs = |ds: Vec<chainr_runtime::outbox::Delivery>| -> Vec<u64> {
        ds.iter().map(|d| d.notification.seq).collect()
    };
    let first = f.store.claim_due("n1", t(1), ttl, 120).await.unwrap();
    assert_eq!(seqs(first), (1..=120).collect::<Vec<_>>());
    let second = f.store.claim_due("n2", t(1), ttl, 100).await.unwrap();
    assert_eq!(seqs(second), (121..=150).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_pruned_run_leaves_no_key_behind() {
    let f = fresh().await;
    chainr_runtime::store::conformance::a_finished_run_with_logs(&f.store).await;
    f.store
        .enqueue(
            0,
            1,
            &[delivery("r", 4, "slack", 0), delivery("r", 4, "mail", 0)],
        )
        .await
        .unwrap();
    assert_eq!(f.store.prune(Some(0), None).await.unwrap(), 1);
    let client = redis::Client::open(f.server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap();
    keys.sort();
    // Only the counters and the notifier's cursor stay: ids are never reused.
    assert_eq!(
        keys,
        [
            "chainr:change",
            "chainr:notify:cursor",
            "chainr:notify:order",
            "chainr:order"
        ]
    );
}
