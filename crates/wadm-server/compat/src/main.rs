//! Drives a real `wadm serve` (the binary in $WADM_BIN) on a fresh `nats-server -js` with the
//! ecosystem's `wadm-client` 0.10 and checks every call it makes decodes and behaves. Exit status
//! 0 when every check passes; each failure is printed.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use wadm_client::{Client, ClientConnectOptions};

const MANIFEST: &str = r#"apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: compat
  annotations:
    version: v0.0.1
    description: "compatibility check"
spec:
  components:
    - name: hello
      type: component
      properties:
        image: ghcr.io/wasmcloud/components/http-hello-world-rust:0.1.0
      traits:
        - type: spreadscaler
          properties:
            instances: 1
        - type: link
          properties:
            target:
              name: httpserver
            namespace: wasi
            package: http
            interfaces: [incoming-handler]
    - name: httpserver
      type: capability
      properties:
        image: ghcr.io/wasmcloud/http-server:0.23.0
"#;

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::main]
async fn main() {
    let wadm = std::env::var("WADM_BIN").expect("WADM_BIN names the wadm binary");
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let store = std::env::temp_dir().join(format!("wadm-compat-{port}"));
    let _nats = Kill(
        Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(&store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server on PATH"),
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let url = format!("nats://127.0.0.1:{port}");
    let _wadm = Kill(
        Command::new(&wadm)
            .args(["serve", "--nats-url", &url])
            .env("RUST_LOG", "warn")
            .spawn()
            .expect("wadm runs"),
    );
    let options = ClientConnectOptions { url: Some(url), ..Default::default() };
    let client = Client::new("default", None, options).await.expect("client connects");

    let mut failures = Vec::new();
    let mut check = |name: &str, ok: bool, detail: String| {
        println!("{} {name} {detail}", if ok { "ok  " } else { "FAIL" });
        if !ok {
            failures.push(name.to_string());
        }
    };

    // Wait for the server to answer.
    let deadline = Instant::now() + Duration::from_secs(30);
    let listed = loop {
        match client.list_manifests().await {
            Ok(l) => break Ok(l),
            Err(e) if Instant::now() > deadline => break Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    check("list (empty)", matches!(&listed, Ok(l) if l.is_empty()), format!("{listed:?}"));

    let put = client.put_manifest(MANIFEST.as_bytes()).await;
    check("put", matches!(&put, Ok((n, v)) if n == "compat" && v == "v0.0.1"), format!("{put:?}"));
    let v2 = MANIFEST.replace("v0.0.1", "v0.0.2");
    let put = client.put_manifest(v2.as_bytes()).await;
    check("put v2", put.is_ok(), format!("{put:?}"));
    let listed = client.list_manifests().await;
    check(
        "list",
        matches!(&listed, Ok(l) if l.len() == 1 && l[0].name == "compat"),
        format!("{listed:?}"),
    );
    let got = client.get_manifest("compat", Some("v0.0.1")).await;
    check(
        "get version",
        matches!(&got, Ok(m) if m.version() == "v0.0.1"),
        format!("{:?}", got.as_ref().map(|m| m.version().to_string())),
    );
    let versions = client.list_versions("compat").await;
    check("versions", matches!(&versions, Ok(v) if v.len() == 2), format!("{versions:?}"));

    let mut status_updates = client.subscribe_to_status("compat").await.expect("subscribe");
    let deployed = client.deploy_manifest("compat", None).await;
    check(
        "deploy latest",
        matches!(&deployed, Ok((_, Some(v))) if v == "v0.0.2"),
        format!("{deployed:?}"),
    );
    let update = tokio::time::timeout(Duration::from_secs(10), status_updates.next()).await;
    let decoded = update
        .ok()
        .flatten()
        .map(|m| serde_json::from_slice::<wadm_types::api::Status>(&m.payload));
    check("status published and decodes", matches!(decoded, Some(Ok(_))), format!("{decoded:?}"));
    let status = client.get_manifest_status("compat").await;
    check("status", status.is_ok(), format!("{status:?}"));
    let rollback = client.deploy_manifest("compat", Some("v0.0.1")).await;
    check(
        "rollback",
        matches!(&rollback, Ok((_, Some(v))) if v == "v0.0.1"),
        format!("{rollback:?}"),
    );
    // Idempotent apply: the same deploy again, and the same manifest put again, succeed.
    let again = client.deploy_manifest("compat", Some("v0.0.1")).await;
    check(
        "deploy again (unchanged)",
        matches!(&again, Ok((_, Some(v))) if v == "v0.0.1"),
        format!("{again:?}"),
    );
    let again = client.put_manifest(MANIFEST.as_bytes()).await;
    check(
        "put again (unchanged)",
        matches!(&again, Ok((n, v)) if n == "compat" && v == "v0.0.1"),
        format!("{again:?}"),
    );
    let versions = client.list_versions("compat").await;
    check("no new version", matches!(&versions, Ok(v) if v.len() == 2), format!("{versions:?}"));
    let undeployed = client.undeploy_manifest("compat").await;
    check("undeploy", undeployed.is_ok(), format!("{undeployed:?}"));
    let missing = client.get_manifest("nope", None).await;
    check(
        "get missing is NotFound",
        matches!(missing, Err(wadm_client::error::ClientError::NotFound(_))),
        format!("{missing:?}"),
    );
    let deleted = client.delete_manifest("compat", Some("v0.0.1")).await;
    check("delete version", matches!(deleted, Ok(true)), format!("{deleted:?}"));
    let deleted = client.delete_manifest("compat", None).await;
    check("delete all", matches!(deleted, Ok(true)), format!("{deleted:?}"));
    let deleted = client.delete_manifest("compat", None).await;
    check("delete again is noop", matches!(deleted, Ok(false)), format!("{deleted:?}"));

    let _ = std::fs::remove_dir_all(&store);
    if failures.is_empty() {
        println!("wadm-client 0.10: all checks passed");
    } else {
        eprintln!("wadm-client 0.10: {} check(s) failed: {}", failures.len(), failures.join(", "));
        std::process::exit(1);
    }
}
