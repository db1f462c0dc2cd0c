//! The in-process wadm: the API server ([`wadm_server::Server`]) and the leaderless runtime
//! ([`wadm_runtime::run`]) on one NATS connection, started together and stopped together.
//!
//! `wadm serve` and `wadm up` both run exactly this. It also owns the runtime's command-line
//! flags ([`RuntimeArgs`]), lattice discovery (when no lattice is named, a runtime is started
//! for `default` and for every lattice whose events show up), and the stop signal.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinSet;
use wadm_runtime::RunConfig;
use wadm_server::{Server, ServerConfig};
use wadm_store::StoreNames;

/// The lattice wadm manages when nothing else is known.
pub const DEFAULT_LATTICE: &str = "default";

/// The flag naming wadm's JetStream storage (shared by every subcommand that touches it).
#[derive(clap::Args, Debug, Clone)]
pub struct StoreArgs {
    /// Prefix of every JetStream stream, bucket and durable consumer wadm uses
    /// (`{prefix}_manifests`, `{prefix}_events`, …): letters, digits, `-` and `_`. NATS subjects
    /// are not renamed. Keep it the same on every replica.
    #[arg(
        long = "store-prefix",
        env = "WADM_STORE_PREFIX",
        default_value = StoreNames::DEFAULT_PREFIX,
        value_name = "PREFIX",
        value_parser = parse_store_prefix
    )]
    pub store_prefix: StoreNames,
}

/// A `--store-prefix` value (clap names the flag in the error).
fn parse_store_prefix(prefix: &str) -> Result<StoreNames, String> {
    StoreNames::with_prefix(prefix).map_err(|e| e.reason.to_string())
}

/// Flags that tune the runtime (shared by `wadm serve` and `wadm up`).
#[derive(clap::Args, Debug, Clone)]
pub struct RuntimeArgs {
    /// Lattices to manage (repeat or comma-separate). Default: `default` plus every lattice
    /// whose host or wadm events appear on NATS.
    #[arg(long = "lattice", env = "WADM_LATTICES", value_delimiter = ',')]
    pub lattices: Vec<String>,
    /// Manage other NATS accounts' lattices (upstream's multitenant mode, docs/tenants.md):
    /// their API requests arrive as `{account}.wadm.api.…`, their events as
    /// `{account}.wasmbus.evt.…`, and wadm answers on `{account}.wasmbus.ctl.…`, as each
    /// account's exports and imports map them. Lattices are named `{account}.{lattice}` here
    /// (in `--lattice`, logs and metrics); every stored key holds the account.
    #[arg(long, env = "WADM_ACCOUNT_SCOPED", visible_alias = "multitenant")]
    pub account_scoped: bool,
    /// The hosts' heartbeat interval; a host silent for two intervals plus the slack is lost.
    #[arg(long, env = "WADM_HOST_HEARTBEAT", default_value = "30s", value_parser = parse_duration)]
    pub host_heartbeat: Duration,
    /// Extra time on top of two heartbeat intervals before a silent host is lost.
    #[arg(long, env = "WADM_LEASE_SLACK", default_value = "10s", value_parser = parse_duration)]
    pub lease_slack: Duration,
    /// How often the runtime resyncs (expires leases, retries, reconciles everything).
    #[arg(long, env = "WADM_RESYNC_EVERY", default_value = "5s", value_parser = parse_duration)]
    pub resync_every: Duration,
    /// How long a control command stays valid; older ones are dropped, not executed.
    #[arg(long, env = "WADM_COMMAND_TTL", default_value = "60s", value_parser = parse_duration)]
    pub command_ttl: Duration,
    /// How long a delivered, unacknowledged event or command waits before another replica
    /// gets it: what a replica that dies mid-step costs (live replicas report progress every
    /// second, so keep it above 2 s).
    #[arg(long, env = "WADM_ACK_WAIT", default_value = "3s", value_parser = parse_duration)]
    pub ack_wait: Duration,
    /// Control commands executed at once per lattice by this replica.
    #[arg(long, env = "WADM_COMMAND_WORKERS", default_value_t = 8)]
    pub command_workers: usize,
    /// How long the event stream keeps host and wadm events (`0`: no limit). Applied to an
    /// existing stream at start-up; keep it the same on every replica.
    #[arg(long, env = "WADM_EVENT_MAX_AGE", default_value = "1h", value_parser = parse_duration)]
    pub event_max_age: Duration,
    /// How many bytes of events the stream keeps, the oldest dropped first (`512MiB`, `2GiB`,
    /// `100MB`, bytes; `0`: no limit). Applied to an existing stream at start-up.
    #[arg(long, env = "WADM_EVENT_MAX_BYTES", default_value = "1GiB", value_parser = parse_bytes)]
    pub event_max_bytes: u64,
    /// What to do with orphans — components, providers, links and configs that carry wadm's
    /// marks for an application nobody manages here any more (docs/orphans.md): `sweep` removes
    /// them once still orphaned after `--orphan-grace`, `report` only logs and counts them,
    /// `off` ignores them.
    #[arg(long, env = "WADM_ORPHANS", default_value = "sweep")]
    pub orphans: wadm_runtime::orphans::OrphanMode,
    /// How long something must stay orphaned before `--orphans sweep` removes it.
    #[arg(long, env = "WADM_ORPHAN_GRACE", default_value = "60s", value_parser = parse_duration)]
    pub orphan_grace: Duration,
}

impl RuntimeArgs {
    /// The runtime configuration for `lattices`, with `replicas` for streams and buckets named
    /// by `names`.
    pub fn run_config(
        &self,
        lattices: Vec<String>,
        replicas: usize,
        names: &StoreNames,
    ) -> RunConfig {
        let mut config = RunConfig::new(lattices);
        config.streams.names = names.clone();
        config.runtime.lease.heartbeat_interval_ms = millis(self.host_heartbeat);
        config.runtime.lease.slack_ms = millis(self.lease_slack);
        config.runtime.tick_every = self.resync_every.max(Duration::from_millis(100));
        config.runtime.command_ttl = self.command_ttl;
        config.streams.command_ttl = self.command_ttl;
        config.streams.ack_wait = self.ack_wait;
        config.streams.replicas = replicas.max(1);
        config.command_workers = self.command_workers.max(1);
        config.streams.event_max_age = self.event_max_age;
        config.streams.event_max_bytes = self.event_max_bytes;
        config.runtime.orphans =
            wadm_runtime::orphans::OrphanConfig { mode: self.orphans, grace: self.orphan_grace };
        config
    }

    /// The lattices to manage: the named ones, or `None` to discover them.
    pub fn named_lattices(&self) -> anyhow::Result<Option<Vec<String>>> {
        let named: BTreeSet<String> =
            self.lattices.iter().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect();
        for lattice in &named {
            if let Some(reason) = self.lattice_error(lattice) {
                anyhow::bail!("invalid --lattice {lattice:?}: {reason}");
            }
        }
        Ok((!named.is_empty()).then(|| named.into_iter().collect()))
    }
}

impl RuntimeArgs {
    /// Why `name` cannot be a lattice here: one NATS subject token, bounded in length
    /// ([`wadm_protocol::names::lattice_error`]), or `{account}.{lattice}` in account-scoped mode
    /// ([`wadm_protocol::names::scoped_lattice_error`]).
    pub fn lattice_error(&self, name: &str) -> Option<String> {
        match self.account_scoped {
            true => wadm_protocol::names::scoped_lattice_error(name),
            false => wadm_protocol::names::lattice_error(name),
        }
    }

    /// The lattice whose activity `subject` shows (`[{account}.]wasmbus.evt.{lattice}.…` or
    /// `[{account}.]wadm.evt.{lattice}.…`), when it can be one here.
    fn active_lattice(&self, subject: &str) -> Option<String> {
        let (account, rest) = wadm_protocol::subject::unscope(subject);
        if account.is_some() != self.account_scoped {
            return None;
        }
        let lattice = wadm_protocol::subject::qualify(account, rest.split('.').nth(2)?);
        self.lattice_error(&lattice).is_none().then_some(lattice)
    }

    /// The subjects whose lattice token names a lattice with activity (hosts starting or
    /// beating, deploys), behind any account token in account-scoped mode.
    fn activity_subjects(&self) -> Vec<String> {
        let any = if self.account_scoped { "*." } else { "" };
        ACTIVITY_SUBJECTS.iter().map(|s| format!("{any}{s}")).collect()
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Everything one wadm instance runs (the runtime's storage is named like the server's,
/// [`ServerConfig::names`]).
#[derive(Debug, Clone)]
pub struct WadmSettings {
    pub server: ServerConfig,
    pub runtime: RuntimeArgs,
}

/// Run the API server and the runtime on `client` until `shutdown` resolves, then stop both
/// (in-flight requests and steps finish). An early failure of either stops the other and is
/// returned.
pub async fn run_wadm(
    client: async_nats::Client,
    mut settings: WadmSettings,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let named = settings.runtime.named_lattices()?;
    settings.server.account_scoped = settings.runtime.account_scoped;
    let subjects = wadm_server::server::api_subscriptions(&settings.server).join(" ");
    let replicas = settings.server.replicas;
    let names = settings.server.names.clone();
    let js_domain = settings.server.js_domain.clone();
    let health = settings.server.health.clone();
    let known = settings.server.known_lattices.clone();
    let server = Server::start(client.clone(), settings.server).await?;
    tracing::info!(%subjects, "serving the wadm API");

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks: JoinSet<anyhow::Result<()>> = JoinSet::new();
    let server_stop = stopped(stop_rx.clone());
    tasks.spawn(async move { server.run(server_stop).await.context("API server") });
    let runtime = settings.runtime.clone();
    let runtime_client = client.clone();
    let runtime_stop = stop_rx.clone();
    tasks.spawn(async move {
        match named {
            Some(lattices) => {
                tracing::info!(?lattices, "runtime started");
                // One runtime per account: each keeps its account's lattices in its own streams.
                let mut by_account: BTreeMap<Option<&str>, Vec<String>> = BTreeMap::new();
                for lattice in &lattices {
                    known.insert(lattice);
                    let account = wadm_protocol::subject::split_account(lattice).0;
                    by_account.entry(account).or_default().push(lattice.clone());
                }
                let mut runs = JoinSet::new();
                for group in by_account.into_values() {
                    let mut config = runtime.run_config(group, replicas, &names);
                    config.health = health.clone();
                    config.js_domain = js_domain.clone();
                    let (client, stop) = (runtime_client.clone(), runtime_stop.clone());
                    runs.spawn(
                        async move { wadm_runtime::run(config, client, stopped(stop)).await },
                    );
                }
                while let Some(done) = runs.join_next().await {
                    flatten(done.map(|r| r.map_err(anyhow::Error::from))).context("runtime")?;
                }
                Ok(())
            }
            None => {
                let target = Target { replicas, names, health, js_domain, known };
                discover_and_run(runtime_client, runtime, target, runtime_stop).await
            }
        }
    });

    let mut shutdown = std::pin::pin!(shutdown);
    let mut result = Ok(());
    tokio::select! {
        _ = &mut shutdown => {}
        Some(done) = tasks.join_next() => {
            result = flatten(done).and_then(|()| Err(anyhow::anyhow!("stopped unexpectedly")));
        }
    }
    let _ = stop_tx.send(true);
    // In-flight requests and steps finish and lattices are handed over, within a bound: with
    // NATS gone or frozen they would wait for a reconnection forever. What is cut short is
    // redone by another replica (nothing unacknowledged is lost).
    let grace = tokio::time::sleep(SHUTDOWN_GRACE);
    tokio::pin!(grace);
    loop {
        tokio::select! {
            done = tasks.join_next() => {
                let Some(done) = done else { break };
                if let (Ok(()), Err(e)) = (&result, flatten(done)) {
                    result = Err(e);
                }
            }
            _ = &mut grace => {
                tracing::warn!(
                    unfinished = tasks.len(),
                    "shutdown: in-flight work did not finish in time; another replica redoes it"
                );
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
                break;
            }
        }
    }
    let _ = tokio::time::timeout(SHUTDOWN_FLUSH, client.flush()).await;
    result
}

/// How long a stopping wadm lets in-flight work finish (API requests, a step, hand-overs).
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1_200);
/// How long it then waits for NATS to take what it published (with NATS gone: not at all).
const SHUTDOWN_FLUSH: Duration = Duration::from_millis(300);

fn flatten(done: Result<anyhow::Result<()>, tokio::task::JoinError>) -> anyhow::Result<()> {
    done.map_err(|e| anyhow::anyhow!("task failed: {e}"))?
}

/// Completes once `stop` turns true (or its sender is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Subjects whose third token names a lattice with activity (hosts starting or beating, deploys);
/// see [`RuntimeArgs::activity_subjects`].
const ACTIVITY_SUBJECTS: [&str; 3] =
    ["wasmbus.evt.*.host_started", "wasmbus.evt.*.host_heartbeat", "wadm.evt.*.>"];

/// Where the runtimes of discovered lattices keep their storage and report their health.
struct Target {
    replicas: usize,
    names: StoreNames,
    health: wadm_server::Health,
    js_domain: Option<String>,
    /// Where the lattices with a runtime are listed (the API's `lattices`).
    known: wadm_server::KnownLattices,
}

/// Run a runtime for `default`, then one more for every lattice whose hosts or API show up.
async fn discover_and_run(
    client: async_nats::Client,
    runtime: RuntimeArgs,
    target: Target,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let Target { replicas, names, health, js_domain, known: listed } = target;
    let mut activity = Vec::new();
    for subject in runtime.activity_subjects() {
        activity.push(client.subscribe(subject).await.context("subscribe to lattice activity")?);
    }
    let mut activity = futures::stream::select_all(activity);
    // Lattices with a runtime, and lattices whose runtime failed (not retried before the time).
    let mut known = BTreeSet::new();
    let mut failed: BTreeMap<String, tokio::time::Instant> = BTreeMap::new();
    type Run = (String, anyhow::Result<()>);
    let mut runs: JoinSet<Run> = JoinSet::new();
    let start = |lattice: String,
                 runs: &mut JoinSet<Run>,
                 known: &mut BTreeSet<String>,
                 failed: &BTreeMap<String, tokio::time::Instant>| {
        if failed.get(&lattice).is_some_and(|until| tokio::time::Instant::now() < *until)
            || !known.insert(lattice.clone())
        {
            return;
        }
        tracing::info!(%lattice, "managing lattice");
        listed.insert(&lattice);
        let mut config = runtime.run_config(vec![lattice.clone()], replicas, &names);
        config.health = health.clone();
        config.js_domain = js_domain.clone();
        let (client, stop) = (client.clone(), stop.clone());
        runs.spawn(async move {
            let result = wadm_runtime::run(config, client, stopped(stop)).await;
            (lattice, result.map_err(anyhow::Error::from))
        });
    };
    if !runtime.account_scoped {
        // Another account's lattices are only known once they show activity.
        start(DEFAULT_LATTICE.to_string(), &mut runs, &mut known, &failed);
    }
    let mut stop_signal = std::pin::pin!(stopped(stop.clone()));
    loop {
        tokio::select! {
            _ = &mut stop_signal => break,
            Some(message) = activity.next() => {
                if let Some(lattice) = runtime.active_lattice(&message.subject) {
                    start(lattice, &mut runs, &mut known, &failed);
                }
            }
            Some(done) = runs.join_next() => {
                // One lattice's failure is that lattice's: the others keep running, and the
                // lattice is tried again on its next activity after a pause.
                let (lattice, error) = match done {
                    Ok((lattice, Ok(()))) => (lattice, anyhow::anyhow!("stopped unexpectedly")),
                    Ok((lattice, Err(e))) => (lattice, e),
                    Err(e) => (String::from("?"), anyhow::anyhow!("task failed: {e}")),
                };
                tracing::error!(%lattice, error = %format!("{error:#}"), retry_in = ?LATTICE_RETRY, "lattice runtime failed");
                known.remove(&lattice);
                listed.remove(&lattice);
                failed.insert(lattice, tokio::time::Instant::now() + LATTICE_RETRY);
            }
        }
    }
    let mut result = Ok(());
    while let Some(done) = runs.join_next().await {
        if let (Ok(()), Ok((lattice, Err(e)))) = (&result, done) {
            result = Err(e.context(format!("runtime of lattice {lattice}")));
        }
    }
    result
}

/// How long a lattice whose runtime failed waits before its next activity starts it again.
const LATTICE_RETRY: Duration = Duration::from_secs(5);

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// A size: bytes, or a number with `KB`, `MB`, `GB`, `TB` (powers of 1000) or `KiB`, `MiB`,
/// `GiB`, `TiB` (powers of 1024); `K`, `M`, `G` alone are the binary ones.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("`{text}` is not a size like 512MiB"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!("unknown unit `{other}` in `{text}` (use B, MB, GB, MiB or GiB)"));
        }
    };
    let bytes = value * scale;
    if !bytes.is_finite() || bytes < 0.0 || bytes > i64::MAX as f64 {
        return Err(format!("`{text}` is out of range"));
    }
    Ok(bytes.round() as u64)
}

/// `500ms`, `30s`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("`{text}` is not a duration like 30s"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "" | "s" | "sec" | "secs" => value,
        "m" | "min" | "mins" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown unit `{other}` in `{text}` (use ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("`{text}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        runtime: RuntimeArgs,
        #[command(flatten)]
        store: StoreArgs,
    }

    #[test]
    fn the_store_prefix_is_checked_and_named() {
        let cli = Cli::try_parse_from(["x"]).unwrap();
        assert_eq!(cli.store.store_prefix, StoreNames::default());
        let cli = Cli::try_parse_from(["x", "--store-prefix", "acme"]).unwrap();
        assert_eq!(cli.store.store_prefix.events_stream(), "acme_events");
        let Err(e) = Cli::try_parse_from(["x", "--store-prefix", "a.b"]) else { panic!() };
        let e = e.to_string();
        assert!(e.contains("--store-prefix") && e.contains("letters, digits"), "{e}");
    }

    #[test]
    fn account_scoped_lattices_and_activity() {
        let scoped =
            Cli::try_parse_from(["x", "--multitenant", "--lattice", "TA.default"]).unwrap().runtime;
        assert!(scoped.account_scoped);
        assert_eq!(scoped.named_lattices().unwrap(), Some(vec!["TA.default".to_string()]));
        let bad = Cli::try_parse_from(["x", "--account-scoped", "--lattice", "default"]).unwrap();
        let e = bad.runtime.named_lattices().unwrap_err().to_string();
        assert!(e.contains("names no account"), "{e}");
        assert_eq!(
            scoped.active_lattice("TA.wasmbus.evt.default.host_heartbeat").as_deref(),
            Some("TA.default")
        );
        assert_eq!(scoped.active_lattice("wasmbus.evt.default.host_heartbeat"), None);
        assert_eq!(scoped.active_lattice("T*.wadm.evt.l.x"), None);
        assert_eq!(scoped.activity_subjects()[0], "*.wasmbus.evt.*.host_started");

        let plain = Cli::try_parse_from(["x"]).unwrap().runtime;
        assert_eq!(plain.active_lattice("wadm.evt.l.manifest_published").as_deref(), Some("l"));
        assert_eq!(plain.active_lattice("TA.wadm.evt.l.manifest_published"), None);
        assert_eq!(plain.activity_subjects()[0], "wasmbus.evt.*.host_started");
    }

    #[test]
    fn runtime_flags_reach_the_run_config() {
        let cli = Cli::try_parse_from([
            "x",
            "--lattice",
            "a,b",
            "--lattice",
            "a",
            "--host-heartbeat",
            "2s",
            "--lease-slack",
            "500ms",
            "--resync-every",
            "1s",
            "--command-ttl",
            "20s",
            "--ack-wait",
            "4s",
            "--event-max-age",
            "30m",
            "--event-max-bytes",
            "256MiB",
            "--orphans",
            "report",
            "--orphan-grace",
            "2m",
        ])
        .unwrap();
        let named = cli.runtime.named_lattices().unwrap();
        assert_eq!(named, Some(vec!["a".to_string(), "b".to_string()]));
        let config = cli.runtime.run_config(named.unwrap(), 3, &StoreNames::default());
        assert_eq!(config.runtime.lease.heartbeat_interval_ms, 2000);
        assert_eq!(config.runtime.lease.slack_ms, 500);
        assert_eq!(config.runtime.tick_every, Duration::from_secs(1));
        assert_eq!(config.runtime.command_ttl, Duration::from_secs(20));
        assert_eq!(config.streams.command_ttl, Duration::from_secs(20));
        assert_eq!(config.streams.ack_wait, Duration::from_secs(4));
        assert_eq!(config.streams.replicas, 3);
        assert_eq!(config.streams.event_max_age, Duration::from_secs(1800));
        assert_eq!(config.streams.event_max_bytes, 256 << 20);
        assert_eq!(config.runtime.orphans.mode, wadm_runtime::orphans::OrphanMode::Report);
        assert_eq!(config.runtime.orphans.grace, Duration::from_secs(120));
        let defaults = Cli::try_parse_from(["x"]).unwrap().runtime.run_config(
            vec![],
            1,
            &StoreNames::default(),
        );
        assert_eq!(defaults.streams.event_max_age, Duration::from_secs(3600));
        assert_eq!(defaults.streams.event_max_bytes, 1 << 30);
        assert_eq!(defaults.runtime.orphans, wadm_runtime::orphans::OrphanConfig::default());
        assert!(Cli::try_parse_from(["x", "--orphans", "maybe"]).is_err());
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_bytes("1GiB"), Ok(1 << 30));
        assert_eq!(parse_bytes("512 MiB"), Ok(512 << 20));
        assert_eq!(parse_bytes("100MB"), Ok(100_000_000));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("0"), Ok(0));
        assert_eq!(parse_bytes("1.5G"), Ok(3 << 29));
        for bad in ["", "GiB", "5 parsecs", "-1GB", "1e30GB"] {
            let e = parse_bytes(bad).unwrap_err();
            assert!(e.contains(bad.trim()) || e.contains("size"), "{bad}: {e}");
        }
    }

    #[test]
    fn no_lattice_means_discovery_and_bad_names_are_refused() {
        let cli = Cli::try_parse_from(["x"]).unwrap();
        assert_eq!(cli.runtime.named_lattices().unwrap(), None);
        let bad = Cli::try_parse_from(["x", "--lattice", "a.b"]).unwrap();
        let error = bad.runtime.named_lattices().unwrap_err().to_string();
        assert!(error.contains("--lattice \"a.b\""), "{error}");
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("5d").is_err() && parse_duration("ms").is_err());
    }
}
