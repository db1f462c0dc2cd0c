//! Real wasmCloud 1.9.2 hosts next to wadm: the host binary built by `scripts/build-realhost.sh`
//! (from `fixtures/realhost`), test components assembled from WAT, and a recorder of every
//! control request and event on the lattice.
//!
//! Tests that need a host call [`host_binary`] first and skip (print the reason, return) when it
//! is absent, so the suite passes on machines that never built it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Request kinds whose repetition with the same body is a wasted or harmful command (reads such
/// as `host.get`, `host.ping` and `link.get` may legitimately repeat).
pub const EFFECT_KINDS: &[&str] = &[
    "component.scale",
    "component.update",
    "provider.start",
    "provider.stop",
    "link.put",
    "link.del",
    "config.put",
    "config.del",
    "label.put",
    "label.del",
    "host.stop",
];

use futures::StreamExt;
use serde_json::Value;
use tokio::task::JoinHandle;
use wadm_test_support::wait_until;

/// Where `scripts/build-realhost.sh` caches the host (under `$HOME`), unless `WADM_REALHOST_BIN`
/// names another path.
pub const CACHED_BIN: &str = ".cache/wadm-realhost/bin/wasmcloud-host-1.9.2";

/// The host binary, or why there is none (the caller skips with that reason).
pub fn host_binary() -> Result<PathBuf, String> {
    let build = "build it with scripts/build-realhost.sh (see docs/realhost.md)";
    if let Some(path) = std::env::var_os("WADM_REALHOST_BIN").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("WADM_REALHOST_BIN={} is not a file; {build}", path.display()))
        };
    }
    let home = std::env::var_os("HOME").ok_or_else(|| format!("no HOME; {build}"))?;
    let path = Path::new(&home).join(CACHED_BIN);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "no real wasmCloud host at {} (nor WADM_REALHOST_BIN); {build}",
            path.display()
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Test components

/// The interface both greeter variants export.
pub const GREETER_INTERFACE: &str = "wch:test/greeter@0.1.0";

/// A component whose core module exports `greet` (returning `answer`), lifted with `canon lift`
/// and exported as the instance `wch:test/greeter@0.1.0`. No imports: any host can run it.
pub fn greeter_wat(answer: u32) -> String {
    format!(
        r#"(component
  (core module $m
    (func (export "greet") (result i32)
      i32.const {answer}))
  (core instance $i (instantiate $m))
  (func $greet (result u32) (canon lift (core func $i "greet")))
  (instance $greeter (export "greet" (func $greet)))
  (export "{GREETER_INTERFACE}" (instance $greeter)))
"#
    )
}

/// Assemble `greeter_wat(1)` and `greeter_wat(2)` into `dir` as `greeter-v1.wasm` and
/// `greeter-v2.wasm` (two files, two image refs, for upgrades); their absolute paths.
pub fn write_greeters(dir: &Path) -> [PathBuf; 2] {
    [1, 2].map(|answer| {
        let wasm = wat::parse_str(greeter_wat(answer)).expect("the greeter WAT assembles");
        let path = dir.join(format!("greeter-v{answer}.wasm"));
        std::fs::write(&path, wasm).expect("write the component");
        path
    })
}

/// `file:///abs/path` (hosts started with `WASMCLOUD_ALLOW_FILE_LOAD=true` load these).
pub fn file_ref(path: &Path) -> String {
    format!("file://{}", path.canonicalize().expect("an existing file").display())
}

/// A provider or component ref as hosts report it: builtin providers come back as their bare
/// name (`wasmcloud+builtin://http-server` → `http-server`), `file://` providers as the path.
pub fn normalise_ref(image_ref: &str) -> &str {
    image_ref.strip_prefix("wasmcloud+builtin://").unwrap_or(image_ref)
}

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

// ---------------------------------------------------------------------------------------------
// Processes (hosts and wadm replicas)

/// A child process whose output goes to a log file in its own temporary directory (so a
/// chatty process never blocks on a full pipe). Killed on drop.
pub struct Process {
    pub child: Child,
    pub name: String,
    dir: tempfile::TempDir,
}

impl Process {
    fn spawn(name: &str, mut command: Command, dir: tempfile::TempDir) -> Process {
        let log = File::create(dir.path().join("output.log")).unwrap();
        command.stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log);
        let child = command.spawn().unwrap_or_else(|e| panic!("start {name}: {e}"));
        Process { child, name: name.to_string(), dir }
    }

    /// A real host on `nats_url`/`lattice` with `labels`, file loads allowed and the builtin
    /// http-server, http-client and messaging-nats providers enabled; its own TMPDIR. Log
    /// filter: `WADM_REALHOST_LOG` (default `info`).
    pub fn host(
        bin: &Path,
        name: &str,
        nats_url: &str,
        lattice: &str,
        heartbeat: Duration,
        labels: &[(&str, &str)],
    ) -> Process {
        let dir = tempfile::Builder::new().prefix("wadm-realhost-").tempdir().unwrap();
        let tmp = dir.path().join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let mut command = Command::new(bin);
        // Only the settings below: nothing inherited from the test's environment.
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("WASMCLOUD_")) {
            command.env_remove(key);
        }
        command
            .env("WASMCLOUD_NATS_URL", nats_url)
            .env("WASMCLOUD_LATTICE", lattice)
            .env("WASMCLOUD_HEARTBEAT_SECS", heartbeat.as_secs().max(1).to_string())
            .env("WASMCLOUD_ALLOW_FILE_LOAD", "true")
            .env(
                "WASMCLOUD_EXPERIMENTAL_FEATURES",
                "builtin-http-server,builtin-http-client,builtin-messaging-nats",
            )
            .env("TMPDIR", &tmp)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", std::env::var("WADM_REALHOST_LOG").unwrap_or_else(|_| "info".into()));
        for (key, value) in labels {
            command.env(format!("WASMCLOUD_LABEL_{key}"), value);
        }
        Self::spawn(name, command, dir)
    }

    /// `wadm args…` (the binary under test). Log filter: `WADM_REALHOST_WADM_LOG` (default
    /// `info`); no NATS or HTTP address from the environment.
    pub fn wadm(name: &str, args: &[&str]) -> Process {
        let dir = tempfile::Builder::new().prefix("wadm-replica-").tempdir().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_wadm"));
        command
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("WADM_REALHOST_WADM_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("NO_COLOR", "1")
            .env_remove("WADM_NATS_URL")
            .env_remove("WADM_HTTP_ADDR");
        Self::spawn(name, command, dir)
    }

    /// Everything it printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("output.log")).unwrap_or_default()
    }

    /// The last `lines` lines of its output.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.output();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// SIGTERM (a host stops gracefully and publishes `host_stopped`), then wait at most
    /// `deadline`.
    pub fn terminate(&mut self, deadline: Duration) -> Option<ExitStatus> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().ok()?;
        let mut status = None;
        wait_until(deadline, || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        });
        status
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Recording the lattice

/// One message seen on the lattice.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Since the recorder started.
    pub at: Duration,
    pub subject: String,
    pub body: String,
    pub reply: Option<String>,
}

/// Every control request (`wasmbus.ctl.v1.{lattice}.>`), every reply to one and every event
/// (`wasmbus.evt.{lattice}.>`) on the lattice, in arrival order. Requests whose reply inbox
/// starts with `ignore_inbox` (the test's own connection) are dropped.
pub struct Recorder {
    pub started: Instant,
    lattice: String,
    requests: Arc<Mutex<Vec<Seen>>>,
    replies: Arc<Mutex<BTreeMap<String, String>>>,
    events: Arc<Mutex<Vec<Seen>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Recorder {
    pub async fn start(nats_url: &str, lattice: &str, ignore_inbox: &str) -> Recorder {
        let nats = async_nats::connect(nats_url).await.expect("recorder connects");
        let started = Instant::now();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let replies = Arc::new(Mutex::new(BTreeMap::new()));
        let events = Arc::new(Mutex::new(Vec::new()));
        let mut ctl = nats.subscribe(format!("wasmbus.ctl.v1.{lattice}.>")).await.unwrap();
        let mut evt = nats.subscribe(format!("wasmbus.evt.{lattice}.>")).await.unwrap();
        let mut inbox = nats.subscribe("_INBOX.>").await.unwrap();
        nats.flush().await.unwrap();
        let seen = move |m: &async_nats::Message| Seen {
            at: started.elapsed(),
            subject: m.subject.to_string(),
            body: String::from_utf8_lossy(&m.payload).into_owned(),
            reply: m.reply.as_ref().map(|r| r.to_string()),
        };
        let ignore = ignore_inbox.to_string();
        let sink = requests.clone();
        let ctl_task = tokio::spawn(async move {
            while let Some(m) = ctl.next().await {
                if m.reply.as_ref().is_some_and(|r| r.starts_with(&ignore)) {
                    continue;
                }
                sink.lock().unwrap().push(seen(&m));
            }
        });
        let sink = events.clone();
        let evt_task = tokio::spawn(async move {
            while let Some(m) = evt.next().await {
                sink.lock().unwrap().push(seen(&m));
            }
        });
        let sink = replies.clone();
        let inbox_task = tokio::spawn(async move {
            while let Some(m) = inbox.next().await {
                let body = String::from_utf8_lossy(&m.payload).into_owned();
                sink.lock().unwrap().entry(m.subject.to_string()).or_insert(body);
            }
        });
        // Keep the connection alive as long as the tasks run.
        let keep = tokio::spawn(async move {
            let _nats = nats;
            std::future::pending::<()>().await;
        });
        Recorder {
            started,
            lattice: lattice.to_string(),
            requests,
            replies,
            events,
            tasks: vec![ctl_task, evt_task, inbox_task, keep],
        }
    }

    /// The control requests so far.
    pub fn requests(&self) -> Vec<Seen> {
        self.requests.lock().unwrap().clone()
    }

    /// The events so far.
    pub fn events(&self) -> Vec<Seen> {
        self.events.lock().unwrap().clone()
    }

    /// The reply to `request`, when one was seen.
    pub fn reply_to(&self, request: &Seen) -> Option<String> {
        self.replies.lock().unwrap().get(request.reply.as_deref()?).cloned()
    }

    /// `component.scale`, `host.get`, `config.put`, … (the two tokens after the lattice).
    pub fn kind(&self, subject: &str) -> String {
        request_kind(subject, &self.lattice)
    }

    /// Requests per kind.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for r in self.requests() {
            *counts.entry(self.kind(&r.subject)).or_insert(0) += 1;
        }
        counts
    }

    /// Wait (60 s at most) until `size` (e.g. how many requests were recorded) has not changed
    /// for 2 s; panics with the requests otherwise.
    pub async fn wait_quiet(&self, size: impl Fn() -> usize) {
        let mut last = (size(), Instant::now());
        let settled = wadm_test_support::wait_for(Duration::from_secs(60), || {
            let now = size();
            if now != last.0 {
                last = (now, Instant::now());
            }
            let done = last.1.elapsed() >= Duration::from_secs(2);
            async move { done.then_some(()) }
        })
        .await;
        assert!(settled.is_some(), "requests keep coming: {}", self.dump_requests());
    }

    /// Every request with its reply, one per line (for failure messages).
    pub fn dump_requests(&self) -> String {
        let mut out = String::new();
        for r in self.requests() {
            let reply = self.reply_to(&r).map(|b| truncate(&b, 160)).unwrap_or_else(|| "-".into());
            let _ = writeln!(
                out,
                "  {:>8.3}s {} {}\n            -> {}",
                r.at.as_secs_f64(),
                short_subject(&r.subject),
                truncate(&r.body, 400),
                reply
            );
        }
        out
    }

    /// Every event, one per line (type, host, data), heartbeats abridged.
    pub fn dump_events(&self) -> String {
        let mut out = String::new();
        for e in self.events() {
            let short = e.subject.rsplit('.').next().unwrap_or("");
            let parsed: Value = serde_json::from_str(&e.body).unwrap_or(Value::Null);
            let source = parsed["source"].as_str().map(short_id).unwrap_or_default();
            let data = if short == "host_heartbeat" {
                let comps: Vec<String> = parsed["data"]["components"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| format!("{}x{}", c["id"], c["max_instances"]))
                    .collect();
                format!("components [{}]", comps.join(", "))
            } else {
                truncate(&parsed["data"].to_string(), 300)
            };
            let _ = writeln!(out, "  {:>8.3}s {short} {source} {data}", e.at.as_secs_f64());
        }
        out
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// `component.scale`, `host.get`, `config.put`, … (the two tokens after `wasmbus.ctl.v1.{lattice}.`).
pub fn request_kind(subject: &str, lattice: &str) -> String {
    let rest = subject.strip_prefix(&format!("wasmbus.ctl.v1.{lattice}.")).unwrap_or(subject);
    rest.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// A host id shortened for reading (`NABC…XYZ`).
pub fn short_id(id: &str) -> String {
    if id.len() == 56 && id.starts_with('N') {
        format!("{}…{}", &id[..4], &id[52..])
    } else {
        id.to_string()
    }
}

/// The subject without the `wasmbus.ctl.v1.` prefix, host ids shortened.
pub fn short_subject(subject: &str) -> String {
    let rest = subject.strip_prefix("wasmbus.ctl.v1.").unwrap_or(subject);
    rest.split('.').map(short_id).collect::<Vec<_>>().join(".")
}

pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}

/// `value` with every object's keys sorted (two bodies with the same fields in another order
/// compare equal).
pub fn canonical_json(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let sorted: BTreeMap<&String, Value> =
                map.iter().map(|(k, v)| (k, canonical_json(v))).collect();
            Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical_json).collect()),
        other => other.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// Inventories

/// What one host runs, from its `host.get` answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    pub host_id: String,
    pub labels: BTreeMap<String, String>,
    /// component id → (image ref, max instances).
    pub components: BTreeMap<String, (String, u64)>,
    /// provider id → image ref (as the host reports it).
    pub providers: BTreeMap<String, String>,
}

impl Inventory {
    /// Decode a `host.get` reply (`{success, message, response: HostInventory}`) or a heartbeat's
    /// data (a bare HostInventory).
    pub fn from_json(value: &Value) -> Option<Inventory> {
        let inv = if value.get("response").is_some() { &value["response"] } else { value };
        let host_id = inv["host_id"].as_str()?.to_string();
        let labels = inv["labels"]
            .as_object()
            .map(|m| {
                m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string())).collect()
            })
            .unwrap_or_default();
        let components = inv["components"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| {
                Some((
                    c["id"].as_str()?.to_string(),
                    (
                        c["image_ref"].as_str().unwrap_or("").to_string(),
                        c["max_instances"].as_u64().unwrap_or(0),
                    ),
                ))
            })
            .collect();
        let providers = inv["providers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| {
                Some((p["id"].as_str()?.to_string(), p["image_ref"].as_str()?.to_string()))
            })
            .collect();
        Some(Inventory { host_id, labels, components, providers })
    }
}

/// `host.get` of `host` on the test's own connection (`None` when it does not answer in 5 s).
pub async fn host_get(nats: &async_nats::Client, lattice: &str, host: &str) -> Option<Inventory> {
    let subject = format!("wasmbus.ctl.v1.{lattice}.host.get.{host}");
    let reply =
        tokio::time::timeout(Duration::from_secs(5), nats.request(subject, Vec::new().into()))
            .await
            .ok()?
            .ok()?;
    Inventory::from_json(&serde_json::from_slice(&reply.payload).ok()?)
}

/// A `one`-delivery control request on the test's connection (`link.get`, `config.get.{name}`);
/// the decoded reply.
pub async fn ctl_request(nats: &async_nats::Client, lattice: &str, suffix: &str) -> Option<Value> {
    let subject = format!("wasmbus.ctl.v1.{lattice}.{suffix}");
    let reply =
        tokio::time::timeout(Duration::from_secs(5), nats.request(subject, Vec::new().into()))
            .await
            .ok()?
            .ok()?;
    serde_json::from_slice(&reply.payload).ok()
}
