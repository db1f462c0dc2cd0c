//! Opening the NATS connection the client (and the `wadm` CLI) talks over.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::ClientError;

/// Where wadm's NATS listens when nothing else is said.
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";

/// Environment variable naming the NATS URL (read by [`ConnectOptions::from_env`]).
pub const NATS_URL_ENV: &str = "WADM_NATS_URL";
/// Environment variable naming a NATS credentials file (read by [`ConnectOptions::from_env`]).
pub const NATS_CREDS_ENV: &str = "WADM_NATS_CREDS";

/// How to reach NATS: URL, optional credentials file, connect timeout.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Server URL, e.g. `nats://127.0.0.1:4222`.
    pub url: String,
    /// A `.creds` file (JWT + nkey seed) for authenticated servers.
    pub credentials_file: Option<PathBuf>,
    /// A CA certificate (PEM) to verify the server with; setting it requires TLS.
    pub tls_ca: Option<PathBuf>,
    /// How long to try to establish the first connection.
    pub connect_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            url: DEFAULT_NATS_URL.to_string(),
            credentials_file: None,
            tls_ca: None,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

impl ConnectOptions {
    /// Options for `url` with no credentials.
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), ..Self::default() }
    }

    /// Options from `WADM_NATS_URL` (default [`DEFAULT_NATS_URL`]) and `WADM_NATS_CREDS`.
    pub fn from_env() -> Self {
        let non_empty = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Self {
            url: non_empty(NATS_URL_ENV).unwrap_or_else(|| DEFAULT_NATS_URL.to_string()),
            credentials_file: non_empty(NATS_CREDS_ENV).map(PathBuf::from),
            ..Self::default()
        }
    }

    /// Connect once (no retry of the initial connection: a CLI should fail fast).
    pub async fn connect(&self) -> Result<async_nats::Client, ClientError> {
        let fail = |reason: String| ClientError::Connect { url: redact(&self.url), reason };
        let mut options = async_nats::ConnectOptions::new()
            .name("wadm-client")
            .connection_timeout(self.connect_timeout);
        if let Some(path) = &self.credentials_file {
            options = options
                .credentials_file(path)
                .await
                .map_err(|e| fail(format!("credentials file {}: {e}", path.display())))?;
        }
        if let Some(ca) = &self.tls_ca {
            if !ca.is_file() {
                return Err(fail(format!("TLS CA file {}: no such file", ca.display())));
            }
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        options.connect(self.url.as_str()).await.map_err(|e| fail(e.to_string()))
    }
}

/// The URL with any user and password replaced by `***`, for messages.
pub fn redact(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}***{}", &rest[at..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_urls_are_redacted() {
        assert_eq!(redact("nats://u:secret@host:4222"), "nats://***@host:4222");
        assert_eq!(redact("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
        assert_eq!(redact("tok@host"), "***@host");
        assert_eq!(redact("nats://host/a@b"), "nats://host/a@b");
    }
}
