//! The key scheme of observed state in a JetStream KV bucket: one key per entity.
//!
//! `{lattice}.host.{host}`, `{lattice}.comp.{host}.{component}`, `{lattice}.prov.{host}.{provider}`,
//! `{lattice}.link.{source}.{namespace}.{package}.{name}`, `{lattice}.config.{name}`, and
//! `{lattice}.gone.{host}` for the tombstone of a host that stopped or was lost.
//! Every token is encoded so that it contains only `[-_a-zA-Z0-9]` or `=`-escapes: any other byte
//! (including `.` and `/`) becomes `=XX` (upper-case hex), and the empty string becomes a lone `=`.
//! Decoding is exact, so ids round-trip whatever characters they hold.

use wadm_protocol::LinkKey;

/// What a key names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum EntityKey {
    /// A host's own record.
    Host {
        /// The host's id.
        host: String,
    },
    /// A component running on a host.
    Component {
        /// The host's id.
        host: String,
        /// The component's id.
        component: String,
    },
    /// A provider running on a host.
    Provider {
        /// The host's id.
        host: String,
        /// The provider's id.
        provider: String,
    },
    /// A link, by its identity.
    Link(LinkKey),
    /// A named config.
    Config {
        /// The config's name.
        name: String,
    },
    /// The tombstone of a host that stopped or was lost.
    Gone {
        /// The host's id.
        host: String,
    },
}

pub use crate::kv_key::{decode_token, encode_token};

/// The key of an entity in `lattice`.
pub fn key_of(lattice: &str, entity: &EntityKey) -> String {
    let l = encode_token(lattice);
    match entity {
        EntityKey::Host { host } => format!("{l}.host.{}", encode_token(host)),
        EntityKey::Component { host, component } => {
            format!("{l}.comp.{}.{}", encode_token(host), encode_token(component))
        }
        EntityKey::Provider { host, provider } => {
            format!("{l}.prov.{}.{}", encode_token(host), encode_token(provider))
        }
        EntityKey::Link(k) => format!(
            "{l}.link.{}.{}.{}.{}",
            encode_token(&k.source_id),
            encode_token(&k.wit_namespace),
            encode_token(&k.wit_package),
            encode_token(&k.name)
        ),
        EntityKey::Config { name } => format!("{l}.config.{}", encode_token(name)),
        EntityKey::Gone { host } => format!("{l}.gone.{}", encode_token(host)),
    }
}

/// The filter matching every key of `lattice`: `{lattice}.>`.
pub fn lattice_filter(lattice: &str) -> String {
    format!("{}.>", encode_token(lattice))
}

/// Parse a key back into `(lattice, entity)`; `None` for keys outside the scheme.
pub fn parse_key(key: &str) -> Option<(String, EntityKey)> {
    let tokens: Vec<&str> = key.split('.').collect();
    let d = |i: usize| tokens.get(i).and_then(|t| decode_token(t));
    let lattice = d(0)?;
    let entity = match (tokens.get(1).copied()?, tokens.len()) {
        ("host", 3) => EntityKey::Host { host: d(2)? },
        ("comp", 4) => EntityKey::Component { host: d(2)?, component: d(3)? },
        ("prov", 4) => EntityKey::Provider { host: d(2)?, provider: d(3)? },
        ("link", 6) => EntityKey::Link(LinkKey {
            source_id: d(2)?,
            wit_namespace: d(3)?,
            wit_package: d(4)?,
            name: d(5)?,
        }),
        ("config", 3) => EntityKey::Config { name: d(2)? },
        ("gone", 3) => EntityKey::Gone { host: d(2)? },
        _ => return None,
    };
    Some((lattice, entity))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn valid_kv_key(key: &str) -> bool {
        !key.is_empty()
            && !key.starts_with('.')
            && !key.ends_with('.')
            && !key.contains("..")
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b"-/_=.".contains(&b))
    }

    #[test]
    fn keys_read_as_documented() {
        let comp = EntityKey::Component { host: "NABC".into(), component: "my.comp".into() };
        assert_eq!(key_of("default", &comp), "default.comp.NABC.my=2Ecomp");
        assert_eq!(key_of("l", &EntityKey::Config { name: String::new() }), "l.config.=");
        assert_eq!(parse_key("default.comp.NABC.my=2Ecomp"), Some(("default".into(), comp)));
        assert_eq!(parse_key("default.other.x"), None);
        assert_eq!(parse_key("default.host.=Z1"), None);
    }

    proptest! {
        #[test]
        fn any_key_parses_without_panicking(key in "\\PC{0,40}") {
            let _ = parse_key(&key);
            let _ = decode_token(&key);
        }

        #[test]
        fn every_entity_key_is_valid_and_round_trips(
            lattice in ".{0,8}", a in ".{0,12}", b in ".{0,12}", c in "\\PC{0,6}", d in ".{0,4}"
        ) {
            let entities = vec![
                EntityKey::Host { host: a.clone() },
                EntityKey::Component { host: a.clone(), component: b.clone() },
                EntityKey::Provider { host: b.clone(), provider: a.clone() },
                EntityKey::Link(LinkKey {
                    source_id: a.clone(), wit_namespace: b.clone(), wit_package: c.clone(), name: d.clone(),
                }),
                EntityKey::Config { name: c.clone() },
                EntityKey::Gone { host: d.clone() },
            ];
            for entity in entities {
                let key = key_of(&lattice, &entity);
                prop_assert!(valid_kv_key(&key), "{}", key);
                prop_assert_eq!(parse_key(&key), Some((lattice.clone(), entity)));
            }
        }
    }
}
