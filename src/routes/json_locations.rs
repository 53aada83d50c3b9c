//! Where the tables and keys of a JSON policy file were written, so that an error in a `.json`
//! file names its line like one in a TOML file does. serde_json keeps no positions in a parsed
//! `Value`, so this module walks the text once more (after serde_json accepted it) and records
//! the start of `default`, of each element of `route`, and of every key directly inside them.
//! It never fails: text it does not understand simply yields fewer locations.

use std::collections::BTreeMap;

use super::file::Location;

/// One table's place and its keys' places.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct TableLocations {
    /// Where the table's `{` is.
    pub at: Option<Location>,
    /// Where each key of the table was written (the first time, if repeated).
    pub keys: BTreeMap<String, Location>,
}

/// The places of a JSON policy's `default` table and `route` elements, in file order.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct JsonLocations {
    /// `default`.
    pub default: TableLocations,
    /// `route[0]`, `route[1]`, ...
    pub routes: Vec<TableLocations>,
}

/// What one open container is, as far as the walk cares.
enum Open {
    /// An object; `key` is the last key read in it (the one whose value comes next).
    Object { key: Option<String> },
    /// An array and the index of the element being read.
    Array { index: usize },
}

/// Which policy table the innermost open object is, if any.
enum Table {
    Default,
    Route(usize),
}

/// Walks `text` (JSON that serde_json already accepted) and records where the policy's tables
/// and their keys are.
pub fn locate(text: &str) -> JsonLocations {
    let bytes = text.as_bytes();
    let mut found = JsonLocations::default();
    let mut stack: Vec<Open> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' => {
                match table_of(&stack) {
                    Some(Table::Default) => found.default.at = Some(Location::of(text, i)),
                    Some(Table::Route(index)) => {
                        if found.routes.len() <= index {
                            found.routes.resize(index + 1, TableLocations::default());
                        }
                        found.routes[index].at = Some(Location::of(text, i));
                    }
                    None => {}
                }
                stack.push(Open::Object { key: None });
                i += 1;
            }
            b'[' => {
                stack.push(Open::Array { index: 0 });
                i += 1;
            }
            b'}' | b']' => {
                stack.pop();
                i += 1;
            }
            b',' => {
                match stack.last_mut() {
                    Some(Open::Array { index }) => *index += 1,
                    Some(Open::Object { key }) => *key = None,
                    None => {}
                }
                i += 1;
            }
            b'"' => {
                let start = i;
                let (content, end) = read_string(bytes, i);
                i = end;
                // A string directly inside an object with no key yet is that key.
                if let Some(Open::Object { key }) = stack.last_mut() {
                    if key.is_none() {
                        let name = String::from_utf8_lossy(content).into_owned();
                        let table = match stack.len() {
                            2 | 3 => table_of(&stack[..stack.len() - 1]),
                            _ => None,
                        };
                        let at = Location::of(text, start);
                        match table {
                            Some(Table::Default) => {
                                found.default.keys.entry(name.clone()).or_insert(at);
                            }
                            Some(Table::Route(index)) => {
                                if found.routes.len() <= index {
                                    found.routes.resize(index + 1, TableLocations::default());
                                }
                                found.routes[index].keys.entry(name.clone()).or_insert(at);
                            }
                            None => {}
                        }
                        if let Some(Open::Object { key }) = stack.last_mut() {
                            *key = Some(name);
                        }
                    }
                }
            }
            _ => i += 1,
        }
    }
    found
}

/// The policy table whose object sits directly inside `outer` (the containers around it).
fn table_of(outer: &[Open]) -> Option<Table> {
    match outer {
        [Open::Object { key: Some(key) }] if key == "default" => Some(Table::Default),
        [Open::Object { key: Some(key) }, Open::Array { index }] if key == "route" => {
            Some(Table::Route(*index))
        }
        _ => None,
    }
}

/// The raw content of the string starting at `bytes[start] == b'"'` and the index just after
/// its closing quote (or the end of the text).
fn read_string(bytes: &[u8], start: usize) -> (&[u8], usize) {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return (&bytes[start + 1..i], i + 1),
            _ => i += 1,
        }
    }
    (&bytes[(start + 1).min(bytes.len())..], bytes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_and_their_keys_are_found_on_their_lines() {
        let text = "{\n  \"default\": {\n    \"block-mode\": true,\n    \"nested\": {\"deep\": 1}\n  },\n  \"route\": [\n    {\"match\": \"a\\\"b\",\n     \"block-action\": \"drop\"},\n    {\n      \"match\": \"c-*\"\n    }\n  ]\n}\n";
        let found = locate(text);
        assert_eq!(found.default.at.map(|a| a.line), Some(2));
        assert_eq!(found.default.keys["block-mode"].line, 3);
        assert_eq!(found.default.keys["nested"].line, 4);
        assert!(!found.default.keys.contains_key("deep"), "{found:?}");
        assert_eq!(found.routes.len(), 2);
        assert_eq!(found.routes[0].keys["match"].line, 7);
        assert_eq!(found.routes[0].keys["block-action"].line, 8);
        assert_eq!(found.routes[1].at.map(|a| a.line), Some(9));
        assert_eq!(found.routes[1].keys["match"].line, 10);
    }

    #[test]
    fn any_text_is_walked_without_a_panic() {
        let mut x: u32 = 0x1234_5678;
        let alphabet = b"{}[],:\"\\ adefilnortu\n";
        for len in 0..200 {
            let text: String = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    char::from(alphabet[(x as usize) % alphabet.len()])
                })
                .collect();
            let _ = locate(&text);
        }
    }
}
