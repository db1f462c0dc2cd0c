//! Embedding wadm with a custom scaler: a canary instance on a chosen host.
//!
//! Policy: every deployed application annotated `example.com/canary-host: <value>` also runs one
//! instance of each of its components, under the id `<component id>-canary`, on the host labelled
//! `example.com/canary-host=<value>` (the one with the smallest host id when several are). The
//! built-in scalers keep doing what the manifest says; the canary runs beside them, is stopped
//! when the application is undeployed (it carries the application's placement annotations) and
//! moves when its host goes away. Its status is part of the application's: `deployed` once the
//! canary runs, `waiting` while no host carries the label.
//!
//! The scaler only builds wants from the manifest and the observed lattice: no I/O, no clock,
//! deterministic, as every scaler must be (see `wadm::scheduler::Scaler`).
//!
//! Run it against a NATS server with JetStream (`nats-server -js`):
//!
//! ```text
//! NATS_URL=nats://127.0.0.1:4222 cargo run -p wadm --example custom_scaler
//! ```
//!
//! then deploy with `wadm app deploy` as usual; stop it with Ctrl-C. The same embedding runs in
//! `crates/wadm/tests/embed_custom_scaler.rs` against simulated hosts.

use std::sync::Arc;

use wadm::model::{ComponentKind, Source, StatusInfo, StatusType};
use wadm::scheduler::scaler::{Annotations, ComponentWant, config_list, placement_annotations};
use wadm::scheduler::{
    Catalog, Context, Evaluation, Scaler, ScalerFactory, ScalerInfo, Want, Wants,
};

/// The application annotation naming the canary host's label value, and the host label.
pub const CANARY_HOST: &str = "example.com/canary-host";
/// The canary scalers' kind (in statuses).
pub const CANARY_KIND: &str = "CanaryScaler";

/// The id the canary of component `component_id` runs under.
pub fn canary_id(component_id: &str) -> String {
    format!("{component_id}-canary")
}

/// One component's canary.
struct CanaryScaler {
    info: ScalerInfo,
    /// The host label value the canary goes to.
    host_label: String,
    canary_id: Arc<str>,
    image_ref: Arc<str>,
    /// The component's config names (the canary runs with the same config).
    config: Arc<[String]>,
    /// The annotations the canary carries, built once (wadm's placement annotations: the
    /// application's, so an undeploy removes the canary too).
    annotations: Annotations,
}

impl Scaler for CanaryScaler {
    fn info(&self) -> &ScalerInfo {
        &self.info
    }

    fn evaluate(&self, ctx: &Context<'_>) -> Evaluation {
        // The labelled host with the smallest id (not the first in some order: deterministic).
        let host = (0..ctx.hosts().len() as u32)
            .filter(|&ix| {
                ctx.host(ix).labels.get(CANARY_HOST).is_some_and(|v| *v == self.host_label)
            })
            .min_by(|&a, &b| ctx.host(a).id.cmp(&ctx.host(b).id));
        let Some(host) = host else {
            let message = format!("no host labelled {CANARY_HOST}={}", self.host_label);
            return status_only(StatusInfo::new(StatusType::Waiting, message));
        };
        let want = ComponentWant {
            host,
            component_id: self.canary_id.clone(),
            image_ref: self.image_ref.clone(),
            count: 1,
            annotations: self.annotations.clone(),
            config: self.config.clone(),
        };
        let running = ctx
            .component_on(host, &self.canary_id)
            .is_some_and(|o| o.instance.count == 1 && *o.instance.image_ref == *self.image_ref);
        let host_id = &ctx.host(host).id;
        let status = match running {
            true => StatusInfo::new(StatusType::Deployed, format!("canary runs on {host_id}")),
            false => {
                StatusInfo::new(StatusType::Reconciling, format!("starting canary on {host_id}"))
            }
        };
        let wants: Wants = [Want::Component(want)].into_iter().collect();
        Evaluation { wants, status, ..Evaluation::default() }
    }
}

fn status_only(status: StatusInfo) -> Evaluation {
    Evaluation { status, ..Evaluation::default() }
}

/// The canary scalers of every annotated application of `catalog`: pure, deterministic.
pub fn canary_scalers(catalog: &Catalog<'_>) -> Vec<Box<dyn Scaler>> {
    let mut scalers: Vec<Box<dyn Scaler>> = Vec::new();
    for (name, deployed) in &catalog.deployed {
        let Some(host_label) = deployed.app.annotations.get(CANARY_HOST) else { continue };
        let app: Arc<str> = Arc::from(*name);
        for (i, comp) in deployed.app.components.iter().enumerate() {
            let (ComponentKind::Component, Source::Image(image)) = (comp.kind, &comp.source) else {
                continue;
            };
            let id = format!("{CANARY_KIND}-{name}-{}", comp.name);
            let config = comp.config.iter().map(|c| c.lattice_name.clone());
            let secrets = comp.secrets.iter().map(|s| s.lattice_name.clone());
            let annotations = Arc::new(placement_annotations(name, &id, "canary"));
            scalers.push(Box::new(CanaryScaler {
                info: ScalerInfo {
                    app: app.clone(),
                    // Listed after the application's built-in scalers, in manifest order.
                    rank: u32::MAX - (deployed.app.components.len() - i) as u32,
                    id: Arc::from(id),
                    kind: Arc::from(CANARY_KIND),
                    name: Arc::from(comp.name.as_str()),
                },
                host_label: host_label.clone(),
                canary_id: Arc::from(canary_id(&comp.id)),
                image_ref: Arc::from(image.as_str()),
                config: config_list(config.chain(secrets).collect()),
                annotations: Annotations::Exact(annotations),
            }));
        }
    }
    scalers
}

/// The built-in scalers plus the canaries.
pub fn scalers() -> ScalerFactory {
    ScalerFactory::with_builtins(canary_scalers)
}

/// wadm on `client` with the canary policy, managing `lattices`.
pub fn wadm(client: async_nats::Client, lattices: &[&str]) -> wadm::WadmBuilder {
    wadm::Wadm::builder(client).lattices(lattices.iter().copied()).scalers(scalers())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let client = async_nats::connect(&url).await?;
    wadm(client, &[wadm::DEFAULT_LATTICE]).run(wadm::shutdown_signal()).await
}
