//! Interfaces wadm knows for the well-known WIT namespaces. Using another interface under one of
//! these namespaces is allowed but usually a typo, so it is reported as a warning.

/// `(namespace, package, interfaces)`.
const KNOWN: &[(&str, &str, &[&str])] = &[
    ("wasi", "http", &["incoming-handler", "outgoing-handler", "types"]),
    ("wasi", "keyvalue", &["store", "atomics", "batch", "watcher", "atomic", "eventual"]),
    ("wasi", "blobstore", &["blobstore", "container", "types"]),
    ("wasi", "config", &["runtime", "store"]),
    ("wasi", "logging", &["logging"]),
    ("wasi", "messaging", &["consumer", "handler", "producer", "request-reply", "types"]),
    ("wasi", "cli", &["environment", "exit", "stdin", "stdout", "stderr"]),
    ("wasi", "clocks", &["monotonic-clock", "wall-clock"]),
    ("wasi", "filesystem", &["preopens", "types"]),
    ("wasi", "io", &["error", "poll", "streams"]),
    ("wasi", "random", &["random", "insecure", "insecure-seed"]),
    (
        "wasi",
        "sockets",
        &[
            "instance-network",
            "ip-name-lookup",
            "network",
            "tcp",
            "tcp-create-socket",
            "udp",
            "udp-create-socket",
        ],
    ),
    ("wasmcloud", "messaging", &["consumer", "handler", "types"]),
    ("wasmcloud", "postgres", &["query", "prepared", "types"]),
    ("wasmcloud", "secrets", &["store", "reveal"]),
    ("wasmcloud", "bus", &["lattice"]),
    ("wasmcloud", "couchbase", &["document"]),
    ("wrpc", "keyvalue", &["store", "atomics", "batch"]),
    ("wrpc", "blobstore", &["blobstore"]),
    ("wrpc", "http", &["incoming-handler", "outgoing-handler"]),
];

/// `Some(reason)` when `namespace` is well known and `package`/`interface` is not one of its own.
pub(super) fn unknown(namespace: &str, package: &str, interface: &str) -> Option<String> {
    if !KNOWN.iter().any(|(ns, _, _)| *ns == namespace) {
        return None;
    }
    match KNOWN.iter().find(|(ns, pkg, _)| *ns == namespace && *pkg == package) {
        None => Some(format!("`{namespace}:{package}` is not a package wadm knows")),
        Some((_, _, ifaces)) if !ifaces.contains(&interface) => Some(format!(
            "`{interface}` is not an interface of `{namespace}:{package}` (known: {})",
            ifaces.join(", ")
        )),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::unknown;

    #[test]
    fn only_known_namespaces_are_checked() {
        assert_eq!(unknown("wasi", "http", "incoming-handler"), None);
        assert_eq!(unknown("custom", "thing", "whatever"), None);
        assert!(unknown("wasi", "http", "incoming-handlr").is_some());
        assert!(unknown("wasmcloud", "nope", "x").is_some());
    }
}
