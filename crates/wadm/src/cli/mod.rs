//! Subcommands of the `wadm` binary, one module each. Each exposes `Args` (clap) and
//! `run(Args) -> ExitCode`, and prints errors as one clear line (never a backtrace).

pub mod app;
pub mod bench;
pub mod schema;
pub mod serve;
pub mod sim;
pub mod up;
pub mod validate;
