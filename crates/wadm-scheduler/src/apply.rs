//! Applying commands to a [`LatticeState`] the way wasmCloud hosts would, for tests and
//! simulations: a pure model of the hosts' behaviour, including their refusals.
//!
//! Modelled behaviour (see the protocol reference): a scale replaces the annotations, keeps the
//! old image when the reference differs (no `allow_update`), and count 0 removes the component;
//! an update changes the image; starting a provider id that already runs on the host is refused;
//! a link with the same key and another target is refused; a scale, provider start or link put
//! naming a config that does not exist fails. Commands to hosts that are gone are lost.

use wadm_lattice::{
    ComponentInstance, ConfigState, LatticeState, ProviderHealth, ProviderInstance,
};
use wadm_protocol::normalize_provider_ref;

use crate::command::Command;
use crate::engine::Plan;

/// Whether the lattice accepted the command (a refused command changes nothing).
pub fn apply_command(lattice: &mut LatticeState, command: &Command) -> bool {
    let configs_exist = |lattice: &LatticeState, names: &[String]| {
        names.iter().all(|n| lattice.configs.contains_key(n))
    };
    match command {
        Command::ScaleComponent(r) => {
            if r.count > 0 && !configs_exist(lattice, &r.config) {
                return false;
            }
            let Some(host) = lattice.hosts.get_mut(&*r.host_id) else { return false };
            if r.count == 0 {
                host.components.remove(&*r.component_id);
                return true;
            }
            let entry = host.components.entry(r.component_id.to_string()).or_insert_with(|| {
                ComponentInstance {
                    id: r.component_id.to_string(),
                    image_ref: r.component_ref.to_string(),
                    ..Default::default()
                }
            });
            entry.count = r.count;
            entry.annotations = (*r.annotations).clone();
            true
        }
        Command::UpdateComponent(r) => {
            let Some(host) = lattice.hosts.get_mut(&*r.host_id) else { return false };
            let Some(c) = host.components.get_mut(&*r.component_id) else { return false };
            c.image_ref = r.new_component_ref.to_string();
            if let Some(a) = &r.annotations {
                c.annotations = (**a).clone();
            }
            true
        }
        Command::StartProvider(r) => {
            if !configs_exist(lattice, &r.config) {
                return false;
            }
            let Some(host) = lattice.hosts.get_mut(&*r.host_id) else { return false };
            if host.providers.contains_key(&*r.provider_id) {
                return false;
            }
            host.providers.insert(
                r.provider_id.to_string(),
                ProviderInstance {
                    id: r.provider_id.to_string(),
                    image_ref: normalize_provider_ref(&r.provider_ref).to_string(),
                    annotations: (*r.annotations).clone(),
                    health: ProviderHealth::Pending,
                    since: 0,
                },
            );
            true
        }
        Command::StopProvider(r) => lattice
            .hosts
            .get_mut(&*r.host_id)
            .is_some_and(|h| h.providers.remove(&*r.provider_id).is_some()),
        Command::PutLink(link) => {
            if !configs_exist(lattice, &link.source_config)
                || !configs_exist(lattice, &link.target_config)
            {
                return false;
            }
            let key = link.key();
            if lattice.links.get(&key).is_some_and(|l| l.target != link.target) {
                return false;
            }
            lattice.links.insert(key, link.clone());
            true
        }
        Command::DeleteLink(r) => {
            let key = wadm_protocol::LinkKey {
                source_id: r.source_id.clone(),
                wit_namespace: r.wit_namespace.clone(),
                wit_package: r.wit_package.clone(),
                name: r.name.clone(),
            };
            lattice.links.remove(&key);
            true
        }
        Command::PutConfig { name, values } => {
            lattice.configs.insert(
                name.clone(),
                ConfigState { name: name.clone(), values: Some(values.clone()) },
            );
            true
        }
        Command::DeleteConfig { name } => {
            lattice.configs.remove(name);
            true
        }
    }
}

/// Apply every command of `plan` in order; returns how many were refused.
pub fn apply_plan(lattice: &mut LatticeState, plan: &Plan) -> usize {
    plan.commands.iter().filter(|c| !apply_command(lattice, &c.command)).count()
}
