//! The lattice view: which hosts wadm observes in a lattice, what runs on each and for which
//! application (`{prefix}.{lattice}.lattice.hosts`), and which lattices this wadm observes
//! (`{prefix}.lattices`).
//!
//! This module owns those two operations. Their replies are shaped by pure functions
//! ([`parse_hosts_request`], [`hosts_reply`], [`lattices_reply`], [`fit_hosts`]) from observed
//! state as the runtime stores it: the observed-state bucket (one key per entity, the key scheme
//! of `wadm_store::observed`), read here by `ObservedState` without creating anything. The set of
//! lattices is what the runtime of *this* process observes ([`KnownLattices`], filled by whoever
//! starts the runtimes); replicas observe the same lattices, so any replica answers alike.
//! The view shows what wadm believes the lattice runs: the same picture its decisions use.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use async_nats::jetstream::{self, kv};
use tokio::sync::OnceCell;
use wadm_lattice::{LatticeState, Timestamp, app_of};
use wadm_model::api::{
    GetResult, HostSummary, LatticeHostsRequest, LatticeHostsResponse, LatticeSummary,
    LatticesResponse, RunningWorkload,
};

use crate::api::Via;
use wadm_store::Reads;
use wadm_store::kv::Kv;
use wadm_store::manifest::ManifestStore;
use wadm_store::manifest::keys::is_valid_app_name;

/// The lattices the runtimes of this process observe. Cheap to clone; clones share the set.
#[derive(Debug, Clone, Default)]
pub struct KnownLattices(Arc<Mutex<BTreeSet<String>>>);

impl KnownLattices {
    fn set(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A runtime observes `lattice` from now on.
    pub fn insert(&self, lattice: &str) {
        self.set().insert(lattice.to_string());
    }

    /// The runtime of `lattice` stopped.
    pub fn remove(&self, lattice: &str) {
        self.set().remove(lattice);
    }

    /// The lattices, sorted.
    pub fn list(&self) -> Vec<String> {
        self.set().iter().cloned().collect()
    }
}

/// The request body of `lattice.hosts`, checked: `Ok(None)` for every host, `Ok(Some(app))` for
/// one application's placement; an error names the field and why.
pub fn parse_hosts_request(body: &[u8]) -> Result<Option<String>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let request: LatticeHostsRequest =
        serde_json::from_slice(body).map_err(|e| format!("invalid request body: {e}"))?;
    match request.app {
        None => Ok(None),
        Some(app) if app.is_empty() => Err("app: must not be empty".to_string()),
        Some(app) if app.len() > 128 => Err(format!("app: {} bytes long, at most 128", app.len())),
        Some(app) if !is_valid_app_name(&app) => {
            Err(format!("app: {app:?} may only hold letters, digits, '-' and '_'"))
        }
        Some(app) => Ok(Some(app)),
    }
}

/// RFC 3339 UTC, to the second.
fn rfc3339(ms: Timestamp) -> Option<String> {
    let ms = i64::try_from(ms).ok()?;
    let at = chrono::DateTime::from_timestamp_millis(ms)?;
    Some(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// The hosts of `state` at `now` (wadm's clock), sorted by id; with `app`, only the hosts that
/// run something of it, each with only what it runs of it.
pub fn hosts_reply(
    state: &LatticeState,
    app: Option<&str>,
    now: Timestamp,
) -> LatticeHostsResponse {
    let owned_by = |annotations| match app {
        None => true,
        Some(app) => app_of(annotations) == Some(app),
    };
    let mut hosts = Vec::new();
    for host in state.hosts.values() {
        let components: Vec<RunningWorkload> = host
            .components
            .values()
            .filter(|c| owned_by(&c.annotations))
            .map(|c| RunningWorkload {
                id: c.id.clone(),
                image_ref: c.image_ref.clone(),
                instances: c.count,
                app: app_of(&c.annotations).map(str::to_string),
            })
            .collect();
        let providers: Vec<RunningWorkload> = host
            .providers
            .values()
            .filter(|p| owned_by(&p.annotations))
            .map(|p| RunningWorkload {
                id: p.id.clone(),
                image_ref: p.image_ref.clone(),
                instances: 1,
                app: app_of(&p.annotations).map(str::to_string),
            })
            .collect();
        if app.is_some() && components.is_empty() && providers.is_empty() {
            continue;
        }
        hosts.push(HostSummary {
            id: host.id.clone(),
            friendly_name: host.friendly_name.clone(),
            labels: host.labels.clone(),
            version: host.version.clone(),
            started_at: host.started_at.and_then(rfc3339),
            uptime_seconds: host.uptime_ms(now).map(|ms| ms / 1_000),
            last_seen: (host.last_seen > 0).then(|| rfc3339(host.last_seen)).flatten(),
            components,
            providers,
        });
    }
    let message = match app {
        None => format!("{} host(s)", hosts.len()),
        Some(app) => format!("{} host(s) run something of {app}", hosts.len()),
    };
    LatticeHostsResponse {
        result: GetResult::Success,
        message,
        lattice: state.lattice.clone(),
        app: app.map(str::to_string),
        hosts,
    }
}

/// A reply that fits in `limit` bytes: as it is, else the first hosts that fit, the message
/// saying how many of how many it shows.
pub fn fit_hosts(mut reply: LatticeHostsResponse, limit: usize) -> LatticeHostsResponse {
    let size = |r: &LatticeHostsResponse| serde_json::to_vec(r).map_or(usize::MAX, |b| b.len());
    if size(&reply) <= limit {
        return reply;
    }
    let total = reply.hosts.len();
    let (mut fits, mut too_many) = (0, total);
    while too_many - fits > 1 {
        let mid = (fits + too_many) / 2;
        let probe = LatticeHostsResponse { hosts: reply.hosts[..mid].to_vec(), ..reply.clone() };
        if size(&probe) + 256 <= limit { fits = mid } else { too_many = mid }
    }
    reply.hosts.truncate(fits);
    reply.message = format!(
        "showing {fits} of {total} hosts: the full view exceeds the NATS max payload \
         ({limit} bytes); ask for one application's hosts with {{\"app\": name}}"
    );
    reply
}

/// The `lattices` reply: each lattice with its host count (`None`: unreadable).
pub fn lattices_reply(lattices: Vec<(String, Option<usize>)>) -> LatticesResponse {
    let mut lattices: Vec<LatticeSummary> =
        lattices.into_iter().map(|(name, hosts)| LatticeSummary { name, hosts }).collect();
    lattices.sort_by(|a, b| a.name.cmp(&b.name));
    LatticesResponse {
        result: GetResult::Success,
        message: format!("{} lattice(s)", lattices.len()),
        lattices,
    }
}

/// Reads the observed-state bucket (never creates it: before the runtime made it, every
/// lattice has no host).
pub(crate) struct ObservedState {
    js: jetstream::Context,
    bucket: String,
    store: OnceCell<kv::Store>,
}

impl ObservedState {
    pub(crate) fn new(js: jetstream::Context, bucket: impl Into<String>) -> Self {
        Self { js, bucket: bucket.into(), store: OnceCell::new() }
    }

    /// The bucket, `None` while it does not exist.
    async fn bucket(&self) -> Result<Option<&kv::Store>, String> {
        if let Some(store) = self.store.get() {
            return Ok(Some(store));
        }
        use async_nats::jetstream::ErrorCode;
        use async_nats::jetstream::context::GetStreamErrorKind;
        match self.js.get_stream(format!("KV_{}", self.bucket)).await {
            Ok(_) => {}
            Err(e) => {
                if let GetStreamErrorKind::JetStream(js) = e.kind()
                    && js.error_code() == ErrorCode::STREAM_NOT_FOUND
                {
                    return Ok(None);
                }
                return Err(wadm_protocol::one_line(&e));
            }
        }
        let store =
            self.js.get_key_value(&self.bucket).await.map_err(|e| wadm_protocol::one_line(&e))?;
        Ok(Some(self.store.get_or_init(|| async { store }).await))
    }

    /// The observed state of `lattice` as stored (empty when nothing is stored), read as
    /// `reads` says.
    pub(crate) async fn load(&self, lattice: &str, reads: Reads) -> Result<LatticeState, String> {
        let empty = LatticeState { lattice: lattice.to_string(), ..LatticeState::default() };
        let Some(store) = self.bucket().await? else { return Ok(empty) };
        let filter = wadm_store::observed::keys::lattice_filter(lattice);
        let entries = wadm_store::kv_list::live_entries(store, &filter, reads)
            .await
            .map_err(|e| e.to_string())?;
        let records = entries.iter().map(|e| (e.key.as_str(), e.value.as_ref()));
        wadm_store::observed::records::rebuild(lattice, records).map_err(|e| e.to_string())
    }

    /// How many hosts are stored for `lattice` (host records only).
    pub(crate) async fn host_count(&self, lattice: &str) -> Result<usize, String> {
        let Some(store) = self.bucket().await? else { return Ok(0) };
        let filter = format!("{}.host.*", wadm_store::kv_key::encode_token(lattice));
        let entries = wadm_store::kv_list::live_entries(store, &filter, Reads::Leader)
            .await
            .map_err(|e| e.to_string())?;
        Ok(entries.len())
    }
}

/// What the view operations need, shared by every request task.
pub(crate) struct Views {
    pub(crate) observed: ObservedState,
    pub(crate) known: KnownLattices,
    /// The scalers plans are made with.
    pub(crate) scalers: wadm_scheduler::ScalerFactory,
}

impl Views {
    /// Answer `lattice.hosts` of `lattice` with `body`, reading `via` (see `Api::read`, which
    /// falls back to any replica while no leader answers); `store` tells whether an application
    /// asked for exists. The reply fits in `max_reply` bytes.
    pub(crate) async fn hosts<K: Kv>(
        &self,
        store: &ManifestStore<K>,
        lattice: &str,
        body: &[u8],
        max_reply: usize,
        via: Via,
    ) -> LatticeHostsResponse {
        let error = |result, message: String| LatticeHostsResponse {
            result,
            message,
            lattice: lattice.to_string(),
            app: None,
            hosts: vec![],
        };
        let app = match parse_hosts_request(body) {
            Ok(app) => app,
            Err(message) => return error(GetResult::Error, message),
        };
        if let Some(app) = &app {
            match store.index(lattice, app).await {
                Ok(Some(_)) => {}
                Ok(None) => {
                    let message = format!("Application {app} not found in lattice {lattice}");
                    return LatticeHostsResponse {
                        app: Some(app.clone()),
                        ..error(GetResult::NotFound, message)
                    };
                }
                Err(e) => return error(GetResult::Error, e.to_string()),
            }
        }
        let state = match self.observed.load(lattice, via.reads()).await {
            Ok(state) => state,
            Err(reason) => {
                return error(GetResult::Error, format!("cannot read observed state: {reason}"));
            }
        };
        let now = wadm_store::clock::now_ms();
        fit_hosts(hosts_reply(&state, app.as_deref(), now), max_reply)
    }

    /// Answer `lattices`.
    /// The lattices this process observes; for an `account` (account-scoped mode) only that
    /// account's, named as the account knows them.
    pub(crate) async fn lattices(&self, account: Option<&str>) -> LatticesResponse {
        let mut found = Vec::new();
        for lattice in self.known.list() {
            let (owner, name) = wadm_protocol::subject::split_account(&lattice);
            if account.is_some() && owner != account {
                continue;
            }
            let hosts = match self.observed.host_count(&lattice).await {
                Ok(n) => Some(n),
                Err(reason) => {
                    tracing::warn!(%lattice, error = %reason, "cannot count hosts");
                    None
                }
            };
            found.push((if account.is_some() { name.to_string() } else { lattice.clone() }, hosts));
        }
        lattices_reply(found)
    }
}

#[cfg(test)]
mod tests {
    use wadm_lattice::{ComponentInstance, HostState, ProviderInstance};

    use super::*;

    fn annotations(app: &str) -> wadm_protocol::StringMap {
        [("wasmcloud.dev/appspec".to_string(), app.to_string())].into()
    }

    fn state() -> LatticeState {
        let mut state = LatticeState { lattice: "l".into(), ..LatticeState::default() };
        for (id, apps) in [("N1", &["a", "b"][..]), ("N2", &["b"][..]), ("N3", &[][..])] {
            let mut host = HostState {
                id: id.into(),
                friendly_name: format!("{id}-name"),
                labels: [("hostcore.os".to_string(), "linux".to_string())].into(),
                version: "1.9.2".into(),
                last_seen: 1_700_000_000_000,
                started_at: Some(1_700_000_000_000 - 90_000),
                ..HostState::default()
            };
            for app in apps {
                let c = ComponentInstance {
                    id: format!("{app}-web"),
                    image_ref: "img".into(),
                    count: 2,
                    annotations: annotations(app),
                    since: 0,
                };
                host.components.insert(c.id.clone(), c);
                let p = ProviderInstance {
                    id: format!("{app}-http"),
                    image_ref: "prov".into(),
                    annotations: annotations(app),
                    ..ProviderInstance::default()
                };
                host.providers.insert(p.id.clone(), p);
            }
            state.hosts.insert(id.into(), host);
        }
        state
    }

    #[test]
    fn every_host_with_what_it_runs_and_for_whom() {
        let reply = hosts_reply(&state(), None, 1_700_000_010_000);
        assert_eq!(reply.result, GetResult::Success);
        let ids: Vec<&str> = reply.hosts.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(ids, ["N1", "N2", "N3"]);
        let n1 = &reply.hosts[0];
        assert_eq!(n1.uptime_seconds, Some(100));
        assert_eq!(n1.started_at.as_deref(), Some("2023-11-14T22:11:50Z"));
        assert_eq!(n1.labels["hostcore.os"], "linux");
        assert_eq!(n1.components.len(), 2);
        assert_eq!(n1.components[0].app.as_deref(), Some("a"));
        assert_eq!(n1.components[0].instances, 2);
        assert_eq!(n1.providers[1].instances, 1);
        assert!(reply.hosts[2].components.is_empty());
    }

    #[test]
    fn one_apps_placement_leaves_out_other_hosts_and_workloads() {
        let reply = hosts_reply(&state(), Some("b"), 1_700_000_010_000);
        let ids: Vec<&str> = reply.hosts.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(ids, ["N1", "N2"]);
        for host in &reply.hosts {
            let owners = host.components.iter().chain(&host.providers).map(|w| w.app.as_deref());
            assert!(owners.into_iter().all(|o| o == Some("b")), "{host:?}");
        }
        assert!(hosts_reply(&state(), Some("zzz"), 0).hosts.is_empty());
    }

    #[test]
    fn bad_requests_name_the_field() {
        assert_eq!(parse_hosts_request(b""), Ok(None));
        assert_eq!(parse_hosts_request(b"{}"), Ok(None));
        assert_eq!(parse_hosts_request(br#"{"app":"x-1"}"#), Ok(Some("x-1".into())));
        let e = parse_hosts_request(br#"{"app":"a.b"}"#).unwrap_err();
        assert!(e.starts_with("app: "), "{e}");
        let e = parse_hosts_request(br#"{"app":""}"#).unwrap_err();
        assert!(e.starts_with("app: "), "{e}");
        let e = parse_hosts_request(br#"{"apps":"x"}"#).unwrap_err();
        assert!(e.contains("unknown field `apps`"), "{e}");
        let e = parse_hosts_request(br#"{"app":7}"#).unwrap_err();
        assert!(e.starts_with("invalid request body"), "{e}");
    }

    #[test]
    fn a_view_past_the_payload_limit_shows_what_fits_and_says_so() {
        let mut big = state();
        for i in 0..2_000 {
            let id = format!("H{i:05}");
            big.hosts.insert(id.clone(), HostState { id, ..HostState::default() });
        }
        let reply = fit_hosts(hosts_reply(&big, None, 0), 64 * 1024);
        assert!(serde_json::to_vec(&reply).unwrap().len() <= 64 * 1024);
        assert!(reply.hosts.len() > 100 && reply.hosts.len() < 2_003);
        assert!(reply.message.starts_with(&format!("showing {} of 2003", reply.hosts.len())));
    }

    #[test]
    fn lattices_are_sorted() {
        let reply = lattices_reply(vec![("b".into(), Some(2)), ("a".into(), None)]);
        let names: Vec<&str> = reply.lattices.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(reply.lattices[0].hosts, None);
    }
}
