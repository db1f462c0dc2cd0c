//! The HTTP API of `wadm serve --http-addr … --http-token …`, as a process on a real NATS with
//! simulated hosts: writes need the token (refused ones store nothing), a deploy made over HTTP
//! converges on the hosts, every read equals the NATS API's reply, the event stream reports the
//! status and placement changes, oversized and malformed requests are refused with a reason,
//! and every route the OpenAPI file documents is served.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::served::{LATTICE, serve_with_hosts};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wadm_sim::SimLattice;
use wadm_test_support::wait_for;

const HELLO: &str = include_str!("../../../examples/hello.yaml");
const OPENAPI: &str = include_str!("../../../docs/openapi.json");
const TOKEN: &str = "s3cret-token";
const DEADLINE: Duration = Duration::from_secs(60);

/// One HTTP/1.1 request over a fresh connection: the status code and the body.
async fn request(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
) -> (u16, String) {
    request_with(addr, method, path, token, content_type, &[], body).await
}

/// [`request`] with more headers.
async fn request_with(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    extra: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connects");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if let Some(content_type) = content_type {
        head.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    for (name, value) in extra {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    // The server may answer (413) before reading all of a large body.
    let _ = stream.write_all(body).await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, body.to_string())
}

async fn get(addr: &str, path: &str) -> (u16, serde_json::Value) {
    let (code, body) = request(addr, "GET", path, None, None, b"").await;
    let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"));
    (code, json)
}

/// The NATS API's reply to `{wadm.api}.{lattice}.model.{operation}`, as JSON.
async fn nats_api(nats: &async_nats::Client, operation: &str) -> serde_json::Value {
    let subject = format!("wadm.api.{LATTICE}.model.{operation}");
    let reply = nats.request(subject, "".into()).await.expect("NATS API answers");
    serde_json::from_slice(&reply.payload).expect("JSON reply")
}

/// Instances of the hello component the simulated hosts run, by their own inventories.
fn hello_instances(sim: &SimLattice) -> u32 {
    sim.hosts()
        .iter()
        .filter_map(|h| sim.host_state(h))
        .flat_map(|s| s.components.into_values())
        .filter(|c| c.image_ref.contains("http-hello-world"))
        .map(|c| c.count)
        .sum()
}

/// A hosts reply without the fields that change with the clock and every heartbeat.
fn timeless(mut reply: serde_json::Value) -> serde_json::Value {
    for host in reply["hosts"].as_array_mut().into_iter().flatten() {
        let host = host.as_object_mut().unwrap();
        host.remove("uptime_seconds");
        host.remove("last_seen");
    }
    reply
}

/// Collect everything an event-stream connection receives.
async fn follow_events(addr: String) -> Arc<Mutex<String>> {
    let seen = Arc::new(Mutex::new(String::new()));
    let mut stream = tokio::net::TcpStream::connect(&addr).await.expect("connects");
    let head = format!("GET /api/v1/lattices/{LATTICE}/events HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let into = seen.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
            into.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_api_deploys_answers_as_the_nats_api_and_streams_changes() {
    let served =
        serve_with_hosts(&["--http-token", TOKEN, "--max-request-bytes", "16384"], 2).await;
    let (addr, sim, serve) = (served.addr.clone(), &served.sim, &served.wadm);
    assert!(!serve.output().contains(TOKEN), "the token is never printed");
    let url = served.nats_server.url();
    let nats = async_nats::connect(&url).await.unwrap();
    let apps = format!("/api/v1/lattices/{LATTICE}/apps");
    // The API answers once wadm has set up.
    let listed = wait_for(DEADLINE, || async {
        let (code, body) = request(&addr, "GET", &apps, None, None, b"").await;
        (code == 200).then_some(body)
    })
    .await;
    assert!(listed.is_some(), "the app list answers: {}", serve.output());
    let events = follow_events(addr.clone()).await;

    // Writes without the token, or with a wrong one, are refused and store nothing.
    let yaml = Some("application/yaml");
    let (code, body) = request(&addr, "POST", &apps, None, yaml, HELLO.as_bytes()).await;
    assert_eq!(code, 401, "{body}");
    let (code, body) = request(&addr, "POST", &apps, Some("wrong"), yaml, HELLO.as_bytes()).await;
    assert_eq!(code, 401, "{body}");
    assert!(!body.contains(TOKEN));
    let stored = nats_api(&nats, "get").await;
    assert_eq!(stored["models"], serde_json::json!([]), "refused writes stored nothing");

    // Malformed and oversized manifests: refused with the reason, nothing stored.
    let (code, body) =
        request(&addr, "POST", &apps, Some(TOKEN), yaml, b"apiVersion: [unclosed").await;
    assert_eq!(code, 400, "{body}");
    let reply: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reply["result"], "error");
    let huge = format!("{HELLO}\n#{}\n", "x".repeat(20_000));
    let (code, _) = request(&addr, "POST", &apps, Some(TOKEN), yaml, huge.as_bytes()).await;
    assert_eq!(code, 413, "a body over --max-request-bytes");
    let (code, body) =
        request(&addr, "POST", &apps, Some(TOKEN), Some("image/png"), HELLO.as_bytes()).await;
    assert_eq!(code, 415, "{body}");
    assert_eq!(nats_api(&nats, "get").await["models"], serde_json::json!([]));

    // Put and deploy over HTTP; the hosts run it.
    let (code, body) = request(&addr, "POST", &apps, Some(TOKEN), yaml, HELLO.as_bytes()).await;
    assert_eq!(code, 201, "{body}");
    let put: serde_json::Value = serde_json::from_str(&body).unwrap();
    let name = put["name"].as_str().expect("the reply names the app").to_string();
    let app = format!("{apps}/{name}");
    let (code, body) =
        request(&addr, "POST", &format!("{app}/deploy"), Some(TOKEN), None, b"").await;
    assert_eq!(code, 200, "{body}");
    let running = wait_for(DEADLINE, || {
        let n = hello_instances(sim);
        async move { (n == 1).then_some(()) }
    })
    .await;
    assert!(running.is_some(), "the hosts run the deployed component: {}", serve.output());
    let deployed = wait_for(DEADLINE, || async {
        let (_, status) = get(&addr, &format!("{app}/status")).await;
        (status["status"]["status"]["type"] == "deployed").then_some(status)
    })
    .await;
    assert!(deployed.is_some(), "the status over HTTP turns deployed");

    // The same again: nothing new (200, unchanged); a stale expected revision is refused.
    let (code, body) = request(&addr, "POST", &apps, Some(TOKEN), yaml, HELLO.as_bytes()).await;
    assert_eq!(code, 200, "{body}");
    let again: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (&again["unchanged"], &again["current_version"]),
        (&true.into(), &put["current_version"])
    );
    let (code, body) =
        request(&addr, "POST", &format!("{app}/deploy"), Some(TOKEN), None, b"").await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(r#""unchanged":true"#), "{body}");
    let stale = [("Wadm-Expected-Revision", "0")];
    let changed = HELLO.replace("instances: 1", "instances: 2");
    let (code, body) =
        request_with(&addr, "POST", &apps, Some(TOKEN), yaml, &stale, changed.as_bytes()).await;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("not the expected revision 0"), "{body}");

    // Every read equals the NATS API's own reply.
    for (path, operation) in [
        (apps.clone(), "get".to_string()),
        (app.clone(), format!("get.{name}")),
        (format!("{app}/versions"), format!("versions.{name}")),
        (format!("{app}/status"), format!("status.{name}")),
        (format!("{app}/history"), format!("history.{name}")),
        (format!("{app}/plan"), format!("plan.{name}")),
    ] {
        let (code, over_http) = get(&addr, &path).await;
        assert_eq!(code, 200, "GET {path}: {over_http}");
        assert_eq!(over_http, nats_api(&nats, &operation).await, "GET {path}");
    }
    // The lattice view too (less what moves with the clock and the heartbeats).
    let lattices = get(&addr, "/api/v1/lattices").await;
    let direct = nats.request("wadm.api.lattices", "".into()).await.expect("lattices answer");
    assert_eq!(lattices, (200, serde_json::from_slice(&direct.payload).unwrap()));
    let hosts_subject = format!("wadm.api.{LATTICE}.lattice.hosts");
    for (query, body) in
        [("", String::new()), (&*format!("?app={name}"), format!(r#"{{"app":"{name}"}}"#))]
    {
        let (code, over_http) =
            get(&addr, &format!("/api/v1/lattices/{LATTICE}/hosts{query}")).await;
        assert_eq!(code, 200, "{over_http}");
        let direct = nats.request(hosts_subject.clone(), body.into()).await.expect("hosts answer");
        let direct: serde_json::Value = serde_json::from_slice(&direct.payload).unwrap();
        assert_eq!(timeless(over_http.clone()), timeless(direct), "hosts{query}");
        let runs: u64 = over_http["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|h| h["components"].as_array().unwrap().iter())
            .filter_map(|c| c["instances"].as_u64())
            .sum();
        assert_eq!(runs, u64::from(hello_instances(sim)), "hosts{query}: {over_http}");
    }
    let (_, plan) = get(&addr, &format!("{app}/plan")).await;
    assert_eq!(plan["changed"], false, "the deployed version, converged, plans nothing: {plan}");
    let (_, history) = get(&addr, &format!("{app}/history")).await;
    assert!(
        history.to_string().contains("http:127.0.0.1"),
        "the history names the HTTP caller: {history}"
    );

    // The event stream saw the status turn deployed, the component placed and wadm's allocations.
    let streamed = wait_for(DEADLINE, || {
        let text = events.lock().unwrap().clone();
        let ok = text.contains("event: status")
            && text.contains("\"deployed\"")
            && text.contains("event: placement")
            && text.contains("component_scaled")
            && text.contains("event: allocation")
            && text.contains("com.wadm.allocation");
        async move { ok.then_some(()) }
    })
    .await;
    assert!(streamed.is_some(), "events: {}", events.lock().unwrap());

    // Open dashboards cannot take every connection: past the event-stream limit a new stream
    // is refused at once, and health and API requests are still answered.
    let mut open = vec![events.clone()];
    while open.len() < 32
    /* http_api::MAX_EVENT_STREAMS */
    {
        open.push(follow_events(addr.clone()).await);
    }
    let answered = wait_for(DEADLINE, || {
        let all = open.iter().all(|seen| seen.lock().unwrap().starts_with("HTTP/1.1 200"));
        async move { all.then_some(()) }
    })
    .await;
    assert!(answered.is_some(), "every stream up to the limit is served");
    let refused = tokio::time::timeout(
        DEADLINE,
        request(&addr, "GET", "/api/v1/lattices/default/events", None, None, b""),
    )
    .await
    .ok()
    .and_then(|(code, body)| (code == 503).then_some(body));
    assert!(refused.is_some_and(|b| b.contains("too many event streams")));
    let (code, _) = request(&addr, "GET", "/readyz", None, None, b"").await;
    assert_eq!(code, 200, "readiness answers beside the open streams");
    let (code, _) = get(&addr, &apps).await;
    assert_eq!(code, 200, "the API answers beside the open streams");
    drop(open);

    // Unknown apps and impossible names.
    let (code, body) = get(&addr, &format!("{apps}/missing")).await;
    assert_eq!(code, 404, "{body}");
    let (code, body) = get(&addr, &format!("/api/v1/lattices/{LATTICE}/apps/a.b")).await;
    assert_eq!(code, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("application name"), "{body}");

    let (code, _) = request(&addr, "GET", &format!("{app}/deploy"), None, None, b"").await;
    assert_eq!(code, 405, "deploy is a POST");
    let (code, _) = request(&addr, "GET", &format!("{app}/nothing"), None, None, b"").await;
    assert_eq!(code, 404);

    // Undeploy over HTTP: the hosts run nothing of it.
    let (code, body) =
        request(&addr, "POST", &format!("{app}/undeploy"), Some(TOKEN), None, b"").await;
    assert_eq!(code, 200, "{body}");
    let stopped = wait_for(DEADLINE, || {
        let n = hello_instances(sim);
        async move { (n == 0).then_some(()) }
    })
    .await;
    assert!(stopped.is_some(), "undeploy stops the component on the hosts");

    // A shared application in use is refused, naming its user; `?force=true` proceeds.
    let lib = "apiVersion: core.oam.dev/v1beta1\nkind: Application\nmetadata:\n  name: http-lib\n  \
               annotations:\n    version: v1\n    experimental.wasmcloud.dev/shared: \"true\"\nspec:\n  \
               components:\n    - name: c\n      type: component\n      properties:\n        \
               image: ghcr.io/example/lib:1.0.0\n      traits:\n        - type: spreadscaler\n          \
               properties:\n            instances: 1\n";
    let user = "apiVersion: core.oam.dev/v1beta1\nkind: Application\nmetadata:\n  name: http-user\n  \
                annotations:\n    version: v1\nspec:\n  components:\n    - name: r\n      \
                type: component\n      properties:\n        application:\n          \
                name: http-lib\n          component: c\n";
    for (manifest, name) in [(lib, "http-lib"), (user, "http-user")] {
        let (code, body) =
            request(&addr, "POST", &apps, Some(TOKEN), yaml, manifest.as_bytes()).await;
        assert_eq!(code, 201, "{body}");
        let deploy = format!("{apps}/{name}/deploy");
        let (code, body) = request(&addr, "POST", &deploy, Some(TOKEN), None, b"").await;
        assert_eq!(code, 200, "{body}");
    }
    let lib_path = format!("{apps}/http-lib");
    for (method, path) in [("POST", format!("{lib_path}/undeploy")), ("DELETE", lib_path.clone())] {
        let (code, body) = request(&addr, method, &path, Some(TOKEN), None, b"").await;
        assert_eq!(code, 400, "{method} {path}: {body}");
        assert!(body.contains("used by deployed applications: http-user"), "{body}");
    }
    let (code, body) =
        request(&addr, "DELETE", &format!("{lib_path}?force=maybe"), Some(TOKEN), None, b"").await;
    assert_eq!(code, 400, "{body}");
    let forced = format!("{lib_path}/undeploy?force=true");
    let (code, body) = request(&addr, "POST", &forced, Some(TOKEN), None, b"").await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("forced: http-user left waiting"), "{body}");

    // Every documented route is served (not the router's fallback, not a wrong method).
    let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
    for (template, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys().filter(|m| *m != "parameters") {
            let path = template.replace("{lattice}", LATTICE).replace("{name}", &name);
            if path.ends_with("/events") {
                continue; // a stream: checked above
            }
            let body: &[u8] = if path == apps { HELLO.as_bytes() } else { b"" };
            let (code, text) =
                request(&addr, &method.to_uppercase(), &path, Some(TOKEN), yaml, body).await;
            assert!(
                code != 405 && text != "not found\n",
                "{method} {path} is served: {code} {text}"
            );
        }
    }
    let (code, _) = request(&addr, "GET", "/api/v1/undocumented", None, None, b"").await;
    assert_eq!(code, 404);
    served.sim.shutdown().await;
}
