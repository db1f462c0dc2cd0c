//! Deploying many applications at once and timing it: from the first deploy request to the
//! last control command the runtime issued (seen on `wadm.cmd.{lattice}.>`) and to the moment
//! every application's published status (`wadm.status.{lattice}.*`) first said `deployed`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use wadm_client::Client;
use wadm_model::status::{Status, StatusType};
use wadm_runtime::CommandMessage;

use super::manifests;
use super::rig::{Rig, wait_for};

/// Requests sent at once while putting and deploying.
const CONCURRENT_REQUESTS: usize = 16;

/// What one mass deploy took.
#[derive(Debug, Clone)]
pub struct Deployed {
    /// Distinct commands the runtime issued until every application was deployed.
    pub commands: u64,
    /// Command publications (a command republished by a later reconcile counts again).
    pub publishes: u64,
    pub to_commands_issued: Duration,
    /// `None` when some application never published `deployed` within the timeout.
    pub to_all_deployed: Option<Duration>,
    /// Applications that published `deployed` at least once.
    pub seen_deployed: usize,
    /// Applications whose `model.status` says `deployed` afterwards.
    pub apps_deployed: usize,
}

#[derive(Default)]
struct Seen {
    deployed: BTreeMap<String, Instant>,
    /// Distinct commands (id and retry round): the runtime republishes a plan's commands on
    /// every reconcile until they are observed; the command stream deduplicates them.
    commands: std::collections::BTreeSet<(String, u64)>,
    publishes: u64,
    last_command: Option<Instant>,
}

/// Put and deploy `apps` generated applications of `components` components each, then wait (up
/// to `timeout`) until all have published `deployed` and (up to [`SETTLE_TIMEOUT`]) until
/// `model.status` of every one says `deployed`. A timeout is not an error: the figures say how
/// far it got.
pub async fn deploy_all(
    rig: &Rig,
    prefix: &str,
    apps: usize,
    components: usize,
    timeout: Duration,
) -> anyhow::Result<Deployed> {
    let manifest = |a: usize| manifests::manifest(prefix, a, components);
    deploy_on(rig, &rig.lattice, prefix, apps, &manifest, timeout).await
}

/// [`deploy_all`] on the lattice `lattice`, application `a` being `manifest(a)` (named
/// [`manifests::app_name`]`(prefix, a)`).
pub async fn deploy_on(
    rig: &Rig,
    lattice: &str,
    prefix: &str,
    apps: usize,
    manifest: &(dyn Fn(usize) -> serde_json::Value + Sync),
    timeout: Duration,
) -> anyhow::Result<Deployed> {
    let client =
        Client::new(rig.client.clone(), lattice, None).with_timeout(Duration::from_secs(20));
    let names: Vec<String> = (0..apps).map(|a| manifests::app_name(prefix, a)).collect();
    futures::stream::iter(0..apps)
        .map(|a| {
            let client = &client;
            async move {
                let body = serde_json::to_vec(&manifest(a))?;
                client
                    .put_manifest(body, None)
                    .await
                    .with_context(|| format!("putting app {a}"))?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(CONCURRENT_REQUESTS)
        .try_collect::<Vec<()>>()
        .await?;

    let seen = Arc::new(Mutex::new(Seen::default()));
    let watchers = watch(rig, lattice, seen.clone()).await?;
    let started = Instant::now();
    futures::stream::iter(names.iter())
        .map(|name| {
            let client = &client;
            async move { client.deploy(name, None).await.with_context(|| format!("deploying {name}")) }
        })
        .buffer_unordered(CONCURRENT_REQUESTS)
        .try_collect::<Vec<_>>()
        .await?;
    let all_seen = wait_for(timeout, "every application to be deployed", || {
        let seen = seen.clone();
        let names = &names;
        async move {
            let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
            names.iter().all(|n| seen.deployed.contains_key(n)).then_some(())
        }
    })
    .await;
    for watcher in watchers {
        watcher.abort();
    }
    if let Err(e) = &all_seen {
        eprintln!("wadm bench: {e}");
    }
    let (last_deployed, seen_deployed, commands, publishes, last_command) = {
        let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
        let last = seen.deployed.values().max().copied().unwrap_or(started);
        let last_command = seen.last_command.unwrap_or(started);
        (last, seen.deployed.len(), seen.commands.len() as u64, seen.publishes, last_command)
    };
    let apps_deployed = settle(&client, &names, SETTLE_TIMEOUT).await?;
    Ok(Deployed {
        commands,
        publishes,
        to_commands_issued: last_command.saturating_duration_since(started),
        to_all_deployed: all_seen.is_ok().then(|| last_deployed.saturating_duration_since(started)),
        seen_deployed,
        apps_deployed,
    })
}

/// How long the statuses may take to agree once every application was seen deployed.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Ask `model.status` of every application until all say `deployed` or `timeout` passes;
/// returns how many do. Those that do not are named on stderr with their status.
async fn settle(client: &Client, names: &[String], timeout: Duration) -> anyhow::Result<usize> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut pending = Vec::new();
        for name in names {
            let status = client.status(name).await.with_context(|| format!("status of {name}"))?;
            if status.status.status_type != StatusType::Deployed {
                pending.push(format!(
                    "{name}: {:?} {}",
                    status.status.status_type, status.status.message
                ));
            }
        }
        if pending.is_empty() || Instant::now() >= deadline {
            for line in &pending {
                eprintln!("wadm bench: not deployed: {line}");
            }
            return Ok(names.len() - pending.len());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Record the first `deployed` status of every application and every command, as they come.
async fn watch(
    rig: &Rig,
    lattice: &str,
    seen: Arc<Mutex<Seen>>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut statuses = rig.client.subscribe(format!("wadm.status.{lattice}.*")).await?;
    let mut commands = rig.client.subscribe(format!("wadm.cmd.{lattice}.>")).await?;
    rig.client.flush().await.context("subscribing to statuses and commands")?;
    let status_seen = seen.clone();
    let on_status = tokio::spawn(async move {
        while let Some(message) = statuses.next().await {
            let Some(app) = message.subject.rsplit('.').next() else { continue };
            let Ok(status) = serde_json::from_slice::<Status>(&message.payload) else { continue };
            if status.status.status_type == StatusType::Deployed {
                let mut seen = status_seen.lock().unwrap_or_else(|p| p.into_inner());
                seen.deployed.entry(app.to_string()).or_insert_with(Instant::now);
            }
        }
    });
    let on_command = tokio::spawn(async move {
        while let Some(message) = commands.next().await {
            let Ok(command) = serde_json::from_slice::<CommandMessage>(&message.payload) else {
                continue;
            };
            let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
            seen.publishes += 1;
            if seen.commands.insert((command.id, command.seq)) {
                seen.last_command = Some(Instant::now());
            }
        }
    });
    Ok(vec![on_status, on_command])
}
