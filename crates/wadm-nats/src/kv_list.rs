//! Listing the live entries of a JetStream KV bucket under a key pattern without creating a
//! consumer: one stream-info request with a subjects filter names the keys (paged by the server),
//! then the last value of each key is read with a (direct) get, a bounded number at a time.
//! Delete and purge markers are skipped.
//!
//! Why not a watch or an ordered consumer: every such listing creates a JetStream consumer that
//! outlives the call, so frequent listings (an API `model.get` per CLI call, a dashboard polling)
//! exhaust the server's consumer limit. This listing leaves nothing behind on the server.

use async_nats::jetstream::kv;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

/// How many key reads are in flight at once.
const GETS_IN_FLIGHT: usize = 32;

/// The live value of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveEntry {
    /// The key (without the bucket's subject prefix).
    pub key: String,
    pub value: Bytes,
    /// The stream sequence that wrote it (the KV revision).
    pub revision: u64,
}

/// Why a listing failed: the pattern and one line of reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot list keys {pattern}: {reason}")]
pub struct ListError {
    pub pattern: String,
    pub reason: String,
}

/// Every live entry of `store` whose key matches `pattern` (NATS wildcards `*` and `>`),
/// sorted by key. Keys deleted or purged while the listing runs are left out.
pub async fn live_entries(store: &kv::Store, pattern: &str) -> Result<Vec<LiveEntry>, ListError> {
    let fail = |e: &dyn std::error::Error| ListError {
        pattern: pattern.to_string(),
        reason: crate::connect::one_line(e),
    };
    let filter = format!("{}{pattern}", store.prefix);
    let subjects = store.stream.info_with_subjects(&filter).await.map_err(|e| fail(&e))?;
    let mut keys: Vec<String> = subjects
        .map_ok(|(subject, _count)| {
            subject.strip_prefix(store.prefix.as_str()).unwrap_or(&subject).to_string()
        })
        .try_collect()
        .await
        .map_err(|e| fail(&e))?;
    keys.sort();
    let reads = futures::stream::iter(keys)
        .map(|key| async move {
            let entry = store.entry(key.as_str()).await;
            entry.map(|entry| (key, entry))
        })
        .buffered(GETS_IN_FLIGHT);
    let found: Vec<(String, Option<kv::Entry>)> =
        reads.try_collect().await.map_err(|e| fail(&e))?;
    Ok(found
        .into_iter()
        .filter_map(|(key, entry)| {
            let entry = entry.filter(|e| e.operation == kv::Operation::Put)?;
            Some(LiveEntry { key, value: entry.value, revision: entry.revision })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_nats::jetstream;
    use wadm_test_support::NatsServer;

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

        for _ in 0..3 {
            let listed = live_entries(&store, "l.*.index").await.unwrap();
            let keys: Vec<&str> = listed.iter().map(|e| e.key.as_str()).collect();
            assert_eq!(keys, ["l.a.index", "l.b.index"]);
            assert_eq!(listed[1].value, Bytes::from_static(b"new"));
            assert_eq!(listed[1].revision, rewritten);
        }
        assert!(live_entries(&store, "none.>").await.unwrap().is_empty());
        let mut stream = js.get_stream("KV_list").await.unwrap();
        assert_eq!(stream.info().await.unwrap().state.consumer_count, 0);
    }
}
