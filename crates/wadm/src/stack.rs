//! The command line of the in-process wadm: `wadm serve` and `wadm up` both run the library's
//! [`wadm::Wadm`] (API server, runtimes, lattice discovery, graceful stop) with the settings their
//! flags give ([`RuntimeArgs`], [`StoreArgs`], [`WadmSettings`]).

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use wadm::{Wadm, WadmBuilder};
use wadm_runtime::RunConfig;
use wadm_server::ServerConfig;
use wadm_store::StoreNames;

pub use wadm::{DEFAULT_LATTICE, shutdown_signal};

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

impl WadmSettings {
    /// The library's [`Wadm`] on `client` with these settings (the built-in scalers).
    pub fn wadm(self, client: async_nats::Client) -> anyhow::Result<WadmBuilder> {
        let WadmSettings { server, runtime } = self;
        let named = runtime.named_lattices()?;
        let template = runtime.run_config(Vec::new(), server.replicas, &server.names);
        Ok(Wadm::builder(client)
            .server(server)
            .runtime(template)
            .lattices(named.unwrap_or_default())
            .account_scoped(runtime.account_scoped))
    }
}

/// Run wadm ([`Wadm::run`]) on `client` with `settings` until `shutdown` resolves.
pub async fn run_wadm(
    client: async_nats::Client,
    settings: WadmSettings,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    settings.wadm(client)?.run(shutdown).await
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
    fn account_scoped_lattices() {
        let scoped =
            Cli::try_parse_from(["x", "--multitenant", "--lattice", "TA.default"]).unwrap().runtime;
        assert!(scoped.account_scoped);
        assert_eq!(scoped.named_lattices().unwrap(), Some(vec!["TA.default".to_string()]));
        let bad = Cli::try_parse_from(["x", "--account-scoped", "--lattice", "default"]).unwrap();
        let e = bad.runtime.named_lattices().unwrap_err().to_string();
        assert!(e.contains("names no account"), "{e}");
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
