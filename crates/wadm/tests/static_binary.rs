//! The binary the container image ships (`Dockerfile`: musl, on `scratch`) needs nothing from
//! the filesystem: built for `x86_64-unknown-linux-musl`, it has no ELF interpreter, and it runs
//! `--version` and `serve` (against a real NATS, answering `wadm app list`) chrooted into a
//! directory holding only itself, with an empty environment.
//!
//! Skipped, saying why, when the musl target is not installed (`rustup target add
//! x86_64-unknown-linux-musl`). `WADM_STATIC_BIN=path` tests an already built binary instead.
//! Building takes a few minutes the first time (its own target directory, `target/static-test`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use wadm_test_support::{NatsServer, wait_until};

const TARGET: &str = "x86_64-unknown-linux-musl";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The static binary, built if needed; `Err` says why there is none.
fn static_binary() -> Result<PathBuf, String> {
    if let Ok(path) = std::env::var("WADM_STATIC_BIN") {
        return Ok(PathBuf::from(path));
    }
    let libdir = Command::new("rustc")
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .map_err(|e| format!("cannot run rustc: {e}"))?;
    let libdir = PathBuf::from(String::from_utf8_lossy(&libdir.stdout).trim());
    let installed = std::fs::read_dir(&libdir).is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().starts_with("libstd"))
    });
    if !installed {
        return Err(format!("the {TARGET} target is not installed (rustup target add {TARGET})"));
    }
    let target_dir = workspace().join("target/static-test");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args(["build", "--locked", "-p", "wadm", "--bin", "wadm", "--target", TARGET])
        .current_dir(workspace())
        .env("CARGO_TARGET_DIR", &target_dir);
    // `ring` compiles C for the target: without a musl cross compiler the host's gcc does.
    let has = |tool: &str| Command::new(tool).arg("--version").output().is_ok();
    if !has("x86_64-linux-musl-gcc") && !has("musl-gcc") && has("gcc") {
        build.env("CC_x86_64_unknown_linux_musl", "gcc");
    }
    let built = build.output().map_err(|e| format!("cannot run cargo: {e}"))?;
    if !built.status.success() {
        let log = String::from_utf8_lossy(&built.stderr);
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        panic!(
            "the {TARGET} build failed:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    Ok(target_dir.join(TARGET).join("debug/wadm"))
}

/// Whether the ELF file asks for a program interpreter (a dynamic loader): a `PT_INTERP`
/// program header.
fn has_interpreter(elf: &[u8]) -> bool {
    assert_eq!(&elf[..4], b"\x7fELF", "an ELF file");
    assert_eq!(elf[4], 2, "64-bit");
    let u16_at = |at: usize| u16::from_le_bytes([elf[at], elf[at + 1]]) as usize;
    let u32_at = |at: usize| u32::from_le_bytes(elf[at..at + 4].try_into().unwrap());
    let u64_at = |at: usize| u64::from_le_bytes(elf[at..at + 8].try_into().unwrap()) as usize;
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| u32_at(phoff + i * phentsize) == 3)
}

/// How to run a program inside `root` as its `/`: `unshare -r chroot` (no privilege needed
/// where user namespaces are allowed), else plain `chroot` (as root); `None` if neither works.
fn chroot_prefix(root: &Path) -> Option<Vec<String>> {
    let root = root.display().to_string();
    let candidates = [
        vec!["/usr/bin/unshare".to_string(), "-r".into(), "/usr/sbin/chroot".into(), root.clone()],
        vec!["/usr/sbin/chroot".to_string(), root],
    ];
    candidates.into_iter().find(|prefix| {
        Command::new(&prefix[0])
            .args(&prefix[1..])
            .arg("/wadm")
            .arg("--version")
            .env_clear()
            .output()
            .is_ok_and(|o| {
                o.status.success() && String::from_utf8_lossy(&o.stdout).starts_with("wadm ")
            })
    })
}

#[test]
fn the_image_binary_needs_nothing_from_the_filesystem() {
    let binary = match static_binary() {
        Ok(binary) => binary,
        Err(why) => {
            eprintln!("SKIPPED the_image_binary_needs_nothing_from_the_filesystem: {why}");
            return;
        }
    };
    let elf = std::fs::read(&binary).expect("the static binary exists");
    assert!(!has_interpreter(&elf), "{} needs a dynamic loader", binary.display());
    let own = std::fs::read(env!("CARGO_BIN_EXE_wadm")).unwrap();
    assert!(has_interpreter(&own), "the check tells a dynamic binary apart");

    // A root holding nothing but the binary.
    let root = tempfile::tempdir().unwrap();
    std::fs::copy(&binary, root.path().join("wadm")).unwrap();
    let prefix = chroot_prefix(root.path());
    let mut command = match &prefix {
        Some(prefix) => {
            eprintln!("running wadm chrooted: {}", prefix.join(" "));
            let mut command = Command::new(&prefix[0]);
            command.args(&prefix[1..]).arg("/wadm");
            command
        }
        None => {
            eprintln!(
                "chroot is not possible here (no user namespaces, not root): running the static \
                 binary with an empty environment from an empty directory instead"
            );
            let mut command = Command::new(root.path().join("wadm"));
            command.current_dir(root.path());
            command
        }
    };
    let nats = NatsServer::start();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("serve.log");
    let mut serve = command
        .args(["serve", "--nats-url", &nats.url(), "--lattice", "default"])
        .env_clear()
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("wadm starts");
    let answered = wait_until(Duration::from_secs(60), || {
        Command::new(env!("CARGO_BIN_EXE_wadm"))
            .args(["app", "list", "--timeout", "2s", "--nats-url", &nats.url()])
            .output()
            .is_ok_and(|o| o.status.success())
            || serve.try_wait().unwrap().is_some()
    });
    let output = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(answered && serve.try_wait().unwrap().is_none(), "serve: {}", output());
    let _ = Command::new("kill").args(["-TERM", &serve.id().to_string()]).status();
    let mut status = None;
    wait_until(Duration::from_secs(10), || {
        status = serve.try_wait().unwrap();
        status.is_some()
    });
    let _ = serve.kill();
    assert!(status.is_some_and(|s| s.success()), "a clean stop: {status:?}\n{}", output());
    // Nothing was written into the root.
    let left: Vec<_> = std::fs::read_dir(root.path()).unwrap().filter_map(Result::ok).collect();
    assert_eq!(left.len(), 1, "only the binary: {left:?}");
}
