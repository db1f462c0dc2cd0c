//! Listing the last message of every subject of a stream matching a filter, without creating a
//! consumer (a consumer per listing would exhaust the server's limit: `docs/deploy.md`). From
//! the leader ([`Reads::Leader`]): a stream-info request with a subjects filter names the
//! subjects (paged), then the last message of each is read from the leader, a bounded number at
//! a time. From any replica ([`Reads::AnyReplica`], while no leader answers): direct gets over
//! the filter, one after another, each sent `HEDGE` times at once (a frozen replica may be
//! picked), the first answer counting. [`live_entries`] does this for a KV bucket and skips
//! delete and purge markers.

use async_nats::jetstream::kv;
use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::stream::{DirectGetErrorKind, LastRawMessageErrorKind, Stream};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use crate::availability::Reads;

/// How many reads are in flight at once.
const GETS_IN_FLIGHT: usize = 32;

/// The live value of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveEntry {
    /// The key (without the bucket's subject prefix).
    pub key: String,
    /// Its value.
    pub value: Bytes,
    /// The stream sequence that wrote it (the KV revision).
    pub revision: u64,
}

/// Why a listing failed: the filter and one line of reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot list {pattern}: {reason}")]
pub struct ListError {
    /// The key filter listed.
    pub pattern: String,
    /// Why it failed, one line.
    pub reason: String,
}

impl ListError {
    fn new(pattern: &str, error: &dyn std::error::Error) -> Self {
        ListError { pattern: pattern.to_string(), reason: wadm_protocol::one_line(error) }
    }
}

/// The last message of every subject of `stream` matching `filter` (NATS wildcards), sorted by
/// subject. Subjects whose messages are removed while the listing runs are left out.
pub async fn last_per_subject(
    stream: &Stream,
    filter: &str,
    reads: Reads,
) -> Result<Vec<StreamMessage>, ListError> {
    if reads == Reads::AnyReplica {
        return last_per_subject_any_replica(stream, filter).await;
    }
    let subjects =
        stream.info_with_subjects(filter).await.map_err(|e| ListError::new(filter, &e))?;
    let mut subjects: Vec<String> = subjects
        .map_ok(|(subject, _count)| subject)
        .try_collect()
        .await
        .map_err(|e| ListError::new(filter, &e))?;
    subjects.sort();
    let reads = futures::stream::iter(subjects)
        .map(|subject| last_message(stream, Reads::Leader, subject))
        .buffered(GETS_IN_FLIGHT);
    let found: Vec<Option<StreamMessage>> = reads
        .try_collect()
        .await
        .map_err(|reason| ListError { pattern: filter.to_string(), reason })?;
    Ok(found.into_iter().flatten().collect())
}

/// The last message of every subject matching `filter`, read from any replica: the messages on
/// the filter in stream order (direct gets "next by subject"), the last one per subject kept.
async fn last_per_subject_any_replica(
    stream: &Stream,
    filter: &str,
) -> Result<Vec<StreamMessage>, ListError> {
    let mut last = std::collections::BTreeMap::new();
    let mut from = 1;
    loop {
        let next = direct(|| stream.direct_get_next_for_subject(filter, Some(from))).await;
        match next.map_err(|reason| ListError { pattern: filter.to_string(), reason })? {
            Some(message) => {
                from = message.sequence + 1;
                last.insert(message.subject.to_string(), message);
            }
            None => break,
        }
    }
    Ok(last.into_values().collect())
}

/// How many copies of a direct get are sent at once.
const HEDGE: usize = 3;
/// How long one round of copies is given before another is sent.
const HEDGE_WAIT: std::time::Duration = std::time::Duration::from_millis(400);
/// Rounds before giving up.
const HEDGE_ROUNDS: usize = 5;

/// A direct get (`None`: no such message). JetStream hands a direct get to any replica of the
/// stream at random, a frozen or unreachable one too (until the cluster drops it): [`HEDGE`]
/// copies are sent at once and the first answer counts; a round nobody answers within
/// [`HEDGE_WAIT`] is sent again, up to [`HEDGE_ROUNDS`] times.
async fn direct<F, Fut>(get: F) -> Result<Option<StreamMessage>, String>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<
            Output = Result<StreamMessage, async_nats::jetstream::stream::DirectGetError>,
        >,
{
    let mut last_error = String::from("no replica answered");
    for _ in 0..HEDGE_ROUNDS {
        let copies = (0..HEDGE).map(|_| {
            Box::pin(async {
                match tokio::time::timeout(HEDGE_WAIT, get()).await {
                    Ok(Ok(message)) => Ok(Some(message)),
                    Ok(Err(e)) if e.kind() == DirectGetErrorKind::NotFound => Ok(None),
                    Ok(Err(e)) => Err(wadm_protocol::one_line(&e)),
                    Err(_) => Err(format!("no replica answered within {HEDGE_WAIT:?} (timed out)")),
                }
            })
        });
        match futures::future::select_ok(copies).await {
            Ok((answer, _others)) => return Ok(answer),
            Err(e) if crate::availability::is_unavailable(&e) => last_error = e,
            Err(e) => return Err(e),
        }
    }
    Err(last_error)
}

/// Whether a bucket's message is a delete or purge marker (`KV-Operation`).
pub(crate) fn is_removal(message: &StreamMessage) -> bool {
    let operation = message.headers.get("KV-Operation").map(|op| op.as_str());
    matches!(operation, Some("DEL" | "PURGE"))
}

/// The last message on `subject`, `None` when there is none (any more); errors as one line.
pub(crate) async fn last_message(
    stream: &Stream,
    reads: Reads,
    subject: String,
) -> Result<Option<StreamMessage>, String> {
    if reads == Reads::AnyReplica {
        direct(|| stream.direct_get_last_for_subject(subject.as_str())).await
    } else {
        match stream.get_last_raw_message_by_subject(&subject).await {
            Ok(message) => Ok(Some(message)),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(wadm_protocol::one_line(&e)),
        }
    }
}

/// Every live entry of `store` whose key matches `pattern` (NATS wildcards `*` and `>`),
/// sorted by key. Keys deleted or purged while the listing runs are left out.
pub async fn live_entries(
    store: &kv::Store,
    pattern: &str,
    reads: Reads,
) -> Result<Vec<LiveEntry>, ListError> {
    let filter = format!("{}{pattern}", store.prefix);
    let messages = last_per_subject(&store.stream, &filter, reads)
        .await
        .map_err(|e| ListError { pattern: pattern.to_string(), reason: e.reason })?;
    Ok(messages
        .into_iter()
        .filter(|m| !is_removal(m))
        .map(|m| LiveEntry {
            key: m.subject.strip_prefix(store.prefix.as_str()).unwrap_or(&m.subject).to_string(),
            value: m.payload,
            revision: m.sequence,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_nats::jetstream;
    use wadm_test_support::NatsServer;

    /// From the leader and from any replica alike (the library's buckets allow direct gets;
    /// this one keeps 3 values per key, so the any-replica listing sees older ones and skips
    /// them).
    #[tokio::test]
    async fn lists_live_keys_and_leaves_no_consumer() {
        let nats = NatsServer::start();
        let client = async_nats::connect(nats.url()).await.unwrap();
        let js = jetstream::new(client);
        let config = kv::Config { bucket: "list".into(), history: 3, ..Default::default() };
        let store = js.create_key_value(config).await.unwrap();
        for key in ["l.b.index", "l.a.index", "l.c.index", "l.a.v.1", "other.a.index"] {
            store.put(key, Bytes::from(key.to_string())).await.unwrap();
        }
        let rewritten = store.put("l.b.index", Bytes::from_static(b"new")).await.unwrap();
        store.delete("l.c.index").await.unwrap();
        store.put("l.d.index", Bytes::new()).await.unwrap();
        store.purge("l.d.index").await.unwrap();

        for reads in [Reads::Leader, Reads::AnyReplica, Reads::Leader] {
            let listed = live_entries(&store, "l.*.index", reads).await.unwrap();
            let keys: Vec<&str> = listed.iter().map(|e| e.key.as_str()).collect();
            assert_eq!(keys, ["l.a.index", "l.b.index"], "{reads:?}");
            assert_eq!(listed[1].value, Bytes::from_static(b"new"));
            assert_eq!(listed[1].revision, rewritten);
            assert!(live_entries(&store, "none.>", reads).await.unwrap().is_empty());
        }
        let mut stream = js.get_stream("KV_list").await.unwrap();
        assert_eq!(stream.info().await.unwrap().state.consumer_count, 0);
    }
}
