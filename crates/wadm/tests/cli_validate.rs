//! `wadm validate` and `wadm schema`, run as the built binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn wadm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wadm")).args(args).output().expect("the wadm binary runs")
}

fn shared(name: &str) -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/manifests");
    Path::new(dir).join(name).display().to_string()
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const INVALID: &str = "apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: broken
spec:
  components:
    - name: web
      type: component
      properties:
        image: ghcr.io/x/web:1
      traits:
        - type: link
          properties:
            namespace: wasi
            package: http
            interfaces: [outgoing-handler]
            target:
              name: nowhere
";

#[test]
fn valid_manifests_exit_zero_and_warnings_are_printed() {
    let out =
        wadm(&["validate", &shared("hello.yaml"), &shared("simple1.json"), &shared("custom.yaml")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("spec.components[0].traits[0].type"), "{stdout}");
    assert!(stdout.contains("customscaler"), "{stdout}");
}

#[test]
fn invalid_manifests_exit_one_with_paths() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(&dir, "bad.yaml", INVALID);
    let out = wadm(&["validate", &shared("hello.yaml"), bad.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("spec.components[0].traits[0].properties.target.name"), "{stdout}");
    assert!(stdout.contains("nowhere"), "{stdout}");
}

#[test]
fn unreadable_files_exit_two() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(&dir, "bad.yaml", INVALID);
    let missing = dir.path().join("missing.yaml");
    let out = wadm(&["validate", bad.to_str().unwrap(), missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("missing.yaml"), "{stderr}");
}

#[test]
fn json_output_parses_and_carries_rules_and_paths() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(&dir, "bad.yaml", INVALID);
    let out =
        wadm(&["validate", "--output", "json", &shared("custom.yaml"), bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    let files = report["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0]["valid"], true);
    assert_eq!(files[0]["diagnostics"][0]["severity"], "warning");
    assert_eq!(files[0]["diagnostics"][0]["rule"], "unknown-trait-type");
    assert_eq!(files[1]["valid"], false);
    let diags = files[1]["diagnostics"].as_array().unwrap();
    assert!(diags.iter().any(|d| d["rule"] == "link-target-missing"
        && d["severity"] == "error"
        && d["path"] == "spec.components[0].traits[0].properties.target.name"));
}

#[test]
fn oversized_and_binary_files_are_invalid_not_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let big = write(&dir, "big.yaml", &"#".repeat(2 * 1024 * 1024));
    let binary = dir.path().join("binary.yaml");
    std::fs::write(&binary, [0xff, 0xfe, 0x00, 0x80]).unwrap();
    let out = wadm(&["validate", big.to_str().unwrap(), binary.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("limit of 1048576 bytes"), "{stdout}");
    assert!(stdout.contains("not valid UTF-8"), "{stdout}");
}

#[test]
fn schema_output_matches_the_committed_schema() {
    let out = wadm(&["schema"]);
    assert_eq!(out.status.code(), Some(0));
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../schema/application.schema.json"
    ))
    .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        committed,
        "regenerate with `cargo run -q -p wadm -- schema > schema/application.schema.json`"
    );
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(schema["required"], serde_json::json!(["apiVersion", "kind", "metadata", "spec"]));
}

#[test]
fn standard_input_is_read_with_a_dash() {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_wadm"))
        .args(["validate", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(INVALID.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("-: error: spec.components[0].traits[0].properties.target.name"),
        "{stdout}"
    );
}

#[test]
fn the_readme_examples_validate() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .expect("examples/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let mut args = vec!["validate"];
    args.extend(files.iter().map(String::as_str));
    let out = wadm(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

/// `wadm validate … | head` and `wadm schema | head`: a reader that goes away is not a crash —
/// no panic, no backtrace, success.
#[test]
fn a_closed_stdout_ends_quietly() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello.yaml");
    let example = example.to_str().unwrap().to_string();
    let many: Vec<&str> = std::iter::repeat_n(example.as_str(), 200).collect();
    for args in [[&["validate"][..], &many[..]].concat(), vec!["schema"]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wadm"))
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The reader leaves before anything is written.
        drop(child.stdout.take());
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{}: {stderr}", args[0]);
        assert!(output.status.success(), "{}: {:?} {stderr}", args[0], output.status);
    }
}

/// A config name that would make a control subject (`…config.put.{name}`) past NATS's line
/// limit is refused, at its path, with the bound — and not echoed back.
#[test]
fn an_overlong_config_name_is_refused_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let huge = "c".repeat(5_000);
    let manifest = format!(
        "apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: long-config
spec:
  components:
    - name: web
      type: component
      properties:
        image: ghcr.io/x/web:1
        config:
          - name: fine
          - name: {huge}
            properties:
              k: v
"
    );
    let path = write(&dir, "long.yaml", &manifest);
    let out = wadm(&["validate", path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout:.500}");
    assert!(stdout.contains("spec.components[0].properties.config[1].name"), "{stdout:.500}");
    assert!(stdout.contains("at most 256 bytes (this one has 5000)"), "{stdout:.500}");
    assert!(!stdout.contains(&huge), "the name is echoed");
}
