//! Where attempts' output goes: a [`LogSink`] keeps it as it arrives and can be read while the
//! attempt still runs. [`MemoryLogs`] keeps it in memory; the binary's file sink writes
//! `JOB.ATTEMPT.log` files; the server's store keeps it next to the run.

use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;

/// Which attempt's output.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LogKey {
    pub run: String,
    pub job: String,
    pub attempt: u32,
}

/// A piece of a log, read from an offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogChunk {
    pub bytes: Vec<u8>,
    /// The offset to read from next.
    pub next: u64,
    /// The attempt ended and nothing follows `next`.
    pub complete: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LogError(pub String);

#[async_trait]
pub trait LogSink: Send + Sync {
    /// Appends output of a running attempt.
    async fn append(&self, key: &LogKey, bytes: &[u8]) -> Result<(), LogError>;
    /// The attempt ended: its log is complete. Answers where it is kept, or `None` when it
    /// printed nothing.
    async fn finish(&self, key: &LogKey) -> Result<Option<String>, LogError>;
    /// Forgets what an earlier start of this attempt wrote (it is being started again).
    async fn reset(&self, key: &LogKey) -> Result<(), LogError>;
    /// Reads up to `max` bytes from `offset`; an unknown attempt reads as empty and incomplete.
    async fn read(&self, key: &LogKey, offset: u64, max: usize) -> Result<LogChunk, LogError>;
}

/// Logs kept in memory.
#[derive(Default)]
pub struct MemoryLogs {
    logs: Mutex<HashMap<LogKey, (Vec<u8>, bool)>>,
}

impl MemoryLogs {
    pub fn new() -> MemoryLogs {
        MemoryLogs::default()
    }

    /// The whole output of an attempt so far.
    pub fn text(&self, key: &LogKey) -> Option<String> {
        let logs = self.logs.lock().ok()?;
        logs.get(key)
            .map(|(b, _)| String::from_utf8_lossy(b).into_owned())
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut HashMap<LogKey, (Vec<u8>, bool)>) -> T,
    ) -> Result<T, LogError> {
        let mut logs = self
            .logs
            .lock()
            .map_err(|_| LogError("the log store is poisoned".into()))?;
        Ok(f(&mut logs))
    }
}

#[async_trait]
impl LogSink for MemoryLogs {
    async fn append(&self, key: &LogKey, bytes: &[u8]) -> Result<(), LogError> {
        self.with(|l| l.entry(key.clone()).or_default().0.extend_from_slice(bytes))
    }

    async fn finish(&self, key: &LogKey) -> Result<Option<String>, LogError> {
        self.with(|l| {
            let entry = l.entry(key.clone()).or_default();
            entry.1 = true;
            (!entry.0.is_empty()).then(|| format!("memory:{}/{}.{}", key.run, key.job, key.attempt))
        })
    }

    async fn reset(&self, key: &LogKey) -> Result<(), LogError> {
        self.with(|l| {
            l.remove(key);
        })
    }

    async fn read(&self, key: &LogKey, offset: u64, max: usize) -> Result<LogChunk, LogError> {
        self.with(|l| match l.get(key) {
            Some((bytes, done)) => {
                let start = (offset as usize).min(bytes.len());
                let end = start.saturating_add(max).min(bytes.len());
                LogChunk {
                    bytes: bytes[start..end].to_vec(),
                    next: end as u64,
                    complete: *done && end == bytes.len(),
                }
            }
            None => LogChunk {
                bytes: Vec::new(),
                next: offset,
                complete: false,
            },
        })
    }
}
