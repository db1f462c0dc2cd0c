//! `wadm completions SHELL`: print the shell completion script for every subcommand and flag.

use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

#[derive(clap::Args)]
pub struct Args {
    /// The shell: bash, zsh, fish, elvish or powershell.
    shell: Shell,
}

pub fn run<C: CommandFactory>(args: Args) -> ExitCode {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut C::command(), "wadm", &mut script);
    use std::io::Write as _;
    if let Err(e) = std::io::stdout().lock().write_all(&script) {
        super::stdout_failed(e);
    }
    ExitCode::SUCCESS
}
