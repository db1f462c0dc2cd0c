//! `wadm validate <file>…`: checks manifests offline and prints every error and warning with the
//! path of the offending field. Exit status: 0 all valid, 1 some manifest invalid, 2 some file
//! unreadable (which wins over 1).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::ValueEnum;
use serde_json::json;
use wadm_model::{Diagnostic, Format, Limits, Severity, parse_manifest};

#[derive(clap::Args)]
pub struct Args {
    /// Manifest files (YAML or JSON); `-` reads standard input.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// `text` for people, `json` for machines.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    output: Output,
    /// Largest manifest accepted, in bytes.
    #[arg(long, default_value_t = Limits::default().max_bytes)]
    max_bytes: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Output {
    Text,
    Json,
}

/// The outcome for one file.
enum Outcome {
    Unreadable(String),
    Checked { valid: bool, diagnostics: Vec<Diagnostic> },
}

pub fn run(args: Args) -> ExitCode {
    let limits = Limits { max_bytes: args.max_bytes, ..Limits::default() };
    let results: Vec<(String, Outcome)> =
        args.files.iter().map(|f| (f.display().to_string(), check(f, &limits))).collect();
    match args.output {
        Output::Text => print_text(&results),
        Output::Json => print_json(&results),
    }
    let unreadable = results.iter().any(|(_, o)| matches!(o, Outcome::Unreadable(_)));
    let invalid = results.iter().any(|(_, o)| matches!(o, Outcome::Checked { valid: false, .. }));
    ExitCode::from(if unreadable {
        2
    } else if invalid {
        1
    } else {
        0
    })
}

fn check(file: &Path, limits: &Limits) -> Outcome {
    let bytes = if file == Path::new("-") {
        let mut buf = Vec::new();
        match std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf) {
            Ok(_) => buf,
            Err(e) => return Outcome::Unreadable(e.to_string()),
        }
    } else {
        match std::fs::read(file) {
            Ok(bytes) => bytes,
            Err(e) => return Outcome::Unreadable(e.to_string()),
        }
    };
    let format = match file.extension().and_then(|e| e.to_str()) {
        Some("json") => Format::Json,
        Some("yaml" | "yml") => Format::Yaml,
        _ => Format::Auto,
    };
    match parse_manifest(&bytes, format, limits) {
        Ok(parsed) => Outcome::Checked { valid: true, diagnostics: parsed.warnings },
        Err(invalid) => Outcome::Checked { valid: false, diagnostics: invalid.diagnostics },
    }
}

fn print_text(results: &[(String, Outcome)]) {
    for (file, outcome) in results {
        match outcome {
            Outcome::Unreadable(reason) => eprintln!("{file}: cannot read: {reason}"),
            Outcome::Checked { valid, diagnostics } => {
                for d in diagnostics {
                    outln!("{file}: {}: {d} [{}]", d.severity, d.rule);
                }
                let errors = diagnostics.iter().filter(|d| d.severity == Severity::Error).count();
                let warnings = diagnostics.len() - errors;
                if *valid {
                    outln!("{file}: valid ({warnings} warning(s))");
                } else {
                    outln!("{file}: invalid ({errors} error(s), {warnings} warning(s))");
                }
            }
        }
    }
}

fn print_json(results: &[(String, Outcome)]) {
    let files: Vec<serde_json::Value> = results
        .iter()
        .map(|(file, outcome)| match outcome {
            Outcome::Unreadable(reason) => {
                json!({ "file": file, "readable": false, "error": reason })
            }
            Outcome::Checked { valid, diagnostics } => json!({
                "file": file,
                "readable": true,
                "valid": valid,
                "diagnostics": diagnostics,
            }),
        })
        .collect();
    let out = json!({ "files": files });
    outln!("{}", serde_json::to_string_pretty(&out).unwrap_or_else(|_| out.to_string()));
}
