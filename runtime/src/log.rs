//! Where attempts' output goes: a [`LogSink`] keeps it as it arrives and can be read while the
//! attempt still runs. [`MemoryLogs`] keeps it in memory; the binary's file sink writes
//! `JOB.ATTEMPT.log` files; the server's store keeps it next to the run.

use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;

/// How much of one attempt's output the server keeps by default: 16 MiB.
pub const DEFAULT_LOG_CAP: u64 = 16 << 20;

/// The line that ends a log cut at `cap` bytes.
pub fn cut_marker(cap: u64) -> String {
    let size = if cap.is_multiple_of(1 << 20) {
        format!("{} MiB", cap >> 20)
    } else {
        format!("{cap} bytes")
    };
    format!("\n[chainr: the output was cut here, at {size}; the rest was not kept]\n")
}

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

/// The last lines of an attempt's output, read as it streams (only these lines are kept).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tail {
    pub lines: Vec<String>,
    /// How many lines the output has in all.
    pub total: usize,
}

/// The longest line a tail keeps whole; the rest of a longer line is left out.
const TAIL_LINE_MAX: usize = 64 * 1024;

/// Builds a [`Tail`] from output given in pieces of any size: lines cut as `str::lines` cuts them
/// (`\n`, a `\r` before it dropped), only the last `n` kept.
pub struct TailReader {
    n: usize,
    kept: std::collections::VecDeque<Vec<u8>>,
    line: Vec<u8>,
    open: bool,
    total: usize,
}

impl TailReader {
    pub fn new(n: usize) -> TailReader {
        TailReader {
            n,
            kept: std::collections::VecDeque::with_capacity(n + 1),
            line: Vec::new(),
            open: false,
            total: 0,
        }
    }

    pub fn push(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            self.open = true;
            let (part, rest, ended) = match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => (&bytes[..i], &bytes[i + 1..], true),
                None => (bytes, &[][..], false),
            };
            let room = TAIL_LINE_MAX.saturating_sub(self.line.len());
            self.line.extend_from_slice(&part[..part.len().min(room)]);
            if ended {
                self.end_line();
            }
            bytes = rest;
        }
    }

    fn end_line(&mut self) {
        let mut line = std::mem::take(&mut self.line);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        self.total += 1;
        self.open = false;
        if self.n > 0 {
            self.kept.push_back(line);
            if self.kept.len() > self.n {
                self.kept.pop_front();
            }
        }
    }

    pub fn finish(mut self) -> Tail {
        if self.open {
            self.end_line();
        }
        Tail {
            lines: self
                .kept
                .iter()
                .map(|l| String::from_utf8_lossy(l).into_owned())
                .collect(),
            total: self.total,
        }
    }
}

impl Tail {
    /// The last `n` lines of what `r` reads, as `str::lines` cuts them. Output is bytes: what
    /// is not UTF-8 shows as replacement characters, not as nothing.
    pub fn read(mut r: impl std::io::Read, n: usize) -> std::io::Result<Tail> {
        let mut reader = TailReader::new(n);
        let mut buf = vec![0; 64 * 1024];
        loop {
            match r.read(&mut buf) {
                Ok(0) => return Ok(reader.finish()),
                Ok(k) => reader.push(&buf[..k]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// The last `n` lines of an attempt's output as `sink` has it now.
pub async fn tail(sink: &dyn LogSink, key: &LogKey, n: usize) -> Result<Tail, LogError> {
    let mut reader = TailReader::new(n);
    let mut offset = 0;
    loop {
        let chunk = sink.read(key, offset, 1 << 20).await?;
        reader.push(&chunk.bytes);
        if chunk.bytes.is_empty() || chunk.complete || chunk.next == offset {
            return Ok(reader.finish());
        }
        offset = chunk.next;
    }
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

/// The conformance suite of [`LogSink`]: what every sink must do, as async functions that panic
/// on a violation; [`log_sink_conformance!`](crate::log_sink_conformance) makes one test each.
pub mod conformance {
    use super::{LogKey, LogSink};

    fn key(job: &str, attempt: u32) -> LogKey {
        LogKey {
            run: "run-1".into(),
            job: job.into(),
            attempt,
        }
    }

    pub async fn a_log_reads_while_written_and_completes(sink: &dyn LogSink) {
        let k = key("build", 1);
        let unknown = sink.read(&k, 0, 100).await.unwrap();
        assert!(unknown.bytes.is_empty() && !unknown.complete);
        sink.append(&k, b"one\n").await.unwrap();
        let first = sink.read(&k, 0, 100).await.unwrap();
        assert_eq!(first.bytes, b"one\n");
        assert_eq!(first.next, 4);
        assert!(!first.complete, "the attempt still runs");
        sink.append(&k, b"two\n").await.unwrap();
        let middle = sink.read(&k, 4, 2).await.unwrap();
        assert_eq!(middle.bytes, b"tw");
        assert_eq!(middle.next, 6);
        assert!(!middle.complete);
        assert!(sink.finish(&k).await.unwrap().is_some());
        let all = sink.read(&k, 0, 1 << 20).await.unwrap();
        assert_eq!(all.bytes, b"one\ntwo\n");
        assert!(all.complete);
        let end = sink.read(&k, 8, 100).await.unwrap();
        assert!(end.bytes.is_empty() && end.complete && end.next == 8);
    }

    pub async fn an_attempt_that_printed_nothing_has_no_log(sink: &dyn LogSink) {
        let k = key("quiet", 1);
        assert_eq!(sink.finish(&k).await.unwrap(), None);
        let read = sink.read(&k, 0, 10).await.unwrap();
        assert!(read.bytes.is_empty());
    }

    pub async fn a_reset_log_starts_again(sink: &dyn LogSink) {
        let k = key("again", 2);
        sink.append(&k, b"from the first start\n").await.unwrap();
        sink.reset(&k).await.unwrap();
        assert!(sink.read(&k, 0, 100).await.unwrap().bytes.is_empty());
        sink.append(&k, b"second\n").await.unwrap();
        sink.finish(&k).await.unwrap();
        assert_eq!(sink.read(&k, 0, 100).await.unwrap().bytes, b"second\n");
    }

    pub async fn logs_of_attempts_and_jobs_are_apart(sink: &dyn LogSink) {
        let keys = [
            key("a", 1),
            key("a", 2),
            key("a:1", 1),
            key("a/b", 1),
            LogKey {
                run: "run-2".into(),
                job: "a".into(),
                attempt: 1,
            },
        ];
        for (i, k) in keys.iter().enumerate() {
            sink.append(k, format!("{i}").as_bytes()).await.unwrap();
        }
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(
                sink.read(k, 0, 100).await.unwrap().bytes,
                format!("{i}").as_bytes(),
                "{k:?}"
            );
        }
    }

    pub async fn binary_output_is_kept_as_it_was(sink: &dyn LogSink) {
        let k = key("bytes", 1);
        let bytes: Vec<u8> = (0..=255u8).chain([0, 0xff, b'\n']).collect();
        sink.append(&k, &bytes).await.unwrap();
        sink.finish(&k).await.unwrap();
        assert_eq!(sink.read(&k, 0, 1000).await.unwrap().bytes, bytes);
    }
}

/// One `#[tokio::test]` per log sink conformance case for the sink that `$make` (an async
/// expression giving something that dereferences to the sink) gives.
#[macro_export]
macro_rules! log_sink_conformance {
    ($make:expr) => {
        $crate::log_sink_conformance!(@cases $make;
            a_log_reads_while_written_and_completes,
            an_attempt_that_printed_nothing_has_no_log,
            a_reset_log_starts_again,
            logs_of_attempts_and_jobs_are_apart,
            binary_output_is_kept_as_it_was,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        mod log_sink {
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    let sink = $make.await;
                    $crate::log::conformance::$case(&*sink).await;
                }
            )*
        }
    };
}
