//! The shared NATS connection flags of `wadm serve`, `wadm app` and `wadm sim`, run as processes
//! against real `nats-server`s: user and password, token, TLS with a client certificate, a
//! JetStream domain — and no secret in any output of a failed connection or of `--help`.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::child::Wadm;
use wadm_test_support::{NatsServer, tls_fixture, wait_until};

const WADM: &str = env!("CARGO_BIN_EXE_wadm");

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// `wadm args…` to completion, with `envs` and none of the caller's `WADM_*` connection settings.
fn wadm(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = Command::new(WADM);
    // The most verbose logs: not even they may show a secret.
    command.args(args).env("RUST_LOG", "trace");
    for name in ["WADM_NATS_URL", "WADM_NATS_USER", "WADM_NATS_PASSWORD", "WADM_NATS_TOKEN"] {
        command.env_remove(name);
    }
    command.envs(envs.iter().copied()).output().expect("wadm runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Start `wadm serve` with `connection` flags and wait until `wadm app list` with the same flags
/// succeeds (so both connected and were authorised).
fn serve_and_list(connection: &[&str]) -> Wadm {
    let mut args = vec!["serve", "--lattice", "default"];
    args.extend_from_slice(connection);
    let serve = Wadm::start(&args);
    let mut list = vec!["app", "list", "--timeout", "2s"];
    list.extend_from_slice(connection);
    let mut last = String::new();
    let listed = wait_until(Duration::from_secs(60), || {
        let output = wadm(&list, &[]);
        last = text(&output);
        output.status.success() || serve.output().contains("wadm serve:")
    });
    assert!(
        listed && !serve.output().contains("wadm serve:"),
        "serve: {}\nlist: {last}",
        serve.output()
    );
    serve
}

#[test]
fn user_and_password_flags_and_no_password_in_any_output() {
    let nats = NatsServer::start_with(strings(&["--user", "wadm", "--pass", "Right-pw-7431"]));
    let url = nats.url();
    let mut serve = serve_and_list(&[
        "--nats-url",
        &url,
        "--nats-user",
        "wadm",
        "--nats-password",
        "Right-pw-7431",
    ]);

    // Simulated hosts with the same flags.
    let mut sim = Wadm::start(&[
        "sim",
        "--nats-url",
        &url,
        "--hosts",
        "1",
        "--nats-user",
        "wadm",
        "--nats-password",
        "Right-pw-7431",
    ]);
    let started = wait_until(Duration::from_secs(30), || sim.output().contains("hosts on lattice"));
    assert!(started && !sim.output().contains("Right-pw-7431"), "{}", sim.output());
    let _ = sim.terminate(Duration::from_secs(10));
    let _ = serve.terminate(Duration::from_secs(10));

    let wrong = "Wrong-pw-9917";
    let wrong_url = format!("nats://wadm:{wrong}@127.0.0.1:{}", nats.port());
    type Run<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>);
    let bad_runs: Vec<Run> = vec![
        (
            vec![
                "app",
                "list",
                "--nats-url",
                &url,
                "--nats-user",
                "wadm",
                "--nats-password",
                wrong,
            ],
            vec![],
        ),
        (
            vec!["app", "list", "--nats-url", &url, "--nats-user", "wadm"],
            vec![("WADM_NATS_PASSWORD", wrong)],
        ),
        (
            vec!["serve", "--nats-url", &url, "--nats-user", "wadm", "--nats-password", wrong],
            vec![],
        ),
        (
            vec!["serve", "--nats-url", &url],
            vec![("WADM_NATS_USER", "wadm"), ("WADM_NATS_PASSWORD", wrong)],
        ),
        (vec!["sim", "--nats-url", &url, "--nats-user", "wadm", "--nats-password", wrong], vec![]),
        (vec!["sim"], vec![("WADM_NATS_URL", &wrong_url)]),
        (vec!["serve"], vec![("WADM_NATS_URL", &wrong_url)]),
        (vec!["app", "list", "--nats-url", &wrong_url], vec![]),
    ];
    for (args, envs) in bad_runs {
        let output = wadm(&args, &envs);
        let all = text(&output);
        assert!(!output.status.success(), "{args:?} fails: {all}");
        assert!(!all.contains(wrong), "{args:?} {envs:?} printed the password: {all}");
        assert!(all.to_lowercase().contains("authoriz"), "{args:?} says why: {all}");
        assert!(!all.contains("backtrace") && !all.contains("panicked"), "{all}");
    }
}

#[test]
fn help_never_shows_secret_values_from_the_environment() {
    let secrets = [
        ("WADM_NATS_PASSWORD", "env-password-5521"),
        ("WADM_NATS_TOKEN", "env-token-5522"),
        ("WADM_NATS_SEED", "env-seed-5523"),
        ("WADM_NATS_JWT", "env-jwt-5524"),
        ("WADM_NATS_URL", "nats://u:env-url-password-5525@127.0.0.1:1"),
    ];
    for command in [&["serve", "--help"][..], &["app", "list", "--help"], &["sim", "--help"]] {
        let output = wadm(command, &secrets);
        let all = text(&output);
        assert!(output.status.success(), "{all}");
        for (name, value) in secrets {
            assert!(all.contains(name), "{command:?} documents {name}");
            let secret = value.rsplit('-').next().unwrap();
            assert!(!all.contains(secret), "{command:?} shows {name}: {all}");
        }
        for flag in ["--nats-tls-cert", "--nats-tls-key", "--js-domain", "--nats-token"] {
            assert!(all.contains(flag), "{command:?} has {flag}");
        }
    }
}

#[test]
fn token_flag_and_token_in_the_url() {
    let nats = NatsServer::start_with(strings(&["--auth", "Tok-3381"]));
    let url = nats.url();
    let mut serve = serve_and_list(&["--nats-url", &url, "--nats-token", "Tok-3381"]);
    let in_url = format!("nats://Tok-3381@127.0.0.1:{}", nats.port());
    let output = wadm(&["app", "list", "--nats-url", &in_url], &[]);
    assert!(output.status.success(), "{}", text(&output));
    let output = wadm(&["app", "list", "--nats-url", &url, "--nats-token", "Bad-tok-1"], &[]);
    let all = text(&output);
    assert!(!output.status.success() && !all.contains("Bad-tok-1"), "{all}");
    let _ = serve.terminate(Duration::from_secs(10));
}

#[test]
fn tls_with_a_client_certificate() {
    let config = tempfile::NamedTempFile::new().unwrap();
    let path = |name: &str| tls_fixture(name).display().to_string();
    std::fs::write(
        config.path(),
        format!(
            "tls {{\n  cert_file: {:?}\n  key_file: {:?}\n  ca_file: {:?}\n  verify: true\n}}\n",
            path("server.pem"),
            path("server-key.pem"),
            path("ca.pem")
        ),
    )
    .unwrap();
    let nats = NatsServer::start_with(strings(&["-c", &config.path().display().to_string()]));
    let url = format!("tls://127.0.0.1:{}", nats.port());
    let (ca, cert, key) = (path("ca.pem"), path("client.pem"), path("client-key.pem"));
    let connection = [
        "--nats-url",
        &url,
        "--nats-tls-ca",
        &ca,
        "--nats-tls-cert",
        &cert,
        "--nats-tls-key",
        &key,
    ];
    let mut serve = serve_and_list(&connection);

    // Without the client certificate the server refuses the connection.
    let output = wadm(&["app", "list", "--nats-url", &url, "--nats-tls-ca", &ca], &[]);
    assert!(!output.status.success(), "{}", text(&output));
    // A key without its certificate is a usage error.
    let output = wadm(&["app", "list", "--nats-url", &url, "--nats-tls-key", &key], &[]);
    assert!(!output.status.success() && text(&output).contains("--nats-tls-cert"));
    // Simulated hosts connect the same way.
    let mut sim_args = vec!["sim", "--hosts", "1"];
    sim_args.extend_from_slice(&connection);
    let sim = Wadm::start(&sim_args);
    assert!(
        wait_until(Duration::from_secs(30), || sim.output().contains("hosts on lattice")),
        "{}",
        sim.output()
    );
    let _ = serve.terminate(Duration::from_secs(10));
}

#[test]
fn storage_lives_in_the_named_jetstream_domain() {
    // A hub with JetStream domain `hub` and a leaf node with its own JetStream (domain `leaf`):
    // wadm connected to the leaf with `--js-domain hub` keeps everything in the hub.
    let leaf_port = wadm_nats_server::free_port().unwrap();
    let hub_config = tempfile::NamedTempFile::new().unwrap();
    let hub_conf =
        format!("jetstream {{ domain: hub }}\nleafnodes {{ listen: \"127.0.0.1:{leaf_port}\" }}\n");
    std::fs::write(hub_config.path(), hub_conf).unwrap();
    let hub = NatsServer::start_with(strings(&["-c", &hub_config.path().display().to_string()]));
    let leaf_config = tempfile::NamedTempFile::new().unwrap();
    let leaf_conf = format!(
        "jetstream {{ domain: leaf }}\nleafnodes {{ remotes: [{{ url: \"nats://127.0.0.1:{leaf_port}\" }}] }}\n"
    );
    std::fs::write(leaf_config.path(), leaf_conf).unwrap();
    let leaf = NatsServer::start_with(strings(&["-c", &leaf_config.path().display().to_string()]));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = rt.block_on(async_nats::connect(leaf.url())).unwrap();
    // The leaf connection is up once the hub's JetStream answers through it.
    let linked = rt.block_on(wadm_test_support::wait_for(Duration::from_secs(30), || async {
        let hub_js = async_nats::jetstream::with_domain(client.clone(), "hub");
        hub_js.query_account().await.ok().map(|_| ())
    }));
    assert!(linked.is_some(), "the leaf node reaches the hub");

    let mut serve = serve_and_list(&["--nats-url", &leaf.url(), "--js-domain", "hub"]);
    rt.block_on(async {
        let hub_js = async_nats::jetstream::with_domain(client.clone(), "hub");
        hub_js
            .get_key_value(wadm_store::StoreNames::default().manifest_bucket())
            .await
            .expect("bucket in hub");
        hub_js
            .get_stream(wadm_store::StoreNames::default().events_stream())
            .await
            .expect("event stream in hub");
        let leaf_js = async_nats::jetstream::new(client);
        assert!(
            leaf_js.get_stream(wadm_store::StoreNames::default().events_stream()).await.is_err(),
            "not in leaf"
        );
        assert!(
            leaf_js
                .get_key_value(wadm_store::StoreNames::default().manifest_bucket())
                .await
                .is_err()
        );
    });
    let _ = serve.terminate(Duration::from_secs(10));
    drop(hub);
}

/// `wadm serve` as `user` on a server configured with `conf`, which must refuse it: it exits
/// non-zero within 10 s, prints no password, and its last line (returned) says why.
fn serve_is_refused_quickly(conf: &str, user: &str, password: &str, what: &str) -> String {
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), conf).unwrap();
    let nats = NatsServer::start_with(strings(&["-c", &config.path().display().to_string()]));
    let url = nats.url();
    let started = std::time::Instant::now();
    let output = wadm(
        &["serve", "--nats-url", &url, "--nats-user", user, "--nats-password", password],
        &[("RUST_LOG", "warn")],
    );
    let took = started.elapsed();
    let all = text(&output);
    eprintln!("wadm serve {what} exited after {took:?}:\n{all}");
    assert!(!output.status.success(), "{all}");
    assert!(took < Duration::from_secs(10), "took {took:?}: {all}");
    assert!(!all.contains(password), "the password leaked: {all}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    stderr.trim_end().lines().last().unwrap_or_default().to_string()
}

/// `wadm serve` as a user that may not use JetStream (may not publish to `$JS.API.>`): it
/// exits within seconds — not after a minute of requests that time out — with one line naming
/// the resource it could not set up and the missing JetStream permission, and no password.
#[test]
fn a_user_without_jetstream_permission_fails_fast_with_one_clear_line() {
    let conf = r#"
authorization {
  users = [
    { user: "nojs", password: "NoJs-pw-5521", permissions: { publish: { deny: ["$JS.API.>"] } } }
  ]
}
"#;
    let last =
        serve_is_refused_quickly(conf, "nojs", "NoJs-pw-5521", "without JetStream permission");
    assert!(last.starts_with("wadm serve: "), "{last}");
    assert!(last.contains("lacks JetStream permission"), "{last}");
    assert!(last.contains("bucket ") || last.contains("stream "), "names the resource: {last}");
}

/// An account without JetStream is refused as quickly, saying so.
#[test]
fn an_account_without_jetstream_fails_fast() {
    let conf = r#"
accounts {
  PLAIN { users = [ { user: "plain", password: "Plain-pw-8812" } ] }
}
"#;
    let last = serve_is_refused_quickly(conf, "plain", "Plain-pw-8812", "without JetStream");
    assert!(last.contains("JetStream is not enabled"), "{last}");
}
