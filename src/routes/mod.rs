//! Per-route policies: the compiled [`PolicySet`] (a default policy and one per `[[route]]` of a
//! policy file) and how a route id picks its policy ([`PolicySet::resolve`]: the first route whose
//! pattern matches, else the default). Layering: flags and environment (or a configure push of
//! plain options) give the base; the file's `[default]` applies on top of them; each route applies
//! on top of `[default]`. Every layer goes through [`PolicyOptions::patched`], the same check a
//! configure push gets, so the file knows exactly the option names the flags do.
//!
//! A connection resolves its policy once, from the route id of its first frame, and again only
//! when the running set changes (see [`crate::actors::connection`]). Frames that carry no route
//! id (gRPC v2 frame events have none) use the default policy.

pub mod file;
pub mod glob;
pub mod json_locations;

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

pub use file::{PolicyDocument, PolicyFileError, MAX_ROUTES};
pub use glob::RoutePattern;

use crate::compiler::CompileLimits;
use crate::options::{ConfigError, PolicyOptions};
use crate::policy::{Policy, PolicyError};
use crate::telemetry::routes::{RouteCounters, OTHER_ROUTE};

/// The name of the default policy in `/connections` and log lines.
pub const DEFAULT_NAME: &str = "default";

/// One compiled route.
#[derive(Debug)]
struct CompiledRoute {
    pattern: RoutePattern,
    policy: Arc<Policy>,
}

/// The running policies: the default and the routes of the policy file, in file order.
#[derive(Debug)]
pub struct PolicySet {
    base: PolicyOptions,
    document: Option<Arc<PolicyDocument>>,
    default: Arc<Policy>,
    routes: Vec<CompiledRoute>,
}

impl PolicySet {
    /// A set with only a default policy (no policy file).
    pub fn single(policy: Policy) -> Self {
        PolicySet {
            base: policy.options.clone(),
            document: None,
            default: Arc::new(policy),
            routes: Vec::new(),
        }
    }

    /// Compiles `document` (when given) on top of `base`: every table layered, checked and
    /// compiled (schemas read) under `limits`. The first error stops it, naming the file, line,
    /// table and key.
    pub fn compile(
        base: PolicyOptions,
        document: Option<Arc<PolicyDocument>>,
        limits: &CompileLimits,
    ) -> Result<PolicySet, PolicyError> {
        let Some(doc) = document else {
            let mut policy = Policy::compile_with(base.clone(), limits)?;
            policy.name = Arc::from(DEFAULT_NAME);
            return Ok(PolicySet {
                base,
                document: None,
                default: Arc::new(policy),
                routes: Vec::new(),
            });
        };
        let default_options = layer(&doc, &base, &doc.default, "[default]")?;
        let default = compile_table(
            &doc,
            default_options.clone(),
            &doc.default,
            "[default]",
            limits,
            DEFAULT_NAME,
            OTHER_ROUTE,
        )?;
        let mut routes = Vec::with_capacity(doc.routes.len());
        for route in &doc.routes {
            let table = format!("route `{}`", crate::util::for_log(route.name.as_bytes()));
            agent_wide_keys_stay_in_default(&doc, &route.options, &table)?;
            let options = layer(&doc, &default_options, &route.options, &table)?;
            let policy = compile_table(
                &doc,
                options,
                &route.options,
                &table,
                limits,
                &route.name,
                &route.name,
            )?;
            routes.push(CompiledRoute {
                pattern: route.pattern.clone(),
                policy,
            });
        }
        Ok(PolicySet {
            base,
            document: Some(doc),
            default,
            routes,
        })
    }

    /// The policy for a connection whose first frame carried `route` (the default when none
    /// matches or no route id was sent).
    pub fn resolve(&self, route: Option<&str>) -> &Arc<Policy> {
        if let Some(route) = route {
            for candidate in &self.routes {
                if candidate.pattern.matches(route) {
                    return &candidate.policy;
                }
            }
        }
        &self.default
    }

    /// The default policy.
    pub fn default_policy(&self) -> &Arc<Policy> {
        &self.default
    }

    /// The options the file was layered on (flags and environment, or a configure push).
    pub fn base(&self) -> &PolicyOptions {
        &self.base
    }

    /// The policy file in force, if any.
    pub fn document(&self) -> Option<&Arc<PolicyDocument>> {
        self.document.as_ref()
    }

    /// Number of routes.
    pub fn route_count(&self) -> usize {
        self.routes.len()
    }

    /// The routes' names and policies, in file order.
    pub fn routes(&self) -> impl Iterator<Item = &Arc<Policy>> {
        self.routes.iter().map(|r| &r.policy)
    }
}

/// Options that bound the whole agent rather than one connection's inspection; a route cannot set
/// them (they would have no effect there), `[default]` can.
const AGENT_WIDE_KEYS: [&str; 2] = ["idle-timeout", "max-connections"];

fn agent_wide_keys_stay_in_default(
    doc: &PolicyDocument,
    table: &file::OptionTable,
    name: &str,
) -> Result<(), PolicyError> {
    match AGENT_WIDE_KEYS
        .iter()
        .find(|key| table.values.contains_key(**key))
    {
        None => Ok(()),
        Some(key) => Err(PolicyError::File(PolicyFileError {
            origin: doc.origin.clone(),
            at: table.location_of(key),
            table: Some(name.to_owned()),
            message: format!(
                "`{key}` applies to the whole agent, not to one route: set it in [default]"
            ),
        })),
    }
}

/// `table`'s options applied on top of `below`; an error names the file, line and key.
fn layer(
    doc: &PolicyDocument,
    below: &PolicyOptions,
    table: &file::OptionTable,
    name: &str,
) -> Result<PolicyOptions, PolicyError> {
    below
        .patched(&Value::Object(table.values.clone()))
        .map_err(|error| {
            let key = match &error {
                ConfigError::UnknownKey { key } | ConfigError::InvalidValue { key, .. } => {
                    Some(key.as_str())
                }
                ConfigError::NotAnObject(_) => None,
            };
            PolicyError::File(PolicyFileError {
                origin: doc.origin.clone(),
                at: key.map_or(table.at, |k| table.location_of(k)),
                table: Some(name.to_owned()),
                message: error.to_string(),
            })
        })
}

fn compile_table(
    doc: &PolicyDocument,
    options: PolicyOptions,
    table: &file::OptionTable,
    name: &str,
    limits: &CompileLimits,
    policy_name: &str,
    label: &str,
) -> Result<Arc<Policy>, PolicyError> {
    let mut policy = Policy::compile_with(options, limits).map_err(|error| {
        // The option is named in the message; point at it when the table sets it.
        let message = error.to_string();
        let at = table
            .locations
            .iter()
            .find(|(key, _)| message.contains(key.as_str()))
            .map(|(_, at)| *at)
            .or(table.at);
        PolicyError::File(PolicyFileError {
            origin: doc.origin.clone(),
            at,
            table: Some(name.to_owned()),
            message,
        })
    })?;
    policy.name = Arc::from(policy_name);
    policy.counters = RouteCounters::labeled(label);
    if policy_name != DEFAULT_NAME && sets_own_ip_budget(table) {
        policy.ip_budget_scope = Arc::from(policy_name);
    }
    Ok(Arc::new(policy))
}

/// The options that make a route's per-client-IP budget its own (see
/// [`Policy::ip_budget_scope`]).
const IP_BUDGET_KEYS: [&str; 3] = [
    "ip-max-messages-per-sec",
    "ip-max-bytes-per-sec",
    "ip-burst",
];

/// True when a route's table sets any per-client-IP limit: its frames then count against a budget
/// of the route's own, else against the default one (shared by every such route).
fn sets_own_ip_budget(table: &file::OptionTable) -> bool {
    IP_BUDGET_KEYS
        .iter()
        .any(|key| table.values.contains_key(*key))
}

/// Reads, checks and compiles a policy file on top of `base`, logging shadowed routes and how
/// long it took (the figure the reload target is about).
pub fn load_file(
    path: &std::path::Path,
    base: PolicyOptions,
    limits: &CompileLimits,
) -> Result<PolicySet, PolicyError> {
    let started = Instant::now();
    let document = PolicyDocument::read(path, limits.max_config_bytes as u64)?;
    let set = compile_document(document, base, limits)?;
    tracing::info!(
        file = %crate::util::for_log(path.as_os_str().as_encoded_bytes()),
        routes = set.route_count(),
        elapsed_ms = format!("{:.1}", started.elapsed().as_secs_f64() * 1e3),
        "policy file loaded"
    );
    Ok(set)
}

/// Compiles a parsed document on top of `base`, logging its shadowed routes.
pub fn compile_document(
    document: PolicyDocument,
    base: PolicyOptions,
    limits: &CompileLimits,
) -> Result<PolicySet, PolicyError> {
    let set = PolicySet::compile(base, Some(Arc::new(document)), limits)?;
    if let Some(doc) = set.document() {
        for warning in doc.shadowed_routes() {
            tracing::warn!(warning = %warning, "policy file: shadowed route");
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(text: &str) -> Result<PolicySet, PolicyError> {
        let doc = PolicyDocument::parse_toml(text, "routes.toml", None).unwrap();
        PolicySet::compile(
            PolicyOptions::default(),
            Some(Arc::new(doc)),
            &CompileLimits::default(),
        )
    }

    #[test]
    fn a_json_file_names_the_line_of_a_bad_key_like_a_toml_file() {
        let text = "{\n  \"default\": {\"block-mode\": true},\n  \"route\": [\n    {\"match\": \"chat\"},\n    {\"match\": \"trading\",\n     \"max-mesages-per-sec\": 5}\n  ]\n}\n";
        let doc = PolicyDocument::parse_json(text, "routes.json", None).unwrap();
        let err = PolicySet::compile(
            PolicyOptions::default(),
            Some(Arc::new(doc)),
            &CompileLimits::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("routes.json:6:"), "{err}");
        assert!(err.contains("max-mesages-per-sec"), "{err}");
    }

    #[test]
    fn layers_apply_in_order_and_the_first_match_wins() {
        let set = compile(
            "[default]\nmax-message-size = 100\nblock-action = \"drop\"\n\n[[route]]\nmatch = \"chat-*\"\nmax-message-size = 10\n\n[[route]]\nmatch = \"chat-eu\"\nxss-detection = false\n\n[[route]]\nname = \"trade\"\nmatch = \"trading\"\nblock-mode = false\n",
        )
        .unwrap();
        let chat = set.resolve(Some("chat-eu"));
        assert_eq!(&*chat.name, "chat-*");
        assert_eq!(chat.options.max_message_size, 10);
        assert_eq!(
            chat.options.block_action,
            crate::options::ViolationAction::Drop
        );
        assert!(chat.options.xss_detection);
        let trade = set.resolve(Some("trading"));
        assert_eq!(&*trade.name, "trade");
        assert!(!trade.options.block_mode);
        assert_eq!(trade.options.max_message_size, 100);
        assert_eq!(&*set.resolve(Some("other")).name, DEFAULT_NAME);
        assert_eq!(&*set.resolve(None).name, DEFAULT_NAME);
        assert_eq!(set.default_policy().options.max_message_size, 100);
    }

    #[test]
    fn option_errors_name_file_line_table_and_key() {
        let err = compile("[[route]]\nmatch = \"a\"\n\nxss-detecton = true\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("routes.toml:4:1: route `a`: unknown option `xss-detecton`"),
            "{err}"
        );
        let err = compile("[default]\nmax-messages-per-sec = \"lots\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("routes.toml:2:1: [default]: invalid value for `max-messages-per-sec`"),
            "{err}"
        );
        let err =
            compile("[[route]]\nmatch = \"a\"\nschema.client.text = { type = \"nonsense\" }\n")
                .unwrap_err()
                .to_string();
        assert!(
            err.starts_with("routes.toml:3:1: route `a`: schema.client.text"),
            "{err}"
        );
        let err = compile("[[route]]\nmatch = \"a\"\nschema.client.txt = \"x.json\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("route `a`: invalid value for `schema`"),
            "{err}"
        );
        assert!(err.contains("txt"), "{err}");
    }

    #[test]
    fn only_a_route_that_sets_ip_limits_has_a_budget_of_its_own() {
        let set = compile(
            "[default]\nip-max-messages-per-sec = 5\n\n[[route]]\nmatch = \"tight\"\nip-max-messages-per-sec = 1\n\n[[route]]\nmatch = \"bytes-*\"\nname = \"bytes\"\nip-max-bytes-per-sec = 100\n\n[[route]]\nmatch = \"chat\"\nmax-message-size = 10\n",
        )
        .unwrap();
        assert_eq!(&*set.resolve(Some("tight")).ip_budget_scope, "tight");
        assert_eq!(&*set.resolve(Some("bytes-eu")).ip_budget_scope, "bytes");
        let chat = set.resolve(Some("chat"));
        assert_eq!(&*chat.ip_budget_scope, crate::shared_limits::DEFAULT_SCOPE);
        assert_eq!(
            chat.options.ip_max_messages_per_sec, 5,
            "the default budget's limits"
        );
        assert_eq!(
            &*set.default_policy().ip_budget_scope,
            crate::shared_limits::DEFAULT_SCOPE
        );
    }

    #[test]
    fn agent_wide_options_are_refused_in_routes() {
        let err = compile("[[route]]\nmatch = \"a\"\nidle-timeout = 5\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "routes.toml:3:1: route `a`: `idle-timeout` applies to the whole agent"
            ),
            "{err}"
        );
        assert!(compile("[default]\nidle-timeout = 5\n").is_ok());
    }

    #[test]
    fn a_client_and_a_server_schema_apply_to_their_direction() {
        use crate::model::Direction;
        let set = compile(
            "[[route]]\nmatch = \"trading\"\nschema.client.text = { type = \"object\", required = [\"order\"] }\nschema.server.text = { type = \"object\", required = [\"fill\"] }\n",
        )
        .unwrap();
        let v = &set.resolve(Some("trading")).validator;
        assert!(v
            .check_text_in(Direction::ClientToServer, br#"{"order":1}"#)
            .is_ok());
        assert!(v
            .check_text_in(Direction::ClientToServer, br#"{"fill":1}"#)
            .is_err());
        assert!(v
            .check_text_in(Direction::ServerToClient, br#"{"fill":1}"#)
            .is_ok());
        assert!(v
            .check_text_in(Direction::ServerToClient, br#"{"order":1}"#)
            .is_err());
        assert!(!set
            .default_policy()
            .validator
            .validates_text(Direction::ClientToServer));
    }
}
