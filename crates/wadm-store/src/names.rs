//! The names of every JetStream resource wadm uses, from one prefix ([`StoreNames`]): streams
//! `{p}_events`, `{p}_commands`, `{p}_status`, buckets `{p}_manifests`, `{p}_runtime`,
//! `{p}_runtime_state`, and per-lattice durable consumers `{p}_events_{lattice}`,
//! `{p}_commands_{lattice}`. The default prefix `wadm` gives the names wadm always used.
//! Subjects are not renamed.

use crate::kv_key::encode_token;

/// Why a prefix cannot name JetStream resources.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid store prefix {prefix:?}: {reason}")]
pub struct InvalidPrefix {
    /// The prefix given.
    pub prefix: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// The names of wadm's streams, buckets and durable consumers, all `{prefix}_…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreNames {
    prefix: String,
}

impl StoreNames {
    /// The prefix of today's (and every earlier) wadm.
    pub const DEFAULT_PREFIX: &'static str = "wadm";
    /// The longest prefix accepted (stream names stay well under NATS's limits).
    pub const MAX_PREFIX_LEN: usize = 32;

    /// Names under `prefix`: letters, digits, `-` and `_` only (a NATS stream name token).
    pub fn with_prefix(prefix: impl Into<String>) -> Result<Self, InvalidPrefix> {
        let prefix = prefix.into();
        let invalid = |reason| Err(InvalidPrefix { prefix: prefix.clone(), reason });
        if prefix.is_empty() {
            return invalid("it is empty");
        }
        if prefix.len() > Self::MAX_PREFIX_LEN {
            return invalid("it is longer than 32 characters");
        }
        if !prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return invalid("only letters, digits, '-' and '_' are allowed");
        }
        Ok(Self { prefix })
    }

    /// The prefix every name starts with (`wadm` by default).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn name(&self, what: &str) -> String {
        format!("{}_{what}", self.prefix)
    }

    /// Host, manifest and runtime events of every lattice (`wadm_events`).
    pub fn events_stream(&self) -> String {
        self.name("events")
    }
    /// Control commands to execute (`wadm_commands`).
    pub fn commands_stream(&self) -> String {
        self.name("commands")
    }
    /// The last status of every application (`wadm_status`).
    pub fn status_stream(&self) -> String {
        self.name("status")
    }
    /// Manifests, versions and history (`wadm_manifests`).
    pub fn manifest_bucket(&self) -> String {
        self.name("manifests")
    }
    /// The runtime's lattice heads (`wadm_runtime`).
    pub fn runtime_bucket(&self) -> String {
        self.name("runtime")
    }
    /// Observed lattice state, one key per entity (`wadm_runtime_state`).
    pub fn observed_bucket(&self) -> String {
        self.name("runtime_state")
    }
    /// The durable event consumer of `lattice` (`wadm_events_{lattice}`, escaped).
    pub fn event_consumer(&self, lattice: &str) -> String {
        format!("{}_{}", self.events_stream(), encode_token(lattice))
    }
    /// The durable command consumer of `lattice` (`wadm_commands_{lattice}`, escaped).
    pub fn command_consumer(&self, lattice: &str) -> String {
        format!("{}_{}", self.commands_stream(), encode_token(lattice))
    }
}

impl Default for StoreNames {
    fn default() -> Self {
        Self { prefix: Self::DEFAULT_PREFIX.to_string() }
    }
}

impl std::str::FromStr for StoreNames {
    type Err = InvalidPrefix;
    fn from_str(prefix: &str) -> Result<Self, InvalidPrefix> {
        Self::with_prefix(prefix)
    }
}

impl std::fmt::Display for StoreNames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_prefix_keeps_todays_names() {
        let n = StoreNames::default();
        let names = [
            n.events_stream(),
            n.commands_stream(),
            n.status_stream(),
            n.manifest_bucket(),
            n.runtime_bucket(),
            n.observed_bucket(),
            n.event_consumer("a.b"),
            n.command_consumer("default"),
        ];
        assert_eq!(
            names,
            [
                "wadm_events",
                "wadm_commands",
                "wadm_status",
                "wadm_manifests",
                "wadm_runtime",
                "wadm_runtime_state",
                "wadm_events_a=2Eb",
                "wadm_commands_default",
            ]
        );
        assert_eq!(StoreNames::with_prefix("acme").unwrap().manifest_bucket(), "acme_manifests");
    }

    #[test]
    fn prefixes_are_stream_name_tokens() {
        for ok in ["acme", "a-b_9", "X"] {
            assert!(StoreNames::with_prefix(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a.b", "a b", "a*", "a>", "ü", &"x".repeat(33)] {
            assert!(StoreNames::with_prefix(bad).is_err(), "{bad:?}");
        }
    }
}
