//! `wadm completions SHELL`: a script for each shell that names the subcommands and flags, that
//! bash accepts and registers, and a clear error for a shell it does not know.

use std::process::Command;

const WADM: &str = env!("CARGO_BIN_EXE_wadm");

fn completions(shell: &str) -> std::process::Output {
    Command::new(WADM).args(["completions", shell]).output().expect("wadm runs")
}

#[test]
fn every_shell_gets_a_script_naming_the_commands_and_flags() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = completions(shell);
        assert!(out.status.success(), "{shell}: {}", String::from_utf8_lossy(&out.stderr));
        let script = String::from_utf8(out.stdout).unwrap();
        for word in ["deploy", "undeploy", "lattice", "serve", "validate", "http-token", "nats-url"]
        {
            assert!(script.contains(word), "{shell} completion names {word}");
        }
    }
}

#[test]
fn bash_accepts_and_registers_the_script() {
    if Command::new("bash").arg("--version").output().is_err() {
        println!("skipped: no bash");
        return;
    }
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("source <({WADM} completions bash) && complete -p wadm"))
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("wadm"), "{stdout}");
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let out = completions("cmd.exe");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cmd.exe") && stderr.contains("bash"), "{stderr}");
    assert!(!stderr.contains("panicked"));
}
