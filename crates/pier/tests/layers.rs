//! The library's layers (docs/architecture.md "Layers"), checked on the source: a top-level
//! module of `crates/pier/src` may name (`crate::m`, in code, not in comments) only modules of
//! a lower layer. No import cycle and no upward import can then come back unnoticed (issue 9).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// Each top-level module's layer: a module imports only modules with a smaller number.
const LAYERS: &[(&str, u8)] = &[
    ("commands", 12),  // one thin file per verb
    ("cli", 11),       // argv -> Cli
    ("container", 10), // the lifecycle
    ("spawn", 9),      // the parent's side of a clone
    ("init", 8),       // the child's side, up to execve
    ("channel", 7),    // parent/child messages
    ("supervise", 7),  // the foreground wait loop
    ("hooks", 6),
    ("notify", 6),
    ("state", 5),
    ("cgroups", 4),
    ("rootless", 3),
    ("spec", 2),
    ("activation", 1),
    ("error", 1),
    ("logging", 1),
    ("sealed_exe", 1),
    ("signals", 1),
    ("tool", 1),
    ("tty", 1),
    ("undo", 1),
    ("sys", 0),
];

fn layer(module: &str) -> u8 {
    LAYERS
        .iter()
        .find(|(m, _)| *m == module)
        .map(|(_, l)| *l)
        .unwrap_or_else(|| panic!("module `{module}` has no layer in tests/layers.rs"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its comments (line comments only: the crate uses no block
/// comments) and string literals' contents are kept, which is harmless here.
fn code(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules `code` names after `crate::`, also inside `crate::{a, b::{c}}`.
fn named_modules(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item_start = true;
            let mut end = group.len();
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 1 => item_start = true,
                    c if c.is_alphabetic() && depth == 1 && item_start => {
                        out.insert(ident(&group[i..]));
                        item_start = false;
                    }
                    _ => {}
                }
                if depth == 0 {
                    end = i;
                    break;
                }
            }
            rest = &group[end..];
        } else {
            out.insert(ident(rest));
        }
    }
    out
}

fn ident(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

#[test]
fn every_module_imports_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).expect("under src");
        let first = rel.components().next().expect("a component");
        let module = first
            .as_os_str()
            .to_str()
            .expect("utf-8")
            .trim_end_matches(".rs");
        // main.rs is the binary, and sys/entry.rs its C `main`, included by path into it.
        if module == "main" || module == "lib" || rel == Path::new("sys/entry.rs") {
            continue;
        }
        let text = fs::read_to_string(file).expect("read a source file");
        for named in named_modules(&code(&text)) {
            if named != module && layer(&named) >= layer(module) {
                wrong.push(format!("{} names crate::{named}", rel.display()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_import_scanner_sees_grouped_and_nested_paths() {
    let found = named_modules("use crate::{cli::{A, B}, spec::Plan};\nlet x = crate::sys::f();");
    let want: BTreeSet<String> = ["cli", "spec", "sys"].map(String::from).into();
    assert_eq!(found, want);
    assert!(named_modules(&code("/// see [`crate::commands`]\nfn f() {}")).is_empty());
}
