//! wadm's KV buckets, read from the stream leader.
//!
//! A KV bucket answers reads with *direct gets* by default, which any replica of a clustered
//! stream may serve, a lagging follower included: a read right after an acknowledged write
//! could miss it (a `deploy` right after its `put` answered "not found"; a step planned on
//! entities older than its head). With direct gets off, a read is a `STREAM.MSG.GET` that the
//! stream leader answers, after every acknowledged write. The setting is the stream's, so every
//! replica (and every later start) reads the same way, and the cost is small (≈ 0.6 ms against
//! ≈ 0.35 ms a read on a 3-node loopback cluster).

use async_nats::jetstream::{self, kv, stream};

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
}
