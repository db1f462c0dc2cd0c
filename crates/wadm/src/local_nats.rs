//! The embedded local default: when no NATS URL is given, wadm runs its own `nats-server -js`.
//!
//! The server listens on 127.0.0.1 (port 4222 when free, else a free port) and keeps its JetStream
//! store under the data directory, so applications survive a restart of wadm. It is stopped when the
//! returned guard is dropped.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use wadm_nats_server::{LaunchOptions, NatsServerProcess};

/// The standard NATS client port, used for the local server when it is free.
const DEFAULT_PORT: u16 = 4222;

/// The default data directory: `$WADM_DATA_DIR`, else `$XDG_DATA_HOME/wadm`, else
/// `~/.local/share/wadm`, else `./.wadm`.
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("WADM_DATA_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(dir).join("wadm");
    }
    if let Some(home) = std::env::var_os("HOME") {
        return PathBuf::from(home).join(".local/share/wadm");
    }
    PathBuf::from(".wadm")
}

/// Start a local `nats-server -js` with its store in `data_dir/nats`, on `port` when given (an
/// error if it is taken), else on 4222 when free, else on a free port.
pub fn start(data_dir: &Path, port: Option<u16>) -> anyhow::Result<NatsServerProcess> {
    let binary = wadm_nats_server::find_binary()?;
    let store_dir = data_dir.join("nats");
    std::fs::create_dir_all(&store_dir)
        .with_context(|| format!("cannot create the data directory {}", store_dir.display()))?;
    let ready_timeout = Duration::from_secs(15);
    let launch = |port: u16| {
        let options = LaunchOptions {
            binary: binary.clone(),
            port,
            store_dir: store_dir.clone(),
            ready_timeout,
            extra_args: Vec::new(),
        };
        NatsServerProcess::launch(&options)
    };
    if let Some(port) = port {
        if wadm_nats_server::port_in_use(port) {
            anyhow::bail!("cannot start nats-server on 127.0.0.1:{port}: the port is in use");
        }
        return Ok(launch(port)?);
    }
    if !wadm_nats_server::port_in_use(DEFAULT_PORT)
        && let Ok(server) = launch(DEFAULT_PORT)
    {
        return Ok(server);
    }
    Ok(wadm_nats_server::launch_on_free_port(&binary, &store_dir, ready_timeout)?)
}
