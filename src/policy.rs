//! A compiled inspection policy ([`Policy`]) and the one shared slot that holds the running policy
//! ([`SharedPolicy`]). Readers on the hot path keep a [`PolicyCache`] that costs one atomic load per
//! frame and takes the lock only when a configure event swapped the policy.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde_json::Value;

use crate::compiler::CompileLimits;
use crate::inspect::{DetectionSettings, InspectError, Inspector};
use crate::limits::reassembly::SizeLimits;
use crate::options::{ConfigError, PolicyOptions};
use crate::validate::{ValidateError, Validator};

/// Most bytes one unfinished message may hold: the largest message a v2 proxy can send.
pub const REASSEMBLY_BUFFER_CAP: usize = 16 * 1024 * 1024;
/// Bytes of earlier fragments inspected again with each new fragment.
pub const FRAGMENT_WINDOW_CONTEXT: usize = 1024;

/// Why a policy cannot be used; names the option.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A pushed configuration has an unknown key or a bad value.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A custom pattern does not compile.
    #[error("custom-patterns: {0}")]
    Pattern(#[from] InspectError),
    /// A schema or validation setting is unusable.
    #[error(transparent)]
    Validation(#[from] ValidateError),
    /// The configuration is over one of the compile limits (`--max-custom-patterns`, ...).
    #[error("{key}: {message}")]
    OverLimit {
        /// The option at fault.
        key: &'static str,
        /// Which limit, with its value.
        message: String,
    },
    /// The pushed configuration JSON is larger than `--max-config-bytes`.
    #[error("configuration of {size} bytes is over the {limit}-byte limit (--max-config-bytes)")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The pushed configuration is not JSON.
    #[error("configuration is not valid JSON: {0}")]
    Malformed(String),
    /// Compiling took longer than `--config-timeout`.
    #[error(
        "configuration not applied: reading and compiling it took over {0} s (--config-timeout)"
    )]
    CompileTimeout(u64),
    /// Too many configurations are waiting to be compiled.
    #[error("configuration not applied: the configuration compiler is busy; retry later")]
    CompilerBusy,
    /// The compiler thread is gone (it never is while the agent runs).
    #[error("configuration not applied: the configuration compiler stopped")]
    CompilerGone,
}

/// Everything inspection needs, compiled once per configuration.
#[derive(Debug)]
pub struct Policy {
    /// The options this policy was compiled from.
    pub options: PolicyOptions,
    /// The content detectors.
    pub inspector: Inspector,
    /// The schema validators.
    pub validator: Validator,
    /// Frame and message size limits.
    pub limits: SizeLimits,
}

impl Policy {
    /// Compiles `options` under the default [`CompileLimits`]; every error names the option at
    /// fault.
    pub fn compile(options: PolicyOptions) -> Result<Self, PolicyError> {
        Self::compile_with(options, &CompileLimits::default())
    }

    /// Compiles `options` under `limits` (pattern count and bytes, schema file size). Blocking:
    /// schema files are read here; pushed configurations come through [`crate::compiler`].
    pub fn compile_with(
        options: PolicyOptions,
        limits: &CompileLimits,
    ) -> Result<Self, PolicyError> {
        check_pattern_limits(&options.custom_patterns, limits)?;
        let inspector = Inspector::new(&DetectionSettings {
            xss: options.xss_detection,
            sqli: options.sqli_detection,
            command_injection: options.command_injection,
            custom_patterns: &options.custom_patterns,
        })?;
        let validator = Validator::with_limits(&options, limits)?;
        let limits = SizeLimits {
            max_text_frame: options.max_text_frame_size,
            max_binary_frame: options.max_binary_frame_size,
            max_message: options.max_message_size,
            buffer_cap: REASSEMBLY_BUFFER_CAP,
            window_context: FRAGMENT_WINDOW_CONTEXT,
            keep_binary: options.inspect_binary || options.msgpack_validation,
        };
        Ok(Policy {
            options,
            inspector,
            validator,
            limits,
        })
    }
}

/// `--max-custom-patterns` and `--max-custom-pattern-bytes`, checked before anything compiles.
fn check_pattern_limits(patterns: &[String], limits: &CompileLimits) -> Result<(), PolicyError> {
    if patterns.len() > limits.max_custom_patterns {
        return Err(PolicyError::OverLimit {
            key: "custom-patterns",
            message: format!(
                "{} patterns, over the limit of {} (--max-custom-patterns)",
                patterns.len(),
                limits.max_custom_patterns
            ),
        });
    }
    let total: usize = patterns.iter().map(String::len).sum();
    if total > limits.max_custom_pattern_bytes {
        return Err(PolicyError::OverLimit {
            key: "custom-patterns",
            message: format!(
                "{total} bytes of patterns, over the limit of {} (--max-custom-pattern-bytes)",
                limits.max_custom_pattern_bytes
            ),
        });
    }
    Ok(())
}

/// The running policy, replaced atomically by configure events.
#[derive(Debug)]
pub struct SharedPolicy {
    /// The start-up options every pushed configuration is applied on top of.
    baseline: PolicyOptions,
    generation: AtomicU64,
    current: RwLock<Arc<Policy>>,
    fail_open: AtomicBool,
    /// Serializes configure events so two of them cannot interleave compile and swap.
    configure_lock: Mutex<()>,
}

/// What a configure event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigureOutcome {
    /// The policy was replaced.
    Applied,
    /// The configuration equals the running one; nothing changed.
    Unchanged,
}

impl SharedPolicy {
    /// Holds `policy` as the running policy and its options as the baseline.
    pub fn new(policy: Policy) -> Self {
        SharedPolicy {
            baseline: policy.options.clone(),
            generation: AtomicU64::new(0),
            fail_open: AtomicBool::new(policy.options.fail_open),
            current: RwLock::new(Arc::new(policy)),
            configure_lock: Mutex::new(()),
        }
    }

    /// The running policy (takes a read lock: use a [`PolicyCache`] on hot paths).
    pub fn load(&self) -> Arc<Policy> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Bumped every time the policy is replaced.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The running `--fail-open` setting, readable without a lock.
    pub fn fail_open(&self) -> bool {
        self.fail_open.load(Ordering::Relaxed)
    }

    /// Validates a pushed configuration completely (applied on top of the start-up options), then
    /// swaps it in, compiling it on the calling thread under the default limits (tests and fuzz
    /// targets; the agent compiles pushed configurations on its compiler thread through
    /// [`SharedPolicy::prepare`] and [`SharedPolicy::install`]). An invalid configuration leaves
    /// the running policy untouched; `null` changes nothing.
    pub fn configure(&self, config: &Value) -> Result<ConfigureOutcome, PolicyError> {
        let _guard = self
            .configure_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let Some(options) = self.prepare(config)? else {
            return Ok(ConfigureOutcome::Unchanged);
        };
        let policy = Policy::compile(options)?;
        Ok(self.install(policy))
    }

    /// The options a pushed configuration asks for, applied on top of the start-up options;
    /// `None` when they equal the running ones (nothing to compile).
    pub fn prepare(&self, config: &Value) -> Result<Option<PolicyOptions>, PolicyError> {
        if config.is_null() {
            // No configuration supplied: keep whatever runs.
            return Ok(None);
        }
        let options = self.baseline.patched(config)?;
        if self.load().options == options {
            return Ok(None);
        }
        Ok(Some(options))
    }

    /// Swaps in a compiled policy (unless it equals the running one).
    pub fn install(&self, policy: Policy) -> ConfigureOutcome {
        if self.load().options == policy.options {
            return ConfigureOutcome::Unchanged;
        }
        let fail_open = policy.options.fail_open;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(policy);
        self.fail_open.store(fail_open, Ordering::Relaxed);
        self.generation.fetch_add(1, Ordering::AcqRel);
        ConfigureOutcome::Applied
    }
}

/// A reader's copy of the running policy, refreshed only when the generation moved.
#[derive(Debug, Clone)]
pub struct PolicyCache {
    generation: u64,
    policy: Arc<Policy>,
}

impl PolicyCache {
    /// A cache holding the current policy.
    pub fn new(shared: &SharedPolicy) -> Self {
        let generation = shared.generation();
        PolicyCache {
            generation,
            policy: shared.load(),
        }
    }

    /// The current policy: one atomic load, plus a lock only after a configure event.
    pub fn get(&mut self, shared: &SharedPolicy) -> &Arc<Policy> {
        let generation = shared.generation();
        if generation != self.generation {
            self.policy = shared.load();
            self.generation = generation;
        }
        &self.policy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn configure_swaps_validated_policy_and_is_idempotent() {
        let shared = SharedPolicy::new(Policy::compile(PolicyOptions::default()).unwrap());
        let mut cache = PolicyCache::new(&shared);
        let config = json!({"block-mode": false, "fail-open": true});
        assert_eq!(
            shared.configure(&config).unwrap(),
            ConfigureOutcome::Applied
        );
        assert_eq!(
            shared.configure(&config).unwrap(),
            ConfigureOutcome::Unchanged
        );
        assert!(!cache.get(&shared).options.block_mode);
        assert!(shared.fail_open());
        assert_eq!(shared.generation(), 1);
    }

    #[test]
    fn invalid_configuration_keeps_the_running_policy() {
        let shared = SharedPolicy::new(Policy::compile(PolicyOptions::default()).unwrap());
        let err = shared
            .configure(&json!({"custom-patterns": ["ok", "(unclosed"]}))
            .unwrap_err();
        assert!(err.to_string().contains("custom-patterns"), "{err}");
        assert!(err.to_string().contains("#1"), "{err}");
        assert!(shared.load().options.custom_patterns.is_empty());
        assert_eq!(shared.generation(), 0);
    }

    #[test]
    fn a_bad_pushed_schema_keeps_the_running_one() {
        let shared = SharedPolicy::new(Policy::compile(PolicyOptions::default()).unwrap());
        shared
            .configure(&json!({"json-schema": {"type": "object"}}))
            .unwrap();
        assert!(shared
            .load()
            .validator
            .validates_text(crate::model::Direction::ClientToServer));
        let err = shared
            .configure(&json!({"json-schema": {"type": "nonsense"}}))
            .unwrap_err();
        assert!(err.to_string().contains("json-schema"), "{err}");
        let err = shared
            .configure(&json!({"json-schema": "/nonexistent/schema.json"}))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("--json-schema /nonexistent/schema.json"),
            "{err}"
        );
        assert_eq!(shared.generation(), 1);
        assert!(shared.load().validator.check_text(b"[]").is_err());
    }
}
