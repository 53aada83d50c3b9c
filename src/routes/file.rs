//! Reading a policy file into a [`PolicyDocument`]: TOML (the default) or JSON (a name ending in
//! `.json`, and the inline `policy` object of a configure push). Checks the file's shape (only
//! `default` and `route` at the top, `match` on every route, route names, glob patterns, the
//! number of routes) and keeps where every key was written, so that an option error found later
//! names the file, line and key. Option keys and values themselves are checked by
//! [`crate::options::PolicyOptions`] when the set is compiled ([`super::PolicySet::compile`]).
//! Relative schema paths are read from the policy file's directory.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};
use toml::Spanned;

use super::glob::RoutePattern;
use super::json_locations::{JsonLocations, TableLocations};
use crate::compiler::read_regular_file;
use crate::util::{cut, for_log};

/// Most `[[route]]` tables in one file.
pub const MAX_ROUTES: usize = 256;
/// Longest route name (it is a metric label and appears in log lines).
pub const MAX_NAME_BYTES: usize = 64;

/// A place in the file, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Line.
    pub line: usize,
    /// Column (in characters).
    pub column: usize,
}

impl Location {
    /// The line and column of byte `offset` of `text`.
    pub(super) fn of(text: &str, offset: usize) -> Self {
        let before = &text[..floor_char_boundary(text, offset.min(text.len()))];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Location { line, column }
    }
}

fn floor_char_boundary(text: &str, mut index: usize) -> usize {
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

/// A policy file (or inline policy) that cannot be used. Displays as
/// `FILE:LINE:COLUMN: [route `NAME`: ]MESSAGE`, the message naming the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyFileError {
    /// The file (escaped for logs) or `configure policy`.
    pub origin: String,
    /// Where, when known.
    pub at: Option<Location>,
    /// The table at fault (`[default]`, route `chat`), when the error is inside one.
    pub table: Option<String>,
    /// What is wrong, naming the key.
    pub message: String,
}

impl fmt::Display for PolicyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.origin)?;
        if let Some(at) = self.at {
            write!(f, ":{}:{}", at.line, at.column)?;
        }
        f.write_str(": ")?;
        if let Some(table) = &self.table {
            write!(f, "{table}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// The option keys of one table, with where each was written.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OptionTable {
    /// Where the table starts.
    pub at: Option<Location>,
    /// The options, kebab-case keys as in a configure push.
    pub values: Map<String, Value>,
    /// Where each key was written.
    pub locations: BTreeMap<String, Location>,
}

impl OptionTable {
    /// Where `key` was written (else where the table starts).
    pub fn location_of(&self, key: &str) -> Option<Location> {
        self.locations.get(key).copied().or(self.at)
    }
}

/// One `[[route]]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteEntry {
    /// `name`, or the `match` pattern when no name is given.
    pub name: String,
    /// `match`.
    pub pattern: RoutePattern,
    /// Its options (on top of `[default]`).
    pub options: OptionTable,
}

/// A parsed policy file: `[default]` options and routes, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyDocument {
    /// The file path (escaped) or `configure policy`, for messages.
    pub origin: String,
    /// The file it came from (reloaded on SIGHUP).
    pub path: Option<PathBuf>,
    /// `[default]` options (on top of flags and environment).
    pub default: OptionTable,
    /// `[[route]]` tables; the first that matches a route id applies.
    pub routes: Vec<RouteEntry>,
}

/// One table as read, before its `match`/`name` are taken out.
struct RawTable {
    at: Option<Location>,
    entries: Vec<(String, Option<Location>, Value)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlDocument {
    default: Option<Spanned<BTreeMap<Spanned<String>, toml::Value>>>,
    #[serde(default)]
    route: Vec<Spanned<BTreeMap<Spanned<String>, toml::Value>>>,
}

impl PolicyDocument {
    /// Reads and parses the file at `path` (a regular file of at most `max_bytes`): JSON when its
    /// name ends in `.json`, TOML otherwise.
    pub fn read(path: &Path, max_bytes: u64) -> Result<Self, PolicyFileError> {
        let origin = for_log(path.as_os_str().as_encoded_bytes()).to_string();
        let error = |message: String| PolicyFileError {
            origin: origin.clone(),
            at: None,
            table: None,
            message,
        };
        let bytes = read_regular_file(path, max_bytes).map_err(|problem| {
            error(format!(
                "cannot read the policy file: {problem} (a regular file of at most {max_bytes} bytes, --max-config-bytes)"
            ))
        })?;
        let text = String::from_utf8(bytes)
            .map_err(|_| error("the policy file is not UTF-8 text".into()))?;
        let base = path.parent().filter(|p| !p.as_os_str().is_empty());
        let is_json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        let mut document = if is_json {
            Self::parse_json(&text, &origin, base)?
        } else {
            Self::parse_toml(&text, &origin, base)?
        };
        document.path = Some(path.to_owned());
        Ok(document)
    }

    /// Parses TOML text.
    pub fn parse_toml(
        text: &str,
        origin: &str,
        base: Option<&Path>,
    ) -> Result<Self, PolicyFileError> {
        let raw: TomlDocument = toml::from_str(text).map_err(|e| PolicyFileError {
            origin: origin.to_owned(),
            at: e.span().map(|span| Location::of(text, span.start)),
            table: None,
            message: cut(e.message().trim(), 300).replace('\n', "; "),
        })?;
        let table = |spanned: Spanned<BTreeMap<Spanned<String>, toml::Value>>| {
            let at = Some(Location::of(text, spanned.span().start));
            let entries = spanned
                .into_inner()
                .into_iter()
                .map(|(key, value)| {
                    let at = Location::of(text, key.span().start);
                    let value = serde_json::to_value(value).unwrap_or(Value::Null);
                    (key.into_inner(), Some(at), value)
                })
                .collect();
            RawTable { at, entries }
        };
        let default = raw.default.map(table);
        let routes = raw.route.into_iter().map(table).collect();
        Self::build(origin, base, default, routes)
    }

    /// Parses JSON text (a file).
    pub fn parse_json(
        text: &str,
        origin: &str,
        base: Option<&Path>,
    ) -> Result<Self, PolicyFileError> {
        let value: Value = serde_json::from_str(text).map_err(|e| PolicyFileError {
            origin: origin.to_owned(),
            at: Some(Location {
                line: e.line(),
                column: e.column(),
            }),
            table: None,
            message: format!("not valid JSON: {e}"),
        })?;
        Self::from_json_at(&value, origin, base, &super::json_locations::locate(text))
    }

    /// Reads a policy given as a JSON value (`policy` in a configure push: there is no text, so
    /// errors name the route and the key, without a line).
    pub fn from_json(
        value: &Value,
        origin: &str,
        base: Option<&Path>,
    ) -> Result<Self, PolicyFileError> {
        Self::from_json_at(value, origin, base, &JsonLocations::default())
    }

    /// Reads a policy given as a JSON value whose text put its tables and keys at `places`.
    fn from_json_at(
        value: &Value,
        origin: &str,
        base: Option<&Path>,
        places: &JsonLocations,
    ) -> Result<Self, PolicyFileError> {
        let error = |message: String| PolicyFileError {
            origin: origin.to_owned(),
            at: None,
            table: None,
            message,
        };
        let Value::Object(top) = value else {
            return Err(error(
                "a policy must be an object with `default` and `route`".into(),
            ));
        };
        let mut default = None;
        let mut routes = Vec::new();
        let no_places = TableLocations::default();
        let table = |value: &Value, what: &str, places: &TableLocations| match value {
            Value::Object(map) => Ok(RawTable {
                at: places.at,
                entries: map
                    .iter()
                    .map(|(k, v)| (k.clone(), places.keys.get(k).copied(), v.clone()))
                    .collect(),
            }),
            _ => Err(error(format!("`{what}` must be an object of options"))),
        };
        for (key, value) in top {
            match key.as_str() {
                "default" => default = Some(table(value, "default", &places.default)?),
                "route" => {
                    let Value::Array(list) = value else {
                        return Err(error("`route` must be an array of route objects".into()));
                    };
                    for (index, item) in list.iter().enumerate() {
                        let at = places.routes.get(index).unwrap_or(&no_places);
                        routes.push(table(item, "route", at)?);
                    }
                }
                other => {
                    return Err(error(format!(
                        "unknown key `{}`, expected `default` or `route`",
                        for_log(cut(other, 64).as_ref())
                    )))
                }
            }
        }
        Self::build(origin, base, default, routes)
    }

    fn build(
        origin: &str,
        base: Option<&Path>,
        default: Option<RawTable>,
        routes: Vec<RawTable>,
    ) -> Result<Self, PolicyFileError> {
        let error =
            |at: Option<Location>, table: Option<String>, message: String| PolicyFileError {
                origin: origin.to_owned(),
                at,
                table,
                message,
            };
        if routes.len() > MAX_ROUTES {
            return Err(error(
                routes.get(MAX_ROUTES).and_then(|r| r.at),
                None,
                format!("{} routes, over the limit of {MAX_ROUTES}", routes.len()),
            ));
        }
        let default = default
            .map(|raw| options_table(raw, base))
            .unwrap_or_default();
        let mut entries: Vec<RouteEntry> = Vec::with_capacity(routes.len());
        for (index, raw) in routes.into_iter().enumerate() {
            let label = format!("route #{}", index + 1);
            let mut options = options_table(raw, base);
            let take_string =
                |options: &mut OptionTable,
                 key: &str|
                 -> Result<Option<(String, Option<Location>)>, PolicyFileError> {
                    let at = options.location_of(key);
                    options.locations.remove(key);
                    match options.values.remove(key) {
                        None => Ok(None),
                        Some(Value::String(s)) => Ok(Some((s, at))),
                        Some(_) => Err(error(
                            at,
                            Some(label.clone()),
                            format!("`{key}` must be a string"),
                        )),
                    }
                };
            let Some((pattern, pattern_at)) = take_string(&mut options, "match")? else {
                return Err(error(
                    options.at,
                    Some(label),
                    "`match` is missing (an exact route id, or a glob with `*` and `?`)".into(),
                ));
            };
            let pattern = RoutePattern::parse(&pattern).map_err(|e| {
                error(
                    pattern_at,
                    Some(label.clone()),
                    format!("`match` {:?}: {e}", cut(&pattern, 64)),
                )
            })?;
            let name = match take_string(&mut options, "name")? {
                Some((name, at)) => {
                    check_name(&name).map_err(|m| error(at, Some(label.clone()), m))?;
                    name
                }
                None => pattern.as_str().to_owned(),
            };
            if name == crate::telemetry::routes::OTHER_ROUTE || name == super::DEFAULT_NAME {
                return Err(error(
                    options.at,
                    Some(label),
                    format!("route name `{name}` is reserved; give the route a `name`"),
                ));
            }
            if entries.iter().any(|e| e.name == name) {
                return Err(error(
                    options.at,
                    Some(label),
                    format!(
                        "two routes are named `{}`; names must differ (give one a `name`)",
                        for_log(name.as_bytes())
                    ),
                ));
            }
            entries.push(RouteEntry {
                name,
                pattern,
                options,
            });
        }
        Ok(PolicyDocument {
            origin: origin.to_owned(),
            path: None,
            default,
            routes: entries,
        })
    }

    /// Routes that can never match because an earlier route matches every id they do, as
    /// operator-facing sentences (logged as warnings; the file is still used).
    pub fn shadowed_routes(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        for (index, route) in self.routes.iter().enumerate() {
            if let Some(earlier) = self.routes[..index]
                .iter()
                .find(|e| route.pattern.is_shadowed_by(&e.pattern))
            {
                let line = |t: &OptionTable| {
                    t.at.map(|a| format!(" (line {})", a.line))
                        .unwrap_or_default()
                };
                warnings.push(format!(
                    "{}: route `{}`{} can never match: route `{}`{} (match {:?}) comes first and matches every route id it does",
                    self.origin,
                    for_log(route.name.as_bytes()),
                    line(&route.options),
                    for_log(earlier.name.as_bytes()),
                    line(&earlier.options),
                    earlier.pattern.as_str(),
                ));
            }
        }
        warnings
    }
}

/// A route name: 1 to [`MAX_NAME_BYTES`] of letters, digits, `-`, `_`, `.`.
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`name` {:?}: use 1 to {MAX_NAME_BYTES} letters, digits, `-`, `_` or `.`",
            cut(name, 64)
        ))
    }
}

/// The keys of a table as options; relative schema paths made relative to `base`.
fn options_table(raw: RawTable, base: Option<&Path>) -> OptionTable {
    let mut table = OptionTable {
        at: raw.at,
        ..OptionTable::default()
    };
    for (key, at, mut value) in raw.entries {
        if let Some(base) = base {
            match key.as_str() {
                "json-schema" | "msgpack-schema" => rebase(&mut value, base),
                "schema" => {
                    if let Value::Object(directions) = &mut value {
                        for kinds in directions.values_mut() {
                            if let Value::Object(kinds) = kinds {
                                for source in kinds.values_mut() {
                                    rebase(source, base);
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        if let Some(at) = at {
            table.locations.insert(key.clone(), at);
        }
        table.values.insert(key, value);
    }
    table
}

/// A relative path string becomes relative to `base`.
fn rebase(value: &mut Value, base: &Path) {
    if let Value::String(path) = value {
        if Path::new(path.as_str()).is_relative() {
            *value = Value::String(base.join(path.as_str()).to_string_lossy().into_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toml(text: &str) -> Result<PolicyDocument, PolicyFileError> {
        PolicyDocument::parse_toml(text, "routes.toml", Some(Path::new("/etc/ws")))
    }

    #[test]
    fn tables_routes_and_locations_are_read() {
        let doc = toml(
            "[default]\nmax-message-size = 65536\n\n[[route]]\nmatch = \"chat-*\"\nxss-detection = true\nschema.client.text = \"chat.json\"\n\n[[route]]\nname = \"orders\"\nmatch = \"trading\"\n",
        )
        .unwrap();
        assert_eq!(doc.default.values["max-message-size"], 65536);
        assert_eq!(doc.routes.len(), 2);
        assert_eq!(doc.routes[0].name, "chat-*");
        assert_eq!(doc.routes[1].name, "orders");
        assert!(doc.routes[1].pattern.matches("trading"));
        assert_eq!(
            doc.routes[0]
                .options
                .location_of("xss-detection")
                .unwrap()
                .line,
            6
        );
        assert_eq!(
            doc.routes[0].options.values["schema"]["client"]["text"],
            "/etc/ws/chat.json"
        );
        assert!(!doc.routes[0].options.values.contains_key("match"));
    }

    #[test]
    fn syntax_errors_and_unknown_tables_name_the_line() {
        let err = toml("[default]\nblock-mode = \n").unwrap_err();
        assert_eq!(err.at.map(|a| a.line), Some(2), "{err}");
        assert!(err.to_string().starts_with("routes.toml:2:"), "{err}");
        let err = toml("[defaults]\nblock-mode = true\n").unwrap_err();
        assert_eq!(err.at.map(|a| a.line), Some(1), "{err}");
        assert!(err.to_string().contains("defaults"), "{err}");
    }

    #[test]
    fn routes_need_a_valid_match_and_distinct_names() {
        let err = toml("[[route]]\nxss-detection = false\n").unwrap_err();
        assert!(err.to_string().contains("`match` is missing"), "{err}");
        let err = toml("[[route]]\nmatch = \"chat-[ab]\"\n").unwrap_err();
        assert_eq!(err.at.map(|a| a.line), Some(2));
        assert!(
            err.to_string().contains("not allowed in a pattern"),
            "{err}"
        );
        let err = toml("[[route]]\nmatch = \"a\"\n[[route]]\nmatch = \"a\"\n").unwrap_err();
        assert!(
            err.to_string().contains("two routes are named `a`"),
            "{err}"
        );
        let err = toml("[[route]]\nmatch = \"a\"\nname = \"bad name\"\n").unwrap_err();
        assert!(err.to_string().contains("`name`"), "{err}");
        let many: String = (0..=MAX_ROUTES)
            .map(|i| format!("[[route]]\nmatch = \"r{i}\"\n"))
            .collect();
        assert!(toml(&many)
            .unwrap_err()
            .to_string()
            .contains("over the limit"));
    }

    #[test]
    fn json_policies_read_the_same_way() {
        let value = serde_json::json!({
            "default": {"block-mode": true},
            "route": [{"match": "trading", "block-action": "drop"}]
        });
        let doc = PolicyDocument::from_json(&value, "configure policy", None).unwrap();
        assert_eq!(doc.routes[0].options.values["block-action"], "drop");
        let err = PolicyDocument::parse_json("{\"route\": [}", "p.json", None).unwrap_err();
        assert_eq!(err.at.map(|a| a.line), Some(1));
        let err = PolicyDocument::from_json(&serde_json::json!({"routes": []}), "p.json", None)
            .unwrap_err();
        assert!(err.to_string().contains("unknown key `routes`"), "{err}");
    }

    #[test]
    fn shadowed_routes_are_reported() {
        let doc = toml("[[route]]\nmatch = \"chat-*\"\n[[route]]\nmatch = \"chat-eu\"\n[[route]]\nmatch = \"trading\"\n").unwrap();
        let warnings = doc.shadowed_routes();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("route `chat-eu` (line 3) can never match"),
            "{}",
            warnings[0]
        );
    }
}
