//! Distributed traces of what wadm does, for an OpenTelemetry collector: one trace from a batch
//! of lattice events through each command decided on it (`wadm.decide {kind}`) to each attempt
//! at sending it and the host's reply (`wadm.send {kind}`), across replicas — a command carries
//! its decision's W3C `traceparent` in the command stream. This module owns span identity and
//! timing; the binary installs an [`SpanExporter`] (e.g. OTLP over HTTP). Until one is
//! installed every call here is a no-op and nothing is allocated.

use std::sync::OnceLock;
use std::time::SystemTime;

/// Where finished spans go. Must not block: called on the runtime's hot paths.
pub trait SpanExporter: Send + Sync {
    /// Take one finished span (queue it, send it, or drop it).
    fn export(&self, span: FinishedSpan);
}

static EXPORTER: OnceLock<Box<dyn SpanExporter>> = OnceLock::new();

/// Install the process's exporter (the first one installed stays).
pub fn install(exporter: Box<dyn SpanExporter>) {
    let _ = EXPORTER.set(exporter);
}

/// Whether spans are recorded.
pub fn enabled() -> bool {
    EXPORTER.get().is_some()
}

/// A span's identity, as carried between processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanContext {
    /// The trace it belongs to (never 0).
    pub trace_id: u128,
    /// The span's own id (never 0).
    pub span_id: u64,
}

impl SpanContext {
    /// The W3C `traceparent` value (version 00, sampled).
    pub fn traceparent(&self) -> String {
        format!("00-{:032x}-{:016x}-01", self.trace_id, self.span_id)
    }

    /// Read a `traceparent` value; `None` when it is not one (or names the invalid all-zero ids).
    pub fn parse(value: &str) -> Option<SpanContext> {
        let mut parts = value.trim().split('-');
        let (version, trace, span, _flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version.len() != 2 || trace.len() != 32 || span.len() != 16 {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok().filter(|t| *t != 0)?;
        let span_id = u64::from_str_radix(span, 16).ok().filter(|s| *s != 0)?;
        Some(SpanContext { trace_id, span_id })
    }
}

/// A span that ended, handed to the exporter.
#[derive(Debug, Clone, PartialEq)]
pub struct FinishedSpan {
    /// The trace it belongs to.
    pub trace_id: u128,
    /// Its own id.
    pub span_id: u64,
    /// The span it is under; `None` for a trace's first span.
    pub parent_span_id: Option<u64>,
    /// What was done (`wadm.decide scale_component`, …).
    pub name: String,
    /// `true` for a request to another process (a control request to a host).
    pub client: bool,
    /// When it started (wall clock).
    pub start: SystemTime,
    /// When it ended (wall clock).
    pub end: SystemTime,
    /// Key-value attributes, in the order they were set.
    pub attributes: Vec<(&'static str, String)>,
    /// Set when the work failed: why.
    pub error: Option<String>,
}

/// A span being recorded; exported when [`Span::end`] is called (dropping it discards it).
#[derive(Debug)]
pub struct Span {
    finished: FinishedSpan,
}

/// A fresh non-zero id: a per-process randomly keyed hash of a counter (ids only need to be
/// unique, not secret; no random-number crate needed).
fn nonzero_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static KEYS: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let keys = KEYS.get_or_init(std::collections::hash_map::RandomState::new);
    loop {
        let mut hasher = keys.build_hasher();
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        let id = hasher.finish();
        if id != 0 {
            return id;
        }
    }
}

impl Span {
    /// A new trace's first span; `None` when tracing is off.
    pub fn root(name: impl Into<String>) -> Option<Span> {
        if !enabled() {
            return None;
        }
        let trace_id = (u128::from(nonzero_u64()) << 64) | u128::from(nonzero_u64());
        Some(Span::starting(trace_id, None, name.into()))
    }

    /// A span under `parent` (possibly from another process); `None` when tracing is off.
    pub fn child(parent: &SpanContext, name: impl Into<String>) -> Option<Span> {
        if !enabled() {
            return None;
        }
        Some(Span::starting(parent.trace_id, Some(parent.span_id), name.into()))
    }

    fn starting(trace_id: u128, parent_span_id: Option<u64>, name: String) -> Span {
        let now = SystemTime::now();
        Span {
            finished: FinishedSpan {
                trace_id,
                span_id: nonzero_u64(),
                parent_span_id,
                name,
                client: false,
                start: now,
                end: now,
                attributes: Vec::new(),
                error: None,
            },
        }
    }

    /// Its identity, to start children under it or to carry in a `traceparent`.
    pub fn context(&self) -> SpanContext {
        SpanContext { trace_id: self.finished.trace_id, span_id: self.finished.span_id }
    }

    /// Mark it as a request to another process.
    pub fn client(mut self) -> Span {
        self.finished.client = true;
        self
    }

    /// Add the attribute `key` (the value as a string).
    pub fn set(&mut self, key: &'static str, value: impl ToString) {
        self.finished.attributes.push((key, value.to_string()));
    }

    /// Record that the work failed.
    pub fn fail(&mut self, why: impl Into<String>) {
        self.finished.error = Some(why.into());
    }

    /// End it now and hand it to the exporter.
    pub fn end(mut self) {
        self.finished.end = SystemTime::now();
        if let Some(exporter) = EXPORTER.get() {
            exporter.export(self.finished);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_round_trip_and_reject_garbage() {
        let ctx = SpanContext {
            trace_id: 0x0af7651916cd43dd8448eb211c80319c,
            span_id: 0xb7ad6b7169203331,
        };
        let header = ctx.traceparent();
        assert_eq!(header, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
        assert_eq!(SpanContext::parse(&header), Some(ctx));
        for bad in [
            "",
            "00-xyz-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
        ] {
            assert_eq!(SpanContext::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn nothing_is_recorded_without_an_exporter() {
        // No exporter is installed in this test binary.
        assert!(Span::root("x").is_none());
        let parent = SpanContext { trace_id: 1, span_id: 1 };
        assert!(Span::child(&parent, "y").is_none());
    }
}
