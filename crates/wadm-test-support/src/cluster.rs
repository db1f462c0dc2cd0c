//! [`NatsCluster`]: a JetStream cluster of real `nats-server` processes on 127.0.0.1, each with
//! its own client port, cluster port and temporary store, routed to each other. Nodes can be
//! killed, restarted on the same ports and store, frozen (SIGSTOP) and thawed; everything is
//! stopped and removed on drop.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use wadm_nats_server::{LaunchOptions, NatsServerProcess, free_port};

use crate::HarnessError;

const READY_TIMEOUT: Duration = Duration::from_secs(20);

struct Node {
    process: Option<NatsServerProcess>,
    options: LaunchOptions,
    // Dropped after the process is killed.
    _store: tempfile::TempDir,
}

/// A running JetStream cluster on 127.0.0.1.
pub struct NatsCluster {
    nodes: Vec<Node>,
}

impl NatsCluster {
    /// Start `size` routed nodes (`n0`, `n1`, …) with JetStream; panics with a clear message on
    /// failure. JetStream needs a moment more to elect its meta leader: see
    /// [`NatsCluster::wait_ready`].
    pub fn start(size: usize) -> NatsCluster {
        Self::try_start(size).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`NatsCluster::start`], the failure returned (a cluster that lost a port to another
    /// process starts again on new ports, up to three times).
    pub fn try_start(size: usize) -> Result<NatsCluster, HarnessError> {
        // Ports are chosen free and then bound by the nodes: another process may take one in
        // between ("address already in use"). The whole cluster then starts again on new ports.
        let mut attempt = 1;
        loop {
            match Self::start_once(size) {
                Err(HarnessError::NotReady { log, .. })
                    if attempt < 3 && log.contains("address already in use") =>
                {
                    attempt += 1;
                }
                started => return started,
            }
        }
    }

    fn start_once(size: usize) -> Result<NatsCluster, HarnessError> {
        let binary = wadm_nats_server::find_binary()?;
        let ports: Vec<(u16, u16)> =
            (0..size).map(|_| Ok((free_port()?, free_port()?))).collect::<std::io::Result<_>>()?;
        let routes: Vec<String> =
            ports.iter().map(|(_, cluster)| format!("nats://127.0.0.1:{cluster}")).collect();
        let mut nodes = Vec::new();
        for (i, (client, cluster)) in ports.iter().enumerate() {
            let store = tempfile::Builder::new().prefix("wadm-nats-cluster-").tempdir()?;
            let others: Vec<&str> = routes
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, r)| r.as_str())
                .collect();
            let extra_args = vec![
                "--name".into(),
                format!("n{i}"),
                "--cluster_name".into(),
                "wadm-test".into(),
                "--cluster".into(),
                format!("nats://127.0.0.1:{cluster}"),
                "--routes".into(),
                others.join(","),
            ];
            let options = LaunchOptions {
                binary: binary.clone(),
                port: *client,
                store_dir: PathBuf::from(store.path()),
                ready_timeout: READY_TIMEOUT,
                extra_args,
            };
            let process = NatsServerProcess::launch(&options)?;
            nodes.push(Node { process: Some(process), options, _store: store });
        }
        Ok(NatsCluster { nodes })
    }

    /// How many nodes the cluster has (running or not).
    pub fn size(&self) -> usize {
        self.nodes.len()
    }

    /// `nats://127.0.0.1:{port}` of node `i`.
    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[i].options.port)
    }

    /// Every node's URL, comma-separated (what a client given several servers takes).
    pub fn urls(&self) -> String {
        (0..self.nodes.len()).map(|i| self.url(i)).collect::<Vec<_>>().join(",")
    }

    /// Kill node `i` (SIGKILL); its store is kept.
    pub fn kill(&mut self, i: usize) {
        if let Some(process) = self.nodes[i].process.take() {
            process.kill();
        }
    }

    /// Start node `i` again on its ports and store.
    pub fn restart(&mut self, i: usize) -> Result<(), HarnessError> {
        self.kill(i);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match NatsServerProcess::launch(&self.nodes[i].options) {
                Ok(process) => {
                    self.nodes[i].process = Some(process);
                    return Ok(());
                }
                Err(e) if Instant::now() > deadline => return Err(e),
                // The port can stay busy for a moment after the kill.
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Freeze node `i` (SIGSTOP): it keeps its connections but answers nothing.
    pub fn freeze(&self, i: usize) -> std::io::Result<()> {
        self.nodes[i].process.as_ref().map_or(Ok(()), |p| p.signal("STOP"))
    }

    /// Thaw node `i` (SIGCONT).
    pub fn thaw(&self, i: usize) -> std::io::Result<()> {
        self.nodes[i].process.as_ref().map_or(Ok(()), |p| p.signal("CONT"))
    }

    /// Wait (up to `timeout`) until JetStream answers through every running node (the meta
    /// leader is elected and every node knows it). Returns whether it did.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        for i in 0..self.nodes.len() {
            if self.nodes[i].process.is_none() {
                continue;
            }
            let url = self.url(i);
            let ready = crate::wait_for(deadline.saturating_duration_since(Instant::now()), || {
                let url = url.clone();
                async move {
                    let client = async_nats::connect(&url).await.ok()?;
                    let js = async_nats::jetstream::new(client);
                    let info = tokio::time::timeout(Duration::from_secs(2), js.query_account());
                    info.await.ok()?.ok().map(|_| ())
                }
            })
            .await;
            if ready.is_none() {
                return false;
            }
        }
        true
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(process) = node.process.take() {
                // A frozen process ignores nothing but SIGKILL; thaw it anyway for a clean exit.
                let _ = process.signal("CONT");
                process.kill();
            }
        }
    }
}
