//! Model → wire: [`Application::to_wire`], the canonical manifest of a validated application.
//!
//! The output uses the current forms only (`target: {name, config}`, `source.config`,
//! `instances`, `type: component`) and leaves out what parsing would add back by itself (the
//! implicit spread of a capability, the `default` spread, default weights and link names), so
//! that parsing the output yields the same [`Application`].

use crate::app::{
    Application, Component, ComponentKind, ConfigRef, Link, Scaler, ScalerSpec, SecretRef, Source,
};
use crate::wire;

impl Application {
    /// This application as a manifest.
    pub fn to_wire(&self) -> wire::Manifest {
        wire::Manifest {
            api_version: wire::API_VERSION.to_string(),
            kind: wire::KIND.to_string(),
            metadata: wire::Metadata {
                name: self.name.clone(),
                annotations: self.annotations.clone(),
                labels: self.labels.clone(),
            },
            spec: wire::Specification {
                components: self.components.iter().map(component).collect(),
                policies: self
                    .policies
                    .iter()
                    .map(|p| wire::Policy {
                        name: p.name.clone(),
                        policy_type: p.policy_type.clone(),
                        properties: p.properties.clone(),
                    })
                    .collect(),
            },
        }
    }
}

fn component(c: &Component) -> wire::Component {
    let (image, application) = match &c.source {
        Source::Image(image) => (Some(image.clone()), None),
        Source::Shared { application, component } => (
            None,
            Some(wire::SharedApplicationRef {
                name: application.clone(),
                component: component.clone(),
            }),
        ),
    };
    let implicit_only = c.kind == ComponentKind::Capability
        && c.scalers.len() == 1
        && c.scalers[0] == crate::validate::implicit_scaler();
    let mut traits = Vec::new();
    if !implicit_only {
        traits.extend(c.scalers.iter().map(scaler));
    }
    traits.extend(c.links.iter().map(link));
    traits.extend(c.rollout.iter().map(|r| {
        let duration = crate::app::duration_text;
        let mut properties = serde_json::json!({
            "max_parallel": r.max_parallel,
            "min_healthy_time": duration(r.min_healthy_time_ms),
        });
        if let Some(canary) = r.canary {
            properties["canary"] = canary.into();
        }
        if let Some(deadline) = r.healthy_deadline_ms {
            properties["healthy_deadline"] = duration(deadline).into();
        }
        if r.auto_revert {
            properties["auto_revert"] = true.into();
        }
        if let Some(n) = r.max_unavailable {
            properties["max_unavailable"] = n.into();
        }
        wire::Trait {
            trait_type: "rollout".to_string(),
            properties: wire::TraitProperties::Custom(properties),
        }
    }));
    if !c.avoid.is_empty() {
        traits.push(wire::Trait {
            trait_type: "anti-affinity".to_string(),
            properties: wire::TraitProperties::Custom(serde_json::json!({ "components": c.avoid })),
        });
    }
    traits.extend(c.other_traits.iter().map(|o| wire::Trait {
        trait_type: o.trait_type.clone(),
        properties: wire::TraitProperties::Custom(o.properties.clone()),
    }));
    wire::Component {
        name: c.name.clone(),
        component_type: match c.kind {
            ComponentKind::Component => wire::ComponentType::Component,
            ComponentKind::Capability => wire::ComponentType::Capability,
        },
        properties: wire::Properties {
            image,
            application,
            id: c.explicit_id.then(|| c.id.clone()),
            config: configs(&c.config),
            secrets: secrets(&c.secrets),
            needs: c.needs.clone(),
        },
        traits,
    }
}

fn scaler(s: &Scaler) -> wire::Trait {
    let (trait_type, spec) = match s {
        Scaler::Spread(spec) => ("spreadscaler", spec),
        Scaler::Daemon(spec) => ("daemonscaler", spec),
    };
    wire::Trait {
        trait_type: trait_type.to_string(),
        properties: wire::TraitProperties::Scaler(scaler_properties(spec)),
    }
}

fn scaler_properties(spec: &ScalerSpec) -> wire::ScalerProperties {
    let only_default =
        spec.spreads.len() == 1 && spec.spreads[0] == crate::validate::default_spread();
    let spread = if only_default {
        Vec::new()
    } else {
        spec.spreads
            .iter()
            .map(|s| wire::Spread {
                name: s.name.clone(),
                requirements: s.requirements.clone(),
                weight: (s.weight != crate::DEFAULT_SPREAD_WEIGHT).then_some(s.weight),
            })
            .collect()
    };
    wire::ScalerProperties {
        instances: spec.instances,
        spread,
        placement: (spec.placement != crate::PlacementPolicy::Spread)
            .then(|| spec.placement.as_str().to_string()),
        max_per_host: spec.max_per_host,
        min_hosts: spec.min_hosts,
    }
}

fn link(l: &Link) -> wire::Trait {
    let source = (!l.source_config.is_empty() || !l.source_secrets.is_empty()).then(|| {
        wire::ConfigDefinition {
            config: configs(&l.source_config),
            secrets: secrets(&l.source_secrets),
        }
    });
    let props = wire::LinkProperties {
        name: (l.name != crate::DEFAULT_LINK_NAME).then(|| l.name.clone()),
        namespace: l.namespace.clone(),
        package: l.package.clone(),
        interfaces: l.interfaces.clone(),
        source,
        target: wire::LinkTarget::Target(wire::TargetConfig {
            name: l.target.clone(),
            config: configs(&l.target_config),
            secrets: secrets(&l.target_secrets),
        }),
        source_config: None,
        target_config: None,
    };
    wire::Trait { trait_type: "link".to_string(), properties: wire::TraitProperties::Link(props) }
}

fn configs(list: &[ConfigRef]) -> Vec<wire::ConfigProperty> {
    list.iter()
        .map(|c| wire::ConfigProperty { name: c.name.clone(), properties: c.properties.clone() })
        .collect()
}

fn secrets(list: &[SecretRef]) -> Vec<wire::SecretProperty> {
    list.iter()
        .map(|s| wire::SecretProperty {
            name: s.name.clone(),
            properties: wire::SecretSourceProperties {
                policy: s.policy.clone(),
                key: s.key.clone(),
                field: s.field.clone(),
                version: s.version.clone(),
            },
        })
        .collect()
}
