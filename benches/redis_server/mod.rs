//! The Redis of the benchmarks: a real `redis-server` (AOF on, `appendfsync everysec`), started
//! as the Redis store's tests start it, and the reference figure measured against it:
//! `redis-benchmark`'s SET rate.

#[path = "../../store-redis/tests/it/server.rs"]
mod server;

pub use server::RedisServer;

use std::process::Command;

/// `redis-benchmark -t set -n 200000 -c 50` against `server`: SETs per second.
pub fn set_rate(server: &RedisServer) -> f64 {
    let url = server.url();
    let port = url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .expect("the URL has a port");
    let out = Command::new("redis-benchmark")
        .args(["-p", port, "-t", "set", "-n", "200000", "-c", "50", "-q"])
        .output()
        .expect("redis-benchmark runs (apt-get install redis-tools)");
    let text = String::from_utf8_lossy(&out.stdout);
    // The last "SET: N requests per second" (-q prints progress lines before it).
    text.rsplit("SET: ")
        .next()
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("redis-benchmark printed a SET rate")
}
