//! Architecture invariant: the `http`, `connect` and `channel` crates call
//! services and never see a store. They cannot name a storage trait
//! because they do not depend on `tessera-store` (its value types reach
//! them through `tessera_oauth::data`), and the services keep their storage
//! handles `pub(crate)`. This test fails when a dependency on the store
//! creeps back in, or its name appears in their sources.

use std::path::{Path, PathBuf};

const CALLERS: &[&str] = &["http", "connect", "channel"];
const STORE_CRATES: &[&str] = &[
    "tessera-store",
    "tessera-store-sqlite",
    "tessera-store-postgres",
];

fn crate_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The crates a manifest's normal and build dependency tables name (their
/// `package` where a dependency is renamed), target-specific ones included.
/// Dev-dependencies are left out: tests may set up data in a store.
fn dependencies(manifest: &toml::Table) -> Vec<String> {
    let mut tables: Vec<&toml::Table> = Vec::new();
    for key in ["dependencies", "build-dependencies"] {
        if let Some(t) = manifest.get(key).and_then(|v| v.as_table()) {
            tables.push(t);
        }
    }
    if let Some(targets) = manifest.get("target").and_then(|v| v.as_table()) {
        for target in targets.values().filter_map(|v| v.as_table()) {
            for key in ["dependencies", "build-dependencies"] {
                if let Some(t) = target.get(key).and_then(|v| v.as_table()) {
                    tables.push(t);
                }
            }
        }
    }
    tables
        .into_iter()
        .flat_map(|t| t.iter())
        .map(|(name, spec)| {
            spec.get("package")
                .and_then(|p| p.as_str())
                .unwrap_or(name)
                .to_string()
        })
        .collect()
}

#[test]
fn callers_do_not_depend_on_the_store() {
    for name in CALLERS {
        let manifest = crate_dir(name).join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).expect("manifest");
        let doc: toml::Table = text.parse().expect("toml");
        let deps = dependencies(&doc);
        assert!(
            deps.iter().any(|d| d == "tessera-oauth"),
            "{name}: no deps read"
        );
        for store in STORE_CRATES {
            assert!(
                !deps.iter().any(|d| d == store),
                "{} depends on {store}: call a service in tessera-oauth instead",
                manifest.display()
            );
        }
    }
}

/// The storage traits, read from the store crate itself.
fn storage_traits() -> Vec<String> {
    let text = std::fs::read_to_string(crate_dir("store").join("src/lib.rs")).expect("store");
    let traits: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("pub trait "))
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect()
        })
        .collect();
    assert!(traits.len() >= 10, "storage traits not found: {traits:?}");
    traits
}

#[test]
fn callers_never_name_the_store() {
    let mut needles = storage_traits();
    needles.push("tessera_store".into());
    for name in CALLERS {
        let mut files = Vec::new();
        rust_files(&crate_dir(name).join("src"), &mut files);
        assert!(!files.is_empty(), "no sources found for {name}");
        for file in files {
            let text = std::fs::read_to_string(&file).expect("source");
            for (n, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for needle in &needles {
                    let named = code.match_indices(needle.as_str()).any(|(i, _)| {
                        let before = code[..i].chars().next_back();
                        let after = code[i + needle.len()..].chars().next();
                        let word =
                            |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
                        !word(before) && !word(after)
                    });
                    assert!(
                        !named,
                        "{}:{} names the store ({needle}); call a service instead",
                        file.display(),
                        n + 1
                    );
                }
            }
        }
    }
}
