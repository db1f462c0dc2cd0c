//! Provisioning JetStream streams and KV buckets, idempotently and safe for replicas starting
//! together: [`jetstream()`] (the one context constructor, optional domain), [`ensure_bucket`] and
//! [`ensure_stream`] (retrying while a clustered JetStream forms), [`bucket_config`] (the one
//! configuration of wadm's buckets).
//!
//! Buckets and the status stream read from the stream leader: direct gets may be served by a
//! lagging follower, so a read right after an acknowledged write could miss it. wadm's buckets
//! and streams are made (or switched, once, at start) with direct gets off; the cost is small
//! (≈ 0.6 ms against ≈ 0.35 ms a read, 3-node cluster). `docs/deploy.md` ("Which reads are
//! current") lists every read path.

use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};

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
    pub reason: String,
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

/// Get the bucket, creating it if missing; tolerate a concurrent creation by another replica.
pub async fn ensure_bucket(
    js: &jetstream::Context,
    config: kv::Config,
) -> Result<kv::Store, ProvisionError> {
    let what = format!("bucket {}", config.bucket);
    patiently(&what, || open_or_create(js, &config)).await
}

/// Get the stream, creating it if missing; tolerate a concurrent creation by another replica.
pub async fn ensure_stream(
    js: &jetstream::Context,
    config: stream::Config,
) -> Result<stream::Stream, ProvisionError> {
    let what = format!("stream {}", config.name);
    patiently(&what, || open_or_create_stream(js, &config)).await
}

/// Open stream `config.name`, creating it when missing; when `config` turns direct gets off and
/// the stream (made by an older wadm) has them on, it is switched to leader reads once. One
/// attempt: the error says why (callers retry while a clustered JetStream forms).
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
    if config.allow_direct || !stream.cached_info().config.allow_direct {
        return Ok(stream);
    }
    let mut switched = stream.cached_info().config.clone();
    switched.allow_direct = false;
    js.update_stream(switched).await.map_err(|e| format!("switching to leader reads: {e}"))?;
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
/// of permission (reported to [`server_error`] by the connection; the request itself would only
/// time out), or an account without JetStream.
async fn patiently<T, Attempt, Fut>(what: &str, attempt: Attempt) -> Result<T, ProvisionError>
where
    Attempt: Fn() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let started = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(100);
    let mut attempts = 0u32;
    let refusals_before = refusals::seen();
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
            subject = refusals::jetstream_refusal(refusals_before) => return Err(refused(subject)),
        };
        let reason = match outcome {
            Ok(done) => return Ok(done),
            // One line in every log and error.
            Err(reason) => reason.lines().map(str::trim).collect::<Vec<_>>().join(" "),
        };
        if let Some(subject) = refusals::jetstream_refusal_now(refusals_before) {
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

/// Hand this every error text the NATS server reports on wadm's connection (`-ERR …`, which
/// async-nats delivers only as a connection event): a permissions violation on a JetStream API
/// subject then ends provisioning at once, naming the resource, instead of a minute of retries
/// that each time out. Other errors are ignored. Process-wide: one wadm process, one identity.
pub fn server_error(text: &str) {
    refusals::note(text);
}

/// The JetStream API subjects the server refused to this process, in order.
mod refusals {
    use std::sync::Mutex;
    use std::time::Duration;

    /// How many refusals ever seen, and the latest few subjects (bounded).
    static SEEN: Mutex<(u64, Vec<(u64, String)>)> = Mutex::new((0, Vec::new()));
    const KEPT: usize = 16;

    pub(super) fn note(text: &str) {
        let Some(subject) = refused_subject(text) else { return };
        let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
        seen.0 += 1;
        let n = seen.0;
        seen.1.push((n, subject.to_string()));
        if seen.1.len() > KEPT {
            seen.1.remove(0);
        }
    }

    /// The JetStream API subject of a permissions violation, from the server's error text
    /// (`Permissions Violation for Publish to "$JS.API.STREAM.INFO.x"`, quotes as sent).
    pub(super) fn refused_subject(text: &str) -> Option<&str> {
        if !text.to_ascii_lowercase().contains("permissions violation") {
            return None;
        }
        text.split('"').nth(1).filter(|subject| subject.starts_with("$JS."))
    }

    /// How many refusals were seen so far (a mark for [`jetstream_refusal_now`]).
    pub(super) fn seen() -> u64 {
        SEEN.lock().unwrap_or_else(|p| p.into_inner()).0
    }

    /// The first refused subject after mark `since`, if any.
    pub(super) fn jetstream_refusal_now(since: u64) -> Option<String> {
        let seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
        seen.1.iter().find(|(n, _)| *n > since).map(|(_, s)| s.clone())
    }

    /// Completes with the first refused subject after mark `since` (polled: refusals are rare
    /// and this only runs while a resource is being set up).
    pub(super) async fn jetstream_refusal(since: u64) -> String {
        loop {
            if let Some(subject) = jetstream_refusal_now(since) {
                return subject;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Open bucket `config.bucket`, creating it (with leader reads) when missing; a bucket an
/// older wadm created with direct gets is switched to leader reads. One attempt: the error
/// says why (callers retry while a clustered JetStream forms).
pub async fn open_or_create(
    js: &jetstream::Context,
    config: &kv::Config,
) -> Result<kv::Store, String> {
    match js.get_key_value(&config.bucket).await {
        Ok(store) => leader_reads(js, store).await.map_err(|e| e.to_string()),
        Err(read) => {
            // Replicas racing to create it send the same configuration, which the server
            // accepts as one creation.
            js.create_stream(bucket_stream(config))
                .await
                .map_err(|e| format!("{e} (read: {read})"))?;
            js.get_key_value(&config.bucket).await.map_err(|e| e.to_string())
        }
    }
}

/// Switch `store` to leader reads if it is not yet; returns a handle that knows.
pub async fn leader_reads(
    js: &jetstream::Context,
    store: kv::Store,
) -> Result<kv::Store, async_nats::Error> {
    let mut stream = js.get_stream(&store.stream_name).await?;
    let info = stream.info().await?;
    if !info.config.allow_direct {
        return Ok(store);
    }
    let mut config = info.config.clone();
    config.allow_direct = false;
    js.update_stream(config).await?;
    Ok(js.get_key_value(&store.name).await?)
}

/// The stream behind KV bucket `config`: the layout every NATS KV client reads (stream
/// `KV_{bucket}` on subjects `$KV.{bucket}.>`, `history` messages per key, rollups allowed,
/// deletes only by marker, new writes refused when full), with direct gets off.
pub fn bucket_stream(config: &kv::Config) -> stream::Config {
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
        allow_direct: false,
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

    #[tokio::test]
    async fn buckets_read_from_the_leader_new_and_old() {
        let nats = NatsServer::start();
        let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
        // New: created with direct gets off, a working KV.
        let config = kv::Config { bucket: "fresh".into(), history: 1, ..Default::default() };
        let store = open_or_create(&js, &config).await.unwrap();
        assert!(!allows_direct(&js, "fresh").await);
        let revision = store.put("k", Bytes::from_static(b"v")).await.unwrap();
        let entry = store.entry("k").await.unwrap().unwrap();
        assert_eq!((entry.value.as_ref(), entry.revision), (&b"v"[..], revision));
        assert_eq!(store.get("missing").await.unwrap(), None);
        // Opening again (another replica) changes nothing.
        open_or_create(&js, &config).await.unwrap();
        // Old: made by the library's default (direct gets on), switched once, data kept.
        let old = kv::Config { bucket: "old".into(), history: 1, ..Default::default() };
        let made = js.create_key_value(old.clone()).await.unwrap();
        made.put("k", Bytes::from_static(b"kept")).await.unwrap();
        assert!(allows_direct(&js, "old").await);
        let store = open_or_create(&js, &old).await.unwrap();
        assert!(!allows_direct(&js, "old").await);
        assert!(!store.stream.cached_info().config.allow_direct, "the handle knows");
        assert_eq!(store.get("k").await.unwrap(), Some(Bytes::from_static(b"kept")));
    }

    #[test]
    fn permanent_failures_are_recognised() {
        let refused = "nats: Permissions Violation for Publish to \"$JS.API.STREAM.INFO.KV_x\"";
        assert_eq!(refusals::refused_subject(refused), Some("$JS.API.STREAM.INFO.KV_x"));
        let domain = "nats: Permissions Violation for Publish to \"$JS.hub.API.STREAM.INFO.s\"";
        assert_eq!(refusals::refused_subject(domain), Some("$JS.hub.API.STREAM.INFO.s"));
        for other in [
            "nats: Permissions Violation for Publish to \"wasmbus.ctl.v1.default.host.ping\"",
            "nats: Permissions Violation for Subscription to \"wasmbus.evt.default.>\"",
            "nats: Maximum Payload Violation",
        ] {
            assert_eq!(refusals::refused_subject(other), None, "{other}");
        }
        let disabled = "jetstream error: JetStream not enabled for account (code 503, error code \
                        10039)";
        assert!(is_jetstream_disabled(disabled));
        assert!(!is_jetstream_disabled("jetstream request timed out"));
    }

    /// The status stream reads from the leader: created with direct gets off, and an older one
    /// (direct gets on, as wadm used to make it) switched once when opened, its statuses kept;
    /// the same for an account's own status stream, opened on first use by the status store.
    #[tokio::test]
    async fn the_status_stream_reads_from_the_leader_new_and_old() {
        use crate::status::{NatsStatusStore, StatusStore};
        let nats = NatsServer::start();
        let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
        let fresh = NatsStatusStore::stream_config("fresh_status", None, 1);
        assert!(!fresh.allow_direct);
        let fresh = NatsStatusStore::stream_config("fresh_status", Some("FRESH"), 1);
        let stream = ensure_stream(&js, fresh).await.unwrap();
        assert!(!stream.cached_info().config.allow_direct);

        let mut old = NatsStatusStore::stream_config("wadm_status", None, 1);
        old.allow_direct = true;
        js.create_stream(old.clone()).await.unwrap();
        js.publish("wadm.status.default.kept", "{}".into()).await.unwrap().await.unwrap();
        let mut old_account = NatsStatusStore::stream_config("wadm_status", Some("ACC"), 1);
        old_account.allow_direct = true;
        js.create_stream(old_account).await.unwrap();

        let config = NatsStatusStore::stream_config("wadm_status", None, 1);
        let stream = ensure_stream(&js, config).await.unwrap();
        assert!(!stream.cached_info().config.allow_direct, "the handle knows");
        let mut stream = js.get_stream("wadm_status").await.unwrap();
        assert!(!stream.info().await.unwrap().config.allow_direct);
        let kept = stream.get_last_raw_message_by_subject("wadm.status.default.kept").await;
        assert_eq!(kept.unwrap().payload.as_ref(), b"{}");

        let store = NatsStatusStore::new(js.clone(), stream);
        store.list("ACC.default").await.unwrap();
        let mut account = js.get_stream("wadm_status_ACC").await.unwrap();
        assert!(!account.info().await.unwrap().config.allow_direct);
    }
}
