//! Configuration compilation off the frame path. Owns the bounds a configuration must respect
//! ([`CompileLimits`]), the one way schema files are read ([`read_regular_file`]: regular files
//! only, never more than the limit, never blocking on a FIFO or a device), and the dedicated
//! thread that compiles pushed configurations ([`Compiler`]) so that reading files and compiling
//! regexes never holds a runtime thread; a compile that takes longer than `--config-timeout` is
//! answered as rejected and the running policy stays.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::options::Options;
use crate::policy::{Policy, PolicyError};

/// Default `--max-schema-bytes`.
pub const DEFAULT_MAX_SCHEMA_BYTES: u64 = 1024 * 1024;
/// Default `--max-custom-patterns`.
pub const DEFAULT_MAX_CUSTOM_PATTERNS: usize = 256;
/// Default `--max-custom-pattern-bytes`.
pub const DEFAULT_MAX_CUSTOM_PATTERN_BYTES: usize = 64 * 1024;
/// Default `--max-config-bytes`.
pub const DEFAULT_MAX_CONFIG_BYTES: u64 = 1024 * 1024;
/// Default `--config-timeout`.
pub const DEFAULT_CONFIG_TIMEOUT: Duration = Duration::from_secs(5);
/// Configurations waiting for the compiler thread; more are rejected as busy.
const QUEUE_CAPACITY: usize = 4;

/// The bounds every configuration (start-up or pushed) is compiled under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompileLimits {
    /// Largest schema file read.
    pub max_schema_bytes: u64,
    /// Most custom patterns.
    pub max_custom_patterns: usize,
    /// Most pattern source bytes, all patterns together.
    pub max_custom_pattern_bytes: usize,
    /// Largest pushed configuration, bytes of JSON.
    pub max_config_bytes: usize,
    /// Longest a pushed configuration may take to compile.
    pub timeout: Duration,
    /// Whether schema file errors say what is wrong (start-up, for the operator) or only that
    /// the file was rejected (pushed configurations: a peer must not learn which paths exist or
    /// what files hold).
    pub detailed_file_errors: bool,
}

impl Default for CompileLimits {
    fn default() -> Self {
        CompileLimits {
            max_schema_bytes: DEFAULT_MAX_SCHEMA_BYTES,
            max_custom_patterns: DEFAULT_MAX_CUSTOM_PATTERNS,
            max_custom_pattern_bytes: DEFAULT_MAX_CUSTOM_PATTERN_BYTES,
            max_config_bytes: DEFAULT_MAX_CONFIG_BYTES as usize,
            timeout: DEFAULT_CONFIG_TIMEOUT,
            detailed_file_errors: false,
        }
    }
}

impl CompileLimits {
    /// The limits the start-up options set (file errors for pushed configurations stay terse).
    pub fn from_options(options: &Options) -> Self {
        CompileLimits {
            max_schema_bytes: options.max_schema_bytes,
            max_custom_patterns: options.max_custom_patterns,
            max_custom_pattern_bytes: options.max_custom_pattern_bytes,
            max_config_bytes: usize::try_from(options.max_config_bytes).unwrap_or(usize::MAX),
            timeout: Duration::from_secs(options.config_timeout),
            detailed_file_errors: false,
        }
    }

    /// The same limits with detailed file errors (the start-up configuration).
    pub fn for_startup(self) -> Self {
        CompileLimits {
            detailed_file_errors: true,
            ..self
        }
    }
}

/// Why a schema file was not read. The display never says which of the causes it was unless
/// [`CompileLimits::detailed_file_errors`] asks for it.
#[derive(Debug)]
pub enum FileRejection {
    /// Opening or reading failed (missing, no permission, ...).
    Io(std::io::Error),
    /// Not a regular file (a FIFO, a device, a directory, a socket).
    NotRegular,
    /// Over the size limit.
    TooLarge,
}

impl std::fmt::Display for FileRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileRejection::Io(error) => write!(f, "{error}"),
            FileRejection::NotRegular => f.write_str("not a regular file"),
            FileRejection::TooLarge => f.write_str("over the size limit"),
        }
    }
}

/// Reads a regular file of at most `max` bytes. The file is opened non-blocking (a FIFO nobody
/// writes to does not block the open) and its type is checked on the opened descriptor (no race
/// with a rename), then at most `max + 1` bytes are read, so `/dev/zero`, FIFOs and huge files
/// cost nothing.
pub fn read_regular_file(path: &Path, max: u64) -> Result<Vec<u8>, FileRejection> {
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(FileRejection::Io)?;
    let metadata = file.metadata().map_err(FileRejection::Io)?;
    if !metadata.is_file() {
        return Err(FileRejection::NotRegular);
    }
    if metadata.len() > max {
        return Err(FileRejection::TooLarge);
    }
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(FileRejection::Io)?;
    if bytes.len() as u64 > max {
        // A file that grew (or lies about its size, like some /proc files) is cut off here.
        return Err(FileRejection::TooLarge);
    }
    Ok(bytes)
}

/// One piece of work for the compiler thread; it answers its caller itself.
type Job = Box<dyn FnOnce(&CompileLimits) + Send>;

/// The configuration compiler: one thread of its own, a short queue, answers by oneshot.
#[derive(Clone)]
pub struct Compiler {
    jobs: SyncSender<Job>,
    limits: CompileLimits,
}

impl std::fmt::Debug for Compiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiler")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Compiler {
    /// Starts the compiler thread. It ends when every [`Compiler`] handle is dropped.
    pub fn start(limits: CompileLimits) -> std::io::Result<Compiler> {
        let (jobs, queue) = sync_channel::<Job>(QUEUE_CAPACITY);
        std::thread::Builder::new()
            .name("config-compiler".into())
            .spawn(move || {
                while let Ok(job) = queue.recv() {
                    // A panic while compiling (a bug in a dependency) must not end the thread:
                    // every later push would then be rejected. The job's answer is dropped with
                    // it, which its caller sees as the compiler having gone.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&limits)));
                }
            })?;
        Ok(Compiler { jobs, limits })
    }

    /// The limits configurations are compiled under.
    pub fn limits(&self) -> &CompileLimits {
        &self.limits
    }

    /// Compiles `options` on the compiler thread, waiting at most the configured timeout. The
    /// calling task waits; the runtime thread does not.
    pub async fn compile(
        &self,
        options: crate::options::PolicyOptions,
    ) -> Result<Policy, PolicyError> {
        self.run(move |limits| Policy::compile_with(options, limits))
            .await
    }

    /// Runs `work` (reading files, compiling) on the compiler thread under its limits, waiting at
    /// most the configured timeout; work whose caller gave up while it was queued is skipped.
    pub async fn run<T, F>(&self, work: F) -> Result<T, PolicyError>
    where
        T: Send + 'static,
        F: FnOnce(&CompileLimits) -> Result<T, PolicyError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |limits| {
            if reply.is_closed() {
                // Its sender gave up (timed out) while it waited in the queue.
                return;
            }
            let _ = reply.send(work(limits));
        });
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(PolicyError::CompilerBusy),
            Err(TrySendError::Disconnected(_)) => return Err(PolicyError::CompilerGone),
        }
        match tokio::time::timeout(self.limits.timeout, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(PolicyError::CompilerGone),
            Err(_) => Err(PolicyError::CompileTimeout(self.limits.timeout.as_secs())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::PolicyOptions;

    #[test]
    fn only_small_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("small.json");
        std::fs::write(&small, b"{}").unwrap();
        assert_eq!(read_regular_file(&small, 2).unwrap(), b"{}");
        assert!(matches!(
            read_regular_file(&small, 1),
            Err(FileRejection::TooLarge)
        ));
        assert!(matches!(
            read_regular_file(Path::new("/dev/zero"), 1024),
            Err(FileRejection::NotRegular)
        ));
        assert!(matches!(
            read_regular_file(dir.path(), 1024),
            Err(FileRejection::NotRegular)
        ));
        assert!(matches!(
            read_regular_file(&dir.path().join("missing"), 1024),
            Err(FileRejection::Io(_))
        ));
    }

    #[test]
    fn a_fifo_nobody_writes_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let started = std::time::Instant::now();
        assert!(matches!(
            read_regular_file(&fifo, 1024),
            Err(FileRejection::NotRegular)
        ));
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn the_compiler_thread_answers_and_keeps_its_bounds() {
        let compiler = Compiler::start(CompileLimits {
            max_custom_patterns: 2,
            ..CompileLimits::default()
        })
        .unwrap();
        let ok = PolicyOptions {
            custom_patterns: vec!["evil".into()],
            ..PolicyOptions::default()
        };
        assert!(compiler.compile(ok).await.is_ok());
        let too_many = PolicyOptions {
            custom_patterns: vec!["a".into(), "b".into(), "c".into()],
            ..PolicyOptions::default()
        };
        let error = compiler.compile(too_many).await.unwrap_err().to_string();
        assert!(error.contains("custom-patterns"), "{error}");
    }
}
