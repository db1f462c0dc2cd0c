//! The errors of the client: one variant per way a request can fail, each with a message that
//! stands on its own as one line.

use std::time::Duration;

use wadm_model::status::StatusInfo;

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Could not connect to NATS.
    #[error("cannot connect to NATS at {url}: {reason}")]
    Connect {
        /// The server URL tried.
        url: String,
        /// What the connection attempt said.
        reason: String,
    },
    /// Nobody answered before the timeout (wadm busy or the network slow).
    #[error("no reply from wadm on {subject} within {after:?}")]
    Timeout {
        /// The request's subject.
        subject: String,
        /// How long the client waited.
        after: Duration,
    },
    /// Nobody listens on the subject: wadm is not running for this lattice and API prefix.
    #[error("no wadm is answering on {subject} (is wadm running for this lattice?)")]
    NoResponders {
        /// The request's subject.
        subject: String,
    },
    /// The server answered with an error.
    #[error("wadm error: {message}")]
    Api {
        /// The server's message.
        message: String,
    },
    /// The server answered that the application (or version) does not exist.
    #[error("not found: {message}")]
    NotFound {
        /// The server's message.
        message: String,
    },
    /// The reply was not what the API promises.
    #[error("cannot decode the reply on {subject}: {reason}")]
    Decode {
        /// The request's subject.
        subject: String,
        /// What did not decode.
        reason: String,
    },
    /// The application reported `failed` while waiting for it to deploy.
    #[error("deployment of {name} failed: {message}")]
    DeployFailed {
        /// The application.
        name: String,
        /// Its failed status message.
        message: String,
    },
    /// The application was not deployed within the wait.
    #[error("timed out after {after:?} waiting for {name} to be deployed{}", last_status(last))]
    WaitTimedOut {
        /// The application.
        name: String,
        /// How long the client waited.
        after: Duration,
        /// The last status seen, if any.
        last: Option<StatusInfo>,
    },
    /// An argument cannot be sent (e.g. an application name that is not a valid subject token).
    #[error("{0}")]
    InvalidArgument(String),
    /// A manifest given to the client could not be read.
    #[error("invalid manifest: {0}")]
    Manifest(String),
    /// Another NATS failure (publish, subscribe, I/O).
    #[error("NATS error on {subject}: {reason}")]
    Nats {
        /// The subject concerned.
        subject: String,
        /// What NATS said.
        reason: String,
    },
}

fn last_status(last: &Option<StatusInfo>) -> String {
    match last {
        None => "; no status received".to_string(),
        Some(s) if s.message.is_empty() => format!("; last status: {}", s.status_type),
        Some(s) => format!("; last status: {} ({})", s.status_type, s.message),
    }
}

impl ClientError {
    /// Whether the failure is about reaching wadm (connection, no responders, timeout) rather
    /// than about the answer it gave.
    pub fn is_connection_problem(&self) -> bool {
        matches!(
            self,
            ClientError::Connect { .. }
                | ClientError::Timeout { .. }
                | ClientError::NoResponders { .. }
        )
    }
}

impl From<crate::connect::ConnectError> for ClientError {
    /// An unreachable or refusing server is [`ClientError::Connect`]; options that cannot work
    /// (bad URL, unreadable credentials, a JWT without seed, a missing CA file) are
    /// [`ClientError::InvalidArgument`].
    fn from(error: crate::connect::ConnectError) -> Self {
        match error {
            crate::connect::ConnectError::Connect { url, reason } => {
                ClientError::Connect { url, reason }
            }
            misconfigured => ClientError::InvalidArgument(misconfigured.to_string()),
        }
    }
}
