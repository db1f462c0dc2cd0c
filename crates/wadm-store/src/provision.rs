//! Provisioning JetStream streams and KV buckets, idempotently and safe for replicas starting
//! together: [`jetstream()`] (the one context constructor, optional domain), a [`Provisioner`]
//! (buckets and streams, retrying while a clustered JetStream forms, failing at once on the
//! connection's [`Refusals`]), [`bucket_config`] (the one configuration of wadm's buckets).
//!
//! The manifest and observed-state buckets and the status stream allow direct gets
//! ([`DirectGets::On`]), for the API's possibly stale reads during an election; wadm's own
//! reads go to leaders whatever a bucket allows. A differing stream or bucket is switched
//! once, at start, its data kept. Every read path: `docs/deploy.md`, "Which reads are current".

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use tokio::sync::watch;

/// A JetStream context on `client`, in JetStream domain `domain` when given (a leaf node's or
/// hub's domain: its API lives under `$JS.{domain}.API`). Every context wadm creates comes from
/// here, so one `--js-domain` reaches every stream and bucket.
pub fn jetstream(
    client: async_nats::Client,
    domain: Option<&str>,
) -> async_nats::jetstream::Context {
    match domain.map(str::trim).filter(|d| !d.is_empty()) {
        Some(domain) => async_nats::jetstream::with_domain(client, domain),
        None => async_nats::jetstream::new(client),
    }
}

/// Why a stream or bucket could not be set up.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot set up JetStream {what}: {reason}")]
pub struct ProvisionError {
    /// `bucket {name}` or `stream {name}`.
    pub what: String,
    /// Why, one line.
    pub reason: String,
}

impl ProvisionError {
    /// What the reason says about JetStream storage (gone, briefly unavailable, or neither).
    pub fn availability(&self) -> crate::Availability {
        crate::availability::classify(&self.reason)
    }
}

/// The configuration of every wadm bucket: one value per key (`history: 1`), `replicas`.
pub fn bucket_config(bucket: &str, description: &str, replicas: usize) -> kv::Config {
    kv::Config {
        bucket: bucket.into(),
        description: description.into(),
        history: 1,
        num_replicas: replicas,
        ..Default::default()
    }
}

/// Whether a bucket's followers answer direct gets (used only for reads made while no leader
/// answers, marked possibly stale: see [`crate::availability::Reads`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectGets {
    /// Only the stream leader answers reads.
    Off,
    /// Followers answer direct gets too.
    On,
}

/// Sets up wadm's streams and buckets on one JetStream context: gets each, creating it when
/// missing, tolerant of replicas creating it at the same time.
#[derive(Clone)]
pub struct Provisioner {
    js: jetstream::Context,
    refusals: Refusals,
}

impl Provisioner {
    /// Provisioning on `js`; no refusals are reported to it (see [`Provisioner::reporting`]).
    pub fn new(js: jetstream::Context) -> Self {
        Self { js, refusals: Refusals::default() }
    }

    /// Fail at once when the server refuses this connection a JetStream API request.
    pub fn reporting(mut self, refusals: Refusals) -> Self {
        self.refusals = refusals;
        self
    }

    /// The context it provisions on.
    pub fn context(&self) -> &jetstream::Context {
        &self.js
    }

    /// Get the bucket, creating it if missing. Every process opening one bucket must pass the
    /// same `direct` (a differing bucket is switched).
    pub async fn bucket(
        &self,
        config: kv::Config,
        direct: DirectGets,
    ) -> Result<kv::Store, ProvisionError> {
        let what = format!("bucket {}", config.bucket);
        patiently(&what, &self.refusals, || open_or_create(&self.js, &config, direct)).await
    }

    /// Get the stream, creating it if missing.
    pub async fn stream(&self, config: stream::Config) -> Result<stream::Stream, ProvisionError> {
        let what = format!("stream {}", config.name);
        patiently(&what, &self.refusals, || open_or_create_stream(&self.js, &config)).await
    }
}

/// Open stream `config.name`, creating it when missing; when its direct gets differ from
/// `config`'s (a stream made by another wadm version), it is switched once. One attempt: the
/// error says why (callers retry while a clustered JetStream forms).
pub async fn open_or_create_stream(
    js: &jetstream::Context,
    config: &stream::Config,
) -> Result<stream::Stream, String> {
    let stream = match js.get_stream(&config.name).await {
        Ok(stream) => stream,
        Err(read) => {
            return js
                .create_stream(config.clone())
                .await
                .map_err(|e| format!("{e} (read: {read})"));
        }
    };
    if config.allow_direct == stream.cached_info().config.allow_direct {
        return Ok(stream);
    }
    let mut switched = stream.cached_info().config.clone();
    switched.allow_direct = config.allow_direct;
    js.update_stream(switched).await.map_err(|e| format!("switching direct gets: {e}"))?;
    js.get_stream(&config.name).await.map_err(|e| e.to_string())
}

/// How long a starting replica keeps trying to read or create a JetStream resource (a clustered
/// JetStream may still be electing leaders or forming another replica's replicated stream).
const SETUP_PATIENCE: Duration = Duration::from_secs(60);

/// Run `attempt` until it succeeds. Replicas starting together race to create a resource, and a
/// replicated resource (or a JetStream cluster electing its leaders) takes a moment to form:
/// a failed attempt is followed by another, at once the first time, then after a growing pause
/// (0.1 s doubling to 2 s), for up to [`SETUP_PATIENCE`], logged while it lasts.
///
/// What waiting cannot cure fails at once: a JetStream API request the server refused for lack
/// of permission (noted in `refusals` by the connection; the request itself would only time
/// out), or an account without JetStream.
async fn patiently<T, Attempt, Fut>(
    what: &str,
    refusals: &Refusals,
    attempt: Attempt,
) -> Result<T, ProvisionError>
where
    Attempt: Fn() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let started = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(100);
    let mut attempts = 0u32;
    let refusals_before = refusals.seen();
    let refused = |subject: String| ProvisionError {
        what: what.to_string(),
        reason: format!(
            "the NATS user lacks JetStream permission (the server refused its request on \
             {subject:?}); allow it to publish to the JetStream API, `$JS.API.>`"
        ),
    };
    loop {
        attempts += 1;
        let outcome = tokio::select! {
            outcome = attempt() => outcome,
            subject = refusals.first_after(refusals_before) => return Err(refused(subject)),
        };
        let reason = match outcome {
            Ok(done) => return Ok(done),
            // One line in every log and error.
            Err(reason) => reason.lines().map(str::trim).collect::<Vec<_>>().join(" "),
        };
        if let Some(subject) = refusals.after(refusals_before) {
            return Err(refused(subject));
        }
        if is_jetstream_disabled(&reason) {
            let reason = format!("JetStream is not enabled for the NATS user's account ({reason})");
            return Err(ProvisionError { what: what.to_string(), reason });
        }
        if started.elapsed() >= SETUP_PATIENCE {
            let reason = format!("not ready after {attempts} attempts: {reason}");
            return Err(ProvisionError { what: what.to_string(), reason });
        }
        if attempts >= 3 {
            tracing::warn!(attempts, error = %reason, "{what}: not ready yet; waiting");
        } else {
            tracing::debug!(error = %reason, "{what}: creation raced; trying again");
        }
        if attempts > 1 {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }
}

/// Whether a JetStream API error says the account has no JetStream (err codes 10039 and 10076):
/// no retry makes it appear.
fn is_jetstream_disabled(reason: &str) -> bool {
    reason.to_ascii_lowercase().contains("jetstream not enabled")
}

/// The JetStream API subjects the server refused one connection, in order: hand
/// [`Refusals::note`] every error text the server reports on it (`-ERR …`, which async-nats
/// delivers only as a connection event), and a permissions violation on a JetStream API
/// subject then ends provisioning at once, naming the resource, instead of a minute of retries
/// that each time out. Clones share one record.
#[derive(Debug, Clone)]
pub struct Refusals(Arc<watch::Sender<RefusalLog>>);

impl Default for Refusals {
    fn default() -> Self {
        Self(Arc::new(watch::Sender::new(RefusalLog::default())))
    }
}

/// How many refusals were ever seen, and the latest few subjects (numbered from 1).
#[derive(Debug, Default)]
struct RefusalLog {
    seen: u64,
    latest: std::collections::VecDeque<(u64, String)>,
}

/// How many refused subjects a record keeps.
const REFUSALS_KEPT: usize = 16;

impl Refusals {
    /// Note an error text the server reported; anything but a JetStream refusal is ignored.
    pub fn note(&self, text: &str) {
        let Some(subject) = refused_subject(text) else { return };
        self.0.send_modify(|log| {
            log.seen += 1;
            let n = log.seen;
            log.latest.push_back((n, subject.to_string()));
            if log.latest.len() > REFUSALS_KEPT {
                log.latest.pop_front();
            }
        });
    }

    /// How many refusals were seen so far (a mark for [`Refusals::after`]).
    fn seen(&self) -> u64 {
        self.0.borrow().seen
    }

    /// The first refused subject after mark `since`, if any.
    fn after(&self, since: u64) -> Option<String> {
        first_after(&self.0.borrow(), since)
    }

    /// Completes with the first refused subject after mark `since`.
    async fn first_after(&self, since: u64) -> String {
        let mut noted = self.0.subscribe();
        // The sender lives in `self`, so the wait ends only with a refusal noted.
        let found = match noted.wait_for(|log| first_after(log, since).is_some()).await {
            Ok(log) => first_after(&log, since),
            Err(_) => None,
        };
        match found {
            Some(subject) => subject,
            None => std::future::pending().await,
        }
    }
}

/// The first subject of `log` noted after mark `since`.
fn first_after(log: &RefusalLog, since: u64) -> Option<String> {
    log.latest.iter().find(|(n, _)| *n > since).map(|(_, s)| s.clone())
}

/// The JetStream API subject of a permissions violation, from the server's error text
/// (`Permissions Violation for Publish to "$JS.API.STREAM.INFO.x"`, quotes as sent).
fn refused_subject(text: &str) -> Option<&str> {
    if !text.to_ascii_lowercase().contains("permissions violation") {
        return None;
    }
    text.split('"').nth(1).filter(|subject| subject.starts_with("$JS."))
}

/// Open bucket `config.bucket`, creating it with `direct` when missing; a bucket whose direct
/// gets differ (made by another wadm version) is switched. One attempt: the error says why
/// (callers retry while a clustered JetStream forms).
pub async fn open_or_create(
    js: &jetstream::Context,
    config: &kv::Config,
    direct: DirectGets,
) -> Result<kv::Store, String> {
    match js.get_key_value(&config.bucket).await {
        Ok(store) => switch_direct_gets(js, store, direct).await.map_err(|e| e.to_string()),
        Err(read) => {
            // Replicas racing to create it send the same configuration, which the server
            // accepts as one creation.
            js.create_stream(bucket_stream(config, direct))
                .await
                .map_err(|e| format!("{e} (read: {read})"))?;
            js.get_key_value(&config.bucket).await.map_err(|e| e.to_string())
        }
    }
}

/// Switch `store`'s direct gets to `direct` if they differ; returns a handle that knows.
pub async fn switch_direct_gets(
    js: &jetstream::Context,
    store: kv::Store,
    direct: DirectGets,
) -> Result<kv::Store, async_nats::Error> {
    let mut stream = js.get_stream(&store.stream_name).await?;
    let info = stream.info().await?;
    let allow = direct == DirectGets::On;
    if info.config.allow_direct == allow {
        return Ok(store);
    }
    let mut config = info.config.clone();
    config.allow_direct = allow;
    js.update_stream(config).await?;
    Ok(js.get_key_value(&store.name).await?)
}

/// The stream behind KV bucket `config`: the layout every NATS KV client reads (stream
/// `KV_{bucket}` on subjects `$KV.{bucket}.>`, `history` messages per key, rollups allowed,
/// deletes only by marker, new writes refused when full), with direct gets as `direct` says.
pub fn bucket_stream(config: &kv::Config, direct: DirectGets) -> stream::Config {
    stream::Config {
        name: format!("KV_{}", config.bucket),
        description: Some(config.description.clone()),
        subjects: vec![format!("$KV.{}.>", config.bucket)],
        max_messages_per_subject: config.history.max(1),
        max_bytes: config.max_bytes,
        max_age: config.max_age,
        max_message_size: config.max_value_size,
        storage: config.storage,
        num_replicas: config.num_replicas.max(1),
        allow_rollup: true,
        deny_delete: true,
        allow_direct: direct == DirectGets::On,
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use wadm_test_support::NatsServer;

    use super::*;

    async fn allows_direct(js: &jetstream::Context, bucket: &str) -> bool {
        let mut stream = js.get_stream(format!("KV_{bucket}")).await.unwrap();
        stream.info().await.unwrap().config.allow_direct
    }

    /// A bucket is made with the direct gets asked for and switched when they differ (a bucket
    /// an older wadm made), its data kept; reads through [`crate::NatsKv`] go to the leader
    /// either way.
    #[tokio::test]
    async fn buckets_get_the_direct_gets_asked_for_new_and_old() {
        use crate::kv::{Kv, NatsKv};
        let nats = NatsServer::start();
        let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
        let config = kv::Config { bucket: "fresh".into(), history: 1, ..Default::default() };
        let store = open_or_create(&js, &config, DirectGets::Off).await.unwrap();
        assert!(!allows_direct(&js, "fresh").await);
        let revision = store.put("k", Bytes::from_static(b"v")).await.unwrap();
        let entry = store.entry("k").await.unwrap().unwrap();
        assert_eq!((entry.value.as_ref(), entry.revision), (&b"v"[..], revision));
        assert_eq!(store.get("missing").await.unwrap(), None);
        // Opening again (another replica) changes nothing.
        open_or_create(&js, &config, DirectGets::Off).await.unwrap();
        assert!(!allows_direct(&js, "fresh").await);
        // Switched on (as the manifest bucket made by the previous wadm is), data kept.
        let store = open_or_create(&js, &config, DirectGets::On).await.unwrap();
        assert!(allows_direct(&js, "fresh").await);
        assert!(store.stream.cached_info().config.allow_direct, "the handle knows");
        let kv = NatsKv::new(store);
        for kv in [kv.clone(), kv.any_replica()] {
            let entry = kv.get("k").await.unwrap().unwrap();
            assert_eq!((entry.value.as_ref(), entry.revision), (&b"v"[..], revision));
            assert_eq!(kv.get("missing").await.unwrap(), None);
        }
        // Made by the library's default (direct gets on) and switched off.
        let old = kv::Config { bucket: "old".into(), history: 1, ..Default::default() };
        let made = js.create_key_value(old.clone()).await.unwrap();
        made.put("k", Bytes::from_static(b"kept")).await.unwrap();
        assert!(allows_direct(&js, "old").await);
        let store = open_or_create(&js, &old, DirectGets::Off).await.unwrap();
        assert!(!allows_direct(&js, "old").await);
        assert!(!store.stream.cached_info().config.allow_direct, "the handle knows");
        assert_eq!(store.get("k").await.unwrap(), Some(Bytes::from_static(b"kept")));
    }

    #[test]
    fn permanent_failures_are_recognised() {
        let refused = "nats: Permissions Violation for Publish to \"$JS.API.STREAM.INFO.KV_x\"";
        assert_eq!(refused_subject(refused), Some("$JS.API.STREAM.INFO.KV_x"));
        let domain = "nats: Permissions Violation for Publish to \"$JS.hub.API.STREAM.INFO.s\"";
        assert_eq!(refused_subject(domain), Some("$JS.hub.API.STREAM.INFO.s"));
        for other in [
            "nats: Permissions Violation for Publish to \"wasmbus.ctl.v1.default.host.ping\"",
            "nats: Permissions Violation for Subscription to \"wasmbus.evt.default.>\"",
            "nats: Maximum Payload Violation",
        ] {
            assert_eq!(refused_subject(other), None, "{other}");
        }
        let disabled = "jetstream error: JetStream not enabled for account (code 503, error code \
                        10039)";
        assert!(is_jetstream_disabled(disabled));
        assert!(!is_jetstream_disabled("jetstream request timed out"));
    }

    /// The status stream allows direct gets (for reads while no leader answers): created so,
    /// and one made without them (as the previous wadm made it) switched once when opened, its
    /// statuses kept; the same for an account's own status stream, opened on first use by the
    /// status store. Both read paths find the statuses.
    /// A refusal noted for one connection ends that connection's provisioning at once, naming
    /// the refused subject; another connection's record is untouched and its provisioning goes
    /// on retrying.
    #[tokio::test]
    async fn a_refusal_ends_the_provisioning_of_its_own_connection_only() {
        use std::sync::atomic::{AtomicU32, Ordering};
        let refused = "nats: Permissions Violation for Publish to \"$JS.API.STREAM.INFO.s\"";
        let (mine, other) = (Refusals::default(), Refusals::default());
        let tries = AtomicU32::new(0);
        let attempt = || async {
            mine.note(refused);
            match tries.fetch_add(1, Ordering::SeqCst) {
                0 => Err("timed out".to_string()),
                _ => Ok(()),
            }
        };
        let failed = patiently("stream s", &mine, attempt).await.unwrap_err();
        assert!(failed.reason.contains("$JS.API.STREAM.INFO.s"), "{failed}");
        assert_eq!(tries.load(Ordering::SeqCst), 1, "no second try");
        tries.store(0, Ordering::SeqCst);
        patiently("stream s", &other, attempt).await.expect("another connection retries");
        assert_eq!(tries.load(Ordering::SeqCst), 2);
        assert_eq!(other.seen(), 0);
    }

    #[tokio::test]
    async fn the_status_stream_allows_direct_gets_new_and_old() {
        use crate::status::{NatsStatusStore, StatusStore};
        let nats = NatsServer::start();
        let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
        let fresh = NatsStatusStore::stream_config("fresh_status", None, 1);
        assert!(fresh.allow_direct);
        let fresh = NatsStatusStore::stream_config("fresh_status", Some("FRESH"), 1);
        let stream = Provisioner::new(js.clone()).stream(fresh).await.unwrap();
        assert!(stream.cached_info().config.allow_direct);

        let mut old = NatsStatusStore::stream_config("wadm_status", None, 1);
        old.allow_direct = false;
        js.create_stream(old.clone()).await.unwrap();
        let kept = wadm_model::Status::new(wadm_model::StatusType::Deployed, "kept");
        let payload = serde_json::to_vec(&kept).unwrap();
        js.publish("wadm.status.default.kept", payload.into()).await.unwrap().await.unwrap();
        let mut old_account = NatsStatusStore::stream_config("wadm_status", Some("ACC"), 1);
        old_account.allow_direct = false;
        js.create_stream(old_account).await.unwrap();

        let config = NatsStatusStore::stream_config("wadm_status", None, 1);
        let stream = Provisioner::new(js.clone()).stream(config).await.unwrap();
        assert!(stream.cached_info().config.allow_direct, "the handle knows");
        let mut stream = js.get_stream("wadm_status").await.unwrap();
        assert!(stream.info().await.unwrap().config.allow_direct);

        let store = NatsStatusStore::new(js.clone(), stream);
        for store in [store.clone(), store.any_replica()] {
            assert_eq!(store.get("default", "kept").await.unwrap(), Some(kept.clone()));
            assert_eq!(store.list("default").await.unwrap().len(), 1);
            assert_eq!(store.get("default", "other").await.unwrap(), None);
        }
        store.list("ACC.default").await.unwrap();
        let mut account = js.get_stream("wadm_status_ACC").await.unwrap();
        assert!(account.info().await.unwrap().config.allow_direct);
    }
}
