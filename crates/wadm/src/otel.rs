//! Export of wadm's trace spans (see [`wadm_runtime::trace`]) to an OpenTelemetry collector
//! over OTLP/HTTP with JSON bodies (`POST {endpoint}/v1/traces`), enabled by
//! `--otel-endpoint`. Spans are queued without blocking (at most [`QUEUE`]; beyond that they
//! are dropped and counted), sent as they come in batches of up to [`BATCH`] spans, and a
//! collector that is down costs a logged warning, never wadm's work. Plain `http://` only: run
//! a collector (or agent) next to wadm for TLS to the backend.

use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use wadm_runtime::trace::{FinishedSpan, SpanExporter};

/// Spans waiting to be sent, at most.
const QUEUE: usize = 8192;
/// Spans per request, at most.
const BATCH: usize = 512;
/// How long one export request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The flag that turns traces on.
#[derive(clap::Args, Debug, Clone)]
pub struct OtelArgs {
    /// Send traces (an event → the commands decided on it → each send and the host's reply) to
    /// this OpenTelemetry collector, OTLP/HTTP JSON, e.g. `http://127.0.0.1:4318`. Off when not
    /// given.
    #[arg(long, env = "WADM_OTEL_ENDPOINT", value_name = "URL")]
    pub otel_endpoint: Option<String>,
}

/// Where to POST: host:port for the connection, and the request path.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    authority: String,
    path: String,
}

fn target(endpoint: &str) -> anyhow::Result<Target> {
    let Some(rest) = endpoint.strip_prefix("http://") else {
        bail!(
            "--otel-endpoint {endpoint:?}: only http:// is supported (run a collector next to wadm for TLS)"
        );
    };
    let (authority, base) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    if authority.is_empty() || authority.contains('@') {
        bail!("--otel-endpoint {endpoint:?}: expected http://host:port[/path]");
    }
    let authority =
        if authority.contains(':') { authority.to_string() } else { format!("{authority}:4318") };
    let base = base.trim_end_matches('/');
    let path =
        if base.is_empty() { "/v1/traces".to_string() } else { format!("/{base}/v1/traces") };
    Ok(Target { authority, path })
}

struct Exporter {
    queue: mpsc::Sender<FinishedSpan>,
}

impl SpanExporter for Exporter {
    fn export(&self, span: FinishedSpan) {
        if self.queue.try_send(span).is_err() {
            metrics::counter!("wadm_trace_spans_dropped_total").increment(1);
        }
    }
}

/// Start exporting spans to `endpoint` (within the current tokio runtime), as `service_name`.
pub fn start(endpoint: &str, service_name: &str) -> anyhow::Result<()> {
    let target = target(endpoint)?;
    let (queue, mut spans) = mpsc::channel(QUEUE);
    wadm_runtime::trace::install(Box::new(Exporter { queue }));
    let resource = json!({ "attributes": [
        attribute("service.name", service_name),
        attribute("service.version", env!("CARGO_PKG_VERSION")),
    ]});
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(BATCH);
        let mut warned = false;
        loop {
            // Whatever is queued, up to a batch; waits only when nothing is.
            let closed = spans.recv_many(&mut batch, BATCH).await == 0;
            if !batch.is_empty() {
                let body = encode(&resource, &batch).to_string();
                match tokio::time::timeout(REQUEST_TIMEOUT, post(&target, &body)).await {
                    Ok(Ok(())) => warned = false,
                    failed => {
                        let why = match failed {
                            Ok(Err(e)) => format!("{e:#}"),
                            _ => "timed out".to_string(),
                        };
                        if !warned {
                            tracing::warn!(endpoint = %target.authority, error = %why, spans = batch.len(), "trace export failed; spans dropped");
                            warned = true;
                        }
                    }
                }
                batch.clear();
            }
            if closed {
                return;
            }
        }
    });
    Ok(())
}

fn attribute(key: &str, value: &str) -> Value {
    json!({ "key": key, "value": { "stringValue": value } })
}

fn unix_nanos(t: SystemTime) -> String {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos()).to_string()
}

/// The OTLP JSON request body of `spans` (ids in hex, times as decimal strings).
fn encode(resource: &Value, spans: &[FinishedSpan]) -> Value {
    let spans: Vec<Value> = spans
        .iter()
        .map(|s| {
            let mut span = json!({
                "traceId": format!("{:032x}", s.trace_id),
                "spanId": format!("{:016x}", s.span_id),
                "name": s.name,
                // SPAN_KIND_INTERNAL = 1, SPAN_KIND_CLIENT = 3
                "kind": if s.client { 3 } else { 1 },
                "startTimeUnixNano": unix_nanos(s.start),
                "endTimeUnixNano": unix_nanos(s.end),
                "attributes": s.attributes.iter().map(|(k, v)| attribute(k, v)).collect::<Vec<_>>(),
                // STATUS_CODE_OK = 1, STATUS_CODE_ERROR = 2
                "status": match &s.error {
                    Some(why) => json!({ "code": 2, "message": why }),
                    None => json!({ "code": 1 }),
                },
            });
            if let Some(parent) = s.parent_span_id {
                span["parentSpanId"] = json!(format!("{parent:016x}"));
            }
            span
        })
        .collect();
    json!({ "resourceSpans": [{
        "resource": resource,
        "scopeSpans": [{ "scope": { "name": "wadm" }, "spans": spans }],
    }]})
}

/// One POST over a fresh connection; an error unless the collector answers 2xx.
async fn post(target: &Target, body: &str) -> anyhow::Result<()> {
    let mut stream = tokio::net::TcpStream::connect(&target.authority)
        .await
        .with_context(|| format!("cannot connect to {}", target.authority))?;
    let request = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        target.path,
        target.authority,
        body.len()
    );
    stream.write_all(request.as_bytes()).await.context("sending spans")?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head).await.context("reading the collector's answer")?;
    let status = String::from_utf8_lossy(&head[..n]);
    let code = status.split(' ').nth(1).unwrap_or("");
    if !code.starts_with('2') {
        bail!("the collector answered {code:?}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_become_a_connection_and_a_path() {
        let t = |e: &str| target(e).map_err(|e| e.to_string());
        assert_eq!(
            t("http://127.0.0.1:4318").unwrap(),
            Target { authority: "127.0.0.1:4318".into(), path: "/v1/traces".into() }
        );
        assert_eq!(
            t("http://collector/otlp/").unwrap(),
            Target { authority: "collector:4318".into(), path: "/otlp/v1/traces".into() }
        );
        assert!(t("https://collector:4318").unwrap_err().contains("only http://"));
        assert!(t("http://user:secret@collector").is_err());
        assert!(t("collector:4318").is_err());
    }

    #[test]
    fn spans_encode_as_otlp_json() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_000);
        let span = FinishedSpan {
            trace_id: 0xab,
            span_id: 0xcd,
            parent_span_id: Some(0xef),
            name: "wadm.send scale_component".into(),
            client: true,
            start,
            end: start + Duration::from_nanos(500),
            attributes: vec![("wadm.host", "N1".into())],
            error: Some("refused".into()),
        };
        let body = encode(&json!({}), &[span]);
        let s = &body["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(s["traceId"], "000000000000000000000000000000ab");
        assert_eq!(s["spanId"], "00000000000000cd");
        assert_eq!(s["parentSpanId"], "00000000000000ef");
        assert_eq!(s["kind"], 3);
        assert_eq!(s["startTimeUnixNano"], "1000");
        assert_eq!(s["endTimeUnixNano"], "1500");
        assert_eq!(s["status"], json!({ "code": 2, "message": "refused" }));
        assert_eq!(
            s["attributes"][0],
            json!({ "key": "wadm.host", "value": { "stringValue": "N1" } })
        );
    }
}
