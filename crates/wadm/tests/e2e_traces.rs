//! `wadm serve --otel-endpoint` as a process, exporting to a collector this test runs (an HTTP
//! listener that records each OTLP/HTTP JSON request): a deploy on simulated hosts gives one
//! trace per step that decided commands — the step (with the events that caused it), one
//! decision span per command, and one send span per attempt with the host's reply — linked by
//! trace and parent ids, one send per control request the hosts actually received.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::served::{LATTICE, serve_with_hosts};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wadm_test_support::{hello_manifest, wait_for};

const DEADLINE: Duration = Duration::from_secs(60);

/// Accept OTLP/HTTP requests on `listener` and keep every span they carry.
fn collect(listener: tokio::net::TcpListener, spans: Arc<Mutex<Vec<Value>>>) {
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let spans = spans.clone();
            tokio::spawn(async move {
                let mut data = Vec::new();
                let mut buf = [0u8; 16 * 1024];
                loop {
                    let Ok(n) = stream.read(&mut buf).await else { return };
                    if n == 0 {
                        return;
                    }
                    data.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&data).to_string();
                    let Some((head, body)) = text.split_once("\r\n\r\n") else { continue };
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if body.len() < length {
                        continue;
                    }
                    assert!(head.starts_with("POST /v1/traces "), "{head}");
                    let request: Value = serde_json::from_str(body).expect("OTLP JSON");
                    let resource = &request["resourceSpans"][0];
                    assert_eq!(
                        resource["resource"]["attributes"][0]["value"]["stringValue"],
                        "wadm"
                    );
                    let batch =
                        resource["scopeSpans"][0]["spans"].as_array().cloned().unwrap_or_default();
                    spans.lock().unwrap().extend(batch);
                    let _ =
                        stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}").await;
                    return;
                }
            });
        }
    });
}

fn attr<'a>(span: &'a Value, key: &str) -> Option<&'a str> {
    span["attributes"].as_array()?.iter().find(|a| a["key"] == key)?["value"]["stringValue"]
        .as_str()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_is_traced_from_its_events_to_each_command_and_reply() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let spans = Arc::new(Mutex::new(Vec::new()));
    collect(listener, spans.clone());
    let served = serve_with_hosts(&["--otel-endpoint", &endpoint], 2).await;

    // Every control request the hosts receive, counted on the wire.
    let nats = async_nats::connect(served.nats_server.url()).await.unwrap();
    let mut requests = nats.subscribe(format!("wasmbus.ctl.v1.{LATTICE}.>")).await.unwrap();
    let received = Arc::new(Mutex::new(Vec::<String>::new()));
    let into = received.clone();
    tokio::spawn(async move {
        use futures::StreamExt;
        while let Some(m) = requests.next().await {
            // Commands, not the queries wadm makes to observe (host.get, link.get, …).
            let command = [
                ".component.scale.",
                ".component.update.",
                ".provider.start.",
                ".provider.stop.",
                ".link.put",
                ".link.del",
                ".config.put.",
                ".config.del.",
            ];
            if command.iter().any(|c| m.subject.as_str().contains(c)) {
                into.lock().unwrap().push(m.subject.to_string());
            }
        }
    });

    let client = wadm_client::Client::new(nats.clone(), LATTICE, None);
    let put =
        client.put_manifest(hello_manifest("traced", "v1", 3).into_bytes(), None).await.unwrap();
    client.deploy(&put.name, None).await.unwrap();
    let deployed = wait_for(DEADLINE, || async {
        let s = client.status("traced").await.ok()?;
        (s.status.status_type == wadm_model::StatusType::Deployed).then_some(())
    })
    .await;
    assert!(deployed.is_some(), "{}", served.wadm.output());

    // The sends are exported soon after they end.
    let sends = wait_for(DEADLINE, || {
        let sent = received.lock().unwrap().len();
        let spans = spans.lock().unwrap().clone();
        async move {
            let sends: Vec<Value> = spans
                .into_iter()
                .filter(|s| s["name"].as_str().is_some_and(|n| n.starts_with("wadm.send ")))
                .collect();
            (sent > 0 && sends.len() >= sent).then_some(sends)
        }
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "send spans for every request {:?}: {:#?}",
            received.lock().unwrap(),
            spans.lock().unwrap()
        )
    });
    let all = spans.lock().unwrap().clone();
    let by_id: BTreeMap<&str, &Value> =
        all.iter().map(|s| (s["spanId"].as_str().unwrap(), s)).collect();
    let sent = received.lock().unwrap().clone();
    assert_eq!(sends.len(), sent.len(), "one send span per request the hosts received: {sent:?}");
    for send in &sends {
        assert_eq!(send["kind"], 3, "a send is a client span");
        assert_eq!(send["status"]["code"], 1, "{send}");
        assert_eq!(attr(send, "wadm.outcome"), Some("accepted"), "{send}");
        let subject = attr(send, "messaging.destination.name").unwrap();
        assert!(sent.iter().any(|s| s == subject), "{subject} was received");
        // send → its decision → the step, all in one trace.
        let decision = by_id[send["parentSpanId"].as_str().expect("a send has a parent")];
        assert!(decision["name"].as_str().unwrap().starts_with("wadm.decide "), "{decision}");
        assert_eq!(decision["traceId"], send["traceId"]);
        assert_eq!(attr(decision, "wadm.app"), Some("traced"));
        assert_eq!(attr(decision, "wadm.command"), attr(send, "wadm.command"));
        let step = by_id[decision["parentSpanId"].as_str().expect("a decision has a parent")];
        assert_eq!(step["name"], "wadm.step");
        assert_eq!(step["traceId"], send["traceId"]);
        assert!(step.get("parentSpanId").is_none(), "the step starts the trace");
        assert_eq!(attr(step, "wadm.lattice"), Some(LATTICE));
        assert!(attr(step, "wadm.event_kinds").is_some_and(|k| !k.is_empty()), "{step}");
        let starts = |s: &Value| s["startTimeUnixNano"].as_str().unwrap().parse::<u128>().unwrap();
        assert!(starts(step) <= starts(decision) && starts(decision) <= starts(send));
    }
    served.sim.shutdown().await;
}
