//! How a `wadm app` command fails: the exit code and the one line printed on stderr.

use std::process::ExitCode;

use wadm_client::ClientError;

/// A failed command.
#[derive(Debug)]
pub enum Failure {
    /// Bad arguments or an unreadable file (exit 2).
    Usage(String),
    /// NATS or wadm unreachable, or no reply in time (exit 2).
    Connection(String),
    /// wadm answered with an error or "not found", or the deployment failed or timed out (exit 1).
    Api(String),
    /// `plan` or `diff` found differences (exit 3; they were printed, nothing went wrong).
    Changes,
}

impl Failure {
    /// Print the one-line message and turn the failure into its exit code.
    pub fn report(self) -> ExitCode {
        let (code, message) = match self {
            Failure::Usage(m) | Failure::Connection(m) => (2, m),
            Failure::Api(m) => (1, m),
            Failure::Changes => return ExitCode::from(3),
        };
        // One line: embedded newlines from lower layers are folded.
        let line = message.lines().map(str::trim).collect::<Vec<_>>().join(" ");
        eprintln!("error: {line}");
        ExitCode::from(code)
    }
}

/// Run a client command's future on a one-thread runtime: its exit code, and its failure reported
/// as one line.
pub fn run_to_exit(command: impl std::future::Future<Output = Result<(), Failure>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return Failure::Connection(format!("cannot start the runtime: {e}")).report(),
    };
    match runtime.block_on(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}

impl From<ClientError> for Failure {
    fn from(error: ClientError) -> Self {
        let message = error.to_string();
        match error {
            ClientError::Connect { .. }
            | ClientError::Timeout { .. }
            | ClientError::NoResponders { .. }
            | ClientError::Nats { .. } => Failure::Connection(message),
            ClientError::InvalidArgument(_) => Failure::Usage(message),
            ClientError::Api { .. }
            | ClientError::NotFound { .. }
            | ClientError::Decode { .. }
            | ClientError::DeployFailed { .. }
            | ClientError::WaitTimedOut { .. }
            | ClientError::Manifest(_) => Failure::Api(message),
        }
    }
}
