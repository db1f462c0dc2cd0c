//! Hand-written JSON Schema parts where the derived ones would be too loose or too strict:
//! the component type accepts the `actor` alias, scaler properties accept `replicas` for
//! `instances`, and a trait's `properties` are checked against the shape its `type` selects.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

use super::{ComponentType, LinkProperties, ScalerProperties, Spread, Trait, TraitProperties};

impl JsonSchema for ComponentType {
    fn schema_name() -> Cow<'static, str> {
        "ComponentType".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "`component` (alias `actor`) or `capability`.",
            "type": "string",
            "enum": ["component", "actor", "capability"]
        })
    }
}

impl JsonSchema for ScalerProperties {
    fn schema_name() -> Cow<'static, str> {
        "ScalerProperties".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let count = json_schema!({"type": "integer", "minimum": 0, "maximum": u32::MAX});
        let spread = generator.subschema_for::<Spread>();
        json_schema!({
            "description": "`spreadscaler` / `daemonscaler` properties: `instances` (alias `replicas`), optional spreads and placement settings.",
            "type": "object",
            "properties": {
                "instances": count,
                "replicas": count,
                "spread": {"type": "array", "items": spread},
                "placement": {"description": "`spread` (least loaded hosts, default) or `binpack` (fullest hosts that fit).", "enum": ["spread", "binpack"]},
                "max_per_host": {"description": "At most this many instances on one host.", "type": "integer", "minimum": 1, "maximum": u32::MAX},
                "min_hosts": {"description": "The instances run on at least this many distinct hosts.", "type": "integer", "minimum": 1, "maximum": u32::MAX}
            },
            "additionalProperties": false,
            "oneOf": [{"required": ["instances"]}, {"required": ["replicas"]}]
        })
    }
}

impl JsonSchema for TraitProperties {
    fn schema_name() -> Cow<'static, str> {
        "TraitProperties".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"description": "Depends on the trait type.", "type": "object"})
    }
}

impl JsonSchema for Trait {
    fn schema_name() -> Cow<'static, str> {
        "Trait".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let link = generator.subschema_for::<LinkProperties>();
        let scaler = generator.subschema_for::<ScalerProperties>();
        json_schema!({
            "description": "A trait: `spreadscaler`, `daemonscaler`, `link`, `rollout`, `anti-affinity`, or another type (kept, with a warning).",
            "type": "object",
            "properties": {
                "type": {"type": "string"},
                "properties": {"type": "object"}
            },
            "required": ["type", "properties"],
            "additionalProperties": false,
            "allOf": [
                {
                    "if": {"properties": {"type": {"const": "anti-affinity"}}, "required": ["type"]},
                    "then": {"properties": {"properties": {
                        "description": "Components of the same application this one never shares a host with (both ways).",
                        "type": "object",
                        "properties": {"components": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1}},
                        "required": ["components"],
                        "additionalProperties": false
                    }}}
                },
                {
                    "if": {"properties": {"type": {"const": "link"}}, "required": ["type"]},
                    "then": {"properties": {"properties": link}}
                },
                {
                    "if": {"properties": {"type": {"enum": ["spreadscaler", "daemonscaler"]}}, "required": ["type"]},
                    "then": {"properties": {"properties": scaler}}
                },
                {
                    "if": {"properties": {"type": {"const": "rollout"}}, "required": ["type"]},
                    "then": {"properties": {"properties": {
                        "description": "How an image change rolls over the component's hosts: at most `max_parallel` hosts change at once, each counting until it has run the new image for `min_healthy_time`.",
                        "type": "object",
                        "properties": {
                            "max_parallel": {"type": "integer", "minimum": 1},
                            "max_unavailable": {"description": "At most this many hosts without a serving instance while the image changes (a component changes in place, so only a provider's stop-and-start counts; at least 1 on a provider).", "type": "integer", "minimum": 0},
                            "canary": {"description": "Change this many hosts, then wait for `wadm app promote`.", "type": "integer", "minimum": 1},
                            "auto_revert": {"description": "When the rollout fails (a host cannot start the new image or fails its health checks, or `healthy_deadline` passes), deploy the last stable version again.", "type": "boolean"},
                            "healthy_deadline": {
                                "description": "A host ordered the new image must be healthy within this long (a duration, at least `min_healthy_time`), or the rollout fails.",
                                "oneOf": [
                                    {"type": "integer", "minimum": 1},
                                    {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)?$"}
                                ]
                            },
                            "min_healthy_time": {
                                "description": "A duration: \"30s\", \"500ms\", \"2m\", \"1h\", or whole seconds (at most a day).",
                                "oneOf": [
                                    {"type": "integer", "minimum": 0},
                                    {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)?$"}
                                ]
                            }
                        },
                        "additionalProperties": false
                    }}}
                }
            ]
        })
    }
}
