//! Checks on the source tree that keep the architecture honest: every module says what it
//! owns in a `//!` block, and the pure layers import nothing they must not know about.

use std::fs;
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).expect("read a source directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn every_module_opens_with_a_doc_comment_saying_what_it_owns() {
    let mut missing = Vec::new();
    for file in rust_files(&src()) {
        let text = fs::read_to_string(&file).expect("read a source file");
        if !text.trim_start().starts_with("//!") {
            missing.push(file.strip_prefix(src()).unwrap().display().to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "modules without a //! block: {missing:?}"
    );
}

/// Lines of `file` that mention any of `crates` as a path root (`tokio::`, `use tonic`).
fn mentions(file: &Path, crates: &[&str]) -> Vec<String> {
    let text = fs::read_to_string(file).expect("read a source file");
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .filter(|line| {
            crates.iter().any(|c| {
                line.contains(&format!("{c}::"))
                    || line.contains(&format!("use {c};"))
                    || line.contains(&format!("use {c} "))
            })
        })
        .map(|line| format!("{}: {}", file.display(), line.trim()))
        .collect()
}

#[test]
fn the_domain_does_no_io_and_knows_no_transport_runtime_or_sql() {
    let forbidden = [
        "tokio",
        "tonic",
        "prost",
        "prost_types",
        "rusqlite",
        "std::fs",
        "std::net",
        "std::time::SystemTime",
        "std::time::Instant",
        "crate::store",
        "crate::runtime",
        "crate::api",
        "crate::proto",
        "crate::clock",
    ];
    let offending: Vec<String> = rust_files(&src().join("domain"))
        .iter()
        .flat_map(|f| mentions(f, &forbidden))
        .collect();
    assert!(
        offending.is_empty(),
        "the domain must stay pure: {offending:#?}"
    );
}

#[test]
fn only_the_store_knows_sql_and_only_the_api_knows_protos() {
    let mut offending = Vec::new();
    for file in rust_files(&src()) {
        let relative = file.strip_prefix(src()).unwrap().to_path_buf();
        let top = relative.components().next().unwrap().as_os_str().to_owned();
        if top != "store" {
            offending.extend(mentions(&file, &["rusqlite"]));
        }
        // The api adapters, the assembly of the server and the crate root (which includes the
        // generated code) may name protos and tonic; nothing beneath them may.
        let may_know_protos = top == "api" || top == "server.rs" || top == "lib.rs";
        if !may_know_protos {
            offending.extend(mentions(&file, &["tonic", "crate::proto", "prost"]));
        }
    }
    assert!(
        offending.is_empty(),
        "layer boundaries crossed: {offending:#?}"
    );
}
