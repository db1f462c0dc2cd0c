//! `wadm app …`: manage applications through a running wadm over its NATS API.
//!
//! This module owns the command line (global connection options, subcommands) and the mapping of
//! failures to exit codes: 0 success, 1 an API error / not found / a failed deployment, 2 a usage
//! or connection problem, 3 `plan`/`diff` found changes. Every failure prints one line on stderr. The subcommands live in
//! [`commands`], tables in [`table`], `deploy --wait` in [`wait`].

mod commands;
mod context;
mod failure;
mod placement;
mod plan;
mod table;
mod target;
mod wait;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Subcommand, ValueEnum};
use wadm_client::{Client, ClientError};

use super::connection::NatsArgs;

pub use failure::{Failure, run_to_exit};
pub use table::Table;

/// Options shared by every `wadm app` subcommand.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// How to reach NATS (default URL: `nats://127.0.0.1:4222`).
    #[command(flatten)]
    nats: NatsArgs,
    /// The lattice the applications live in.
    #[arg(long, global = true, env = "WADM_LATTICE", default_value = "default")]
    lattice: String,
    /// Subject prefix of the wadm API.
    #[arg(long, global = true, env = "WADM_API_PREFIX", default_value = wadm_client::api::DEFAULT_API_PREFIX)]
    api_prefix: String,
    /// How long to wait for each reply (e.g. `5s`, `500ms`, `2m`; default 5s). With `--wait`:
    /// how long to wait for the deployment or removal (default 2m); with `status --watch`:
    /// how long to follow (default: until interrupted).
    #[arg(long, global = true, value_parser = parse_duration, value_name = "DURATION")]
    timeout: Option<Duration>,
    /// Output format.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Table)]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

/// How results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned text for people.
    Table,
    /// JSON for scripts (one document on stdout).
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Store a manifest (YAML or JSON file, `-` for stdin) as a new version. A manifest equal
    /// to a stored version (after normalising) stores nothing and says "unchanged".
    Put {
        /// The manifest file.
        file: PathBuf,
        /// Refuse unless the application is at this revision (`app versions` shows it; 0: the
        /// application must not exist yet).
        #[arg(long, value_name = "REVISION")]
        expect_revision: Option<u64>,
    },
    /// Print a stored manifest (YAML; JSON with `--output json`).
    #[command(disable_version_flag = true)]
    Get {
        name: String,
        /// A stored version (default: the current one).
        #[arg(long)]
        version: Option<String>,
    },
    /// List the applications of the lattice.
    List,
    /// List the stored versions of an application.
    Versions { name: String },
    /// Deploy an application by name, or store and deploy a manifest file. Deploying what is
    /// deployed already changes nothing and says "unchanged".
    #[command(disable_version_flag = true)]
    Deploy {
        /// An application name, or the path of a manifest file.
        app: String,
        /// The version to deploy (default: the current one; with a file: the version stored).
        #[arg(long)]
        version: Option<String>,
        /// Wait until the application is deployed, showing progress.
        #[arg(long)]
        wait: bool,
        /// Refuse unless the application is at this revision (`app versions` shows it). With a
        /// file, the file's put is refused as well.
        #[arg(long, value_name = "REVISION")]
        expect_revision: Option<u64>,
    },
    /// Let the current deployment's rollouts go on past their canary stage.
    Promote { name: String },
    /// Deploy the last stable version again (the last version that was fully deployed; the
    /// one stable before it when that is what is deployed).
    Rollback {
        name: String,
        /// Refuse unless the application is at this revision (`app versions` shows it).
        #[arg(long, value_name = "REVISION")]
        expect_revision: Option<u64>,
    },
    /// Undeploy an application (by name, or the name in a manifest file). Versions are kept.
    Undeploy {
        /// An application name, or the path of a manifest file.
        app: String,
        /// Wait until the hosts run nothing of it any more, showing progress.
        #[arg(long)]
        wait: bool,
        /// Undeploy a shared application even while deployed applications use it (they then
        /// wait for it to come back).
        #[arg(long)]
        force: bool,
    },
    /// Delete an application, or one version of it (by name, or the name in a manifest file).
    #[command(disable_version_flag = true)]
    Delete {
        /// An application name, or the path of a manifest file.
        app: String,
        /// Delete only this version.
        #[arg(long)]
        version: Option<String>,
        /// When this undeploys it: wait until the hosts run nothing of it any more.
        #[arg(long)]
        wait: bool,
        /// Delete a deployed shared application even while deployed applications use it (they
        /// then wait for it to come back).
        #[arg(long)]
        force: bool,
    },
    /// Show the status of an application and of each of its scalers.
    Status {
        name: String,
        /// Keep following: print the status again whenever it changes (until interrupted, or
        /// for `--timeout`).
        #[arg(long, conflicts_with = "hosts")]
        watch: bool,
        /// Also show where it runs: each component and provider with its hosts and instance
        /// counts, as wadm observes them.
        #[arg(long)]
        hosts: bool,
    },
    /// Show what was done to an application (puts, deploys, undeploys, deletes).
    History { name: String },
    /// Show what deploying would do now, without doing it: the spec's differences from the
    /// deployed version and every control request, host by host. Exit 0: no change; 3: changes.
    #[command(disable_version_flag = true)]
    Plan {
        /// An application name (plans a stored version), or the path of a manifest file (plans
        /// its content; nothing is stored).
        app: String,
        /// With a name: the stored version to plan (default: the current one).
        #[arg(long)]
        version: Option<String>,
    },
    /// Show the differences between two stored versions. Exit 0: the same; 3: different.
    Diff {
        name: String,
        /// The older version.
        from: String,
        /// The newer version.
        to: String,
    },
}

/// The default wait of `deploy --wait` when `--timeout` is not given.
const DEFAULT_WAIT: Duration = Duration::from_secs(120);

pub fn run(args: Args) -> ExitCode {
    run_to_exit(execute(args))
}

async fn execute(args: Args) -> Result<(), Failure> {
    let options = args.nats.options(args.nats.url_or_default(), "wadm app");
    // Read a file argument before connecting, so a usage mistake is reported as such.
    let command = target::prepare(args.command)?;
    let nats = options.connect().await.map_err(ClientError::from)?;
    let request_timeout = match (&command, args.timeout) {
        (c, _) if c.follows() => wadm_client::DEFAULT_TIMEOUT,
        (_, Some(timeout)) => timeout,
        (_, None) => wadm_client::DEFAULT_TIMEOUT,
    };
    let client = Client::new(nats, args.lattice.clone(), Some(&args.api_prefix))
        .with_timeout(request_timeout)
        .with_actor(actor());
    let context = context::Context {
        client,
        output: args.output,
        wait_timeout: args.timeout.unwrap_or(DEFAULT_WAIT),
        watch_for: args.timeout,
    };
    let result = commands::execute(&context, command).await;
    // Deliver anything still buffered (nothing is published here, but be tidy).
    let _ = context.client.nats().flush().await;
    result
}

/// Who is asking, for the application history: the login name when known.
fn actor() -> String {
    let user = std::env::var("USER").or_else(|_| std::env::var("USERNAME")).unwrap_or_default();
    if user.is_empty() { "wadm-cli".to_string() } else { format!("{user} (wadm-cli)") }
}

/// A positive duration: `5`, `5s`, `250ms`, `2m`, `1h` (a bare number is seconds).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = crate::stack::parse_duration(text)?;
    if duration.is_zero() || duration > Duration::from_secs(86_400 * 365) {
        return Err(format!("invalid duration {text:?}: must be positive and at most a year"));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The command line as the binary builds it (with a propagated `--version`).
    #[derive(clap::Parser)]
    #[command(name = "wadm", version, propagate_version = true)]
    struct Binary {
        #[command(subcommand)]
        command: Top,
    }

    #[derive(clap::Subcommand)]
    enum Top {
        App(Args),
    }

    #[test]
    fn command_line_is_consistent() {
        use clap::{CommandFactory, Parser};
        Binary::command().debug_assert();
        let parsed = Binary::try_parse_from([
            "wadm",
            "app",
            "deploy",
            "hello",
            "--version",
            "v2",
            "--wait",
            "--lattice",
            "l1",
        ])
        .unwrap();
        let Top::App(args) = parsed.command;
        assert_eq!(args.lattice, "l1");
        assert!(matches!(
            args.command,
            Command::Deploy { app, version: Some(v), wait: true, expect_revision: None }
                if app == "hello" && v == "v2"
        ));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        for bad in ["", "x", "5x", "0", "-1s", "1e999"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
