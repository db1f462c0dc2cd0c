//! Architecture checks for the whole workspace: no import circle between modules of a crate, and
//! workspace crates depend on each other only as [`ALLOWED_DEPENDENCIES`] says.
//!
//! Module graph rules (dependency-free, token-level; see `module_graph`):
//! - every module reachable from `src/lib.rs` / `src/main.rs` through `mod` declarations (files,
//!   `#[path]` files and inline `mod x { .. }`) is a node;
//! - an edge A -> B comes from `use crate::..`/`super::..`/`self::..` trees and from `crate::`,
//!   `super::`, `self::` paths in code; B is the deepest module the path names;
//! - anything under `#[cfg(test)]` (test modules, test-only items and `use`s) adds no edge;
//! - a module and its own ancestors are one unit: edges between them are ignored (a parent declares
//!   and re-exports its children; children may use what the parent holds);
//! - any other edge is lifted to the two sibling modules under the closest common ancestor, so
//!   `a::x -> b::y` counts as `a -> b`. A circle is a strongly connected set of such siblings.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Which workspace crates each workspace crate may list under `[dependencies]` (dev-dependencies
/// are not checked). Every workspace crate must appear here.
const ALLOWED_DEPENDENCIES: &[(&str, &[&str])] = &[
    // Pure crates, no I/O: model and protocol at the bottom, then lattice, then scheduler.
    ("wadm-model", &[]),
    ("wadm-protocol", &[]),
    ("wadm-lattice", &["wadm-model", "wadm-protocol"]),
    ("wadm-scheduler", &["wadm-model", "wadm-protocol", "wadm-lattice"]),
    // The store: every JetStream stream, bucket and key of wadm, on the pure crates.
    ("wadm-store", &["wadm-model", "wadm-protocol", "wadm-lattice"]),
    // Runtime and API server are siblings on the store; neither knows the other.
    (
        "wadm-runtime",
        &["wadm-model", "wadm-protocol", "wadm-lattice", "wadm-scheduler", "wadm-store"],
    ),
    (
        "wadm-server",
        &["wadm-model", "wadm-protocol", "wadm-lattice", "wadm-scheduler", "wadm-store"],
    ),
    // The client speaks the API: model and protocol only, no storage.
    ("wadm-client", &["wadm-model", "wadm-protocol"]),
    // Test and simulation tools.
    ("wadm-nats-server", &[]),
    ("wadm-test-support", &["wadm-nats-server"]),
    ("wadm-sim", &["wadm-protocol"]),
    // The binary and its library (the embeddable wadm, whose scalers an embedder chooses)
    // assemble everything.
    (
        "wadm",
        &[
            "wadm-model",
            "wadm-protocol",
            "wadm-scheduler",
            "wadm-store",
            "wadm-server",
            "wadm-runtime",
            "wadm-sim",
            "wadm-client",
            "wadm-nats-server",
        ],
    ),
];

#[test]
fn no_import_circle_inside_any_crate() {
    let mut report = String::new();
    for krate in workspace_crates() {
        for root in ["lib.rs", "main.rs"] {
            let root_file = krate.dir.join("src").join(root);
            if !root_file.exists() {
                continue;
            }
            let graph = module_graph(&root_file);
            for cycle in graph.cycles() {
                report.push_str(&format!("{} ({root}): {cycle}\n", krate.name));
            }
        }
    }
    assert!(report.is_empty(), "import circles between modules:\n{report}");
}

#[test]
fn workspace_crates_depend_only_as_allowed() {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED_DEPENDENCIES.iter().copied().collect();
    let crates = workspace_crates();
    let names: BTreeSet<&str> = crates.iter().map(|c| c.name.as_str()).collect();
    let mut problems = Vec::new();
    for krate in &crates {
        let Some(may) = allowed.get(krate.name.as_str()) else {
            problems.push(format!("{} is not in ALLOWED_DEPENDENCIES", krate.name));
            continue;
        };
        for dep in &krate.dependencies {
            if names.contains(dep.as_str()) && !may.contains(&dep.as_str()) {
                problems.push(format!("{} depends on {dep}, which is not allowed", krate.name));
            }
        }
    }
    assert!(problems.is_empty(), "crate layering:\n{}", problems.join("\n"));
}

#[test]
fn the_checker_finds_a_circle_through_nested_modules() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    fs::create_dir_all(src.join("b")).unwrap();
    fs::write(src.join("lib.rs"), "mod a; mod b; pub use a::A;").unwrap();
    fs::write(
        src.join("a.rs"),
        "use crate::b::c::C; pub struct A; #[cfg(test)] mod tests { use crate::b::Q; }",
    )
    .unwrap();
    fs::write(src.join("b.rs"), "pub mod c; pub struct B(super::a::A);").unwrap();
    // Child -> parent is containment, not a circle; `"crate::a"` in a string is not a path.
    fs::write(src.join("b/c.rs"), "pub struct C(super::B); const S: &str = \"crate::a\";").unwrap();
    let cycles = module_graph(&src.join("lib.rs")).cycles();
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    assert!(cycles[0].starts_with("{a, b}"), "{}", cycles[0]);

    fs::write(src.join("b.rs"), "pub mod c; pub struct B;").unwrap();
    assert!(module_graph(&src.join("lib.rs")).cycles().is_empty());
}

struct Crate {
    name: String,
    dir: PathBuf,
    dependencies: Vec<String>,
}

fn workspace_crates() -> Vec<Crate> {
    let crates_dir = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut crates = Vec::new();
    for entry in fs::read_dir(crates_dir).unwrap() {
        let dir = entry.unwrap().path();
        let Ok(manifest) = fs::read_to_string(dir.join("Cargo.toml")) else {
            continue;
        };
        let (name, dependencies) = parse_manifest(&manifest);
        crates.push(Crate { name, dir, dependencies });
    }
    crates.sort_by(|a, b| a.name.cmp(&b.name));
    crates
}

/// The package name and the names under `[dependencies]` of a `Cargo.toml`.
fn parse_manifest(text: &str) -> (String, Vec<String>) {
    let mut section = String::new();
    let mut name = String::new();
    let mut dependencies = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.trim_matches(|c| c == '[' || c == ']').trim().to_string();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else { continue };
        let key = key.trim();
        match section.as_str() {
            "package" if key == "name" => name = value.trim().trim_matches('"').to_string(),
            "dependencies" if !key.starts_with('#') => {
                dependencies.push(key.split('.').next().unwrap().trim().to_string())
            }
            _ => {}
        }
    }
    (name, dependencies)
}

type ModPath = Vec<String>;

#[derive(Default)]
struct ModuleGraph {
    modules: BTreeSet<ModPath>,
    /// Sibling-level edges, each with the first reference that caused it.
    edges: BTreeMap<(ModPath, ModPath), String>,
}

impl ModuleGraph {
    /// Every strongly connected set of more than one module, with one reference per edge inside it.
    fn cycles(&self) -> Vec<String> {
        let nodes: Vec<&ModPath> = self.modules.iter().collect();
        let index: BTreeMap<&ModPath, usize> =
            nodes.iter().enumerate().map(|(i, m)| (*m, i)).collect();
        let mut out = vec![Vec::new(); nodes.len()];
        for (a, b) in self.edges.keys() {
            out[index[a]].push(index[b]);
        }
        let mut cycles = Vec::new();
        for component in strongly_connected(&out) {
            if component.len() < 2 {
                continue;
            }
            let set: BTreeSet<usize> = component.iter().copied().collect();
            let names: Vec<String> = set.iter().map(|&i| show(nodes[i])).collect();
            let mut text = format!("{{{}}}", names.join(", "));
            for ((a, b), why) in &self.edges {
                if set.contains(&index[a]) && set.contains(&index[b]) {
                    text.push_str(&format!("\n    {} -> {}: {why}", show(a), show(b)));
                }
            }
            cycles.push(text);
        }
        cycles
    }
}

fn show(path: &ModPath) -> String {
    if path.is_empty() { "crate".to_string() } else { path.join("::") }
}

/// Tarjan's algorithm, iterative.
fn strongly_connected(out: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n = out.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut next = 0;
    let mut components = Vec::new();
    for start in 0..n {
        if index[start] != usize::MAX {
            continue;
        }
        let mut work = vec![(start, 0usize)];
        while let Some(&mut (v, ref mut child)) = work.last_mut() {
            if *child == 0 && index[v] == usize::MAX {
                index[v] = next;
                low[v] = next;
                next += 1;
                stack.push(v);
                on_stack[v] = true;
            }
            if let Some(&w) = out[v].get(*child) {
                *child += 1;
                if index[w] == usize::MAX {
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut component = Vec::new();
                loop {
                    let w = stack.pop().unwrap();
                    on_stack[w] = false;
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                components.push(component);
            }
        }
    }
    components
}

/// Reads the crate rooted at `root_file` and builds its sibling-level module graph.
fn module_graph(root_file: &Path) -> ModuleGraph {
    let mut files = Vec::new();
    let mut modules = BTreeSet::new();
    let mut pending = vec![(root_file.to_path_buf(), ModPath::new(), true)];
    // Pass 1: find every module and its tokens (module names are needed to resolve paths).
    while let Some((file, module, owns_dir)) = pending.pop() {
        let text = fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let tokens = tokenize(&text);
        let scanned = scan(&tokens, &module);
        let dir = file.parent().unwrap();
        let child_dir =
            if owns_dir { dir.to_path_buf() } else { dir.join(file.file_stem().unwrap()) };
        for declared in &scanned.file_children {
            let mut child = declared.module.clone();
            let inline_dirs = &child[module.len()..child.len() - 1];
            let name = child.last().unwrap().clone();
            let (path, owns) = match &declared.path_attr {
                Some(p) => (dir.join(p), true),
                None => {
                    let base = inline_dirs.iter().fold(child_dir.clone(), |d, m| d.join(m));
                    let flat = base.join(format!("{name}.rs"));
                    if flat.exists() {
                        (flat, false)
                    } else {
                        (base.join(&name).join("mod.rs"), true)
                    }
                }
            };
            pending.push((path, std::mem::take(&mut child), owns));
        }
        modules.insert(module.clone());
        modules.extend(scanned.inline_modules.iter().cloned());
        files.push(scanned);
    }
    // Pass 2: resolve references to modules and lift them to sibling level.
    let mut graph = ModuleGraph { modules, ..ModuleGraph::default() };
    for scanned in &files {
        for reference in &scanned.references {
            let Some(target) = resolve(&graph.modules, &reference.from, &reference.path) else {
                continue;
            };
            let from = &reference.from;
            let common = from.iter().zip(&target).take_while(|(a, b)| a == b).count();
            if common == from.len() || common == target.len() {
                continue; // the same module, or a module and its ancestor
            }
            let edge = (from[..=common].to_vec(), target[..=common].to_vec());
            let why = format!("{} uses {}", show(from), reference.path.join("::"));
            graph.edges.entry(edge).or_insert(why);
        }
    }
    graph
}

/// The deepest known module a path names, or `None` for paths outside the crate.
fn resolve(modules: &BTreeSet<ModPath>, from: &ModPath, path: &[String]) -> Option<ModPath> {
    let mut segments = path.iter().peekable();
    let mut base: ModPath = match segments.peek()?.as_str() {
        "crate" => {
            segments.next();
            ModPath::new()
        }
        "self" => {
            segments.next();
            from.clone()
        }
        "super" => {
            let mut base = from.clone();
            while segments.peek().map(|s| s.as_str()) == Some("super") {
                segments.next();
                base.pop();
            }
            base
        }
        // `use child::..` in a parent names its own child: containment, not an edge.
        _ => return None,
    };
    for segment in segments {
        base.push(segment.clone());
        if !modules.contains(&base) {
            base.pop();
            break;
        }
    }
    Some(base)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    PathSep,
    Punct(char),
}

/// Identifiers, string literals and punctuation; comments, numbers, chars and lifetimes dropped.
fn tokenize(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            loop {
                if at(i) == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if at(i) == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else if i >= chars.len() {
                    break;
                } else {
                    i += 1;
                }
            }
        } else if let Some(after_prefix) = string_start(&chars, i) {
            let (content, end) = read_string(&chars, i, after_prefix);
            tokens.push(Token::Str(content));
            i = end;
        } else if c == '\'' {
            // A char literal ('a', '\n', '\u{..}') or a lifetime ('a).
            if at(i + 1) == '\\' {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                i += 1;
                while at(i).is_alphanumeric() || at(i) == '_' {
                    i += 1;
                }
            }
        } else if c.is_alphabetic() || c == '_' {
            if c == 'r' && at(i + 1) == '#' {
                i += 2; // raw identifier
            }
            let start = i;
            while at(i).is_alphanumeric() || at(i) == '_' {
                i += 1;
            }
            tokens.push(Token::Ident(chars[start..i].iter().collect()));
        } else if c.is_ascii_digit() {
            while at(i).is_alphanumeric() || at(i) == '_' {
                i += 1;
            }
        } else if c == ':' && at(i + 1) == ':' {
            tokens.push(Token::PathSep);
            i += 2;
        } else {
            tokens.push(Token::Punct(c));
            i += 1;
        }
    }
    tokens
}

/// If a string literal starts at `i` (`"`, `r"`, `r#"`, `b"`, `br#"`, `c"`), the index after its
/// prefix letters.
fn string_start(chars: &[char], i: usize) -> Option<usize> {
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    if i > 0 && (at(i - 1).is_alphanumeric() || at(i - 1) == '_') && at(i) != '"' {
        return None; // inside an identifier
    }
    let mut j = i;
    if matches!(at(j), 'b' | 'c') {
        j += 1;
    }
    if at(j) == 'r' {
        j += 1;
    }
    let mut k = j;
    while at(k) == '#' && j > i && at(j - 1) == 'r' {
        k += 1;
    }
    (at(k) == '"').then_some(j)
}

fn read_string(chars: &[char], start: usize, after_prefix: usize) -> (String, usize) {
    let raw = after_prefix > start && chars[after_prefix - 1] == 'r';
    let mut i = after_prefix;
    let mut hashes = 0;
    while chars[i] == '#' {
        hashes += 1;
        i += 1;
    }
    i += 1; // opening quote
    let content_start = i;
    loop {
        if i >= chars.len() {
            return (String::new(), i);
        }
        if !raw && chars[i] == '\\' {
            i += 2;
            continue;
        }
        if chars[i] == '"' && (0..hashes).all(|h| chars.get(i + 1 + h) == Some(&'#')) {
            let content = chars[content_start..i].iter().collect();
            return (content, i + 1 + hashes);
        }
        i += 1;
    }
}

struct DeclaredFile {
    module: ModPath,
    path_attr: Option<String>,
}

struct Reference {
    from: ModPath,
    path: Vec<String>,
}

#[derive(Default)]
struct Scanned {
    file_children: Vec<DeclaredFile>,
    inline_modules: Vec<ModPath>,
    references: Vec<Reference>,
}

/// Walks a file's tokens: `mod` declarations, `use` trees and `crate`/`super`/`self` paths.
fn scan(tokens: &[Token], file_module: &ModPath) -> Scanned {
    let mut scanned = Scanned::default();
    // Inline modules open at some brace depth; the innermost one is last.
    let mut scopes: Vec<(ModPath, usize)> = vec![(file_module.clone(), 0)];
    let mut depth = 0;
    let mut path_attr = None;
    let mut i = 0;
    let ident = |i: usize| match tokens.get(i) {
        Some(Token::Ident(s)) => Some(s.as_str()),
        _ => None,
    };
    while i < tokens.len() {
        let module = scopes.last().unwrap().0.clone();
        match &tokens[i] {
            Token::Punct('#') if tokens.get(i + 1) == Some(&Token::Punct('[')) => {
                let end = skip_balanced(tokens, i + 1);
                let attr = &tokens[i + 2..end - 1];
                if attr
                    == [
                        ident_token("cfg"),
                        Token::Punct('('),
                        ident_token("test"),
                        Token::Punct(')'),
                    ]
                {
                    i = skip_item(tokens, end);
                    path_attr = None;
                    continue;
                }
                if let [Token::Ident(p), Token::Punct('='), Token::Str(file)] = attr
                    && p == "path"
                {
                    path_attr = Some(file.clone());
                }
                i = end;
            }
            Token::Ident(kw) if kw == "mod" && ident(i + 1).is_some() => {
                let mut child = module.clone();
                child.push(ident(i + 1).unwrap().to_string());
                match tokens.get(i + 2) {
                    Some(Token::Punct(';')) => {
                        scanned
                            .file_children
                            .push(DeclaredFile { module: child, path_attr: path_attr.take() });
                        i += 3;
                    }
                    Some(Token::Punct('{')) => {
                        depth += 1;
                        scanned.inline_modules.push(child.clone());
                        scopes.push((child, depth));
                        i += 3;
                    }
                    _ => i += 1,
                }
            }
            Token::Ident(kw) if kw == "use" => {
                let mut paths = Vec::new();
                i += 1;
                use_tree(tokens, &mut i, Vec::new(), &mut paths);
                for path in paths {
                    scanned.references.push(Reference { from: module.clone(), path });
                }
            }
            Token::Ident(kw)
                if matches!(kw.as_str(), "crate" | "super" | "self")
                    && tokens.get(i + 1) == Some(&Token::PathSep)
                    && (i == 0 || tokens[i - 1] != Token::PathSep) =>
            {
                let mut path = vec![kw.clone()];
                i += 1;
                while tokens.get(i) == Some(&Token::PathSep) {
                    let Some(segment) = ident(i + 1) else { break };
                    path.push(segment.to_string());
                    i += 2;
                }
                scanned.references.push(Reference { from: module.clone(), path });
            }
            Token::Punct('{') => {
                depth += 1;
                i += 1;
            }
            Token::Punct('}') => {
                if scopes.len() > 1 && scopes.last().unwrap().1 == depth {
                    scopes.pop();
                }
                depth = depth.saturating_sub(1);
                i += 1;
            }
            _ => i += 1,
        }
    }
    scanned
}

fn ident_token(s: &str) -> Token {
    Token::Ident(s.to_string())
}

/// The index after the bracket group opening at `open`.
fn skip_balanced(tokens: &[Token], open: usize) -> usize {
    let mut depth = 0usize;
    let mut i = open;
    while i < tokens.len() {
        match tokens[i] {
            Token::Punct('(' | '[' | '{') => depth += 1,
            Token::Punct(')' | ']' | '}') => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    i
}

/// The index after the item starting at `i` (further attributes, then up to `;` or a `{ .. }`).
fn skip_item(tokens: &[Token], mut i: usize) -> usize {
    while i < tokens.len() {
        match tokens[i] {
            Token::Punct(';') => return i + 1,
            Token::Punct('{') => return skip_balanced(tokens, i),
            Token::Punct('(' | '[') => i = skip_balanced(tokens, i),
            _ => i += 1,
        }
    }
    i
}

/// Expands a `use` tree into full paths (`a::{b, c::d}` -> `a::b`, `a::c::d`); `self` in braces
/// names the prefix itself.
fn use_tree(tokens: &[Token], i: &mut usize, mut path: Vec<String>, out: &mut Vec<Vec<String>>) {
    loop {
        match tokens.get(*i) {
            Some(Token::PathSep) => *i += 1,
            Some(Token::Ident(segment)) => {
                *i += 1;
                if segment != "self" || path.is_empty() {
                    path.push(segment.clone());
                }
                if tokens.get(*i) == Some(&Token::PathSep) {
                    continue;
                }
                if tokens.get(*i) == Some(&ident_token("as")) {
                    *i += 2;
                }
                out.push(path);
                return;
            }
            Some(Token::Punct('{')) => {
                *i += 1;
                loop {
                    match tokens.get(*i) {
                        None => return,
                        Some(Token::Punct('}')) => {
                            *i += 1;
                            return;
                        }
                        Some(Token::Punct(',')) => *i += 1,
                        _ => use_tree(tokens, i, path.clone(), out),
                    }
                }
            }
            Some(Token::Punct('*')) => {
                *i += 1;
                out.push(path);
                return;
            }
            _ => {
                out.push(path);
                return;
            }
        }
    }
}
