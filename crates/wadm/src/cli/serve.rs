//! `wadm serve` (not built yet).

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> ExitCode {
    eprintln!("wadm serve: not available in this build yet");
    ExitCode::from(2)
}
