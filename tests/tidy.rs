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
        // The api adapters, the assembly of the server and the generated code with its one
        // hand-written message type may name protos and tonic; nothing beneath them may. The
        // store encodes its own records with prost, but never the contract's messages.
        let may_know_protos = top == "api" || top == "server" || top == "proto.rs";
        if !may_know_protos {
            offending.extend(mentions(&file, &["tonic", "crate::proto"]));
        }
        if !may_know_protos && top != "store" {
            offending.extend(mentions(&file, &["prost"]));
        }
    }
    assert!(
        offending.is_empty(),
        "layer boundaries crossed: {offending:#?}"
    );
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `code spans` of a Markdown text, outside fenced blocks.
fn code_spans(markdown: &str) -> Vec<String> {
    let mut spans = Vec::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut parts = line.split('`');
        parts.next();
        while let (Some(span), Some(_)) = (parts.next(), parts.next()) {
            spans.push(span.to_string());
        }
    }
    spans
}

/// Whether `name` is defined in `text`: a line that, past its visibility and item keyword
/// (`fn`, `struct`, `enum`, `trait`, `type`, `const`, `static`, `mod`; a proto `service`,
/// `rpc`, `message`), starts with the name: an item, a field or an enum variant.
fn defines(text: &str, name: &str) -> bool {
    const PREFIXES: [&str; 16] = [
        "pub(crate) ",
        "pub(super) ",
        "pub ",
        "async ",
        "unsafe ",
        "fn ",
        "struct ",
        "enum ",
        "trait ",
        "type ",
        "const ",
        "static ",
        "mod ",
        "service ",
        "rpc ",
        "message ",
    ];
    text.lines().any(|line| {
        let mut rest = line.trim_start();
        for prefix in PREFIXES {
            rest = rest.strip_prefix(prefix).unwrap_or(rest);
        }
        rest.strip_prefix(name).is_some_and(|after| {
            after
                .chars()
                .next()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
        })
    })
}

#[test]
fn architecture_md_is_a_map_of_things_that_exist() {
    let text = fs::read_to_string(root().join("ARCHITECTURE.md")).expect("read ARCHITECTURE.md");
    assert!(
        text.len() <= 20 * 1024,
        "ARCHITECTURE.md is {} bytes; keep it a map of at most 20 KB",
        text.len()
    );
    let tops: Vec<String> = fs::read_dir(root())
        .expect("read the repository root")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let mut sources = String::new();
    for dir in ["src", "tests", "examples", "proto"] {
        let mut stack = vec![root().join(dir)];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).expect("read a source directory") {
                let path = entry.expect("an entry").path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs" || e == "proto") {
                    sources.push_str(&fs::read_to_string(&path).expect("read a source file"));
                }
            }
        }
    }
    let mut missing = Vec::new();
    for span in code_spans(&text) {
        let first = span.split('/').next().unwrap_or_default();
        if span.contains('/') && tops.iter().any(|t| t == first) || tops.contains(&span) {
            if !root().join(span.trim_end_matches('/')).exists() {
                missing.push(format!("path {span}"));
            }
            continue;
        }
        let item = span.trim_end_matches("()");
        let is_path = item.contains("::")
            && item
                .split("::")
                .all(|s| !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_'));
        let is_type = item.chars().next().is_some_and(|c| c.is_ascii_uppercase())
            && item.chars().all(|c| c.is_ascii_alphanumeric())
            && item.chars().any(|c| c.is_ascii_lowercase());
        if !(is_path || is_type) {
            continue;
        }
        for segment in item.split("::") {
            let crate_or_module = matches!(segment, "crate" | "self" | "super" | "std" | "tokio")
                || fs::metadata(root().join("src").join(segment)).is_ok()
                || fs::metadata(root().join("src").join(format!("{segment}.rs"))).is_ok();
            if !crate_or_module && !defines(&sources, segment) {
                missing.push(format!("item {span} ({segment})"));
                break;
            }
        }
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names what the code does not have: {missing:#?}"
    );
}

#[test]
fn every_source_file_reads_in_one_sitting() {
    const MAX_LINES: usize = 800;
    let long: Vec<String> = rust_files(&src())
        .iter()
        .filter_map(|file| {
            let lines = fs::read_to_string(file)
                .expect("read a source file")
                .lines()
                .count();
            (lines > MAX_LINES).then(|| format!("{} ({lines} lines)", file.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "split these along their seams, at most {MAX_LINES} lines each: {long:?}"
    );
}

/// Every RPC has one handler in `src/api`, traced under its RPC's name, and a handler only
/// validates, converts, calls one command and converts back: a few lines, never a page.
#[test]
fn every_rpc_has_a_short_traced_handler() {
    const MAX_LINES: usize = 40;
    let mut rpcs: Vec<String> = fs::read_dir(root().join("proto/servicedesk/v1"))
        .expect("read the protos")
        .map(|entry| entry.expect("a proto file").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "proto"))
        .flat_map(|file| {
            let text = fs::read_to_string(&file).expect("read a proto");
            text.lines()
                .filter_map(|line| {
                    let rest = line.trim_start().strip_prefix("rpc ")?;
                    Some(rest.split('(').next()?.trim().to_string())
                })
                .collect::<Vec<_>>()
        })
        .collect();
    rpcs.sort();

    let mut handlers = Vec::new();
    let mut long = Vec::new();
    for file in rust_files(&src().join("api")) {
        let text = fs::read_to_string(&file).expect("read a source file");
        let lines: Vec<&str> = text.lines().collect();
        for (at, line) in lines.iter().enumerate() {
            let Some(name) = line
                .trim()
                .strip_prefix("#[tracing::instrument(skip_all, name = \"")
                .and_then(|rest| rest.strip_suffix("\")]"))
            else {
                continue;
            };
            let length = lines[at..]
                .iter()
                .position(|line| *line == "    }")
                .expect("a handler ends at its impl's indentation");
            if length > MAX_LINES {
                long.push(format!("{name} in {} ({length} lines)", file.display()));
            }
            handlers.push(name.to_string());
        }
    }
    handlers.sort();
    assert_eq!(handlers, rpcs, "one traced handler per RPC of the protos");
    assert!(
        long.is_empty(),
        "move the work into the runtime, requests.rs or convert.rs: {long:?}"
    );
}

/// The desk's three big types (`Desk`, `DeskHandle`, `Core`) are implemented across several
/// files; each file's opening comment names the methods it holds, so that a method is found
/// by reading, not by grep. This keeps those lists true.
#[test]
fn every_file_implementing_the_desks_types_names_its_methods() {
    const TYPES: [&str; 3] = ["Desk", "DeskHandle", "Core"];
    let mut missing = Vec::new();
    for file in rust_files(&src()) {
        let text = fs::read_to_string(&file).expect("read a source file");
        let header: String = text
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut implementing = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("impl ") {
                let name = rest.trim_end_matches(" {").trim();
                implementing = TYPES.contains(&name).then_some(name);
                continue;
            }
            if line.starts_with('}') {
                implementing = None;
                continue;
            }
            let Some(ty) = implementing else { continue };
            let Some(after) = method_defined(line) else {
                continue;
            };
            let method: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !header.contains(&format!("Methods of `{ty}` here:"))
                || !header.contains(&format!("`{method}`"))
            {
                missing.push(format!("{}: {ty}::{method}", file.display()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "name these in their file's opening comment (\"Methods of `Type` here: ...\"): {missing:#?}"
    );
}

/// What follows `fn ` on a line defining a method of an impl block (four spaces in, any
/// visibility, maybe async).
fn method_defined(line: &str) -> Option<&str> {
    let mut rest = line.strip_prefix("    ").filter(|l| !l.starts_with(' '))?;
    if let Some(after) = rest.strip_prefix("pub") {
        rest = match after.strip_prefix('(') {
            Some(scope) => scope.split_once(") ")?.1,
            None => after.strip_prefix(' ')?,
        };
    }
    rest = rest.strip_prefix("async ").unwrap_or(rest);
    rest.strip_prefix("fn ")
}
