//! Traits: `spreadscaler` / `daemonscaler` (with spreads and placement settings), `link` (with the
//! legacy `target: "<name>"`, `source_config` and `target_config` forms), `rollout`,
//! `anti-affinity`, and traits of unknown types.

use crate::app::{Link, OtherTrait, PlacementPolicy, Rollout, Scaler, ScalerSpec, Spread};
use crate::diag::{Diagnostics, Path};
use crate::node::Node;

use super::fields::{
    Fields, check_duplicate_keys, check_len, list, non_empty_string, string_list, string_map,
    u32_number,
};
use super::references::{configs, secrets};
use super::{Facts, LinkFact, interfaces};

const TRAIT: &[&str] = &["type", "properties"];
const SCALER: &[&str] =
    &["instances", "replicas", "spread", "placement", "max_per_host", "min_hosts"];
const SPREAD: &[&str] = &["name", "requirements", "weight"];
const LINK: &[&str] = &[
    "name",
    "namespace",
    "package",
    "interfaces",
    "source",
    "target",
    "source_config",
    "target_config",
];
const LINK_END: &[&str] = &["config", "secrets"];
const ROLLOUT: &[&str] = &[
    "max_parallel",
    "max_unavailable",
    "min_healthy_time",
    "canary",
    "healthy_deadline",
    "auto_revert",
];
const TARGET: &[&str] = &["name", "config", "secrets"];
const ANTI_AFFINITY: &[&str] = &["components"];

/// What one entry of `traits` turned out to be.
pub(super) enum TraitOutcome {
    Scaler(Scaler),
    Link(Link),
    Other(OtherTrait),
    Rollout(Rollout),
    /// `anti-affinity`: the named components, each with its path.
    AntiAffinity(Vec<(String, Path)>),
    /// Not even its type could be read (errors were reported).
    Invalid,
}

/// Reads one trait of the component `component` (index `source` in the manifest).
pub(super) fn read(
    node: &Node,
    path: &Path,
    component: &str,
    app: &str,
    source: usize,
    facts: &mut Facts,
    d: &mut Diagnostics,
) -> TraitOutcome {
    let f = Fields::of(node, path, "a trait", TRAIT, d);
    let trait_type = f.req("type", d, non_empty_string);
    let props_path = path.key("properties");
    let props = f.get_present("properties");
    let require_props = |d: &mut Diagnostics| {
        if props.is_none() {
            d.error(&props_path, "missing-field", "`properties` is required");
        }
        props.unwrap_or(&Node::Null)
    };
    match trait_type.as_str() {
        "" => TraitOutcome::Invalid,
        "spreadscaler" => {
            let spec = scaler(require_props(d), &props_path, true, d);
            TraitOutcome::Scaler(Scaler::Spread(spec))
        }
        "daemonscaler" => {
            let spec = scaler(require_props(d), &props_path, false, d);
            TraitOutcome::Scaler(Scaler::Daemon(spec))
        }
        "link" => {
            let link = link(require_props(d), &props_path, app, source, facts, d);
            TraitOutcome::Link(link)
        }
        "rollout" => TraitOutcome::Rollout(rollout(require_props(d), &props_path, d)),
        "anti-affinity" => {
            TraitOutcome::AntiAffinity(anti_affinity(require_props(d), &props_path, d))
        }
        other => {
            d.warning(
                &path.key("type"),
                "unknown-trait-type",
                format!(
                    "component `{component}` has a trait of unknown type `{other}`; wadm ignores it"
                ),
            );
            if let Some(props) = props {
                duplicate_keys_anywhere(props, &props_path, d);
            }
            let properties = props.map_or(serde_json::Value::Null, Node::to_json);
            TraitOutcome::Other(OtherTrait { trait_type: other.to_string(), properties })
        }
    }
}

fn scaler(node: &Node, path: &Path, spread_scaler: bool, d: &mut Diagnostics) -> ScalerSpec {
    let f = Fields::of(node, path, "scaler properties", SCALER, d);
    let instances = match (f.get_present("instances"), f.get_present("replicas")) {
        (Some(n), None) => u32_number(n, &path.key("instances"), d),
        (None, Some(n)) => u32_number(n, &path.key("replicas"), d),
        (Some(_), Some(_)) => {
            d.error(
                &path.key("replicas"),
                "instances-and-replicas",
                "set `instances` or its alias `replicas`, not both",
            );
            0
        }
        (None, None) => {
            if matches!(node, Node::Map(_)) {
                d.error(&path.key("instances"), "missing-field", "`instances` is required");
            }
            0
        }
    };
    let spread_path = path.key("spread");
    let mut spreads = Vec::new();
    let spread_nodes =
        f.get_present("spread").map(|n| list(n, &spread_path, d)).unwrap_or_default();
    for (node, path) in spread_nodes {
        let s = Fields::of(node, &path, "a spread", SPREAD, d);
        let name = s.req("name", d, non_empty_string);
        if !name.is_empty() && spreads.iter().any(|sp: &Spread| sp.name == name) {
            d.error(
                &path.key("name"),
                "duplicate-spread-name",
                format!("another spread is already named `{name}`"),
            );
        }
        let requirements = s
            .get_present("requirements")
            .map(|n| string_map(n, &path.key("requirements"), d))
            .unwrap_or_default();
        let weight = s
            .get_present("weight")
            .map(|n| u32_number(n, &path.key("weight"), d))
            .unwrap_or(crate::DEFAULT_SPREAD_WEIGHT);
        spreads.push(Spread { name, requirements, weight });
    }
    let total: u64 = spreads.iter().map(|s| u64::from(s.weight)).sum();
    if spread_scaler && !spreads.is_empty() && total == 0 && instances > 0 {
        d.error(
            &spread_path,
            "zero-spread-weights",
            "every spread has weight 0, so no instance can be placed",
        );
    }
    if spreads.is_empty() {
        spreads.push(default_spread());
    }
    let placement = f.get_present("placement").map_or(PlacementPolicy::Spread, |n| match n {
        Node::Str(s) if s == "spread" => PlacementPolicy::Spread,
        Node::Str(s) if s == "binpack" => PlacementPolicy::Binpack,
        other => {
            let found = match other {
                Node::Str(s) => format!("`{s}`"),
                other => other.kind().to_string(),
            };
            d.error(
                &path.key("placement"),
                "bad-placement",
                format!("must be `spread` or `binpack`, found {found}"),
            );
            PlacementPolicy::Spread
        }
    });
    let at_least_one = |key: &str, what: &str, d: &mut Diagnostics| {
        f.get_present(key).map(|n| {
            let at = path.key(key);
            let n = u32_number(n, &at, d);
            if n == 0 {
                d.error(&at, "number-out-of-range", format!("must be at least 1 ({what})"));
            }
            n.max(1)
        })
    };
    let max_per_host = at_least_one("max_per_host", "instances on one host", d);
    let min_hosts = at_least_one("min_hosts", "distinct hosts", d);
    if let Some(min) = min_hosts.filter(|m| spread_scaler && *m > instances && instances > 0) {
        d.error(
            &path.key("min_hosts"),
            "unsatisfiable-placement",
            format!("{min} distinct hosts cannot be filled by {instances} instances"),
        );
    }
    if let Some(max) = max_per_host.filter(|m| !spread_scaler && instances > *m) {
        d.error(
            &path.key("max_per_host"),
            "unsatisfiable-placement",
            format!("a daemonscaler runs {instances} instances on every host, more than {max}"),
        );
    }
    ScalerSpec { instances, spreads, placement, max_per_host, min_hosts }
}

/// `anti-affinity` properties: `components`, the manifest names of components never to share a
/// host with (checked against the manifest by the cross-field rules).
fn anti_affinity(node: &Node, path: &Path, d: &mut Diagnostics) -> Vec<(String, Path)> {
    let f = Fields::of(node, path, "anti-affinity properties", ANTI_AFFINITY, d);
    let at = path.key("components");
    let Some(list_node) = f.get_present("components") else {
        if matches!(node, Node::Map(_)) {
            d.error(&at, "missing-field", "`components` is required");
        }
        return Vec::new();
    };
    let names: Vec<(String, Path)> =
        list(list_node, &at, d).into_iter().map(|(n, p)| (non_empty_string(n, &p, d), p)).collect();
    if names.is_empty() && matches!(list_node, Node::Seq(_)) {
        d.error(&at, "empty-value", "name at least one component to keep apart from");
    }
    names
}

/// `rollout` properties: `max_parallel` (a whole number ≥ 1, default 1), `min_healthy_time`
/// (a duration: `30s`, `500ms`, `2m`, or whole seconds; default 0), `canary` (≥ 1, optional),
/// `healthy_deadline` (a duration > 0, at least `min_healthy_time`; optional), `auto_revert`
/// (a boolean, default false) and `max_unavailable` (a whole number; at least 1 on a provider,
/// checked where the entry's type is known).
fn rollout(node: &Node, path: &Path, d: &mut Diagnostics) -> Rollout {
    let f = Fields::of(node, path, "rollout properties", ROLLOUT, d);
    let max_parallel = match f.get_present("max_parallel") {
        Some(n) => {
            let at = path.key("max_parallel");
            let n = u32_number(n, &at, d);
            if n == 0 {
                d.error(&at, "number-out-of-range", "must be at least 1 (hosts changed at once)");
            }
            n.max(1)
        }
        None => 1,
    };
    let min_healthy_time_ms = f
        .get_present("min_healthy_time")
        .map(|n| duration_ms(n, &path.key("min_healthy_time"), d))
        .unwrap_or(0);
    let canary = f.get_present("canary").map(|n| {
        let at = path.key("canary");
        let n = u32_number(n, &at, d);
        if n == 0 {
            d.error(
                &at,
                "number-out-of-range",
                "must be at least 1 (hosts changed before promote)",
            );
        }
        n.max(1)
    });
    let healthy_deadline_ms = f.get_present("healthy_deadline").map(|n| {
        let at = path.key("healthy_deadline");
        let ms = duration_ms(n, &at, d);
        if ms == 0 {
            d.error(&at, "number-out-of-range", "must be longer than 0");
        } else if ms < min_healthy_time_ms {
            d.error(
                &at,
                "number-out-of-range",
                "must be at least min_healthy_time (a host cannot be healthy sooner)",
            );
        }
        ms
    });
    let auto_revert = match f.get_present("auto_revert") {
        None => false,
        Some(Node::Bool(b)) => *b,
        Some(other) => {
            let message = format!("must be true or false, found {}", other.kind());
            d.error(&path.key("auto_revert"), "wrong-type", message);
            false
        }
    };
    let max_unavailable =
        f.get_present("max_unavailable").map(|n| u32_number(n, &path.key("max_unavailable"), d));
    Rollout {
        max_parallel,
        min_healthy_time_ms,
        canary,
        healthy_deadline_ms,
        auto_revert,
        max_unavailable,
    }
}

/// The longest duration a rollout property takes (a day).
const MAX_DURATION_MS: u64 = 86_400_000;

/// A duration in ms: `"250ms"`, `"30s"`, `"2m"`, `"1h"`, or a whole number of seconds.
fn duration_ms(node: &Node, path: &Path, d: &mut Diagnostics) -> u64 {
    let parsed = match node {
        Node::Int(i) if *i >= 0 => u64::try_from(*i).ok().and_then(|s| s.checked_mul(1000)),
        Node::Str(s) => {
            let s = s.trim();
            let (digits, unit) =
                s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
            let factor = match unit {
                "ms" => Some(1),
                "s" | "" => Some(1000),
                "m" => Some(60_000),
                "h" => Some(3_600_000),
                _ => None,
            };
            digits.parse::<u64>().ok().zip(factor).and_then(|(n, f)| n.checked_mul(f))
        }
        _ => None,
    };
    match parsed {
        Some(ms) if ms <= MAX_DURATION_MS => ms,
        Some(_) => {
            d.error(path, "number-out-of-range", "must be at most 24h");
            0
        }
        None => {
            d.error(
                path,
                "invalid-duration",
                "must be a duration such as \"30s\", \"500ms\", \"2m\" or whole seconds",
            );
            0
        }
    }
}

fn link(
    node: &Node,
    path: &Path,
    app: &str,
    source: usize,
    facts: &mut Facts,
    d: &mut Diagnostics,
) -> Link {
    let f = Fields::of(node, path, "link properties", LINK, d);
    let name = f.opt_str("name", d).unwrap_or_else(|| crate::DEFAULT_LINK_NAME.to_string());
    if name.is_empty() {
        d.error(&path.key("name"), "empty-value", "the link name must not be empty");
    }
    let namespace = f.req("namespace", d, non_empty_string);
    let package = f.req("package", d, non_empty_string);
    let ifaces_path = path.key("interfaces");
    let interfaces = f.req("interfaces", d, string_list);
    if f.has("interfaces")
        && interfaces.is_empty()
        && matches!(f.get("interfaces"), Some(Node::Seq(_)))
    {
        d.error(&ifaces_path, "empty-interfaces", "a link needs at least one interface");
    }
    check_len(&name, &path.key("name"), "a link name", d);
    // An overlong namespace or package was reported already, and is not echoed.
    let overlong = check_len(&namespace, &path.key("namespace"), "a link namespace", d)
        | check_len(&package, &path.key("package"), "a link package", d);
    for (i, iface) in interfaces.iter().enumerate() {
        if check_len(iface, &ifaces_path.index(i), "an interface", d) || overlong {
            continue;
        }
        if let Some(reason) = interfaces::unknown(&namespace, &package, iface) {
            d.warning(&ifaces_path.index(i), "unknown-interface", reason);
        }
    }
    let mut out = Link {
        name,
        namespace,
        package,
        interfaces,
        target: String::new(),
        source_config: Vec::new(),
        source_secrets: Vec::new(),
        target_config: Vec::new(),
        target_secrets: Vec::new(),
    };
    if let Some(src) = f.get_present("source") {
        let src_path = path.key("source");
        let s = Fields::of(src, &src_path, "a link source", LINK_END, d);
        if let Some(n) = s.get_present("config") {
            out.source_config = configs(n, &src_path.key("config"), app, true, facts, d);
        }
        if let Some(n) = s.get_present("secrets") {
            out.source_secrets = secrets(n, &src_path.key("secrets"), app, facts, d);
        }
    }
    let target_path = path.key("target");
    let target_name_path = match f.get_present("target") {
        Some(Node::Str(name)) => {
            out.target = name.clone();
            target_path.clone()
        }
        Some(t) => {
            let t = Fields::of(t, &target_path, "a link target", TARGET, d);
            out.target = t.req("name", d, non_empty_string);
            if let Some(n) = t.get_present("config") {
                out.target_config = configs(n, &target_path.key("config"), app, true, facts, d);
            }
            if let Some(n) = t.get_present("secrets") {
                out.target_secrets = secrets(n, &target_path.key("secrets"), app, facts, d);
            }
            target_path.key("name")
        }
        None => {
            d.error(&target_path, "missing-field", "`target` is required");
            target_path.clone()
        }
    };
    check_len(&out.target, &target_name_path, "a link target", d);
    for (legacy, modern) in [("source_config", "source.config"), ("target_config", "target.config")]
    {
        let Some(n) = f.get_present(legacy) else { continue };
        let legacy_path = path.key(legacy);
        d.warning(
            &legacy_path,
            "deprecated-link-config",
            format!("`{legacy}` is deprecated; use `{modern}`"),
        );
        let list = configs(n, &legacy_path, app, true, facts, d);
        if legacy == "source_config" {
            out.source_config.extend(list);
        } else {
            out.target_config.extend(list);
        }
    }
    facts.links.push(LinkFact {
        source,
        name: out.name.clone(),
        namespace: out.namespace.clone(),
        package: out.package.clone(),
        interfaces: out
            .interfaces
            .iter()
            .enumerate()
            .map(|(i, s)| (s.clone(), ifaces_path.index(i)))
            .collect(),
        target: out.target.clone(),
        target_path: target_name_path,
    });
    out
}

/// Reports duplicate keys at any depth (for properties kept as written, which are not walked).
fn duplicate_keys_anywhere(node: &Node, path: &Path, d: &mut Diagnostics) {
    match node {
        Node::Map(entries) => {
            check_duplicate_keys(entries, path, d);
            for (k, v) in entries {
                duplicate_keys_anywhere(v, &path.key(k), d);
            }
        }
        Node::Seq(items) => {
            for (i, v) in items.iter().enumerate() {
                duplicate_keys_anywhere(v, &path.index(i), d);
            }
        }
        _ => {}
    }
}

/// The spread a scaler without `spread` has.
pub(crate) fn default_spread() -> Spread {
    Spread {
        name: "default".to_string(),
        requirements: Default::default(),
        weight: crate::DEFAULT_SPREAD_WEIGHT,
    }
}
