//! The log sink of `chainrc run`: each attempt's output in `JOB.ATTEMPT.log` under the log
//! directory, created at its first byte (no file for an attempt that printed nothing: creating
//! files is the slowest part of running tiny jobs).

use async_trait::async_trait;
use chainr_runtime::log::{LogChunk, LogError, LogKey, LogSink};
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub struct FileLogs {
    dir: PathBuf,
    /// Files of attempts still running.
    open: Mutex<HashMap<LogKey, File>>,
}

impl FileLogs {
    /// Logs under `dir`, which is created.
    pub fn new(dir: &Path) -> Result<FileLogs, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the log directory {}: {e}", dir.display()))?;
        Ok(FileLogs {
            dir: dir.to_path_buf(),
            open: Mutex::new(HashMap::new()),
        })
    }

    fn path(&self, key: &LogKey) -> PathBuf {
        self.dir.join(log_file_name(&key.job, key.attempt))
    }

    fn open(&self) -> Result<std::sync::MutexGuard<'_, HashMap<LogKey, File>>, LogError> {
        self.open
            .lock()
            .map_err(|_| LogError("the log files are in an unknown state".into()))
    }
}

fn io(path: &Path, e: std::io::Error) -> LogError {
    LogError(format!("{}: {e}", path.display()))
}

#[async_trait]
impl LogSink for FileLogs {
    async fn append(&self, key: &LogKey, bytes: &[u8]) -> Result<(), LogError> {
        let mut open = self.open()?;
        if !open.contains_key(key) {
            let path = self.path(key);
            let file = File::create(&path).map_err(|e| io(&path, e))?;
            open.insert(key.clone(), file);
        }
        let file = open.get_mut(key).expect("inserted above");
        file.write_all(bytes).map_err(|e| io(&self.path(key), e))
    }

    async fn finish(&self, key: &LogKey) -> Result<Option<String>, LogError> {
        let file = self.open()?.remove(key);
        Ok(file.map(|_| self.path(key).display().to_string()))
    }

    async fn reset(&self, key: &LogKey) -> Result<(), LogError> {
        self.open()?.remove(key);
        let path = self.path(key);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&path, e)),
            _ => Ok(()),
        }
    }

    async fn read(&self, key: &LogKey, offset: u64, max: usize) -> Result<LogChunk, LogError> {
        let running = self.open()?.contains_key(key);
        let path = self.path(key);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(LogChunk {
                    bytes: Vec::new(),
                    next: offset,
                    complete: false,
                })
            }
            Err(e) => return Err(io(&path, e)),
        };
        let len = file.metadata().map_err(|e| io(&path, e))?.len();
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| io(&path, e))?;
        let mut bytes = Vec::new();
        file.take(max as u64)
            .read_to_end(&mut bytes)
            .map_err(|e| io(&path, e))?;
        let next = offset + bytes.len() as u64;
        Ok(LogChunk {
            bytes,
            next,
            complete: !running && next >= len,
        })
    }
}

/// `JOB.ATTEMPT.log`, with a very long job name shortened (and made unique by a hash) to fit a
/// file name's 255 bytes.
pub fn log_file_name(name: &str, attempt: u32) -> String {
    if name.len() <= 200 {
        return format!("{name}.{attempt}.log");
    }
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut h);
    let mut cut = 180;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}-{:016x}.{attempt}.log", &name[..cut], h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(job: &str) -> LogKey {
        LogKey {
            run: "r".into(),
            job: job.into(),
            attempt: 1,
        }
    }

    fn block<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn a_log_reads_while_it_is_written_and_is_complete_once_finished() {
        let dir = tempfile::tempdir().unwrap();
        let logs = FileLogs::new(dir.path()).unwrap();
        block(async {
            logs.append(&key("a"), b"one\n").await.unwrap();
            let first = logs.read(&key("a"), 0, 100).await.unwrap();
            assert_eq!(first.bytes, b"one\n");
            assert!(!first.complete, "still running");
            logs.append(&key("a"), b"two\n").await.unwrap();
            let path = logs.finish(&key("a")).await.unwrap().unwrap();
            assert!(path.ends_with("a.1.log"));
            let rest = logs.read(&key("a"), first.next, 100).await.unwrap();
            assert_eq!(rest.bytes, b"two\n");
            assert!(rest.complete);
            // Nothing printed: no file, and nothing to say where.
            assert_eq!(logs.finish(&key("quiet")).await.unwrap(), None);
            assert!(!dir.path().join("quiet.1.log").exists());
            // An attempt started again begins a new log.
            logs.reset(&key("a")).await.unwrap();
            assert!(!dir.path().join("a.1.log").exists());
        });
    }

    #[test]
    fn a_very_long_job_name_still_makes_a_valid_file_name() {
        let long = "x".repeat(300);
        let name = log_file_name(&long, 2);
        assert!(name.len() <= 255, "{}", name.len());
        assert!(name.ends_with(".2.log"));
        assert_ne!(name, log_file_name(&format!("{long}y"), 2));
    }
}
