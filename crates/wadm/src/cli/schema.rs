//! `wadm schema`: prints the JSON Schema of the application manifest, generated from the wire
//! types (`schema/application.schema.json` is this output, committed).

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> ExitCode {
    let schema = wadm_model::wire::schema_json();
    outln!("{}", schema.trim_end());
    ExitCode::SUCCESS
}
