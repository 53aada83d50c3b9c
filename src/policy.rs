//! A compiled inspection policy ([`Policy`]) and the one shared slot that holds the running
//! policies ([`SharedPolicy`]: a [`PolicySet`], the default policy plus one per policy-file route).
//! Readers on the hot path check [`SharedPolicy::generation`] (one atomic load per frame) and take
//! the lock only when a configure event, a SIGHUP or a push swapped the set; [`PolicyCache`] does
//! that for the default policy.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde_json::Value;

use crate::compiler::CompileLimits;
use crate::inspect::{DetectionSettings, InspectError, Inspector};
use crate::limits::reassembly::SizeLimits;
use crate::options::{ConfigError, PolicyOptions};
use crate::routes::{PolicyDocument, PolicyFileError, PolicySet};
use crate::telemetry::routes::RouteCounters;
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
    /// A policy file (or inline policy) is unusable; names the file, line, table and key.
    #[error(transparent)]
    File(#[from] PolicyFileError),
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
    /// `default`, or the policy-file route's name (in `/connections` and violation log lines).
    pub name: Arc<str>,
    /// Where frames decided under this policy are counted (the route's `route` label).
    pub counters: Arc<RouteCounters>,
    /// Which per-client-IP budget this policy's frames count against: empty for the default
    /// budget (the default policy, and every route that sets no `ip-*` limit of its own), the
    /// route's name for a route that sets its own. Computed once here, so the frame path only
    /// clones the `Arc`.
    pub ip_budget_scope: Arc<str>,
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
            name: Arc::from(crate::routes::DEFAULT_NAME),
            counters: RouteCounters::unlabeled(),
            ip_budget_scope: Arc::from(crate::shared_limits::DEFAULT_SCOPE),
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

/// The running policies, replaced atomically by configure events and policy-file reloads.
#[derive(Debug)]
pub struct SharedPolicy {
    /// The start-up options (flags and environment) every pushed configuration is applied on top
    /// of.
    baseline: PolicyOptions,
    generation: AtomicU64,
    current: RwLock<Arc<PolicySet>>,
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

/// What to compile for a configure event: new base options, with the policy file in force.
#[derive(Debug, Clone)]
pub struct SetRequest {
    /// The options the file layers on.
    pub base: PolicyOptions,
    /// The policy file in force (kept from the running set).
    pub document: Option<Arc<PolicyDocument>>,
}

impl SharedPolicy {
    /// Holds `policy` as the running (only) policy and its options as the baseline.
    pub fn new(policy: Policy) -> Self {
        Self::with_set(PolicySet::single(policy))
    }

    /// Holds `set` as the running policies and its base options as the baseline.
    pub fn with_set(set: PolicySet) -> Self {
        SharedPolicy {
            baseline: set.base().clone(),
            generation: AtomicU64::new(0),
            fail_open: AtomicBool::new(set.default_policy().options.fail_open),
            current: RwLock::new(Arc::new(set)),
            configure_lock: Mutex::new(()),
        }
    }

    /// The running default policy (takes a read lock: use a [`PolicyCache`] on hot paths).
    pub fn load(&self) -> Arc<Policy> {
        Arc::clone(self.load_set().default_policy())
    }

    /// The running set (takes a read lock: only when [`SharedPolicy::generation`] moved).
    pub fn load_set(&self) -> Arc<PolicySet> {
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
        let Some(request) = self.prepare(config)? else {
            return Ok(ConfigureOutcome::Unchanged);
        };
        let set = PolicySet::compile(request.base, request.document, &CompileLimits::default())?;
        Ok(self.install(set))
    }

    /// The options a pushed configuration asks for, applied on top of the start-up options, with
    /// the running policy file; `None` when they equal the running ones (nothing to compile).
    pub fn prepare(&self, config: &Value) -> Result<Option<SetRequest>, PolicyError> {
        if config.is_null() {
            // No configuration supplied: keep whatever runs.
            return Ok(None);
        }
        let base = self.baseline.patched(config)?;
        let running = self.load_set();
        if running.base() == &base {
            return Ok(None);
        }
        Ok(Some(SetRequest {
            base,
            document: running.document().cloned(),
        }))
    }

    /// The running set's base options (what a new policy file is layered on).
    pub fn running_base(&self) -> PolicyOptions {
        self.load_set().base().clone()
    }

    /// Swaps in a compiled set (unless it equals the running one: same base, no policy file).
    pub fn install(&self, set: PolicySet) -> ConfigureOutcome {
        let running = self.load_set();
        if set.document().is_none()
            && running.document().is_none()
            && running.default_policy().options == set.default_policy().options
        {
            return ConfigureOutcome::Unchanged;
        }
        let fail_open = set.default_policy().options.fail_open;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(set);
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
