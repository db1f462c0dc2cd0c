//! [`Wadm`]: the API server ([`wadm_server::Server`]) and the leaderless runtime
//! ([`wadm_runtime::run`]) on one NATS connection, started together and stopped together, with
//! lattice discovery (when no lattice is named, a runtime is started for `default` and for every
//! lattice whose events show up).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinSet;
use wadm_runtime::RunConfig;
use wadm_scheduler::ScalerFactory;
use wadm_server::{Server, ServerConfig};

/// The lattice wadm manages when nothing else is known.
pub const DEFAULT_LATTICE: &str = "default";

/// A whole wadm, ready to run on a NATS connection: build it with [`Wadm::builder`], run it with
/// [`Wadm::run`] (or [`WadmBuilder::run`]).
#[derive(Debug)]
pub struct Wadm {
    client: async_nats::Client,
    server: ServerConfig,
    runtime: RunConfig,
    /// `None`: discover them.
    lattices: Option<Vec<String>>,
    account_scoped: bool,
    scalers: ScalerFactory,
}

/// Settings of a [`Wadm`]; every one has a default suited to a real lattice.
#[derive(Debug)]
pub struct WadmBuilder {
    wadm: Wadm,
}

impl Wadm {
    /// A wadm on `client` with default settings: the API on `wadm.api`, lattices discovered,
    /// the built-in scalers.
    pub fn builder(client: async_nats::Client) -> WadmBuilder {
        WadmBuilder {
            wadm: Wadm {
                client,
                server: ServerConfig::default(),
                runtime: RunConfig::new(Vec::new()),
                lattices: None,
                account_scoped: false,
                scalers: ScalerFactory::builtin(),
            },
        }
    }

    /// Run the API server and the runtimes until `shutdown` resolves, then stop both
    /// (in-flight requests and steps finish, within a bound). An early failure of either stops
    /// the other and is returned; a failing runtime of a discovered lattice is restarted on that
    /// lattice's next activity instead.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        let Wadm { client, mut server, runtime, lattices: named, account_scoped, scalers } = self;
        server.account_scoped = account_scoped;
        server.scalers = scalers.clone();
        // Every runtime stores and reports like the server.
        let mut template = runtime;
        template.runtime.scalers = scalers;
        template.streams.names = server.names.clone();
        template.streams.replicas = server.replicas.max(1);
        template.health = server.health.clone();
        template.js_domain = server.js_domain.clone();
        template.refusals = server.refusals.clone();
        let known = server.known_lattices.clone();
        let subjects = wadm_server::server::api_subscriptions(&server).join(" ");
        let server = Server::start(client.clone(), server).await?;
        tracing::info!(%subjects, "serving the wadm API");

        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks: JoinSet<anyhow::Result<()>> = JoinSet::new();
        let server_stop = stopped(stop_rx.clone());
        tasks.spawn(async move { server.run(server_stop).await.context("API server") });
        let runtime_client = client.clone();
        let runtime_stop = stop_rx.clone();
        tasks.spawn(async move {
            match named {
                Some(lattices) => {
                    tracing::info!(?lattices, "runtime started");
                    // One runtime per account: each keeps its account's lattices in its own
                    // streams.
                    let mut by_account: BTreeMap<Option<&str>, Vec<String>> = BTreeMap::new();
                    for lattice in &lattices {
                        known.insert(lattice);
                        let account = wadm_protocol::subject::split_account(lattice).0;
                        by_account.entry(account).or_default().push(lattice.clone());
                    }
                    let mut runs = JoinSet::new();
                    for group in by_account.into_values() {
                        let config = for_lattices(&template, group);
                        let (client, stop) = (runtime_client.clone(), runtime_stop.clone());
                        runs.spawn(async move {
                            wadm_runtime::run(config, client, stopped(stop)).await
                        });
                    }
                    while let Some(done) = runs.join_next().await {
                        flatten(done.map(|r| r.map_err(anyhow::Error::from))).context("runtime")?;
                    }
                    Ok(())
                }
                None => {
                    let target = Target { template, account_scoped, known };
                    discover_and_run(runtime_client, target, runtime_stop).await
                }
            }
        });

        let heap_stop = stopped(stop_rx.clone());
        tasks.spawn(async move {
            crate::heap::return_freed_memory(heap_stop).await;
            Ok(())
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
}

impl WadmBuilder {
    /// The API server's settings (default [`ServerConfig::default`]). Its storage names,
    /// replicas, JetStream domain, health and JetStream refusals are the runtimes' too; its
    /// `account_scoped` and `scalers` are replaced by [`WadmBuilder::account_scoped`] and [`WadmBuilder::scalers`].
    pub fn server(mut self, config: ServerConfig) -> Self {
        self.wadm.server = config;
        self
    }

    /// The settings every runtime starts from (default `RunConfig::new(vec![])`). Each runtime
    /// gets its lattices and a replica name of its own; its storage names, stream replicas,
    /// JetStream domain and health come from [`WadmBuilder::server`], its scalers from
    /// [`WadmBuilder::scalers`].
    pub fn runtime(mut self, config: RunConfig) -> Self {
        self.wadm.runtime = config;
        self
    }

    /// Manage exactly these lattices (`{account}.{lattice}` when account-scoped). None (the
    /// default): `default` plus every lattice whose host or wadm events appear on NATS.
    pub fn lattices<S: Into<String>>(mut self, lattices: impl IntoIterator<Item = S>) -> Self {
        let named: BTreeSet<String> = lattices
            .into_iter()
            .map(|l| l.into().trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        self.wadm.lattices = (!named.is_empty()).then(|| named.into_iter().collect());
        self
    }

    /// Manage other NATS accounts' lattices (upstream's multitenant mode, `docs/tenants.md`).
    pub fn account_scoped(mut self, account_scoped: bool) -> Self {
        self.wadm.account_scoped = account_scoped;
        self
    }

    /// The scalers built from each lattice's desired state (default: the built-in ones), for
    /// the runtimes and the API's `model.plan` alike. Every replica must use the same.
    pub fn scalers(mut self, factory: ScalerFactory) -> Self {
        self.wadm.scalers = factory;
        self
    }

    /// The wadm, once its lattice names are checked.
    pub fn build(self) -> anyhow::Result<Wadm> {
        for lattice in self.wadm.lattices.iter().flatten() {
            if let Some(reason) = lattice_error(self.wadm.account_scoped, lattice) {
                anyhow::bail!("invalid lattice {lattice:?}: {reason}");
            }
        }
        Ok(self.wadm)
    }

    /// [`WadmBuilder::build`], then [`Wadm::run`].
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        self.build()?.run(shutdown).await
    }
}

/// `template` for a runtime of `lattices`, with a replica name of its own (replicas tell each
/// other apart by it).
fn for_lattices(template: &RunConfig, lattices: Vec<String>) -> RunConfig {
    let fresh = RunConfig::new(lattices);
    RunConfig { lattices: fresh.lattices, replica: fresh.replica, ..template.clone() }
}

/// Why `name` cannot be a lattice here: one NATS subject token, bounded in length
/// ([`wadm_protocol::names::lattice_error`]), or `{account}.{lattice}` in account-scoped mode
/// ([`wadm_protocol::names::scoped_lattice_error`]).
fn lattice_error(account_scoped: bool, name: &str) -> Option<String> {
    match account_scoped {
        true => wadm_protocol::names::scoped_lattice_error(name),
        false => wadm_protocol::names::lattice_error(name),
    }
}

/// The lattice whose activity `subject` shows (`[{account}.]wasmbus.evt.{lattice}.…` or
/// `[{account}.]wadm.evt.{lattice}.…`), when it can be one here.
fn active_lattice(account_scoped: bool, subject: &str) -> Option<String> {
    let (account, rest) = wadm_protocol::subject::unscope(subject);
    if account.is_some() != account_scoped {
        return None;
    }
    let lattice = wadm_protocol::subject::qualify(account, rest.split('.').nth(2)?);
    lattice_error(account_scoped, &lattice).is_none().then_some(lattice)
}

/// The subjects whose lattice token names a lattice with activity (hosts starting or beating,
/// deploys), behind any account token in account-scoped mode.
fn activity_subjects(account_scoped: bool) -> Vec<String> {
    let any = if account_scoped { "*." } else { "" };
    ACTIVITY_SUBJECTS.iter().map(|s| format!("{any}{s}")).collect()
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
/// see [`activity_subjects`].
const ACTIVITY_SUBJECTS: [&str; 3] =
    ["wasmbus.evt.*.host_started", "wasmbus.evt.*.host_heartbeat", "wadm.evt.*.>"];

/// What the runtimes of discovered lattices are started from.
struct Target {
    /// Every runtime's settings but its lattices and replica name.
    template: RunConfig,
    account_scoped: bool,
    /// Where the lattices with a runtime are listed (the API's `lattices`).
    known: wadm_server::KnownLattices,
}

/// Run a runtime for `default`, then one more for every lattice whose hosts or API show up.
async fn discover_and_run(
    client: async_nats::Client,
    target: Target,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let Target { template, account_scoped, known: listed } = target;
    let mut activity = Vec::new();
    for subject in activity_subjects(account_scoped) {
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
        let config = for_lattices(&template, vec![lattice.clone()]);
        let (client, stop) = (client.clone(), stop.clone());
        runs.spawn(async move {
            let result = wadm_runtime::run(config, client, stopped(stop)).await;
            (lattice, result.map_err(anyhow::Error::from))
        });
    };
    if !account_scoped {
        // Another account's lattices are only known once they show activity.
        start(DEFAULT_LATTICE.to_string(), &mut runs, &mut known, &failed);
    }
    let mut stop_signal = std::pin::pin!(stopped(stop.clone()));
    loop {
        tokio::select! {
            _ = &mut stop_signal => break,
            Some(message) = activity.next() => {
                if let Some(lattice) = active_lattice(account_scoped, &message.subject) {
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

/// Completes on Ctrl-C or SIGTERM: a shutdown future for [`Wadm::run`].
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activity_names_lattices_of_the_right_accounts() {
        assert_eq!(
            active_lattice(true, "TA.wasmbus.evt.default.host_heartbeat").as_deref(),
            Some("TA.default")
        );
        assert_eq!(active_lattice(true, "wasmbus.evt.default.host_heartbeat"), None);
        assert_eq!(active_lattice(true, "T*.wadm.evt.l.x"), None);
        assert_eq!(activity_subjects(true)[0], "*.wasmbus.evt.*.host_started");
        assert_eq!(active_lattice(false, "wadm.evt.l.manifest_published").as_deref(), Some("l"));
        assert_eq!(active_lattice(false, "TA.wadm.evt.l.manifest_published"), None);
        assert_eq!(activity_subjects(false)[0], "wasmbus.evt.*.host_started");
    }

    #[test]
    fn each_runtime_has_its_lattices_and_a_name_of_its_own() {
        let mut template = RunConfig::new(vec!["ignored".into()]);
        template.command_workers = 3;
        let a = for_lattices(&template, vec!["a".into()]);
        let b = for_lattices(&template, vec!["b".into()]);
        assert_eq!((a.lattices, b.lattices), (vec!["a".to_string()], vec!["b".to_string()]));
        assert_eq!((a.command_workers, b.command_workers), (3, 3));
    }
}
