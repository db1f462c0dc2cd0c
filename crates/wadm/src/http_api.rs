//! The HTTP API of `wadm serve` / `wadm up` (under `/api/v1` on the `--http-addr` listener): a
//! gateway onto the NATS API. Every resource is one NATS API request whose reply is returned
//! unchanged, so the two interfaces cannot disagree; the HTTP status follows the reply's
//! `result`. `/api/v1/events` is a server-sent-events stream of status and placement changes and
//! wadm's allocation events.
//!
//! Access: reads are open to loopback peers; every other peer, and every write, needs
//! `Authorization: Bearer <--http-token>`. Without a configured token, writes are refused.
//! The routes are described in `docs/openapi.json` (served at `/api/v1/openapi.json`); tests
//! check that file against the routes built here and against a running wadm.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use serde_json::json;
use wadm_model::api::EXPECTED_REVISION_HEADER;
use wadm_server::api::STALE_HEADER;

/// The OpenAPI description of the routes below.
pub const OPENAPI: &str = include_str!("../../../docs/openapi.json");

/// The header the NATS API reads the requester from (recorded in an application's history).
const ACTOR_HEADER: &str = "Wadm-Actor";

/// What the HTTP API needs to know.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// The NATS API prefix wadm serves (`--api-prefix`).
    pub prefix: String,
    /// The bearer token writes (and reads from other hosts) need; `None` refuses them.
    pub token: Option<String>,
    /// The largest request body accepted (as on the NATS API).
    pub max_request_bytes: usize,
    /// How long a NATS API request may take.
    pub request_timeout: Duration,
}

#[derive(Clone)]
struct Gateway {
    nats: async_nats::Client,
    settings: Arc<ApiSettings>,
    /// Event streams open at once (each holds a connection for its lifetime).
    streams: Arc<tokio::sync::Semaphore>,
}

/// The most event streams open at once: half the HTTP listener's connections, so open
/// dashboards never take the slots `/metrics`, `/readyz` and the API need. The listener ends
/// every connection after a minute; a browser's `EventSource` then reconnects by itself.
pub const MAX_EVENT_STREAMS: usize = 32;

/// The `/api/v1` routes, with their state.
pub fn routes(nats: async_nats::Client, settings: ApiSettings) -> Router {
    let limit = settings.max_request_bytes;
    let streams = Arc::new(tokio::sync::Semaphore::new(MAX_EVENT_STREAMS));
    let gateway = Gateway { nats, settings: Arc::new(settings), streams };
    Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/lattices", get(lattices))
        .route("/api/v1/lattices/{lattice}/hosts", get(hosts))
        .route("/api/v1/lattices/{lattice}/apps", get(list_apps).post(put_app))
        .route("/api/v1/lattices/{lattice}/plan", post(plan_manifest))
        .route("/api/v1/lattices/{lattice}/apps/{name}", get(get_app).delete(delete_app))
        .route("/api/v1/lattices/{lattice}/apps/{name}/{part}", get(app_read).post(app_action))
        .route("/api/v1/lattices/{lattice}/events", get(events))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(gateway)
}

/// Who is asking: the peer's address (inserted per connection) and the request's headers.
struct Caller<'a> {
    peer: Option<SocketAddr>,
    headers: &'a HeaderMap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

/// A request refused before it reaches the NATS API.
#[derive(Debug)]
struct Refusal {
    code: StatusCode,
    message: String,
}

impl Refusal {
    fn new(code: StatusCode, message: impl std::fmt::Display) -> Self {
        Self { code, message: message.to_string() }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        error(self.code, self.message)
    }
}

/// An error reply: `{"result":"error","message":…}`, the NATS API's own envelope.
fn error(code: StatusCode, message: impl std::fmt::Display) -> Response {
    let body = json!({ "result": "error", "message": message.to_string() }).to_string();
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Refuse the request unless the caller may do `access` given the configured `token`.
fn authorise(token: Option<&str>, caller: &Caller<'_>, access: Access) -> Result<(), Refusal> {
    let loopback = caller.peer.is_some_and(|p| p.ip().is_loopback());
    if access == Access::Read && loopback {
        return Ok(());
    }
    let Some(token) = token else {
        let what = match access {
            Access::Write => "writes are disabled: start wadm with --http-token to allow them",
            Access::Read => "reads from other hosts need a token: start wadm with --http-token",
        };
        return Err(Refusal::new(StatusCode::FORBIDDEN, what));
    };
    let given = caller
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(given) if same_secret(given.trim().as_bytes(), token.as_bytes()) => Ok(()),
        Some(_) => Err(Refusal::new(StatusCode::UNAUTHORIZED, "wrong bearer token")),
        None => Err(Refusal::new(
            StatusCode::UNAUTHORIZED,
            "this request needs an 'Authorization: Bearer <token>' header",
        )),
    }
}

impl Gateway {
    fn authorise(&self, caller: &Caller<'_>, access: Access) -> Result<(), Refusal> {
        authorise(self.settings.token.as_deref(), caller, access)
    }

    /// Send one NATS API request and turn its reply into the HTTP response.
    async fn forward(
        &self,
        caller: &Caller<'_>,
        subject: String,
        body: Bytes,
        content_type: Option<&str>,
        expected_revision: Option<&str>,
    ) -> Response {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(ACTOR_HEADER, actor(caller).as_str());
        if let Some(content_type) = content_type {
            headers.insert("Content-Type", content_type);
        }
        if let Some(revision) = expected_revision {
            headers.insert(EXPECTED_REVISION_HEADER, revision);
        }
        let request = async_nats::Request::new()
            .payload(body)
            .headers(headers)
            .timeout(Some(self.settings.request_timeout));
        match self.nats.send_request(subject, request).await {
            Ok(reply) => {
                let mut response = api_reply(&reply.payload);
                // A read answered from a replica that may lag says so here too.
                let stale = reply.headers.as_ref().and_then(|h| h.get(STALE_HEADER));
                if stale.is_some_and(|v| v.as_str() == "true") {
                    let name = header::HeaderName::from_static("wadm-stale");
                    response.headers_mut().insert(name, header::HeaderValue::from_static("true"));
                }
                response
            }
            Err(e) => match e.kind() {
                async_nats::RequestErrorKind::NoResponders => {
                    error(StatusCode::SERVICE_UNAVAILABLE, "no wadm answered the NATS API request")
                }
                async_nats::RequestErrorKind::TimedOut => {
                    error(StatusCode::GATEWAY_TIMEOUT, "wadm did not answer in time")
                }
                async_nats::RequestErrorKind::MaxPayloadExceeded => {
                    error(StatusCode::PAYLOAD_TOO_LARGE, "the request is larger than NATS accepts")
                }
                _ => error(StatusCode::BAD_GATEWAY, "the NATS API request failed"),
            },
        }
    }

    /// The NATS API subject; another account's lattice (`{account}.{lattice}`, account-scoped
    /// mode) is asked for behind its account token, as that account's requests arrive.
    fn subject(&self, lattice: &str, operation: &str, name: Option<&str>) -> String {
        let prefix = &self.settings.prefix;
        wadm_protocol::subject::scoped(lattice, |lattice| match name {
            Some(name) => format!("{prefix}.{lattice}.model.{operation}.{name}"),
            None if operation == HOSTS => format!("{prefix}.{lattice}.lattice.hosts"),
            None => format!("{prefix}.{lattice}.model.{operation}"),
        })
    }
}

/// Who the history records: `http:<peer address>`.
fn actor(caller: &Caller<'_>) -> String {
    match caller.peer {
        Some(peer) => format!("http:{}", peer.ip()),
        None => "http".to_string(),
    }
}

/// Compare secrets in time independent of where they differ.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = given.len() ^ expected.len();
    for (i, e) in expected.iter().enumerate() {
        diff |= usize::from(given.get(i).copied().unwrap_or(0) ^ e);
    }
    diff == 0
}

/// The NATS API's reply as the HTTP response: the body unchanged, the status from `result`.
fn api_reply(payload: &[u8]) -> Response {
    let result = serde_json::from_slice::<serde_json::Value>(payload).ok().and_then(|v| match v {
        // A put of content already stored (`unchanged`) created nothing.
        serde_json::Value::Object(map) if map.get("unchanged") == Some(&true.into()) => {
            Some("unchanged".to_owned())
        }
        serde_json::Value::Object(map) => {
            map.get("result").and_then(|r| r.as_str()).map(str::to_owned)
        }
        // `model.list` answers a bare array; every other reply is an envelope.
        serde_json::Value::Array(_) => Some("success".to_owned()),
        _ => None,
    });
    let code = match result.as_deref() {
        Some("created" | "newversion") => StatusCode::CREATED,
        Some("notfound") => StatusCode::NOT_FOUND,
        Some("error") => StatusCode::BAD_REQUEST,
        Some(_) => StatusCode::OK,
        None => return error(StatusCode::BAD_GATEWAY, "wadm answered something that is not JSON"),
    };
    (code, [(header::CONTENT_TYPE, "application/json")], payload.to_vec()).into_response()
}

/// Lattice and application names become subject tokens: refuse what cannot be one.
fn check_token(field: &str, value: &str) -> Result<(), Refusal> {
    let bad = value.is_empty()
        || value.len() > 256
        || value
            .chars()
            .any(|c| c == '.' || c == '*' || c == '>' || c.is_whitespace() || c.is_control());
    if bad {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            format!(
                "invalid {field} {value:?}: must be non-empty, at most 256 characters, without '.', '*', '>' or spaces"
            ),
        ));
    }
    Ok(())
}

/// A lattice in a path: a plain lattice name, or `{account}.{lattice}` of another account
/// (account-scoped mode; see [`wadm_protocol::subject::split_account`]).
fn check_lattice(lattice: &str) -> Result<(), Refusal> {
    let reason = match wadm_protocol::subject::split_account(lattice) {
        (Some(_), _) => wadm_protocol::names::scoped_lattice_error(lattice),
        (None, _) => wadm_protocol::names::lattice_error(lattice),
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            format!("invalid lattice {lattice:?}: {reason}"),
        )),
    }
}

/// The `version` query parameter, if any, as the `{"version": …}` body the NATS API takes.
fn version_body(uri: &Uri) -> Result<Bytes, Refusal> {
    Ok(match query_value(uri, "version")? {
        Some(v) => Bytes::from(json!({ "version": v }).to_string()),
        None => Bytes::new(),
    })
}

/// The query parameter `wanted` (the only one the route accepts), decoded.
fn query_value(uri: &Uri, wanted: &str) -> Result<Option<String>, Refusal> {
    Ok(query_values(uri, &[wanted])?.pop().flatten())
}

/// The query parameters `wanted` (the only ones the route accepts), decoded, in that order.
fn query_values(uri: &Uri, wanted: &[&str]) -> Result<Vec<Option<String>>, Refusal> {
    let mut found = vec![None; wanted.len()];
    let Some(query) = uri.query() else { return Ok(found) };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let Some(at) = wanted.iter().position(|w| *w == key) else {
            let accepted: Vec<String> = wanted.iter().map(|w| format!("'{w}'")).collect();
            let verb = if wanted.len() == 1 { "is" } else { "are" };
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "unknown query parameter {key:?} (only {} {verb} accepted)",
                    accepted.join(" and ")
                ),
            ));
        };
        let decoded = percent_decode(value).map_err(|reason| {
            Refusal::new(StatusCode::BAD_REQUEST, format!("query parameter '{key}': {reason}"))
        })?;
        found[at] = Some(decoded);
    }
    Ok(found)
}

/// A `force` query parameter: `true` (or bare `force`) or `false`.
fn force_flag(value: Option<String>) -> Result<bool, Refusal> {
    match value.as_deref() {
        None | Some("false") => Ok(false),
        Some("true" | "") => Ok(true),
        Some(other) => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            format!("query parameter 'force': {other:?} is neither true nor false"),
        )),
    }
}

/// `DELETE …/apps/{name}`'s query (`version`, `force`) as the `model.del` body.
fn delete_body(uri: &Uri) -> Result<Bytes, Refusal> {
    let mut values = query_values(uri, &["version", "force"])?;
    let force = force_flag(values.pop().flatten())?;
    let version = values.pop().flatten();
    Ok(match (version, force) {
        (None, false) => Bytes::new(),
        (version, false) => Bytes::from(json!({ "version": version }).to_string()),
        (version, true) => Bytes::from(json!({ "version": version, "force": true }).to_string()),
    })
}

/// Decode `%XX` escapes and `+` in a query value.
fn percent_decode(value: &str) -> Result<String, String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
                let byte = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
                out.push(byte.ok_or("bad %-escape")?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "not UTF-8".to_string())
}

/// The address of a connection's peer, inserted by the listener for every request.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

type Peer = Option<Extension<PeerAddr>>;

fn caller(peer: Peer, headers: &HeaderMap) -> Caller<'_> {
    Caller { peer: peer.map(|Extension(PeerAddr(addr))| addr), headers }
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// One NATS API request an application route makes.
struct ApiCall<'a> {
    access: Access,
    lattice: &'a str,
    operation: &'a str,
    name: Option<&'a str>,
    body: Bytes,
    content_type: Option<&'a str>,
}

impl<'a> ApiCall<'a> {
    fn read(lattice: &'a str, operation: &'a str, name: Option<&'a str>) -> Self {
        Self {
            access: Access::Read,
            lattice,
            operation,
            name,
            body: Bytes::new(),
            content_type: None,
        }
    }

    fn write(lattice: &'a str, operation: &'a str, name: Option<&'a str>, body: Bytes) -> Self {
        Self { access: Access::Write, ..Self::read(lattice, operation, name) }.with_body(body)
    }

    fn with_body(mut self, body: Bytes) -> Self {
        self.body = body;
        self
    }
}

/// The shared shape of every application route: authorise, check names, forward.
async fn app_request(
    gateway: &Gateway,
    peer: Peer,
    headers: &HeaderMap,
    call: ApiCall<'_>,
) -> Response {
    let caller = caller(peer, headers);
    let checked = gateway
        .authorise(&caller, call.access)
        .and_then(|()| check_lattice(call.lattice))
        .and_then(|()| call.name.map_or(Ok(()), |name| check_token("application name", name)));
    if let Err(refused) = checked {
        return refused.into_response();
    }
    let subject = gateway.subject(call.lattice, call.operation, call.name);
    // Passed on as is: the API checks it (on put and deploy).
    let expected = headers.get(EXPECTED_REVISION_HEADER).and_then(|v| v.to_str().ok());
    gateway.forward(&caller, subject, call.body, call.content_type, expected).await
}

type AppPath = Path<(String, String)>;

/// The operation name of the lattice view (`{prefix}.{lattice}.lattice.hosts`).
const HOSTS: &str = "lattice.hosts";

/// `GET /api/v1/lattices`: the lattices wadm observes (NATS `{prefix}.lattices`).
async fn lattices(State(g): State<Gateway>, peer: Peer, headers: HeaderMap) -> Response {
    let caller = caller(peer, &headers);
    if let Err(refused) = g.authorise(&caller, Access::Read) {
        return refused.into_response();
    }
    let subject = format!("{}.lattices", g.settings.prefix);
    g.forward(&caller, subject, Bytes::new(), None, None).await
}

/// `GET /api/v1/lattices/{lattice}/hosts[?app=NAME]`: every host with what it runs, or one
/// application's placement (NATS `{prefix}.{lattice}.lattice.hosts`).
async fn hosts(
    State(g): State<Gateway>,
    peer: Peer,
    headers: HeaderMap,
    Path(lattice): Path<String>,
    uri: Uri,
) -> Response {
    let body = match query_value(&uri, "app") {
        Ok(None) => Bytes::new(),
        Ok(Some(app)) => match check_token("application name", &app) {
            Ok(()) => Bytes::from(json!({ "app": app }).to_string()),
            Err(refused) => return refused.into_response(),
        },
        Err(refused) => return refused.into_response(),
    };
    app_request(&g, peer, &headers, ApiCall::read(&lattice, HOSTS, None).with_body(body)).await
}

async fn list_apps(
    State(g): State<Gateway>,
    peer: Peer,
    headers: HeaderMap,
    Path(lattice): Path<String>,
) -> Response {
    app_request(&g, peer, &headers, ApiCall::read(&lattice, "get", None)).await
}

/// The manifest's media type as the NATS API takes it (`None`: the server tries YAML, then
/// JSON).
fn manifest_type(headers: &HeaderMap) -> Result<Option<&'static str>, Refusal> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else { return Ok(None) };
    let value = value
        .to_str()
        .map_err(|_| Refusal::new(StatusCode::BAD_REQUEST, "Content-Type is not text"))?;
    match value.split(';').next().unwrap_or("").trim() {
        "application/json" => Ok(Some("application/json")),
        "application/yaml" | "application/x-yaml" | "text/yaml" => Ok(Some("application/yaml")),
        // Curl's default for -d: the body decides.
        "application/x-www-form-urlencoded" | "text/plain" => Ok(None),
        other => Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Type {other:?}: send application/yaml or application/json"),
        )),
    }
}

async fn put_app(
    State(g): State<Gateway>,
    peer: Peer,
    headers: HeaderMap,
    Path(lattice): Path<String>,
    body: Bytes,
) -> Response {
    manifest_request(&g, peer, &headers, ApiCall::write(&lattice, "put", None, body)).await
}

/// Forward a call whose body is a manifest (`put`, `plan`), with the Content-Type it came with.
async fn manifest_request(
    g: &Gateway,
    peer: Peer,
    headers: &HeaderMap,
    call: ApiCall<'_>,
) -> Response {
    match manifest_type(headers) {
        Ok(content_type) => app_request(g, peer, headers, ApiCall { content_type, ..call }).await,
        Err(refused) => refused.into_response(),
    }
}

async fn get_app(
    State(g): State<Gateway>,
    peer: Peer,
    headers: HeaderMap,
    Path((lattice, name)): AppPath,
    uri: Uri,
) -> Response {
    match version_body(&uri) {
        Ok(body) => {
            let call = ApiCall::read(&lattice, "get", Some(&name)).with_body(body);
            app_request(&g, peer, &headers, call).await
        }
        Err(refused) => refused.into_response(),
    }
}

async fn delete_app(
    State(g): State<Gateway>,
    peer: Peer,
    headers: HeaderMap,
    Path((lattice, name)): AppPath,
    uri: Uri,
) -> Response {
    match delete_body(&uri) {
        Ok(body) => {
            let call = ApiCall::write(&lattice, "del", Some(&name), body);
            app_request(&g, peer, &headers, call).await
        }
        Err(refused) => refused.into_response(),
    }
}

/// Reads of one application (`GET …/apps/{name}/{part}`), named as the NATS API's operations.
const APP_READS: &[&str] = &["versions", "status", "history", "plan"];
/// Actions on one application (`POST …/apps/{name}/{part}`).
const APP_ACTIONS: &[&str] = &["deploy", "undeploy", "promote", "rollback"];

/// 404 for a part that is neither, 405 for one used with the other method.
fn unknown_part(part: &str, other_method: &[&str]) -> Response {
    if other_method.contains(&part) {
        return error(StatusCode::METHOD_NOT_ALLOWED, format!("{part}: wrong method"));
    }
    error(StatusCode::NOT_FOUND, format!("no such resource of an application: {part:?}"))
}

async fn app_read(
    State(g): State<Gateway>,
    peer: Peer,
    headers: HeaderMap,
    Path((lattice, name, part)): Path<(String, String, String)>,
    uri: Uri,
) -> Response {
    let Some(operation) = APP_READS.iter().find(|read| **read == part) else {
        return unknown_part(&part, APP_ACTIONS);
    };
    // A plan names the version to plan as `?version=`, as `get` does.
    let body = if *operation == "plan" {
        match version_body(&uri) {
            Ok(body) => body,
            Err(refused) => return refused.into_response(),
        }
    } else {
        Bytes::new()
    };
    let call = ApiCall::read(&lattice, operation, Some(&name)).with_body(body);
    app_request(&g, peer, &headers, call).await
}

/// `POST …/plan`: what deploying the manifest in the body would do (nothing is stored, so it is
/// a read).
async fn plan_manifest(
    State(g): State<Gateway>,
    peer: Peer,
    headers: HeaderMap,
    Path(lattice): Path<String>,
    body: Bytes,
) -> Response {
    let call = ApiCall::read(&lattice, "plan", None).with_body(body);
    manifest_request(&g, peer, &headers, call).await
}

async fn app_action(
    State(g): State<Gateway>,
    peer: Peer,
    headers: HeaderMap,
    Path((lattice, name, part)): Path<(String, String, String)>,
    uri: Uri,
    body: Bytes,
) -> Response {
    let Some(operation) = APP_ACTIONS.iter().find(|action| **action == part) else {
        return unknown_part(&part, APP_READS);
    };
    // Deploy takes an optional {"version": …} as on the NATS API; undeploy only `?force=true`.
    // Promote and rollback take nothing.
    let body = match *operation {
        "deploy" => body,
        "promote" | "rollback" => Bytes::new(),
        _ => match query_value(&uri, "force").and_then(force_flag) {
            Ok(true) => Bytes::from_static(br#"{"force":true}"#),
            Ok(false) => Bytes::new(),
            Err(refused) => return refused.into_response(),
        },
    };
    if !body.is_empty() && serde_json::from_slice::<serde_json::Value>(&body).is_err() {
        return error(
            StatusCode::BAD_REQUEST,
            "the deploy body must be empty or JSON {\"version\": …}",
        );
    }
    app_request(&g, peer, &headers, ApiCall::write(&lattice, operation, Some(&name), body)).await
}

/// Host events that change where things run (forwarded as `placement` events).
const PLACEMENT_EVENTS: &[&str] = &[
    "component_scaled",
    "provider_started",
    "provider_stopped",
    "host_started",
    "host_stopped",
    "linkdef_set",
    "linkdef_deleted",
];

/// `GET /api/v1/lattices/{lattice}/events`: server-sent events. `status` events carry
/// `{"app", "status"}` whenever an application's status is published; `placement` events
/// carry `{"event", "data"}` for every host event that changes what runs where; `allocation`
/// events carry wadm's allocation CloudEvents (`wadm.allocation.{lattice}.{app}`) as published.
async fn events(
    State(g): State<Gateway>,
    peer: Peer,
    headers: HeaderMap,
    Path(lattice): Path<String>,
) -> Response {
    let caller = caller(peer, &headers);
    let checked = g.authorise(&caller, Access::Read).and_then(|()| check_lattice(&lattice));
    if let Err(refused) = checked {
        return refused.into_response();
    }
    let Ok(permit) = g.streams.clone().try_acquire_owned() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many event streams are open; retry later",
        );
    };
    let statuses = g.nats.subscribe(wadm_store::status::status_subject(&lattice, "*")).await;
    let hosts = g.nats.subscribe(wadm_protocol::subject::events_of(&lattice)).await;
    let allocations =
        g.nats.subscribe(wadm_runtime::allocation::allocation_subject(&lattice, "*")).await;
    let (statuses, hosts, allocations) = match (statuses, hosts, allocations) {
        (Ok(s), Ok(h), Ok(a)) => (s, h, a),
        _ => return error(StatusCode::BAD_GATEWAY, "cannot subscribe to the lattice's events"),
    };
    let status_events = statuses.filter_map(|m| async move {
        let app = m.subject.as_str().rsplit('.').next()?.to_string();
        let status: serde_json::Value = serde_json::from_slice(&m.payload).ok()?;
        let data = json!({ "app": app, "status": status });
        Some(Event::default().event("status").data(data.to_string()))
    });
    let placement_events = hosts.filter_map(|m| async move {
        let kind = m.subject.as_str().rsplit('.').next()?.to_string();
        if !PLACEMENT_EVENTS.contains(&kind.as_str()) {
            return None;
        }
        let event: serde_json::Value = serde_json::from_slice(&m.payload).ok()?;
        let data = json!({ "event": kind, "data": event.get("data").cloned().unwrap_or(event) });
        Some(Event::default().event("placement").data(data.to_string()))
    });
    let allocation_events = allocations.filter_map(|m| async move {
        let event: serde_json::Value = serde_json::from_slice(&m.payload).ok()?;
        Some(Event::default().event("allocation").data(event.to_string()))
    });
    let stream = futures::stream::select(status_events, placement_events);
    // The permit goes with the stream: dropped when the client goes away.
    let stream = futures::stream::select(stream, allocation_events).map(move |event| {
        let _held = &permit;
        Ok::<_, std::convert::Infallible>(event)
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route as (method, path template): what the OpenAPI file must describe, no more, no less.
    const ROUTES: &[(&str, &str)] = &[
        ("get", "/api/v1/openapi.json"),
        ("get", "/api/v1/lattices"),
        ("get", "/api/v1/lattices/{lattice}/hosts"),
        ("get", "/api/v1/lattices/{lattice}/apps"),
        ("post", "/api/v1/lattices/{lattice}/apps"),
        ("post", "/api/v1/lattices/{lattice}/plan"),
        ("get", "/api/v1/lattices/{lattice}/apps/{name}/plan"),
        ("get", "/api/v1/lattices/{lattice}/apps/{name}"),
        ("delete", "/api/v1/lattices/{lattice}/apps/{name}"),
        ("get", "/api/v1/lattices/{lattice}/apps/{name}/versions"),
        ("get", "/api/v1/lattices/{lattice}/apps/{name}/status"),
        ("get", "/api/v1/lattices/{lattice}/apps/{name}/history"),
        ("post", "/api/v1/lattices/{lattice}/apps/{name}/deploy"),
        ("post", "/api/v1/lattices/{lattice}/apps/{name}/undeploy"),
        ("post", "/api/v1/lattices/{lattice}/apps/{name}/promote"),
        ("post", "/api/v1/lattices/{lattice}/apps/{name}/rollback"),
        ("get", "/api/v1/lattices/{lattice}/events"),
    ];

    #[test]
    fn the_openapi_file_describes_exactly_the_routes() {
        let doc: serde_json::Value =
            serde_json::from_str(OPENAPI).expect("docs/openapi.json is JSON");
        let mut documented: Vec<(String, String)> = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                if method != "parameters" {
                    documented.push((method.clone(), path.clone()));
                }
            }
        }
        documented.sort();
        let mut routes: Vec<(String, String)> =
            ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
        routes.sort();
        assert_eq!(documented, routes);
        // Every route in the list is one the router serves: literally, or as a read or an action
        // of `…/apps/{name}/{part}` (a missing one would be the fallback).
        let source = include_str!("http_api.rs");
        let parts = "/api/v1/lattices/{lattice}/apps/{name}/";
        for (method, path) in ROUTES {
            let served = match path.strip_prefix(parts) {
                Some(part) if *method == "get" => APP_READS.contains(&part),
                Some(part) => *method == "post" && APP_ACTIONS.contains(&part),
                None => source.contains(&format!(".route(\"{path}\"")),
            };
            assert!(served, "{method} {path} is routed");
        }
        for (method, served) in [("get", APP_READS), ("post", APP_ACTIONS)] {
            for part in served {
                let path = format!("{parts}{part}");
                assert!(ROUTES.contains(&(method, path.as_str())), "{method} {path} is documented");
            }
        }
    }

    #[test]
    fn reads_are_open_on_loopback_and_writes_need_the_token() {
        let headers = HeaderMap::new();
        let mut bearer = HeaderMap::new();
        bearer.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        let mut wrong = HeaderMap::new();
        wrong.insert(header::AUTHORIZATION, "Bearer nope".parse().unwrap());
        let local = Some("127.0.0.1:5000".parse().unwrap());
        let remote = Some("192.0.2.7:5000".parse().unwrap());
        let at = |peer, headers| Caller { peer, headers };
        let code = |r: Result<(), Refusal>| r.err().map(|r| r.code);
        // No token configured: loopback reads only.
        assert_eq!(code(authorise(None, &at(local, &headers), Access::Read)), None);
        assert_eq!(
            code(authorise(None, &at(remote, &headers), Access::Read)),
            Some(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            code(authorise(None, &at(local, &bearer), Access::Write)),
            Some(StatusCode::FORBIDDEN)
        );
        // A token: writes and remote reads need it, and only it.
        let t = Some("s3cret");
        assert_eq!(
            code(authorise(t, &at(local, &headers), Access::Write)),
            Some(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(
            code(authorise(t, &at(local, &wrong), Access::Write)),
            Some(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(code(authorise(t, &at(local, &bearer), Access::Write)), None);
        assert_eq!(
            code(authorise(t, &at(remote, &headers), Access::Read)),
            Some(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(code(authorise(t, &at(remote, &bearer), Access::Read)), None);
        assert_eq!(
            code(authorise(t, &at(None, &headers), Access::Read)),
            Some(StatusCode::UNAUTHORIZED)
        );
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abd", b"abc"));
        assert!(!same_secret(b"ab", b"abc"));
        assert!(!same_secret(b"abcd", b"abc"));
        assert!(!same_secret(b"", b"abc"));
    }

    #[test]
    fn versions_in_queries_become_the_api_body() {
        let uri: Uri = "/x?version=v%201".parse().unwrap();
        assert_eq!(version_body(&uri).unwrap(), Bytes::from(r#"{"version":"v 1"}"#));
        let none: Uri = "/x".parse().unwrap();
        assert!(version_body(&none).unwrap().is_empty());
        let unknown: Uri = "/x?versoin=1".parse().unwrap();
        assert_eq!(version_body(&unknown).unwrap_err().code, StatusCode::BAD_REQUEST);
        let bad: Uri = "/x?version=%zz".parse().unwrap();
        assert_eq!(version_body(&bad).unwrap_err().code, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn delete_queries_become_the_api_body() {
        let body = |q: &str| delete_body(&format!("/x{q}").parse::<Uri>().unwrap());
        assert!(body("").unwrap().is_empty());
        assert!(body("?force=false").unwrap().is_empty());
        assert_eq!(body("?version=v1").unwrap(), Bytes::from(r#"{"version":"v1"}"#));
        assert_eq!(body("?force=true").unwrap(), Bytes::from(r#"{"version":null,"force":true}"#));
        assert_eq!(
            body("?version=v1&force").unwrap(),
            Bytes::from(r#"{"version":"v1","force":true}"#)
        );
        assert_eq!(body("?force=yes").unwrap_err().code, StatusCode::BAD_REQUEST);
        assert_eq!(body("?forced=true").unwrap_err().code, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn names_must_be_subject_tokens() {
        assert!(check_token("name", "app").is_ok());
        for bad in ["", "a.b", "a*", ">", "a b"] {
            assert!(check_token("name", bad).is_err(), "{bad:?}");
        }
        assert!(check_lattice("default").is_ok());
        assert!(check_lattice("TA.default").is_ok(), "another account's lattice");
        for bad in ["", "a.b.c", "a*", ">", "a b", "wadm.x", ".x"] {
            assert!(check_lattice(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reply_results_map_to_http_statuses() {
        let code = |body: &str| api_reply(body.as_bytes()).status();
        assert_eq!(code(r#"{"result":"created"}"#), StatusCode::CREATED);
        assert_eq!(code(r#"{"result":"newversion","unchanged":true}"#), StatusCode::OK);
        assert_eq!(code(r#"{"result":"notfound"}"#), StatusCode::NOT_FOUND);
        assert_eq!(code(r#"{"result":"error","message":"x"}"#), StatusCode::BAD_REQUEST);
        assert_eq!(code(r#"{"result":"acknowledged"}"#), StatusCode::OK);
        assert_eq!(code("[]"), StatusCode::OK);
        assert_eq!(code("nope"), StatusCode::BAD_GATEWAY);
    }
}
