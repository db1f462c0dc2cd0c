//! Turning the parsed command line into a [`Prepared`] command: manifest files are read and
//! inspected here, before any connection, so that a bad path is a usage error.

use std::io::Read;
use std::path::Path;

use wadm_client::manifest::{self, ManifestInfo};

use super::Command;
use super::failure::Failure;

/// A manifest read from a file (or stdin).
#[derive(Debug)]
pub struct ManifestFile {
    pub path: String,
    pub bytes: Vec<u8>,
    pub info: ManifestInfo,
}

/// An application given by name, or by a manifest file.
#[derive(Debug)]
pub enum Target {
    Name(String),
    File(ManifestFile),
}

impl Target {
    /// The application name.
    pub fn name(&self) -> &str {
        match self {
            Target::Name(name) => name,
            Target::File(file) => &file.info.name,
        }
    }
}

/// A command whose files have been read.
#[derive(Debug)]
pub enum Prepared {
    Put { manifest: ManifestFile, expect_revision: Option<u64> },
    Get { name: String, version: Option<String> },
    List,
    Versions { name: String },
    Deploy { target: Target, version: Option<String>, wait: bool, expect_revision: Option<u64> },
    Undeploy { name: String, wait: bool, force: bool },
    Delete { name: String, version: Option<String>, wait: bool, force: bool },
    Status { name: String, watch: bool, hosts: bool },
    History { name: String },
    Plan { target: Target, version: Option<String> },
    Diff { name: String, from: String, to: String },
    Promote { name: String },
    Rollback { name: String, expect_revision: Option<u64> },
}

impl Prepared {
    /// Whether the command follows the status after its request (`--wait`, `--watch`).
    pub fn follows(&self) -> bool {
        matches!(
            self,
            Self::Deploy { wait: true, .. }
                | Self::Undeploy { wait: true, .. }
                | Self::Delete { wait: true, .. }
                | Self::Status { watch: true, .. }
        )
    }
}

pub fn prepare(command: Command) -> Result<Prepared, Failure> {
    Ok(match command {
        Command::Put { file, expect_revision } => {
            Prepared::Put { manifest: read_manifest(&file.to_string_lossy())?, expect_revision }
        }
        Command::Get { name, version } => Prepared::Get { name, version },
        Command::List => Prepared::List,
        Command::Versions { name } => Prepared::Versions { name },
        Command::Deploy { app, version, wait, expect_revision } => {
            Prepared::Deploy { target: name_or_file(&app)?, version, wait, expect_revision }
        }
        Command::Undeploy { app, wait, force } => {
            Prepared::Undeploy { name: name_or_file(&app)?.name().into(), wait, force }
        }
        Command::Delete { app, version, wait, force } => {
            Prepared::Delete { name: name_or_file(&app)?.name().into(), version, wait, force }
        }
        Command::Status { name, watch, hosts } => Prepared::Status { name, watch, hosts },
        Command::History { name } => Prepared::History { name },
        Command::Plan { app, version } => Prepared::Plan { target: name_or_file(&app)?, version },
        Command::Diff { name, from, to } => Prepared::Diff { name, from, to },
        Command::Promote { name } => Prepared::Promote { name },
        Command::Rollback { name, expect_revision } => Prepared::Rollback { name, expect_revision },
    })
}

/// An existing file is a manifest; something that looks like a path but does not exist is a
/// mistake; anything else is an application name.
fn name_or_file(arg: &str) -> Result<Target, Failure> {
    if Path::new(arg).is_file() {
        return Ok(Target::File(read_manifest(arg)?));
    }
    let looks_like_path = arg.contains('/')
        || [".yaml", ".yml", ".json"].iter().any(|ext| arg.to_ascii_lowercase().ends_with(ext));
    if looks_like_path {
        return Err(Failure::Usage(format!("{arg}: no such manifest file")));
    }
    Ok(Target::Name(arg.to_string()))
}

fn read_manifest(path: &str) -> Result<ManifestFile, Failure> {
    let bytes = if path == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| Failure::Usage(format!("cannot read the manifest from stdin: {e}")))?;
        bytes
    } else {
        std::fs::read(path).map_err(|e| Failure::Usage(format!("cannot read {path}: {e}")))?
    };
    let info = manifest::inspect(&bytes).map_err(|e| Failure::Api(format!("{path}: {e}")))?;
    Ok(ManifestFile { path: path.to_string(), bytes, info })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_paths_and_missing_files() {
        assert!(matches!(name_or_file("hello"), Ok(Target::Name(n)) if n == "hello"));
        assert!(matches!(name_or_file("./nope.yaml"), Err(Failure::Usage(_))));
        assert!(matches!(name_or_file("nope.json"), Err(Failure::Usage(_))));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.yaml");
        std::fs::write(&path, "metadata:\n  name: from-file\n").unwrap();
        let target = name_or_file(path.to_str().unwrap()).unwrap();
        assert_eq!(target.name(), "from-file");
    }
}
