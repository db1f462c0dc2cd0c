//! The `wadm` command: one binary for the server, the client CLI and the host simulator.
//!
//! Each subcommand lives in its own module under [`cli`]; this file only dispatches.

mod cli;
mod dashboard;
mod http_api;
mod local_nats;
mod logging;
mod observe;
mod otel;
mod stack;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// wadm — the wasmCloud Application Deployment Manager.
#[derive(Parser)]
#[command(name = "wadm", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check manifests: print every error and warning with the path of the field.
    Validate(cli::validate::Args),
    /// Print the JSON Schema of the application manifest.
    Schema(cli::schema::Args),
    /// Run simulated wasmCloud hosts on a NATS server.
    Sim(cli::sim::Args),
    /// Serve the wadm API and run the deployment runtime.
    Serve(cli::serve::Args),
    /// Manage applications through a running wadm.
    App(cli::app::Args),
    /// Look at what a running wadm observes: hosts, what runs where, lattices.
    Lattice(cli::lattice::Args),
    /// Run everything locally: nats-server, wadm and simulated hosts.
    Up(cli::up::Args),
    /// Measure wadm: mass deploy, host-loss recovery, heartbeat throughput, CPU and memory.
    Bench(cli::bench::Args),
    /// Print a shell completion script (e.g. `wadm completions bash > ~/.local/share/bash-completion/completions/wadm`).
    Completions(cli::completions::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate(args) => cli::validate::run(args),
        Command::Schema(args) => cli::schema::run(args),
        Command::Sim(args) => cli::sim::run(args),
        Command::Serve(args) => cli::serve::run(args),
        Command::App(args) => cli::app::run(args),
        Command::Lattice(args) => cli::lattice::run(args),
        Command::Up(args) => cli::up::run(args),
        Command::Bench(args) => cli::bench::run(args),
        Command::Completions(args) => cli::completions::run::<Cli>(args),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every `--output` in every subcommand is also `-o` (one spelling across the CLI).
    #[test]
    fn output_is_always_dash_o() {
        fn walk(command: &clap::Command, path: &str, found: &mut usize) {
            for arg in command.get_arguments() {
                if arg.get_long() == Some("output") {
                    assert_eq!(arg.get_short(), Some('o'), "{path} --output has no -o");
                    *found += 1;
                }
            }
            for sub in command.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), found);
            }
        }
        let mut found = 0;
        let mut cli = Cli::command();
        cli.build(); // clap's own consistency checks (a short flag used twice panics here)
        walk(&cli, "wadm", &mut found);
        assert!(found >= 4, "app, lattice, validate and bench have --output");
    }
}
