//! The `wadm` binary as a child process: every line it prints (stdout and stderr) is collected,
//! it can be stopped with SIGTERM (bounded wait), and it is killed on drop.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use wadm_test_support::wait_until;

/// A running `wadm` (`args` start with the subcommand).
pub struct Wadm {
    pub child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
}

impl Wadm {
    /// Start `wadm args…` with `RUST_LOG=warn` and no NATS or HTTP address from the environment.
    pub fn start(args: &[&str]) -> Wadm {
        Self::start_with_env(args, &[])
    }

    /// [`Wadm::start`] with these environment variables set as well.
    pub fn start_with_env(args: &[&str], envs: &[(&str, &str)]) -> Wadm {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wadm"))
            .args(args)
            .envs(envs.iter().copied())
            .env("RUST_LOG", "warn")
            .env_remove("WADM_NATS_URL")
            .env_remove("WADM_HTTP_ADDR")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("wadm runs");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            collect(child.stdout.take().expect("piped"), lines.clone()),
            collect(child.stderr.take().expect("piped"), lines.clone()),
        ];
        Wadm { child, lines, readers }
    }

    /// The first collected line `find` maps to something.
    pub fn find_line<T>(&self, find: impl FnMut(&String) -> Option<T>) -> Option<T> {
        self.lines.lock().unwrap().iter().find_map(find)
    }

    /// Everything printed so far, one line each.
    pub fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// SIGTERM, then [`Wadm::exited`].
    pub fn terminate(&mut self, deadline: Duration) -> Option<ExitStatus> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().ok()?;
        self.exited(deadline)
    }

    /// Wait (at most `deadline`) for it to exit, then for every line it printed to be collected:
    /// the readers may still be draining the pipes when the process is already gone.
    pub fn exited(&mut self, deadline: Duration) -> Option<ExitStatus> {
        let mut status = None;
        wait_until(deadline, || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        });
        status?;
        wait_until(Duration::from_secs(5), || self.readers.iter().all(JoinHandle::is_finished));
        status
    }
}

impl Drop for Wadm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect(stream: impl Read + Send + 'static, sink: Arc<Mutex<Vec<String>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    })
}
