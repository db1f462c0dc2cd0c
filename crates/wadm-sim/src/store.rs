//! The lattice-wide data every host shares: links and named configs.
//!
//! A real lattice keeps these in its own KV buckets, so they outlive any host; the simulator keeps
//! one [`LatticeStore`] per process. This module owns the handlers of the "one"-kind subjects
//! (`link.*`, `config.*`, `claims.get`); they are pure functions of the store and the request.

use std::collections::BTreeMap;

use wadm_protocol::ctl::{CONFIG_NOT_FOUND, DeleteLinkRequest};
use wadm_protocol::event::{ConfigEvent, LinkDeleted, LinkSetFailed};
use wadm_protocol::{Link, LinkKey, StringMap};

use crate::outcome::{Outcome, parse};

/// Links and configs of one simulated lattice.
#[derive(Debug, Clone, Default)]
pub struct LatticeStore {
    /// Every link, by its key (source, WIT namespace and package, name).
    pub links: BTreeMap<LinkKey, Link>,
    /// Every named config and its values.
    pub configs: BTreeMap<String, StringMap>,
}

impl LatticeStore {
    /// `link.put`: every named config must exist; another target under the same key is refused.
    pub(crate) fn link_put(&mut self, body: &[u8]) -> Outcome {
        let link: Link = match parse(body, "link put") {
            Ok(l) => l,
            Err(o) => return *o,
        };
        if let Some(error) = self.link_problem(&link) {
            let failed = LinkSetFailed { link, error: error.clone() };
            return Outcome::error(error).event("linkdef_set_failed", failed);
        }
        self.links.insert(link.key(), link.clone());
        Outcome::ok().event("linkdef_set", link)
    }

    fn link_problem(&self, link: &Link) -> Option<String> {
        let missing: Vec<&str> = link
            .source_config
            .iter()
            .chain(&link.target_config)
            .filter(|name| !self.configs.contains_key(*name))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Some(format!("configuration not found: {}", missing.join(", ")));
        }
        match self.links.get(&link.key()) {
            Some(existing) if existing.target != link.target => Some(format!(
                "link {}/{}:{} from {} already exists with a different target `{}`",
                link.name, link.wit_namespace, link.wit_package, link.source_id, existing.target
            )),
            _ => None,
        }
    }

    /// `link.del`: always succeeds and always emits `linkdef_deleted`.
    pub(crate) fn link_del(&mut self, body: &[u8]) -> Outcome {
        let req: DeleteLinkRequest = match parse(body, "link delete") {
            Ok(r) => r,
            Err(o) => return *o,
        };
        let key = LinkKey {
            source_id: req.source_id.clone(),
            wit_namespace: req.wit_namespace.clone(),
            wit_package: req.wit_package.clone(),
            name: req.name.clone(),
        };
        let removed = self.links.remove(&key);
        let event = LinkDeleted {
            source_id: req.source_id,
            name: req.name,
            wit_namespace: req.wit_namespace,
            wit_package: req.wit_package,
            target: removed.as_ref().map(|l| l.target.clone()),
            interfaces: removed.map(|l| l.interfaces),
        };
        Outcome::ok().event("linkdef_deleted", event)
    }

    /// `link.get`: every link of the lattice.
    pub(crate) fn link_get(&self) -> Outcome {
        Outcome::with(self.links.values().collect::<Vec<_>>())
    }

    /// `config.put.{name}`: a JSON object of string to string.
    pub(crate) fn config_put(&mut self, name: &str, body: &[u8]) -> Outcome {
        let values: StringMap = match parse(body, "config put") {
            Ok(v) => v,
            Err(o) => return *o,
        };
        self.configs.insert(name.to_string(), values);
        Outcome::ok().event("config_set", ConfigEvent { config_name: name.to_string() })
    }

    /// `config.get.{name}`: a missing name is a *success* with no response.
    pub(crate) fn config_get(&self, name: &str) -> Outcome {
        match self.configs.get(name) {
            Some(values) => Outcome::with(values),
            None => Outcome::reply(wadm_protocol::ctl::CtlReply {
                success: true,
                message: CONFIG_NOT_FOUND.to_string(),
                response: None,
            }),
        }
    }

    /// `config.del.{name}`: emits `config_deleted` even for a missing name.
    pub(crate) fn config_del(&mut self, name: &str) -> Outcome {
        self.configs.remove(name);
        Outcome::ok().event("config_deleted", ConfigEvent { config_name: name.to_string() })
    }

    /// `claims.get`: simulated components are unsigned, so there are no claims.
    pub(crate) fn claims_get(&self) -> Outcome {
        Outcome::with(Vec::<StringMap>::new())
    }

    /// Names of `names` that are not stored.
    pub fn missing_configs<'a>(&self, names: &'a [String]) -> Vec<&'a str> {
        names.iter().filter(|n| !self.configs.contains_key(*n)).map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(target: &str, cfg: &[&str]) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "source_id": "a", "target": target, "name": "default",
            "wit_namespace": "wasi", "wit_package": "http", "interfaces": ["outgoing-handler"],
            "source_config": cfg, "target_config": []
        }))
        .unwrap()
    }

    #[test]
    fn links_need_their_configs_and_keep_their_target() {
        let mut s = LatticeStore::default();
        let o = s.link_put(&link("b", &["c1"]));
        assert!(!o.reply.unwrap().success);
        assert_eq!(o.events[0].short, "linkdef_set_failed");
        assert!(s.config_put("c1", br#"{"k":"v"}"#).reply.unwrap().success);
        assert_eq!(s.link_put(&link("b", &["c1"])).events[0].short, "linkdef_set");
        assert_eq!(s.link_put(&link("b", &[])).events[0].short, "linkdef_set");
        let other = s.link_put(&link("z", &[]));
        assert_eq!(other.events[0].short, "linkdef_set_failed");
        assert_eq!(s.links.len(), 1);
        assert!(s.links.values().all(|l| l.source_config.is_empty()));
    }

    #[test]
    fn deleting_reports_the_target_only_when_the_link_existed() {
        let mut s = LatticeStore::default();
        s.link_put(&link("b", &[]));
        let del = br#"{"source_id":"a","wit_namespace":"wasi","wit_package":"http"}"#;
        let first = s.link_del(del);
        assert_eq!(first.events[0].data["target"], "b");
        let second = s.link_del(del);
        assert!(second.reply.unwrap().success);
        assert!(second.events[0].data.get("target").is_none());
    }

    #[test]
    fn missing_config_is_a_success_without_response() {
        let mut s = LatticeStore::default();
        let r = s.config_get("nope").reply.unwrap();
        assert!(r.success && r.response.is_none());
        assert_eq!(r.message, CONFIG_NOT_FOUND);
        assert_eq!(s.config_del("nope").events[0].short, "config_deleted");
        assert!(!s.config_put("x", b"[1]").reply.unwrap().success);
    }
}
