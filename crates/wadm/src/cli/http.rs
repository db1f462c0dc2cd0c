//! The operator flags `serve` and `up` share: the HTTP listener and the token the HTTP API's
//! writes need (see [`crate::observe`] and [`crate::http_api`]), trace export and log format.

use std::net::SocketAddr;
use std::time::Duration;

use crate::http_api::ApiSettings;
use crate::logging::LogFormat;
use crate::otel::OtelArgs;

/// How an operator watches a running wadm: HTTP endpoints, traces, log lines.
#[derive(clap::Args, Debug, Clone)]
pub struct OperatorArgs {
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub otel: OtelArgs,
    /// How log lines are written on stderr: `text` (coloured only on a terminal without
    /// `NO_COLOR`) or `json` (one object per line).
    #[arg(long, env = "WADM_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(clap::Args, Debug, Clone)]
pub struct HttpArgs {
    /// Serve `/metrics` (Prometheus), `/healthz`, `/readyz` and the HTTP API (`/api/v1`) on
    /// this address (e.g. `127.0.0.1:9090`). Off when not given.
    #[arg(long, env = "WADM_HTTP_ADDR")]
    pub http_addr: Option<SocketAddr>,
    /// Bearer token of the HTTP API: writes, and reads from other hosts than this one, need
    /// `Authorization: Bearer <token>`. Without it the HTTP API only serves reads to loopback.
    #[arg(long, env = "WADM_HTTP_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub http_token: Option<String>,
}

impl HttpArgs {
    /// The HTTP API's settings for a wadm serving the NATS API on `prefix`.
    pub fn api(&self, prefix: &str, max_request_bytes: usize) -> ApiSettings {
        ApiSettings {
            prefix: prefix.to_string(),
            token: self.http_token.clone().filter(|t| !t.is_empty()),
            max_request_bytes,
            request_timeout: Duration::from_secs(10),
        }
    }
}
