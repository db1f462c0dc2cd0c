//! Subcommands of the `wadm` binary, one module each. Each exposes `Args` (clap) and
//! `run(Args) -> ExitCode`, and prints errors as one clear line (never a backtrace).

/// `println!` for what a subcommand prints on stdout, except that a closed stdout (`wadm … |
/// head`) ends the process quietly with success instead of a panic and a backtrace.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            $crate::cli::stdout_failed(e);
        }
    }};
}

/// Stdout could not be written: quietly done when its reader went away, else one line.
pub fn stdout_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("wadm: cannot write to stdout: {e}");
    std::process::exit(1);
}

pub mod app;
pub mod bench;
pub mod completions;
pub mod connection;
pub mod http;
pub mod lattice;
pub mod schema;
pub mod serve;
pub mod sim;
pub mod up;
pub mod validate;
