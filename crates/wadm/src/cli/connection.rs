//! The NATS connection flags every `wadm` subcommand that talks to a NATS server shares (`serve`,
//! `app`, `sim`), each with a `WADM_…` environment variable, turned into one
//! [`NatsOptions`] and one JetStream domain. Secret values (password, token, seed, JWT) are never
//! shown by `--help` (`hide_env_values`), and errors name flags and files, never their contents.

use std::path::PathBuf;

use wadm_client::connect::NatsOptions;

/// How to reach and authenticate to NATS.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct NatsArgs {
    /// NATS URL(s), comma-separated; a user and password (`nats://user:pass@host:4222`) or a
    /// token (`nats://token@host:4222`) may be written in it.
    #[arg(long, global = true, env = "WADM_NATS_URL", value_name = "URL", hide_env_values = true)]
    pub nats_url: Option<String>,
    /// NATS credentials file (user JWT and nkey seed).
    #[arg(long, global = true, env = "WADM_NATS_CREDS", value_name = "FILE")]
    pub nats_creds: Option<PathBuf>,
    /// NATS nkey seed (`SU…`); with `--nats-jwt` authenticates as that user.
    #[arg(
        long,
        global = true,
        env = "WADM_NATS_SEED",
        hide_env_values = true,
        value_name = "SEED"
    )]
    pub nats_seed: Option<String>,
    /// NATS user JWT (needs `--nats-seed`).
    #[arg(long, global = true, env = "WADM_NATS_JWT", hide_env_values = true, value_name = "JWT")]
    pub nats_jwt: Option<String>,
    /// NATS user (with `--nats-password`); wins over a user in the URL.
    #[arg(long, global = true, env = "WADM_NATS_USER", value_name = "USER")]
    pub nats_user: Option<String>,
    /// Password of `--nats-user`.
    #[arg(
        long,
        global = true,
        env = "WADM_NATS_PASSWORD",
        hide_env_values = true,
        value_name = "PASSWORD"
    )]
    pub nats_password: Option<String>,
    /// NATS authentication token; wins over a token in the URL.
    #[arg(
        long,
        global = true,
        env = "WADM_NATS_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub nats_token: Option<String>,
    /// CA certificate (PEM) to verify the NATS server's TLS certificate with (requires TLS).
    #[arg(long, global = true, env = "WADM_NATS_TLS_CA", value_name = "FILE")]
    pub nats_tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for TLS client authentication (with `--nats-tls-key`).
    #[arg(
        long,
        global = true,
        env = "WADM_NATS_TLS_CERT",
        value_name = "FILE",
        requires = "nats_tls_key"
    )]
    pub nats_tls_cert: Option<PathBuf>,
    /// Private key (PEM) of `--nats-tls-cert`.
    #[arg(
        long,
        global = true,
        env = "WADM_NATS_TLS_KEY",
        value_name = "FILE",
        requires = "nats_tls_cert"
    )]
    pub nats_tls_key: Option<PathBuf>,
    /// JetStream domain of wadm's streams and buckets (e.g. when wadm talks to a leaf node
    /// whose JetStream is reached through a hub). Default: the account's own JetStream.
    #[arg(long, global = true, env = "WADM_JS_DOMAIN", value_name = "DOMAIN")]
    pub js_domain: Option<String>,
    /// How often to ping the NATS server; one that answers 2 pings in a row no more is left
    /// for another of `--nats-url` (a frozen node is left within about 3 intervals).
    #[arg(long, global = true, env = "WADM_NATS_PING_INTERVAL", value_name = "DURATION",
          value_parser = crate::stack::parse_duration)]
    pub nats_ping_interval: Option<std::time::Duration>,
}

impl NatsArgs {
    /// The connection options, for `url` (the flag's value or a default the caller picked).
    pub fn options(&self, url: String, name: &str) -> NatsOptions {
        NatsOptions {
            url,
            creds_file: self.nats_creds.clone(),
            seed: self.nats_seed.clone(),
            jwt: self.nats_jwt.clone(),
            tls_ca: self.nats_tls_ca.clone(),
            user: self.nats_user.clone(),
            password: self.nats_password.clone(),
            token: self.nats_token.clone(),
            tls_cert: self.nats_tls_cert.clone(),
            tls_key: self.nats_tls_key.clone(),
            name: name.to_string(),
            ping_interval: self
                .nats_ping_interval
                .unwrap_or(wadm_client::connect::DEFAULT_PING_INTERVAL),
            ..NatsOptions::default()
        }
    }

    /// The URL given, or the default one.
    pub fn url_or_default(&self) -> String {
        self.nats_url.clone().unwrap_or_else(|| wadm_client::DEFAULT_NATS_URL.into())
    }

    /// The JetStream domain, if one was given (blank counts as none).
    pub fn js_domain(&self) -> Option<String> {
        self.js_domain.as_deref().map(str::trim).filter(|d| !d.is_empty()).map(str::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        nats: NatsArgs,
    }

    #[test]
    fn flags_reach_the_options() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "x",
            "--nats-url",
            "nats://h:1",
            "--nats-user",
            "u",
            "--nats-password",
            "p",
            "--nats-tls-cert",
            "c.pem",
            "--nats-tls-key",
            "k.pem",
            "--js-domain",
            "hub",
        ])
        .unwrap();
        let options = cli.nats.options(cli.nats.url_or_default(), "t");
        assert_eq!(options.url, "nats://h:1");
        assert_eq!((options.user.as_deref(), options.password.as_deref()), (Some("u"), Some("p")));
        assert_eq!(options.tls_cert, Some(PathBuf::from("c.pem")));
        assert_eq!(options.tls_key, Some(PathBuf::from("k.pem")));
        assert_eq!(cli.nats.js_domain().as_deref(), Some("hub"));
        assert!(Cli::try_parse_from(["x", "--nats-tls-cert", "c.pem"]).is_err(), "key needed");
    }

    #[test]
    fn secret_flags_hide_their_environment_values() {
        for arg in Cli::command().get_arguments() {
            if matches!(
                arg.get_id().as_str(),
                "nats_password" | "nats_token" | "nats_seed" | "nats_jwt" | "nats_url"
            ) {
                assert!(arg.is_hide_env_values_set(), "{} hides its env value", arg.get_id());
            }
        }
    }
}
