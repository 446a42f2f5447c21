//! The crate's shape, checked: data flows one way (record → dump → trigger → handle → serve),
//! no module imports one that depends on it, and every source file does one job in at most
//! about 500 lines, saying which in its first line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What each top-level module may use (besides itself). `lib.rs`, the root, re-exports all.
const ALLOWED: &[(&str, &[&str])] = &[
    ("sync", &[]),
    ("error", &[]),
    ("atomic", &["error"]),
    ("record", &["sync", "error"]),
    ("dump", &["record", "atomic", "sync", "error"]),
    ("trigger", &["dump", "record", "sync", "error"]),
    ("status", &["dump"]),
    (
        "recorder",
        &["status", "trigger", "dump", "record", "sync", "error"],
    ),
    (
        "serve",
        &[
            "recorder", "status", "dump", "record", "atomic", "sync", "error",
        ],
    ),
    ("config", &["trigger", "dump", "record", "error"]),
    ("recover", &["dump", "record", "atomic", "error", "sync"]),
    ("env", &["config", "error", "recover"]),
    (
        "builder",
        &[
            "config", "env", "recorder", "trigger", "dump", "record", "error", "recover",
        ],
    ),
    (
        "analyze",
        &["validate", "dump", "record", "atomic", "error"],
    ),
    ("validate", &[]),
    ("tokio", &["recorder", "record", "sync", "error"]),
];

/// Longest source file, in lines.
const MAX_LINES: usize = 500;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/record/storage/chunk.rs` → `["record", "storage", "chunk"]`; `mod.rs` names its folder.
fn module_of(file: &Path) -> Vec<String> {
    let relative = file.strip_prefix("src").unwrap();
    let mut parts: Vec<String> = relative
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    // `validate` lives in analyze/ but is declared at the root (`#[path]`).
    if parts == ["analyze", "validate"] {
        parts = vec!["validate".to_owned()];
    }
    parts
}

/// The `crate::a::b…` paths a file uses, outside comments, and `super::x` ones made absolute.
fn uses_of(source: &str, module: &[String]) -> BTreeSet<Vec<String>> {
    let mut uses = BTreeSet::new();
    for line in source.lines() {
        let code = line.split("//").next().unwrap_or("");
        for (prefix, base) in [
            ("crate::", &[][..]),
            ("super::", &module[..module.len() - 1]),
        ] {
            let mut rest = code;
            while let Some(at) = rest.find(prefix) {
                let before = rest[..at].chars().last();
                rest = &rest[at + prefix.len()..];
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    continue;
                }
                let path: Vec<String> = rest
                    .split("::")
                    .map(|seg| {
                        seg.chars()
                            .take_while(|c| {
                                c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'
                            })
                            .collect::<String>()
                    })
                    .take_while(|seg| !seg.is_empty())
                    .collect();
                if !path.is_empty() {
                    let mut full: Vec<String> = base.to_vec();
                    full.extend(path);
                    uses.insert(full);
                }
            }
        }
    }
    uses
}

struct Crate {
    /// Module path → the modules it uses (resolved to modules that exist).
    graph: BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
}

fn load() -> Crate {
    let mut files = Vec::new();
    rust_files(Path::new("src"), &mut files);
    files.retain(|f| !f.starts_with("src/bin") && f != Path::new("src/lib.rs"));
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(f)).collect();
    let mut graph = BTreeMap::new();
    for file in &files {
        let module = module_of(file);
        let source = std::fs::read_to_string(file).unwrap();
        let used = uses_of(&source, &module)
            .into_iter()
            .filter_map(|path| {
                // The longest prefix that is a module: `crate::dump::files::DumpInfo` → dump::files.
                (1..=path.len())
                    .rev()
                    .map(|n| path[..n].to_vec())
                    .find(|prefix| modules.contains(prefix))
            })
            .filter(|target| *target != module)
            .collect();
        graph.insert(module, used);
    }
    Crate { graph }
}

/// A cycle in `edges`, if any, as the list of nodes around it.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(node) {
            Some(2) => return None,
            Some(1) => {
                let start = path.iter().position(|n| n == node).unwrap();
                let mut cycle = path[start..].to_vec();
                cycle.push(node.to_owned());
                return Some(cycle);
            }
            _ => {}
        }
        state.insert(node.to_owned(), 1);
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, state, path) {
                return Some(cycle);
            }
        }
        path.pop();
        state.insert(node.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in edges.keys() {
        if let Some(cycle) = visit(node, edges, &mut state, &mut Vec::new()) {
            return Some(cycle);
        }
    }
    None
}

#[test]
fn stages_import_only_the_stages_before_them() {
    let krate = load();
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut violations = Vec::new();
    for (module, used) in &krate.graph {
        let top = module[0].as_str();
        let Some(may) = allowed.get(top) else {
            violations.push(format!(
                "{} is not a known stage: add it to ALLOWED",
                module.join("::")
            ));
            continue;
        };
        for target in used {
            let other = target[0].as_str();
            if other != top && !may.contains(&other) {
                violations.push(format!("{} uses {}", module.join("::"), target.join("::")));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "imports against the flow:\n{}",
        violations.join("\n")
    );
}

#[test]
fn no_import_cycles_between_modules_or_between_files_of_a_folder() {
    let krate = load();
    // Between top-level modules.
    let mut top: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    // Between the files of each folder, keyed by the folder.
    let mut within: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (module, used) in &krate.graph {
        top.entry(module[0].clone()).or_default();
        for target in used {
            if target[0] != module[0] {
                top.entry(module[0].clone())
                    .or_default()
                    .insert(target[0].clone());
            }
            // Siblings: same parent folder, different file.
            let common = module
                .iter()
                .zip(target)
                .take_while(|(a, b)| a == b)
                .count();
            if common < module.len() && common < target.len() {
                let folder = module[..common].to_vec();
                within
                    .entry(folder)
                    .or_default()
                    .entry(module[common].clone())
                    .or_default()
                    .insert(target[common].clone());
            }
        }
    }
    if let Some(cycle) = find_cycle(&top) {
        panic!("import cycle between modules: {}", cycle.join(" → "));
    }
    for (folder, edges) in &within {
        if let Some(cycle) = find_cycle(edges) {
            panic!(
                "import cycle inside {}: {}",
                if folder.is_empty() {
                    "src".to_owned()
                } else {
                    folder.join("/")
                },
                cycle.join(" → ")
            );
        }
    }
}

#[test]
fn every_file_does_one_job_it_names_in_at_most_500_lines() {
    let mut files = Vec::new();
    rust_files(Path::new("src"), &mut files);
    let mut problems = Vec::new();
    for file in files {
        let source = std::fs::read_to_string(&file).unwrap();
        let lines = source.lines().count();
        if lines > MAX_LINES {
            problems.push(format!("{}: {lines} lines", file.display()));
        }
        let first = source.lines().next().unwrap_or("");
        let says_its_job = first.starts_with("//! ") || first.starts_with("#![doc");
        if !says_its_job {
            problems.push(format!(
                "{}: first line is not a `//!` line saying its job",
                file.display()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The checker itself finds what it must.
#[test]
fn the_checker_sees_uses_and_cycles() {
    let module = vec!["dump".to_owned(), "worker".to_owned()];
    let uses = uses_of(
        "use crate::record::storage::{Chunk, lock};\n// crate::serve in a comment\nuse super::files::DumpInfo;\nlet x = my_crate::thing;",
        &module,
    );
    let uses: Vec<String> = uses.iter().map(|u| u.join("::")).collect();
    assert_eq!(uses, ["dump::files", "record::storage"]);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    edges.entry("a".into()).or_default().insert("b".into());
    edges.entry("b".into()).or_default().insert("c".into());
    assert_eq!(find_cycle(&edges), None);
    edges.entry("c".into()).or_default().insert("a".into());
    assert_eq!(find_cycle(&edges).unwrap(), ["a", "b", "c", "a"]);
}
