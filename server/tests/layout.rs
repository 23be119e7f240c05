//! The server's module layout, checked with every test run (server/README.md, "Layout"):
//!
//! - the top-level modules of `server/src` import one another without a cycle: a module may use
//!   the ones below it, never one above (a cycle is how `http`, `admin` and `console` came to
//!   lean on each other until none could be read or moved alone);
//! - the files of `console/` likewise, among themselves;
//! - no file under `server/src` is longer than [`MAX_LINES`] lines.
//!
//! The module graph comes from a small reader of the source text, not from `cargo modules`
//! (which would need a long install on the machines this runs on). It drops comments, string and
//! character literals and `#[cfg(test)]` items, then collects every `crate::name` path (also
//! grouped, `use crate::{a, b::c}`), every `super::name` path (from a child of a top-level
//! module, `super::` stays inside that module) and, in a directory's `mod.rs`, the paths to its
//! own children. A file in a directory belongs to that directory's top-level module. `lib.rs`,
//! the crate root, is not a node: it only declares modules and re-exports, and a name it
//! re-exports (`crate::run`) counts as the module it comes from. `main.rs` is the binary, a
//! crate of its own.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Longest file allowed under `server/src`.
const MAX_LINES: usize = 800;

/// Directory modules whose files must not form a cycle among themselves either (each file, and
/// `mod.rs` itself, is a node). Not `store/`: its backends and its facade in `mod.rs` share types
/// both ways by design.
const ACYCLIC_INSIDE: &[&str] = &["console"];

#[test]
fn top_level_modules_form_no_cycle() {
    let src = read_src();
    let graph = module_graph(&src);
    let cycles = cycles(&graph.top);
    assert!(
        cycles.is_empty() && graph.root_items.is_empty(),
        "{}",
        report(&cycles, &graph.root_items)
    );
}

#[test]
fn console_files_form_no_cycle() {
    let src = read_src();
    let graph = module_graph(&src);
    for dir in ACYCLIC_INSIDE {
        let inner = graph.inner.get(*dir).cloned().unwrap_or_default();
        let cycles = cycles(&inner);
        assert!(cycles.is_empty(), "inside {dir}/: {}", report(&cycles, &[]));
    }
}

#[test]
fn no_file_is_longer_than_the_limit() {
    let src = read_src();
    let long: Vec<String> = src
        .iter()
        .filter(|f| f.lines > MAX_LINES)
        .map(|f| format!("server/src/{} has {} lines", f.rel, f.lines))
        .collect();
    assert!(
        long.is_empty(),
        "files longer than {MAX_LINES} lines (split them by what a reader looks for):\n{}",
        long.join("\n")
    );
}

/// The reader itself, on a small text: it must see what the layout tests rely on.
#[test]
fn the_reader_sees_grouped_paths_and_skips_tests_comments_and_strings() {
    let text = r##"
use crate::{a, b::{c, d as e}, self as f};
use super::g;
// crate::comment
/* crate::block /* nested */ crate::still_comment */
const S: &str = "crate::in_a_string";
const R: &str = r#"crate::raw "quoted" "#;
const C: char = '{';
fn x<'a>(v: &'a str) { crate::h::call(); }
#[cfg(test)]
mod tests {
    use crate::only_in_tests;
    fn y() { let _ = '}'; }
}
#[cfg(test)]
use crate::test_import;
fn z() { kid::thing(); other::thing(); }
"##;
    let code = strip(text);
    assert!(
        !code.contains("comment") && !code.contains("in_a_string"),
        "{code}"
    );
    assert!(
        !code.contains("raw") && !code.contains("only_in_tests"),
        "{code}"
    );
    assert!(
        !code.contains("test_import") && code.contains("fn z()"),
        "{code}"
    );
    let kids = BTreeSet::from(["kid".to_string()]);
    let module = vec!["m".to_string(), "n".to_string()];
    let found: BTreeSet<String> = paths(&code, &module, &kids)
        .into_iter()
        .map(|(p, _)| p.join("::"))
        .collect();
    let expected = ["a", "b::c", "b::d", "m::g", "h::call", "m::n::kid::thing"];
    let expected: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
    // `self as f` names the crate root itself, which the graph then cannot place: fine here.
    let found: BTreeSet<String> = found.into_iter().filter(|p| p != "self").collect();
    assert_eq!(found, expected);
}

// ---------------------------------------------------------------------------------------------
// Reading the tree

struct SourceFile {
    /// Path below `server/src`, with `/` separators.
    rel: String,
    /// The module path of a `.rs` file (`["console", "keys"]` for `console/keys.rs`); `None` for
    /// the crate roots and for files that are not Rust.
    module: Option<Vec<String>>,
    text: String,
    lines: usize,
}

fn read_src() -> Vec<SourceFile> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&root, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let rel = path
                .strip_prefix(&root)
                .expect("below src")
                .to_string_lossy()
                .replace('\\', "/");
            let text = fs::read_to_string(&path).unwrap_or_default();
            let lines = text.lines().count();
            let module = rel
                .strip_suffix(".rs")
                .filter(|m| *m != "lib" && *m != "main")
                .map(|m| {
                    let mut segs: Vec<String> = m.split('/').map(str::to_string).collect();
                    if segs.last().is_some_and(|s| s == "mod") {
                        segs.pop();
                    }
                    segs
                });
            SourceFile {
                rel,
                module,
                text,
                lines,
            }
        })
        .collect()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The graph

/// Who refers to whom: node -> (node it refers to -> where, as `file:line`).
type Graph = BTreeMap<String, BTreeMap<String, String>>;

#[derive(Default)]
struct Modules {
    top: Graph,
    /// Per directory module in [`ACYCLIC_INSIDE`], the graph of its files (`mod.rs` is `mod`).
    inner: BTreeMap<String, Graph>,
    /// `crate::name` paths that name neither a module nor a name lib.rs re-exports: something
    /// defined in lib.rs, which should only declare and re-export.
    root_items: Vec<String>,
}

fn module_graph(src: &[SourceFile]) -> Modules {
    let modules: Vec<&Vec<String>> = src.iter().filter_map(|f| f.module.as_ref()).collect();
    let top: BTreeSet<String> = modules.iter().map(|m| m[0].clone()).collect();
    let lib = src
        .iter()
        .find(|f| f.rel == "lib.rs")
        .expect("server/src/lib.rs");
    let reexports = root_reexports(&strip(&lib.text), &top);
    let mut out = Modules::default();
    for name in &top {
        out.top.entry(name.clone()).or_default();
    }
    for file in src {
        let Some(module) = &file.module else { continue };
        // The children of this file's module: bare `child::x` paths in it reach them.
        let children: BTreeSet<String> = modules
            .iter()
            .filter(|m| m.len() == module.len() + 1 && m.starts_with(module))
            .map(|m| m[module.len()].clone())
            .collect();
        let code = strip(&file.text);
        for (path, line) in paths(&code, module, &children) {
            let at = format!("{}:{line}", file.rel);
            let Some(first) = path.first() else { continue };
            let target = if top.contains(first) {
                first.clone()
            } else if let Some(m) = reexports.get(first) {
                m.clone()
            } else {
                out.root_items
                    .push(format!("{at} uses crate::{}", path.join("::")));
                continue;
            };
            if target != module[0] {
                let edges = out.top.entry(module[0].clone()).or_default();
                edges.entry(target.clone()).or_insert(at.clone());
            } else if ACYCLIC_INSIDE.contains(&target.as_str()) {
                let node = |m: &[String]| m.get(1).cloned().unwrap_or_else(|| "mod".into());
                // `crate::console::x`: the file `x` when it is one, else an item of mod.rs.
                let to = match path.get(1) {
                    Some(x) if modules.iter().any(|m| m.len() >= 2 && m[..2] == path[..2]) => {
                        x.clone()
                    }
                    _ => "mod".to_string(),
                };
                let from = node(module);
                if from != to {
                    let graph = out.inner.entry(target.clone()).or_default();
                    graph.entry(from).or_default().entry(to).or_insert(at);
                }
            }
        }
    }
    out
}

/// Names lib.rs re-exports (`pub use serve::{run, run_metrics}`), with the module each comes
/// from.
fn root_reexports(lib: &str, top: &BTreeSet<String>) -> BTreeMap<String, String> {
    let chars: Vec<char> = lib.chars().collect();
    let mut out = BTreeMap::new();
    let mut i = 0;
    while let Some(at) = find(&chars, i, "pub use ") {
        let mut j = at + "pub use ".len();
        for path in tree(&chars, &mut j) {
            let path: Vec<String> = match path.first().map(String::as_str) {
                Some("crate") => path[1..].to_vec(),
                _ => path,
            };
            if let (Some(module), Some(name)) = (path.first(), path.last())
                && top.contains(module)
            {
                out.insert(name.clone(), module.clone());
            }
        }
        i = j;
    }
    out
}

/// Every path the code refers to, from the crate root, with its line: `crate::` paths, `super::`
/// paths resolved against `module`, and bare paths into `children`.
fn paths(code: &str, module: &[String], children: &BTreeSet<String>) -> Vec<(Vec<String>, usize)> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let starts_word = i == 0 || !(is_ident(chars[i - 1]) || chars[i - 1] == ':');
        if !starts_word || !is_ident(chars[i]) {
            i += 1;
            continue;
        }
        let word_end = (i..chars.len())
            .find(|&j| !is_ident(chars[j]))
            .unwrap_or(chars.len());
        let word: String = chars[i..word_end].iter().collect();
        let followed = chars[word_end..].starts_with(&[':', ':']);
        let mut j = word_end + 2;
        let base: Option<Vec<String>> = match word.as_str() {
            _ if !followed => None,
            "crate" => Some(Vec::new()),
            "super" => {
                let mut base = module[..module.len().saturating_sub(1)].to_vec();
                while chars[j..].starts_with(&"super::".chars().collect::<Vec<_>>()) {
                    base.pop();
                    j += "super::".len();
                }
                Some(base)
            }
            w if children.contains(w) => {
                j = i;
                Some(module.to_vec())
            }
            _ => None,
        };
        match base {
            Some(base) => {
                let line = chars[..i].iter().filter(|&&c| c == '\n').count() + 1;
                for p in tree(&chars, &mut j) {
                    out.push(([base.clone(), p].concat(), line));
                }
                i = j.max(word_end);
            }
            None => i = word_end,
        }
    }
    out
}

/// A use tree or path at `chars[*i..]`: `a::b`, `a::{b, c::d}`, `a as b`, `*`.
fn tree(chars: &[char], i: &mut usize) -> Vec<Vec<String>> {
    let skip_ws = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    skip_ws(i);
    if chars.get(*i) == Some(&'{') {
        *i += 1;
        let mut out = Vec::new();
        loop {
            skip_ws(i);
            match chars.get(*i) {
                None => return out,
                Some('}') => {
                    *i += 1;
                    return out;
                }
                Some(',') => *i += 1,
                Some(_) => {
                    let before = *i;
                    out.extend(tree(chars, i));
                    if *i == before {
                        *i += 1;
                    }
                }
            }
        }
    }
    let start = *i;
    while *i < chars.len() && is_ident(chars[*i]) {
        *i += 1;
    }
    if start == *i {
        return vec![Vec::new()];
    }
    let ident: String = chars[start..*i].iter().collect();
    if chars[*i..].starts_with(&[':', ':']) {
        *i += 2;
        return tree(chars, i)
            .into_iter()
            .map(|rest| [vec![ident.clone()], rest].concat())
            .collect();
    }
    // `name as alias`: the alias is no path.
    let mut k = *i;
    skip_ws(&mut k);
    if chars[k..].starts_with(&['a', 's']) && chars.get(k + 2).is_some_and(|c| c.is_whitespace()) {
        *i = k + 2;
        skip_ws(i);
        while *i < chars.len() && is_ident(chars[*i]) {
            *i += 1;
        }
    }
    vec![vec![ident]]
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn find(chars: &[char], from: usize, needle: &str) -> Option<usize> {
    let needle: Vec<char> = needle.chars().collect();
    (from..chars.len()).find(|&i| chars[i..].starts_with(&needle))
}

// ---------------------------------------------------------------------------------------------
// Stripping comments, literals and test-only items (line breaks are kept, so lines still count)

fn strip(text: &str) -> String {
    without_test_items(&without_comments_and_literals(text))
}

fn without_comments_and_literals(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    // Keeps the line breaks of a skipped stretch.
    let keep_lines = |out: &mut String, part: &[char]| {
        out.extend(part.iter().filter(|&&ch| ch == '\n'));
    };
    while i < c.len() {
        let prev_ident = i > 0 && is_ident(c[i - 1]);
        if c[i..].starts_with(&['/', '/']) {
            let end = (i..c.len()).find(|&j| c[j] == '\n').unwrap_or(c.len());
            i = end;
        } else if c[i..].starts_with(&['/', '*']) {
            let mut depth = 0;
            let start = i;
            while i < c.len() {
                if c[i..].starts_with(&['/', '*']) {
                    depth += 1;
                    i += 2;
                } else if c[i..].starts_with(&['*', '/']) {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            keep_lines(&mut out, &c[start..i]);
        } else if c[i] == 'r'
            && (!prev_ident || (c[i - 1] == 'b' && (i < 2 || !is_ident(c[i - 2]))))
            && matches!(c.get(i + 1), Some('"' | '#'))
        {
            // A raw string: r"..." or r#"..."#, as many #s as it opens with.
            let hashes = c[i + 1..].iter().take_while(|&&ch| ch == '#').count();
            if c.get(i + 1 + hashes) != Some(&'"') {
                out.push(c[i]);
                i += 1;
                continue;
            }
            let close: Vec<char> = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            let body = i + 2 + hashes;
            let end = (body..c.len())
                .find(|&j| c[j..].starts_with(&close))
                .map_or(c.len(), |j| j + close.len());
            keep_lines(&mut out, &c[i..end]);
            out.push_str("\"\"");
            i = end;
        } else if c[i] == '"' {
            let mut j = i + 1;
            while j < c.len() && c[j] != '"' {
                j += if c[j] == '\\' { 2 } else { 1 };
            }
            keep_lines(&mut out, &c[i..j.min(c.len())]);
            out.push_str("\"\"");
            i = j + 1;
        } else if c[i] == '\'' {
            // A character literal ('x', '\n', '\u{1F600}'), or else a lifetime ('a).
            if c.get(i + 1) == Some(&'\\') {
                let end = (i + 3..c.len()).find(|&j| c[j] == '\'').unwrap_or(c.len());
                out.push_str("' '");
                i = end + 1;
            } else if c.get(i + 2) == Some(&'\'') {
                out.push_str("' '");
                i += 3;
            } else {
                out.push('\'');
                i += 1;
            }
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// Drops each item that `#[cfg(test)]` marks: up to its `;`, or its whole `{ ... }` block.
fn without_test_items(code: &str) -> String {
    let c: Vec<char> = code.chars().collect();
    let mark: Vec<char> = "#[cfg(test)]".chars().collect();
    let mut out = String::with_capacity(code.len());
    let mut i = 0;
    while i < c.len() {
        if !c[i..].starts_with(&mark) {
            out.push(c[i]);
            i += 1;
            continue;
        }
        let start = i;
        i += mark.len();
        let mut depth = 0usize;
        while i < c.len() {
            match c[i] {
                '{' => depth += 1,
                // A `}` before any `{`: the item ended with the block around it.
                '}' if depth == 0 => break,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        i += 1;
                        break;
                    }
                }
                ';' if depth == 0 => {
                    i += 1;
                    break;
                }
                _ => {}
            }
            i += 1;
        }
        out.extend(c[start..i].iter().filter(|&&ch| ch == '\n'));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Cycles

/// Each group of nodes that reach one another (Tarjan's strongly connected components of more
/// than one node): a shortest cycle through its first node, then every reference inside it.
fn cycles(graph: &Graph) -> Vec<String> {
    let nodes: Vec<&String> = graph
        .keys()
        .chain(graph.values().flat_map(|e| e.keys()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut components = Vec::new();
    let mut index: BTreeMap<&String, (usize, usize)> = BTreeMap::new();
    let mut stack: Vec<&String> = Vec::new();
    for &n in &nodes {
        if !index.contains_key(n) {
            connect(graph, n, &mut index, &mut stack, &mut components);
        }
    }
    components
        .into_iter()
        .filter(|c: &Vec<String>| c.len() > 1)
        .map(|component| {
            let inside: Vec<String> = component
                .iter()
                .flat_map(|a| graph[a].iter().map(move |(b, at)| (a, b, at)))
                .filter(|(_, b, _)| component.contains(b))
                .map(|(a, b, at)| format!("{a} -> {b} ({at})"))
                .collect();
            format!(
                "import cycle: {}\n  all references among {}: {}",
                cycle_in(graph, &component).join(", "),
                component.join(", "),
                inside.join(", ")
            )
        })
        .collect()
}

fn connect<'g>(
    graph: &'g Graph,
    n: &'g String,
    index: &mut BTreeMap<&'g String, (usize, usize)>,
    stack: &mut Vec<&'g String>,
    out: &mut Vec<Vec<String>>,
) {
    let i = index.len();
    index.insert(n, (i, i));
    stack.push(n);
    for m in graph.get(n).into_iter().flat_map(|e| e.keys()) {
        match index.get(m) {
            None => {
                connect(graph, m, index, stack, out);
                let low = index[m].1.min(index[n].1);
                index.get_mut(n).expect("visited").1 = low;
            }
            Some(&(mi, _)) if stack.contains(&m) => {
                let low = mi.min(index[n].1);
                index.get_mut(n).expect("visited").1 = low;
            }
            Some(_) => {}
        }
    }
    if index[n].0 == index[n].1 {
        let mut component = Vec::new();
        while let Some(m) = stack.pop() {
            component.push(m.clone());
            if m == n {
                break;
            }
        }
        component.sort();
        out.push(component);
    }
}

/// A shortest cycle from the component's first node back to it, inside the component.
fn cycle_in(graph: &Graph, component: &[String]) -> Vec<String> {
    let start = &component[0];
    let mut came_from: BTreeMap<&String, &String> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(n) = queue.pop_front() {
        for m in graph.get(n).into_iter().flat_map(|e| e.keys()) {
            if !component.contains(m) {
                continue;
            }
            if m == start {
                let mut path = vec![n.clone()];
                let mut at = n;
                while let Some(prev) = came_from.get(at) {
                    path.push((*prev).clone());
                    at = prev;
                }
                path.reverse();
                path.push(start.clone());
                return with_sites(graph, &path);
            }
            if !came_from.contains_key(m) && m != start {
                came_from.insert(m, n);
                queue.push_back(m);
            }
        }
    }
    component.to_vec()
}

/// `a -> b (a.rs:3)` for each step of the cycle `path`.
fn with_sites(graph: &Graph, path: &[String]) -> Vec<String> {
    path.windows(2)
        .map(|w| format!("{} -> {} ({})", w[0], w[1], graph[&w[0]][&w[1]]))
        .collect()
}

fn report(cycles: &[String], root_items: &[String]) -> String {
    let mut out = String::new();
    for c in cycles {
        out.push_str(c);
        out.push('\n');
    }
    for r in root_items {
        out.push_str(&format!(
            "{r}, which names neither a module nor a re-export: lib.rs only declares modules and \
             re-exports\n"
        ));
    }
    out.push_str(
        "A module may use the ones below it, never one above (server/README.md, \"Layout\").",
    );
    out
}
