//! End to end: the built `wadm` binary's `app` subcommands against the real API server (started
//! in-process on a real NATS): output, JSON that parses, exit codes, one-line errors.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use wadm_server::{Server, ServerConfig};
use wadm_test_support::NatsServer;

/// A NATS server, optionally with wadm serving the API on it, and a directory for manifests.
struct Env {
    nats: NatsServer,
    lattice: String,
    dir: tempfile::TempDir,
    _stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Env {
    async fn with_wadm(lattice: &str) -> Env {
        let mut env = Env::without_wadm(lattice);
        let conn = async_nats::connect(env.nats.url()).await.unwrap();
        // A short host probe: a deploy on this host-less lattice turns `waiting` quickly.
        let config =
            ServerConfig { probe_window: Duration::from_millis(300), ..ServerConfig::default() };
        let server = Server::start(conn, config).await.unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        env._stop = Some(stop);
        env
    }

    fn without_wadm(lattice: &str) -> Env {
        Env {
            nats: NatsServer::start(),
            lattice: lattice.to_string(),
            dir: tempfile::tempdir().unwrap(),
            _stop: None,
        }
    }

    /// Write a manifest file and return its path.
    fn manifest(&self, file: &str, name: &str, version: &str) -> PathBuf {
        let path = self.dir.path().join(file);
        std::fs::write(&path, manifest(name, version)).unwrap();
        path
    }

    /// Run `wadm app <args…>` against this environment.
    async fn app(&self, args: &[&str]) -> Run {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_wadm"))
            .arg("app")
            .args(args)
            .env("WADM_NATS_URL", self.nats.url())
            .env("WADM_LATTICE", &self.lattice)
            .env("RUST_BACKTRACE", "1")
            .output()
            .await
            .unwrap();
        Run::from(output)
    }
}

/// The shared hello manifest with 3 instances (tests below count and change them).
fn manifest(name: &str, version: &str) -> String {
    wadm_test_support::hello_manifest(name, version, 3)
}

/// A finished command.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    #[track_caller]
    fn ok(&self) -> &Self {
        assert_eq!(self.code, 0, "stdout: {}\nstderr: {}", self.stdout, self.stderr);
        self
    }

    #[track_caller]
    fn json(&self) -> Value {
        self.ok();
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }

    /// Failed with `code` and exactly one line on stderr, starting `error:`, no backtrace.
    #[track_caller]
    fn failed(&self, code: i32) -> &str {
        assert_eq!(self.code, code, "stdout: {}\nstderr: {}", self.stdout, self.stderr);
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line expected: {}", self.stderr);
        assert!(lines[0].starts_with("error: "), "{}", self.stderr);
        assert!(!self.stderr.contains("panicked") && !self.stderr.contains("backtrace"));
        lines[0]
    }
}

/// A YAML document as JSON, read as the server reads manifests.
fn yaml_value(text: &str) -> Value {
    let limits = wadm_model::Limits::default();
    wadm_model::document_value(text.as_bytes(), wadm_model::Format::Yaml, &limits).unwrap()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subcommand_in_a_lifecycle() {
    let env = Env::with_wadm("cli-life").await;
    let v1 = env.manifest("v1.yaml", "shop", "v1");
    let v2 = env.manifest("v2.yaml", "shop", "v2");

    let put = env.app(&["put", path(&v1)]).await;
    assert!(put.ok().stdout.contains("shop version v1"), "{}", put.stdout);
    let put = env.app(&["put", path(&v2), "-o", "json"]).await.json();
    assert_eq!(
        (put["result"].as_str(), put["total_versions"].as_u64()),
        (Some("newversion"), Some(2))
    );

    let table = env.app(&["list"]).await;
    let mut lines = table.ok().stdout.lines();
    assert!(lines.next().unwrap().starts_with("NAME"), "{}", table.stdout);
    assert!(lines.next().unwrap().starts_with("shop "), "{}", table.stdout);
    let list = env.app(&["list", "--output", "json"]).await.json();
    assert_eq!(list[0]["name"], "shop");
    assert_eq!(list[0]["version"], "v2");

    let yaml = env.app(&["get", "shop", "--version", "v1"]).await;
    assert!(yaml.ok().stdout.contains("name: shop"), "{}", yaml.stdout);
    let got = env.app(&["get", "shop", "-o", "json"]).await.json();
    assert_eq!(got["metadata"]["annotations"]["version"], "v2");

    let versions = env.app(&["versions", "shop", "-o", "json"]).await.json();
    assert_eq!(
        versions,
        serde_json::json!([
            {"version": "v1", "deployed": false}, {"version": "v2", "deployed": false}
        ])
    );

    let deployed = env.app(&["deploy", "shop", "--version", "v1"]).await;
    assert!(deployed.ok().stdout.contains("Deployed shop version v1"), "{}", deployed.stdout);
    let versions = env.app(&["versions", "shop"]).await;
    assert!(versions.ok().stdout.lines().any(|l| l.starts_with("v1") && l.ends_with("yes")));

    let status = env.app(&["status", "shop", "-o", "json"]).await.json();
    let kind = status["status"]["type"].as_str().unwrap().to_string();
    assert!(["reconciling", "waiting"].contains(&kind.as_str()), "{status}");
    let status = env.app(&["status", "shop"]).await;
    assert!(status.ok().stdout.starts_with("shop: "), "{}", status.stdout);

    // Undeploy by file: the name comes from the manifest.
    env.app(&["undeploy", path(&v2)]).await.ok();
    let status = env.app(&["status", "shop", "-o", "json"]).await.json();
    assert_eq!(status["status"]["type"], "undeployed");

    let history = env.app(&["history", "shop", "-o", "json"]).await.json();
    let actions: Vec<&str> =
        history.as_array().unwrap().iter().map(|h| h["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["put", "put", "deploy", "undeploy"]);
    let table = env.app(&["history", "shop"]).await;
    assert!(table.ok().stdout.starts_with("AT"), "{}", table.stdout);

    let deleted = env.app(&["delete", "shop", "--version", "v1", "-o", "json"]).await.json();
    assert_eq!(deleted["result"], "deleted");
    let deleted = env.app(&["delete", path(&v1)]).await;
    assert!(deleted.ok().stdout.contains("Deleted shop"), "{}", deleted.stdout);
    let noop = env.app(&["delete", "shop"]).await;
    assert!(noop.ok().stdout.contains("Nothing to delete"), "{}", noop.stdout);
    let empty = env.app(&["list"]).await;
    assert_eq!(empty.ok().stdout.trim(), "No applications");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_and_api_errors_exit_1() {
    let env = Env::with_wadm("cli-errors").await;
    for args in [
        &["status", "ghost"][..],
        &["get", "ghost"],
        &["versions", "ghost"],
        &["deploy", "ghost"],
        &["history", "ghost", "-o", "json"],
    ] {
        let line = env.app(args).await.failed(1).to_string();
        assert!(line.contains("ghost"), "{args:?}: {line}");
    }
    let bad = env.dir.path().join("bad.yaml");
    std::fs::write(&bad, "metadata:\n  name: bad\nspec: {}\n").unwrap();
    env.app(&["put", path(&bad)]).await.failed(1);
    let v1 = env.manifest("app.yaml", "twice", "v1");
    env.app(&["put", path(&v1)]).await.ok();
    // The same file again stores nothing and succeeds; other content under v1 is refused.
    let again = env.app(&["put", path(&v1)]).await;
    assert!(again.ok().stdout.starts_with("Unchanged: twice version v1"), "{}", again.stdout);
    let other = env.dir.path().join("other.yaml");
    std::fs::write(&other, manifest("twice", "v1").replace("instances: 3", "instances: 9"))
        .unwrap();
    let line = env.app(&["put", path(&other)]).await.failed(1).to_string();
    assert!(line.contains("wadm error") && line.contains("version v1"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_a_file_in_one_step_and_again() {
    let env = Env::with_wadm("cli-file").await;
    let file = env.manifest("web.yaml", "web", "1.0.0");
    let run = env.app(&["deploy", path(&file)]).await;
    assert!(run.ok().stdout.contains("Deployed web version 1.0.0"), "{}", run.stdout);
    let versions = env.app(&["versions", "web", "-o", "json"]).await.json();
    assert_eq!(versions, serde_json::json!([{"version": "1.0.0", "deployed": true}]));
    // The same file again: already stored and deployed, so nothing changes, and it says so.
    let again = env.app(&["deploy", path(&file), "-o", "json"]).await.json();
    assert_eq!(again["result"], "acknowledged");
    assert_eq!(again["version"], "1.0.0");
    assert_eq!(again["unchanged"], true);
    // Only the normal form differs (an alias, a default written out): the same, exit 0.
    let respelt = env.dir.path().join("web-respelt.yaml");
    let text = manifest("web", "1.0.0")
        .replace("type: component", "type: actor")
        .replace("instances: 3", "replicas: 3");
    std::fs::write(&respelt, text).unwrap();
    let run = env.app(&["deploy", path(&respelt)]).await;
    assert!(
        run.ok().stdout.contains("Unchanged: web version 1.0.0 is already deployed"),
        "{}",
        run.stdout
    );
    assert!(run.stderr.contains("already stored"), "{}", run.stderr);
    // Different content under the same version is refused, naming the file and the version.
    let changed = env.dir.path().join("web-changed.yaml");
    std::fs::write(&changed, manifest("web", "1.0.0").replace("instances: 3", "instances: 4"))
        .unwrap();
    let line = env.app(&["deploy", path(&changed)]).await.failed(1).to_string();
    assert!(line.contains("web-changed.yaml"), "{line}");
    assert!(
        line.contains("version 1.0.0 of application web already exists with different content"),
        "{line}"
    );
    let versions = env.app(&["versions", "web", "-o", "json"]).await.json();
    assert_eq!(versions, serde_json::json!([{"version": "1.0.0", "deployed": true}]));
    let history = env.app(&["history", "web", "-o", "json"]).await.json();
    assert_eq!(history.as_array().unwrap().len(), 2, "{history}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_versionless_file_deployed_again_makes_no_new_version() {
    let env = Env::with_wadm("cli-versionless").await;
    let file = env.dir.path().join("nover.yaml");
    let text = manifest("nover", "x").replace("  annotations:\n    version: x\n", "");
    assert!(!text.contains("version"), "{text}");
    std::fs::write(&file, &text).unwrap();
    env.app(&["deploy", path(&file)]).await.ok();
    let first = env.app(&["versions", "nover", "-o", "json"]).await.json();
    assert_eq!(first.as_array().unwrap().len(), 1);
    for _ in 0..2 {
        let run = env.app(&["deploy", path(&file)]).await;
        assert!(run.ok().stdout.starts_with("Unchanged: nover version"), "{}", run.stdout);
    }
    let put = env.app(&["put", path(&file), "-o", "json"]).await.json();
    assert_eq!(put["unchanged"], true);
    assert_eq!(env.app(&["versions", "nover", "-o", "json"]).await.json(), first);
    // A change does make a new version.
    std::fs::write(&file, text.replace("instances: 3", "instances: 2")).unwrap();
    let run = env.app(&["deploy", path(&file)]).await;
    assert!(run.ok().stdout.starts_with("Deployed nover version"), "{}", run.stdout);
    let now = env.app(&["versions", "nover", "-o", "json"]).await.json();
    assert_eq!(now.as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_returns_what_was_put() {
    let env = Env::with_wadm("cli-get").await;
    // JSON, in its own layout and key order, with aliases and defaults written out.
    let json = r#"{"kind": "Application", "apiVersion": "core.oam.dev/v1beta1",
  "metadata": {"name": "as-put", "annotations": {"version": "v1", "description": "mine"}},
  "spec": {"components": [
    {"name": "web", "type": "actor", "properties": {"image": "ghcr.io/example/web:1"},
     "traits": [{"type": "spreadscaler", "properties": {"replicas": 2,
       "spread": [{"name": "all", "requirements": {}, "weight": 100}]}}]},
    {"name": "kv", "type": "capability", "properties": {"image": "ghcr.io/example/kv:1"},
     "traits": [{"type": "spreadscaler", "properties": {"instances": 1}}]}]}}
"#;
    let file = env.dir.path().join("as-put.json");
    std::fs::write(&file, json).unwrap();
    env.app(&["put", path(&file)]).await.ok();
    let got = env.app(&["get", "as-put", "-o", "json"]).await;
    assert_eq!(got.ok().stdout, json, "byte for byte");
    assert!(got.stderr.is_empty(), "{}", got.stderr);

    // YAML: the same document back (parsed-equal; here byte for byte too), revision on stderr.
    let yaml = manifest("as-yaml", "v1").replace("type: component", "type: actor");
    let file = env.dir.path().join("as-yaml.yaml");
    std::fs::write(&file, &yaml).unwrap();
    env.app(&["put", path(&file)]).await.ok();
    let got = env.app(&["get", "as-yaml"]).await;
    let parsed = yaml_value(&got.ok().stdout);
    assert_eq!(parsed, yaml_value(&yaml));
    assert_eq!(got.stdout, yaml);
    assert!(got.stderr.contains("application revision 1"), "{}", got.stderr);
    // As JSON: the same document, converted.
    let got = env.app(&["get", "as-yaml", "-o", "json"]).await.json();
    assert_eq!(got, yaml_value(&yaml));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expected_revision_that_moved_is_refused() {
    let env = Env::with_wadm("cli-revision").await;
    let v1 = env.manifest("v1.yaml", "rev", "v1");
    let put = env.app(&["put", path(&v1), "--expect-revision", "0", "-o", "json"]).await.json();
    assert_eq!(put["revision"], 1);
    let versions = env.app(&["versions", "rev"]).await;
    assert!(versions.ok().stdout.ends_with("Revision: 1\n"), "{}", versions.stdout);
    // Someone else stores v2 meanwhile.
    let v2 = env.manifest("v2.yaml", "rev", "v2");
    env.app(&["put", path(&v2)]).await.ok();
    let line = env.app(&["deploy", "rev", "--expect-revision", "1"]).await.failed(1).to_string();
    assert!(line.contains("at revision 2, not the expected revision 1"), "{line}");
    let v3 = env.manifest("v3.yaml", "rev", "v3");
    let line = env.app(&["put", path(&v3), "--expect-revision", "1"]).await.failed(1).to_string();
    assert!(line.contains("at revision 2"), "{line}");
    let line =
        env.app(&["deploy", path(&v3), "--expect-revision", "1"]).await.failed(1).to_string();
    assert!(line.contains("v3.yaml") && line.contains("at revision 2"), "{line}");
    let versions = env.app(&["versions", "rev", "-o", "json"]).await.json();
    assert_eq!(versions.as_array().unwrap().len(), 2, "nothing was stored: {versions}");
    // With the current revision: stored and deployed (the deploy expects what the put left).
    let run = env.app(&["deploy", path(&v3), "--expect-revision", "2"]).await;
    assert!(run.ok().stdout.contains("Deployed rev version v3"), "{}", run.stdout);
    let versions = env.app(&["versions", "rev"]).await;
    assert!(versions.ok().stdout.ends_with("Revision: 4\n"), "{}", versions.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_corpus_manifest_put_again_is_unchanged() {
    let env = Env::with_wadm("cli-corpus").await;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/manifests");
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.retain(|p| p.extension().is_some_and(|e| e == "yaml"));
    files.sort();
    assert!(files.len() >= 8, "{files:?}");
    for file in &files {
        let first = env.app(&["put", path(file), "-o", "json"]).await.json();
        let again = env.app(&["put", path(file), "-o", "json"]).await.json();
        assert_eq!(again["unchanged"], true, "{file:?}: {again}");
        assert_eq!(again["current_version"], first["current_version"], "{file:?}");
        assert_eq!(again["revision"], first["revision"], "{file:?}");
        let name = first["name"].as_str().unwrap();
        let got = env.app(&["get", name, "-o", "json"]).await.json();
        let text = std::fs::read_to_string(file).unwrap();
        let mut expected = yaml_value(&text);
        let version = first["current_version"].clone();
        expected["metadata"]["annotations"]["version"] = version;
        assert_eq!(got, expected, "{file:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_wait_times_out_without_hosts() {
    let env = Env::with_wadm("cli-wait").await;
    let file = env.manifest("slow.yaml", "slow", "v1");
    let run = env.app(&["deploy", path(&file), "--wait", "--timeout", "3s"]).await;
    assert_eq!(run.code, 1, "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    let last = run.stderr.lines().last().unwrap();
    assert!(last.starts_with("error: timed out after 3s waiting for slow"), "{}", run.stderr);
    assert!(last.contains("waiting"), "{}", run.stderr);
    // Progress was shown while waiting.
    assert!(run.stderr.contains("slow: waiting"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_problems_exit_2() {
    let env = Env::without_wadm("cli-none");
    let line = env.app(&["list"]).await.failed(2).to_string();
    assert!(line.contains("is wadm running"), "{line}");
    let timeout = env.app(&["status", "x", "--timeout", "300ms"]).await;
    timeout.failed(2);

    let unreachable = tokio::process::Command::new(env!("CARGO_BIN_EXE_wadm"))
        .args(["app", "list", "--nats-url", "nats://127.0.0.1:1"])
        .output()
        .await
        .unwrap();
    let line = Run::from(unreachable).failed(2).to_string();
    assert!(line.contains("cannot connect to NATS"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_problems_exit_2() {
    let env = Env::without_wadm("cli-usage");
    let line = env.app(&["deploy", "./missing.yaml"]).await.failed(2).to_string();
    assert!(line.contains("missing.yaml"), "{line}");
    env.app(&["put", "/nonexistent/app.yaml"]).await.failed(2);
    env.app(&["status", "a.b"]).await.failed(2);
    let bad_flag = env.app(&["list", "--output", "xml"]).await;
    assert_eq!(bad_flag.code, 2, "{}", bad_flag.stderr);
    // Connection options are checked before connecting, by the shared wadm-nats module.
    let line = env.app(&["list", "--nats-jwt", "eyJ"]).await.failed(2).to_string();
    assert!(line.contains("needs an nkey seed"), "{line}");
    let line = env.app(&["list", "--nats-seed", "SUnot-a-seed"]).await.failed(2).to_string();
    assert!(line.contains("invalid NATS nkey seed") && !line.contains("SUnot"), "{line}");
}

/// Publish `status` for `app` as the scheduler does (on the status subject, retained by the
/// server's status stream), once the server has reported `waiting` for the deploy.
async fn publish_when_waiting(env: &Env, app: &str, status: serde_json::Value) {
    let conn = async_nats::connect(env.nats.url()).await.unwrap();
    let client = wadm_client::Client::new(conn.clone(), env.lattice.clone(), None);
    let waiting = wadm_test_support::wait_for(Duration::from_secs(20), || async {
        let s = client.status(app).await.ok()?;
        (s.status.status_type == wadm_client::StatusType::Waiting).then_some(())
    })
    .await;
    assert!(waiting.is_some(), "the deploy never reached waiting");
    let subject = format!("wadm.status.{}.{app}", env.lattice);
    conn.publish(subject, serde_json::to_vec(&status).unwrap().into()).await.unwrap();
    conn.flush().await.unwrap();
}

fn scaler(name: &str, kind: &str, message: &str) -> serde_json::Value {
    serde_json::json!({"id": format!("{kind}-{name}"), "kind": "SpreadScaler", "name": name,
        "status": {"type": kind, "message": message}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_wait_succeeds_when_deployed_and_fails_when_failed() {
    let env = Env::with_wadm("cli-wait-end").await;
    let file = env.manifest("ok.yaml", "ok", "v1");
    let args = ["deploy", path(&file), "--wait", "--timeout", "30s"];
    let (run, ()) = tokio::join!(
        env.app(&args),
        publish_when_waiting(
            &env,
            "ok",
            serde_json::json!({
                "status": {"type": "deployed"},
                "scalers": [scaler("hello", "deployed", "3/3 instances running")],
            })
        ),
    );
    assert_eq!(run.code, 0, "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    assert!(run.stdout.contains("Deployed ok version v1: deployed"), "{}", run.stdout);
    // Progress per scaler, with running/wanted instances.
    assert!(run.stderr.lines().any(|l| l.contains("hello") && l.contains("3/3")), "{}", run.stderr);

    let file = env.manifest("bad.yaml", "bad", "v1");
    let args = ["deploy", path(&file), "--wait", "--timeout", "30s"];
    let (run, ()) = tokio::join!(
        env.app(&args),
        publish_when_waiting(
            &env,
            "bad",
            serde_json::json!({
                "status": {"type": "failed", "message": "spread default needs 3 instances, 0 eligible hosts"},
                "scalers": [scaler("hello", "failed", "spread default needs 3 instances, 0 eligible hosts")],
            })
        ),
    );
    assert_eq!(run.code, 1, "stdout: {}\nstderr: {}", run.stdout, run.stderr);
    let last = run.stderr.lines().last().unwrap();
    assert!(last.starts_with("error: deployment of bad failed: spread default"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_reads_stdin() {
    use tokio::io::AsyncWriteExt;
    let env = Env::with_wadm("cli-stdin").await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_wadm"))
        .args(["app", "put", "-", "-o", "json", "--nats-url", &env.nats.url()])
        .args(["--lattice", &env.lattice])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(manifest("piped", "v7").as_bytes()).await.unwrap();
    drop(stdin);
    let put = Run::from(child.wait_with_output().await.unwrap()).json();
    assert_eq!(
        (put["name"].as_str(), put["current_version"].as_str()),
        (Some("piped"), Some("v7"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lattice_and_prefix_options_select_the_api() {
    let env = Env::with_wadm("cli-iso-a").await;
    let file = env.manifest("a.yaml", "only-in-a", "v1");
    env.app(&["put", path(&file)]).await.ok();
    let here = env.app(&["list", "-o", "json"]).await.json();
    assert_eq!(here.as_array().unwrap().len(), 1);
    // The flag overrides WADM_LATTICE.
    let other = env.app(&["--lattice", "cli-iso-b", "list", "-o", "json"]).await.json();
    assert_eq!(other, serde_json::json!([]));
    let line = env.app(&["list", "--api-prefix", "nobody.api"]).await.failed(2).to_string();
    assert!(line.contains("nobody.api.cli-iso-a.model.get"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_app_in_use_is_undeployed_or_deleted_only_with_force() {
    let env = Env::with_wadm("cli-shared").await;
    let lib = env.dir.path().join("lib.yaml");
    let shared = manifest("lib", "v1").replace(
        "    version: v1",
        "    version: v1\n    experimental.wasmcloud.dev/shared: \"true\"",
    );
    assert!(shared.contains("wasmcloud.dev/shared"), "{shared}");
    std::fs::write(&lib, shared).unwrap();
    let user = env.dir.path().join("user.yaml");
    let first = yaml_value(&manifest("lib", "v1"));
    let component = first["spec"]["components"][0]["name"].as_str().unwrap().to_string();
    std::fs::write(
        &user,
        format!(
            "apiVersion: core.oam.dev/v1beta1\nkind: Application\nmetadata:\n  name: user\n  \
             annotations:\n    version: v1\nspec:\n  components:\n    - name: ref\n      \
             type: component\n      properties:\n        application:\n          name: lib\n          \
             component: {component}\n"
        ),
    )
    .unwrap();
    env.app(&["deploy", path(&lib)]).await.ok();
    env.app(&["deploy", path(&user)]).await.ok();
    for args in
        [&["undeploy", "lib"][..], &["delete", "lib"], &["delete", "lib", "--version", "v1"]]
    {
        let line = env.app(args).await.failed(1).to_string();
        assert!(
            line.contains("shared application lib is used by deployed applications: user"),
            "{args:?}: {line}"
        );
    }
    let forced = env.app(&["undeploy", "lib", "--force"]).await;
    assert_eq!(forced.ok().stdout.trim(), "Undeployed lib (forced: user left waiting for it)");
    env.app(&["deploy", "lib"]).await.ok();
    let deleted = env.app(&["delete", "lib", "--force"]).await;
    assert!(
        deleted.ok().stdout.contains("(forced: user left waiting for it)"),
        "{}",
        deleted.stdout
    );
}

/// A scaler status with its instance counts, as the scheduler publishes it.
fn counted(name: &str, kind: &str, message: &str, running: u64, target: u64) -> serde_json::Value {
    let mut scaler = scaler(name, kind, message);
    scaler["status"]["instances"] = serde_json::json!({"running": running, "target": target});
    scaler
}

/// Poll `wadm app <args>` until its stdout satisfies `done`; the last stdout either way.
async fn app_until(env: &Env, args: &[&str], done: impl Fn(&str) -> bool) -> String {
    let last = std::sync::Mutex::new(String::new());
    let found = wadm_test_support::wait_for(Duration::from_secs(20), || async {
        let run = env.app(args).await;
        run.ok();
        *last.lock().unwrap() = run.stdout.clone();
        done(&run.stdout).then_some(())
    })
    .await;
    let last = last.into_inner().unwrap();
    assert!(found.is_some(), "`wadm app {}` never showed it:\n{last}", args.join(" "));
    last
}

/// The INSTANCES cell of the row that begins with `first` in a table.
fn instances_cell(table: &str, first: &str) -> Option<String> {
    let mut lines = table.lines().skip_while(|l| !l.contains("INSTANCES"));
    let header = lines.next()?;
    let column = header.split_whitespace().position(|c| c == "INSTANCES")?;
    let row = lines.find(|l| l.split_whitespace().next() == Some(first))?;
    row.split_whitespace().nth(column).map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_show_running_of_target_in_every_state() {
    let env = Env::with_wadm("cli-instances").await;
    let file = env.manifest("shop.yaml", "shop", "v1");
    // Deployed on a lattice without hosts: waiting. The scheduler's status then: two of five
    // instances held by one scaler (its message says nothing of instances), none of three
    // placed by the other.
    let waiting = serde_json::json!({
        "status": {"type": "waiting", "message": "no hosts in lattice cli-instances"},
        "scalers": [
            counted("web", "waiting", "no hosts in lattice cli-instances", 2, 5),
            counted("db", "waiting", "waiting for config creds", 0, 3),
            scaler("link", "deployed", ""),
        ],
    });
    env.app(&["deploy", path(&file)]).await.ok();
    // The server's own word on a lattice without hosts: none of the manifest's three.
    let shown = app_until(&env, &["status", "shop"], |out| out.contains("no hosts")).await;
    assert!(shown.starts_with("shop: waiting, 0/3 instances (no hosts in lattice"), "{shown}");
    let list = app_until(&env, &["list"], |out| out.contains("0/3")).await;
    assert_eq!(instances_cell(&list, "shop").as_deref(), Some("0/3"), "{list}");
    // Then the scheduler's, per scaler.
    publish_when_waiting(&env, "shop", waiting).await;
    let shown =
        app_until(&env, &["status", "shop"], |out| out.contains("waiting for config")).await;
    assert!(shown.starts_with("shop: waiting, 2/8 instances ("), "{shown}");
    assert_eq!(instances_cell(&shown, "web").as_deref(), Some("2/5"), "{shown}");
    assert_eq!(instances_cell(&shown, "db").as_deref(), Some("0/3"), "{shown}");
    assert_eq!(instances_cell(&shown, "link").as_deref(), Some("-"), "{shown}");
    let list = app_until(&env, &["list"], |out| out.contains("2/8")).await;
    assert_eq!(instances_cell(&list, "shop").as_deref(), Some("2/8"), "{list}");

    // Rolling out: the message counts hosts done, the column instances running.
    let rolling = serde_json::json!({
        "status": {"type": "reconciling", "message": "rolling out img:2: 3/8 hosts done, 2 changing (at most 2 at once), 3 waiting"},
        "scalers": [counted("web", "reconciling", "rolling out img:2: 3/8 hosts done, 2 changing (at most 2 at once), 3 waiting", 6, 8)],
    });
    let conn = async_nats::connect(env.nats.url()).await.unwrap();
    let subject = format!("wadm.status.{}.shop", env.lattice);
    conn.publish(subject, serde_json::to_vec(&rolling).unwrap().into()).await.unwrap();
    conn.flush().await.unwrap();
    let shown = app_until(&env, &["status", "shop"], |out| out.contains("rolling out")).await;
    assert!(shown.starts_with("shop: reconciling, 6/8 instances ("), "{shown}");
    assert_eq!(instances_cell(&shown, "web").as_deref(), Some("6/8"), "{shown}");
    let json = env.app(&["status", "shop", "-o", "json"]).await.json();
    assert_eq!(
        json["scalers"][0]["status"]["instances"],
        serde_json::json!({"running": 6, "target": 8})
    );
}
