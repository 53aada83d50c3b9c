//! The README's Layout section is the map a newcomer reads first: it must name every module of
//! the crate (each `src/*.rs` file and `src/*/` folder), and every file name it gives must exist,
//! so the map never silently goes stale when a module is added, moved or removed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Layout section of the README: from its heading to the next `## ` heading.
fn layout() -> String {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let start = readme.find("\n## Layout\n").expect("a `## Layout` section");
    let body = &readme[start + 1..];
    let end = body[3..].find("\n## ").map_or(body.len(), |k| k + 3);
    body[..end].to_string()
}

/// Every file name under `dir`, recursively.
fn file_names(dir: &Path, names: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).expect("a readable folder").flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            file_names(&path, names);
        } else if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
            names.insert(name.to_string());
        }
    }
}

#[test]
fn the_readme_layout_names_every_module_of_the_crate() {
    let layout = layout();
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(root().join("src")).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let listed = if entry.path().is_dir() {
            format!("src/{name}/")
        } else if name == "lib.rs" {
            continue;
        } else {
            format!("src/{name}")
        };
        if !layout.contains(&listed) {
            missing.push(listed);
        }
    }
    missing.sort();
    assert!(
        missing.is_empty(),
        "README.md's Layout section does not name {missing:?}: add a line for each"
    );
}

#[test]
fn every_file_the_readme_layout_names_exists() {
    let layout = layout();
    let mut existing = BTreeSet::new();
    for dir in [
        "src",
        "examples",
        "benches",
        "tests",
        "conformance",
        "fuzz",
        "scripts",
    ] {
        file_names(&root().join(dir), &mut existing);
    }
    let stale: Vec<&str> = layout
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .filter(|word| word.ends_with(".rs") && word.len() > 3)
        .filter(|word| !existing.contains(*word))
        .collect();
    assert!(
        stale.is_empty(),
        "README.md's Layout section names files that do not exist: {stale:?}"
    );
}
