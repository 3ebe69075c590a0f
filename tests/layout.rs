//! The layout rule of `src/lib.rs`, checked on the source text:
//!
//! - every actor lives under `src/actors/`, and a node's folder there imports no other
//!   node's folder (the store backends aside: nodes that write or read results wire them);
//! - the top-level modules are contracts and pure libraries: they import nothing from
//!   `src/actors/` (the control plane aside, which runs the registrar every node runs);
//! - the analyzers are pure: no actix;
//! - actix-web-actors is used in one module only, so it can move to actix-ws in one place;
//! - no module imports another that imports it back, directly or round a circle.
//!
//! A new file that breaks the rule fails here, naming the file and the path it used.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

#[path = "common/sources.rs"]
mod sources;

/// Module path -> (file, text).
type Files = BTreeMap<Vec<String>, (String, String)>;
/// File -> the files it imports.
type Graph = BTreeMap<String, BTreeSet<String>>;

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every library source file (binaries are separate crates) with its module path.
fn modules() -> Files {
    let root = src();
    let mut out = BTreeMap::new();
    for f in sources::rust_files(&root) {
        let rel = f
            .strip_prefix(&root)
            .expect("under src")
            .to_string_lossy()
            .replace('\\', "/");
        if rel.starts_with("bin/") {
            continue;
        }
        let mut path: Vec<String> = rel
            .trim_end_matches(".rs")
            .split('/')
            .map(String::from)
            .collect();
        if matches!(path.last().map(String::as_str), Some("mod" | "lib")) {
            path.pop();
        }
        let text = std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"));
        out.insert(path, (format!("src/{rel}"), text));
    }
    assert!(
        out.len() > 20,
        "found only {} modules under src/",
        out.len()
    );
    out
}

/// The code of `text` without comments and without the contents of string and character
/// literals, so that a doc link or a URL never counts as an import.
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == b'r' && matches!(b.get(i + 1), Some(b'"' | b'#')) && !prev_is_ident(b, i) {
            // Raw string: r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push('r');
                i += 1;
                continue;
            }
            j += 1;
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            while j < b.len() && !b[j..].starts_with(&close) {
                j += 1;
            }
            i = j + close.len();
            out.push_str("\"\"");
        } else if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == b'\'' {
            // A character literal ('x', '\n', '"'), or a lifetime ('a), which stays.
            if b.get(i + 1) == Some(&b'\\') {
                i += 2;
                while i < b.len() && b[i] != b'\'' {
                    i += 1;
                }
                i += 1;
                out.push_str("' '");
            } else if let Some(len) = text[i + 1..].chars().next().map(char::len_utf8) {
                if b.get(i + 1 + len) == Some(&b'\'') {
                    i += 2 + len;
                    out.push_str("' '");
                } else {
                    out.push('\'');
                    i += 1;
                }
            } else {
                i += 1;
            }
        } else {
            let ch = text[i..].chars().next().expect("in bounds");
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

fn prev_is_ident(b: &[u8], i: usize) -> bool {
    i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Path, // ::
    Open,
    Close,
    Comma,
    Star,
    Other,
}

fn tokens(code: &str) -> Vec<Tok> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(Tok::Ident(code[start..i].to_string()));
            continue;
        }
        match c {
            b':' if b.get(i + 1) == Some(&b':') => {
                out.push(Tok::Path);
                i += 2;
                continue;
            }
            b'{' => out.push(Tok::Open),
            b'}' => out.push(Tok::Close),
            b',' => out.push(Tok::Comma),
            b'*' => out.push(Tok::Star),
            c if c.is_ascii_whitespace() => {}
            _ => out.push(Tok::Other),
        }
        i += 1;
    }
    out
}

/// Reads a use tree at `toks[*i]` (after a `::`): `a::b`, `{a, b::{c, d}}`, `*`; pushes
/// each full path (relative to `prefix`).
fn use_tree(toks: &[Tok], i: &mut usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let mut path = prefix;
    loop {
        match toks.get(*i) {
            Some(Tok::Ident(s)) => {
                if s != "self" {
                    path.push(s.clone());
                }
                *i += 1;
                if toks.get(*i) == Some(&Tok::Path) {
                    *i += 1;
                    continue;
                }
                out.push(path);
                return;
            }
            Some(Tok::Open) => {
                *i += 1;
                loop {
                    match toks.get(*i) {
                        Some(Tok::Close) => {
                            *i += 1;
                            return;
                        }
                        Some(Tok::Comma) => *i += 1,
                        None => return,
                        _ => use_tree(toks, i, path.clone(), out),
                    }
                }
            }
            _ => {
                *i += 1;
                out.push(path);
                return;
            }
        }
    }
}

/// Every absolute module path `text` (the file of module `me`) names through `crate::`,
/// `super::` or `self::`, inline modules (`mod tests { .. }`) taken into account.
fn references(me: &[String], text: &str) -> Vec<Vec<String>> {
    let toks = tokens(&code_only(text));
    let mut out = Vec::new();
    // Inline modules: (name, brace depth inside it).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < toks.len() {
        match &toks[i] {
            Tok::Open => {
                depth += 1;
                i += 1;
                continue;
            }
            Tok::Close => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
                i += 1;
                continue;
            }
            Tok::Ident(m) if m == "mod" => {
                if let (Some(Tok::Ident(name)), Some(Tok::Open)) =
                    (toks.get(i + 1), toks.get(i + 2))
                {
                    inline.push((name.clone(), depth + 1));
                }
                i += 1;
                continue;
            }
            Tok::Ident(s)
                if matches!(s.as_str(), "crate" | "super" | "self")
                    && toks.get(i + 1) == Some(&Tok::Path)
                    && !(i > 0 && toks[i - 1] == Tok::Path) =>
            {
                let mut here: Vec<String> = me.to_vec();
                here.extend(inline.iter().map(|(n, _)| n.clone()));
                let mut base = match s.as_str() {
                    "crate" => Vec::new(),
                    "self" => here,
                    _ => {
                        here.pop();
                        here
                    }
                };
                i += 2;
                while toks.get(i) == Some(&Tok::Ident("super".into()))
                    && toks.get(i + 1) == Some(&Tok::Path)
                {
                    base.pop();
                    i += 2;
                }
                use_tree(&toks, &mut i, base, &mut out);
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// The file module a path lands in: its longest prefix that is a file.
fn resolve<'a>(
    path: &[String],
    files: &'a BTreeMap<Vec<String>, (String, String)>,
) -> Option<&'a Vec<String>> {
    (0..=path.len())
        .rev()
        .find_map(|n| files.get_key_value(&path[..n]).map(|(k, _)| k))
}

/// file -> files it imports (itself and the modules that merely contain it excluded).
fn imports() -> (Graph, Files) {
    let files = modules();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, (file, text)) in &files {
        let entry = graph.entry(file.clone()).or_default();
        for r in references(path, text) {
            if let Some(target) = resolve(&r, &files) {
                // `crate::x::y` from x's own children resolves to x's mod.rs only when it
                // names an item there: that is a real import.
                if target != path {
                    entry.insert(files[target].0.clone());
                }
            }
        }
    }
    (graph, files)
}

/// Strongly connected components with more than one file (Tarjan).
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        let n = t.index.len();
        t.index.insert(v, n);
        t.low.insert(v, n);
        t.stack.push(v);
        t.on.insert(v);
        let g = t.g;
        for w in g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !g.contains_key(w) {
                continue;
            }
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let mut t = T {
        g: graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

/// The node folder a file is in (`src/actors/<node>/...`), if any.
fn node_of(file: &str) -> Option<&str> {
    let rest = file.strip_prefix("src/actors/")?;
    rest.split_once('/').map(|(node, _)| node)
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let (graph, _) = imports();
    let found = circles(&graph);
    assert!(
        found.is_empty(),
        "import circles (each group imports itself round a circle):\n{}",
        found
            .iter()
            .map(|c| format!("  {}", c.join(" <-> ")))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn a_node_folder_imports_no_other_node() {
    let (graph, _) = imports();
    let mut bad = Vec::new();
    for (file, targets) in &graph {
        let Some(node) = node_of(file) else { continue };
        for t in targets {
            if let Some(other) = node_of(t) {
                // The store backends are wired by every node that writes or reads results.
                if other != node && other != "store" {
                    bad.push(format!("  {file} imports {t}"));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "a node folder reaches into another node:\n{}",
        bad.join("\n")
    );
}

#[test]
fn top_level_modules_are_contracts_and_libraries() {
    let (graph, _) = imports();
    let mut bad = Vec::new();
    for (file, targets) in &graph {
        // Wiring and measurement sit on top of the nodes by design.
        if file.starts_with("src/actors/")
            || file == "src/embedded.rs"
            || file.starts_with("src/bench/")
        {
            continue;
        }
        for t in targets.iter().filter(|t| t.starts_with("src/actors/")) {
            // The control plane is a node too: it runs the registrar every node runs.
            if file.starts_with("src/scp/") && t == "src/actors/registrar.rs" {
                continue;
            }
            bad.push(format!("  {file} imports {t}"));
        }
    }
    assert!(
        bad.is_empty(),
        "a top-level module depends on an actor:\n{}",
        bad.join("\n")
    );
}

#[test]
fn actors_live_under_actors_and_analyzers_stay_pure() {
    let mut bad = Vec::new();
    let mut web_actors = Vec::new();
    for (file, text) in modules().into_values() {
        let code = code_only(&text);
        let defines_actor =
            code.contains("impl Actor for") || code.contains("impl actix::Actor for");
        if defines_actor && !file.starts_with("src/actors/") {
            bad.push(format!("  {file} defines an actor outside src/actors/"));
        }
        if file.starts_with("src/analyzers/") && code.contains("actix") {
            bad.push(format!(
                "  {file} uses actix: the analyzers are plain structs"
            ));
        }
        if code.contains("actix_web_actors") {
            web_actors.push(file);
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    assert!(
        web_actors.len() <= 1,
        "actix-web-actors is used in more than one module: {web_actors:?}"
    );
}

#[test]
fn the_checker_sees_imports_and_ignores_comments_and_strings() {
    let me: Vec<String> = vec!["a".into(), "b".into()];
    let text = r#"
        //! [`x`](crate::docs::only)
        use crate::{c::d, e::{self, f::G}};
        use super::sibling::Item;
        const URL: &str = "http://crate::not::this";
        fn f() { let _ = '"'; crate::g::h(); }
        #[cfg(test)]
        mod tests {
            use super::*;
            use super::super::up;
        }
    "#;
    let refs: BTreeSet<String> = references(&me, text)
        .into_iter()
        .map(|p| p.join("::"))
        .collect();
    let want: BTreeSet<String> = [
        "c::d",
        "e",
        "e::f::G",
        "a::sibling::Item",
        "g::h",
        "a::b",
        "a::up",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(refs, want);
    let mut g = BTreeMap::new();
    g.insert("x".to_string(), BTreeSet::from(["y".to_string()]));
    g.insert("y".to_string(), BTreeSet::from(["z".to_string()]));
    g.insert("z".to_string(), BTreeSet::from(["x".to_string()]));
    g.insert("w".to_string(), BTreeSet::from(["x".to_string()]));
    assert_eq!(
        circles(&g),
        vec![vec!["x".to_string(), "y".into(), "z".into()]]
    );
}
