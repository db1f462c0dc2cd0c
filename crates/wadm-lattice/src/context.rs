//! Where an event came from: the emitting host, the event id and the event's own time.

use wadm_protocol::CloudEvent;

use crate::bookkeeping::EventStamp;
use crate::time::Timestamp;

/// The envelope facts the reducer needs besides the payload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventContext {
    /// The CloudEvent `source`: the emitting host's id (preferred over `data.host_id`).
    pub source: String,
    /// The CloudEvent `id`.
    pub id: String,
    /// The event's own time in ms since the epoch, when it had a readable one.
    pub time: Option<Timestamp>,
}

impl EventContext {
    /// The context of a decoded envelope; an unreadable `time` becomes `None`.
    pub fn from_cloud_event(event: &CloudEvent) -> Self {
        Self {
            source: event.source.clone(),
            id: event.id.clone(),
            time: parse_rfc3339_ms(&event.time),
        }
    }

    /// This context with its time clamped to `latest`: a host's clock is evidence, not truth,
    /// and one event stamped in the future (a skewed clock, or a spoofed 2099) must not make
    /// every later event of that host look stale.
    pub fn clamped(&self, latest: Timestamp) -> EventContext {
        let time = self.time.map(|t| if t > latest { latest } else { t });
        EventContext { source: self.source.clone(), id: self.id.clone(), time }
    }

    /// The event's stamp; an event without a readable time is placed at `now`.
    pub fn stamp(&self, now: Timestamp) -> EventStamp {
        EventStamp { time: self.time.unwrap_or(now), id: self.id.clone() }
    }
}

/// Milliseconds since the epoch of an RFC 3339 time, or `None` (empty, malformed, before 1970).
pub fn parse_rfc3339_ms(text: &str) -> Option<Timestamp> {
    let parsed = chrono::DateTime::parse_from_rfc3339(text.trim()).ok()?;
    u64::try_from(parsed.timestamp_millis()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn future_times_are_clamped() {
        let ctx =
            EventContext { source: "h".into(), id: "1".into(), time: Some(4_000_000_000_000) };
        assert_eq!(ctx.clamped(1_000).time, Some(1_000));
        let past = EventContext { time: Some(500), ..ctx.clone() };
        assert_eq!(past.clamped(1_000).time, Some(500));
        let none = EventContext { time: None, ..ctx };
        assert_eq!(none.clamped(1_000).time, None);
    }

    #[test]
    fn parses_upstream_times() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(parse_rfc3339_ms("2024-01-22T20:13:22.611283Z"), Some(1_705_954_402_611));
        assert_eq!(parse_rfc3339_ms(""), None);
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
        assert_eq!(parse_rfc3339_ms("1960-01-01T00:00:00Z"), None);
    }
}
