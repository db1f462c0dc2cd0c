//! What every `wadm app` subcommand works with: the client and how to print.

use std::time::Duration;

use serde::Serialize;
use wadm_client::Client;

use super::Output;
use super::failure::Failure;

/// What every command needs.
pub struct Context {
    pub client: Client,
    pub output: Output,
    /// How long `--wait` waits.
    pub wait_timeout: Duration,
    /// How long `status --watch` follows (`None`: until interrupted).
    pub watch_for: Option<Duration>,
}

impl Context {
    pub(super) fn json(&self) -> bool {
        self.output == Output::Json
    }
}

pub(super) fn print_json<T: Serialize>(value: &T) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Failure::Api(format!("cannot render the reply as JSON: {e}")))?;
    // As the commands' `say!`: a closed stdout is ignored.
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(format!("{text}\n").as_bytes()).and_then(|()| stdout.flush());
    Ok(())
}
