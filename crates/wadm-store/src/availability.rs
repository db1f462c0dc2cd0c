//! Where a read goes ([`Reads`]), and telling storage that is really gone from storage that is
//! only briefly unavailable ([`classify`]).
//!
//! A replicated stream (or bucket) without a leader — NATS elects a new one a few seconds after
//! its node is lost — answers nothing through its leader: reads and writes time out, JetStream
//! answers 503 "temporarily unavailable" (10008), a publish finds "no stream" (no responders).
//! Its followers still answer *direct gets* when the stream allows them, from what they have: a
//! read that may miss the last acknowledged writes. Only JetStream's meta leader says a stream or
//! consumer does not exist (404, 10059 / 10014): that alone means it is gone.

/// Where a read goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reads {
    /// The stream leader (`STREAM.MSG.GET`): current — it has every acknowledged write — but
    /// unanswered while a leader is elected.
    #[default]
    Leader,
    /// Any replica (`DIRECT.GET`, on streams made with `allow_direct`): answered by followers
    /// during an election too, possibly missing the latest writes.
    AnyReplica,
}

/// What a JetStream error says about the storage behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// JetStream says the stream, bucket or consumer does not exist (404: 10059, 10014).
    Gone,
    /// Nobody answered, or JetStream said "try again": an election, a node restarting, a
    /// network split. Nothing is known to be lost; ask again.
    Unavailable,
    /// Any other error (a refused write, a bad request…).
    Other,
}

/// Classify one JetStream error, as its one-line text (what wadm keeps of errors; the
/// async-nats error kinds differ per call and wrap each other).
///
/// "No stream found for given subject" (a publish nobody acknowledged) and "no responders"
/// are unavailability: a leader-less stream shows exactly so, and only the meta leader can
/// tell that a stream is missing.
pub fn classify(error: &str) -> Availability {
    let error = error.to_ascii_lowercase();
    let gone = ["10059", "10014", "stream not found", "consumer not found"];
    if gone.iter().any(|m| error.contains(m)) {
        return Availability::Gone;
    }
    let unavailable = [
        "10008",
        "temporarily unavailable",
        "503",
        "no responders",
        "timed out",
        "deadline has elapsed",
        "no stream found for given subject",
        "not connected",
        "disconnected",
        "no leader",
        "leader not available",
    ];
    if unavailable.iter().any(|m| error.contains(m)) {
        return Availability::Unavailable;
    }
    Availability::Other
}

/// Whether `error` means "ask again shortly" ([`Availability::Unavailable`]).
pub fn is_unavailable(error: &str) -> bool {
    classify(error) == Availability::Unavailable
}

/// What wadm answers (and logs) for an operation the storage could not serve for now.
pub const RETRY_NOTE: &str =
    "storage is temporarily unavailable (JetStream is electing a leader?): retry shortly";

/// What asking JetStream about streams and consumers found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// Every one exists.
    Present,
    /// JetStream says these do not exist (`stream` or `stream/consumer`).
    Missing(Vec<String>),
    /// JetStream did not say (no answer within the wait, or "try again"): the reason.
    Unavailable(String),
}

/// Ask JetStream whether each of `streams` exists, and each of their `consumers` (stream name,
/// consumer name), each question answered within `wait`. Only JetStream's own "not found" makes
/// one missing: a stream without a leader, a JetStream electing or restarting, is
/// [`Checked::Unavailable`].
pub async fn check_exist(
    js: &async_nats::jetstream::Context,
    streams: &[String],
    consumers: &[(String, String)],
    wait: std::time::Duration,
) -> Checked {
    let mut missing = Vec::new();
    let mut unavailable = None;
    let mut note = |what: String, result: Result<(), String>| match result {
        Ok(()) => {}
        Err(reason) if classify(&reason) == Availability::Gone => missing.push(what),
        Err(reason) => {
            unavailable.get_or_insert(format!("{what}: {reason}"));
        }
    };
    for name in streams {
        let asked = tokio::time::timeout(wait, js.get_stream(name)).await;
        note(name.clone(), answered(asked.map(|r| r.map(drop)), wait));
    }
    for (stream, consumer) in consumers {
        let asked = tokio::time::timeout(wait, async {
            let stream = js.get_stream(stream).await.map_err(|e| wadm_protocol::one_line(&e))?;
            stream.consumer_info(consumer).await.map_err(|e| wadm_protocol::one_line(&e))?;
            Ok::<_, String>(())
        })
        .await;
        let result = asked.unwrap_or_else(|_| Err(format!("no answer within {wait:?}")));
        note(format!("{stream}/{consumer}"), result);
    }
    match (missing.is_empty(), unavailable) {
        (false, _) => Checked::Missing(missing),
        (true, Some(reason)) => Checked::Unavailable(reason),
        (true, None) => Checked::Present,
    }
}

/// A timed JetStream answer as one-line text.
fn answered<E: std::error::Error>(
    asked: Result<Result<(), E>, tokio::time::error::Elapsed>,
    wait: std::time::Duration,
) -> Result<(), String> {
    match asked {
        Ok(result) => result.map_err(|e| wadm_protocol::one_line(&e)),
        Err(_) => Err(format!("no answer within {wait:?} (timed out)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The texts async-nats 0.51 gives on nats-server 2.15 (3-node cluster), as `one_line`
    /// keeps them.
    #[test]
    fn election_errors_are_unavailable_and_only_404s_are_gone() {
        for gone in [
            "jetstream error: stream not found (code 404, error code 10059)",
            "get stream: stream not found (10059)",
            "consumer not found",
            "jetstream error: consumer not found (code 404, error code 10014)",
        ] {
            assert_eq!(classify(gone), Availability::Gone, "{gone}");
        }
        for electing in [
            "JetStream error: JetStream system temporarily unavailable (code 503, error code \
             10008)",
            "ack error: no stream found for given subject",
            "failed getting entry: no stream found for given subject",
            "failed to get the bucket: request error: timed out: request timed out: deadline \
             has elapsed",
            "pull: no responders",
            "fetch: error while processing messages from the stream: 503, None",
            "request error: no responders",
        ] {
            assert_eq!(classify(electing), Availability::Unavailable, "{electing}");
        }
        for other in [
            "wrong last revision: wrong last sequence: 4 (code 400, error code 10071)",
            "invalid key",
        ] {
            assert_eq!(classify(other), Availability::Other, "{other}");
        }
    }
}
