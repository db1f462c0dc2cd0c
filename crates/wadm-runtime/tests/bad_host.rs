//! A host that keeps failing a placement, in the pure step (`step::apply` + `step::decide` with a
//! real reconciler and time passed in): 1 bad host and 2 good ones, an application of 6
//! instances spread. The bad host refuses every order, reports the component failing to start,
//! or accepts and never runs it; the good hosts confirm what they are ordered. After **every**
//! step the instances running plus those ordered never exceed the target; after `strikes`
//! failed orders the bad host is avoided and the good hosts reach the target (3 + 3); once the
//! avoidance ends the bad host is tried again — once, on probation, when it is still bad (then
//! avoided again), or for good when it recovered (2 + 2 + 2). With no other eligible host the
//! bad host keeps being retried with backoff and the status names it and its last error.

use std::collections::BTreeMap;
use std::time::Duration;

use wadm_lattice::{EventContext, Timestamp};
use wadm_model::{Application, Format, Limits, StatusType};
use wadm_protocol::HostEvent;
use wadm_protocol::ctl::ScaleComponentRequest;
use wadm_protocol::event::ComponentScaled;
use wadm_runtime::bad_hosts::BadHostConfig;
use wadm_runtime::decide::{Affected, apply_deployment};
use wadm_runtime::desired::Deployment;
use wadm_runtime::step::{self, Event, Fetched, Input};
use wadm_runtime::{CommandFailure, LatticeRecord, RuntimeConfig};
use wadm_scheduler::{DeployedApp, Reconciler};

const ID: &str = "demo-web";
const BAD: &str = "h0";
const TARGET: u32 = 6;
const AVOID_MS: u64 = 120_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Refuses every order (the executor's `command_failed`).
    Refuses,
    /// Accepts, then `component_scale_failed`.
    FailsToStart,
    /// Accepts and never runs it: nothing at all.
    Swallows,
}

fn manifest(requirements: &str) -> Application {
    let yaml = format!(
        r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: demo
  annotations:
    version: v1
spec:
  components:
    - name: web
      type: component
      properties:
        image: ghcr.io/x/web:1
      traits:
        - type: spreadscaler
          properties:
            instances: {TARGET}{requirements}
"#
    );
    wadm_model::parse_manifest(yaml.as_bytes(), Format::Yaml, &Limits::default())
        .expect("valid manifest")
        .app
}

/// Hosts `h0`..`h{hosts-1}` (`h0` labelled `only=yes`), the app deployed, nothing running.
fn world(hosts: usize, requirements: &str) -> (LatticeRecord, Reconciler) {
    let mut record = LatticeRecord::default();
    record.state.lattice = "default".into();
    for i in 0..hosts {
        let id = format!("h{i}");
        let mut host =
            wadm_lattice::HostState { id: id.clone(), last_seen: 1, ..Default::default() };
        if i == 0 {
            host.labels.insert("only".into(), "yes".into());
        }
        record.state.hosts.insert(id, host);
    }
    let deployment = Deployment {
        store_generation: 1,
        deployed_version: Some("v1".into()),
        ..Deployment::default()
    };
    apply_deployment(&mut record, "demo", Some(&deployment));
    let generation = record.apps["demo"].generation();
    let deployed = DeployedApp {
        lattice: "default".into(),
        app: manifest(requirements),
        version: "v1".into(),
        generation,
        promoted: false,
    };
    (record, Reconciler::new("default", vec![deployed], vec![]))
}

fn config() -> RuntimeConfig {
    RuntimeConfig {
        bad_hosts: BadHostConfig { strikes: 3, avoid_for: Duration::from_millis(AVOID_MS) },
        ..RuntimeConfig::default()
    }
}

/// Instances per host: observed (`projected`: with the orders in flight applied).
fn counts(record: &LatticeRecord, projected: bool) -> BTreeMap<String, u32> {
    let state = if projected {
        record.intents.project(&record.state).into_owned()
    } else {
        record.state.clone()
    };
    let per_host = state.hosts.values().filter_map(|h| h.components.get(ID).map(|c| (h, c)));
    per_host.filter(|(_, c)| c.count > 0).map(|(h, c)| (h.id.clone(), c.count)).collect()
}

fn host_event(host: &str, event: HostEvent, n: u64) -> Event {
    let ctx = EventContext { source: host.into(), id: format!("e{n}"), time: Some(n) };
    Event { input: Input::Host { ctx, event }, sequence: n, delivered: 1, stored_at: None }
}

/// What the hosts answer to the orders a step issued.
fn answers(
    decided: &step::Decided,
    mode: Mode,
    bad_is_bad: bool,
    n: &mut u64,
) -> (Vec<Event>, usize) {
    let mut events = Vec::new();
    let mut to_bad = 0;
    for message in &decided.commands {
        let body = serde_json::from_str::<ScaleComponentRequest>(&message.body);
        let (Ok(r), "scale_component") = (body, message.kind.as_str()) else { continue };
        *n += 1;
        let scaled = ComponentScaled {
            component_id: r.component_id.to_string(),
            host_id: r.host_id.to_string(),
            image_ref: r.component_ref.to_string(),
            max_instances: r.count,
            annotations: (*r.annotations).clone(),
            ..ComponentScaled::default()
        };
        if &*r.host_id != BAD || !bad_is_bad {
            events.push(host_event(&r.host_id, HostEvent::ComponentScaled(scaled), *n));
            continue;
        }
        to_bad += 1;
        match mode {
            Mode::Refuses => {
                let failure = CommandFailure {
                    app: message.app.clone(),
                    generation: message.generation,
                    command_id: message.id.clone(),
                    kind: message.kind.clone(),
                    message: "scale_component refused: no".into(),
                    msg_id: message.msg_id(),
                };
                let input = Input::CommandFailed(failure);
                events.push(Event { input, sequence: *n, delivered: 1, stored_at: None });
            }
            Mode::FailsToStart => {
                let failed = ComponentScaled { error: Some("it broke".into()), ..scaled };
                events.push(host_event(BAD, HostEvent::ComponentScaleFailed(failed), *n));
            }
            Mode::Swallows => {}
        }
    }
    (events, to_bad)
}

/// One step, as seen after it.
#[derive(Debug, Clone)]
struct Sample {
    at: Timestamp,
    /// Observed instances per host.
    counts: BTreeMap<String, u32>,
    /// Orders the step sent to the bad host.
    to_bad: usize,
    status: StatusType,
    message: String,
}

/// Run `steps` steps of `dt` ms; `recovers_at`: from then on the bad host works.
fn run(
    hosts: usize,
    requirements: &str,
    mode: Mode,
    recovers_at: Option<Timestamp>,
    steps: usize,
    dt: u64,
) -> Vec<Sample> {
    let config = config();
    let (mut record, reconciler) = world(hosts, requirements);
    let mut now: Timestamp = 1_000_000;
    let mut n = 0;
    let mut events: Vec<Event> = Vec::new();
    let mut out = Vec::new();
    for _ in 0..steps {
        let mut applied =
            step::apply(&mut record, &events, &Fetched::default(), now, false, 7, &config);
        // Every step reconciles the app (as after a timer or tick).
        applied.affected = Affected::all();
        let decided = step::decide(&mut record, &mut applied, Some(&reconciler), now, 7, &config);
        let observed: u32 = counts(&record, false).values().sum();
        let projected: u32 = counts(&record, true).values().sum();
        assert!(observed <= TARGET && projected <= TARGET, "at {now}: {observed} / {projected}");
        let bad = recovers_at.is_none_or(|at| now < at);
        let (next, to_bad) = answers(&decided, mode, bad, &mut n);
        let status = decided
            .statuses
            .iter()
            .find(|(a, _)| a == "demo")
            .map(|(_, s)| (s.status.status_type, s.status.message.to_string()));
        let (status, message) = status.unwrap_or((StatusType::Undeployed, String::new()));
        out.push(Sample { at: now, counts: counts(&record, false), to_bad, status, message });
        events = next;
        now += dt;
    }
    out
}

fn good_hosts_at_target(counts: &BTreeMap<String, u32>) -> bool {
    !counts.contains_key(BAD) && counts.values().sum::<u32>() == TARGET
}

#[test]
fn the_share_moves_after_three_failures_and_comes_back_on_probation() {
    for mode in [Mode::Refuses, Mode::FailsToStart, Mode::Swallows] {
        let steps = run(3, "", mode, None, 900, 1_000);
        // Target reached on the good hosts, after exactly `strikes` orders to the bad host.
        let reached = steps.iter().position(|s| good_hosts_at_target(&s.counts));
        let reached =
            reached.unwrap_or_else(|| panic!("{mode:?}: never at target: {:?}", steps.last()));
        let (t0, at) = (steps[0].at, steps[reached].at);
        let sent: usize = steps[..reached].iter().map(|s| s.to_bad).sum();
        assert_eq!(sent, 3, "{mode:?}: orders to the bad host before it was avoided");
        eprintln!(
            "{mode:?}: target on the good hosts after {} ms, {sent} orders to the bad host",
            at - t0
        );
        let bound = if mode == Mode::Swallows { 300_000 } else { 60_000 };
        assert!(at - t0 <= bound, "{mode:?}: target reached after {} ms", at - t0);
        // Avoided: nothing goes to the bad host for `avoid_for`; then one order per avoidance
        // (probation), which fails, and the share is back on the good hosts.
        let window = steps.iter().filter(|s| s.at > at && s.at < at + AVOID_MS - 5_000);
        assert_eq!(window.map(|s| s.to_bad).sum::<usize>(), 0, "{mode:?}: nothing while avoided");
        let later = steps.iter().filter(|s| s.at >= at + AVOID_MS - 5_000);
        let later: usize = later.map(|s| s.to_bad).sum();
        let last = steps.last().unwrap();
        let rounds = 1 + (last.at - at) / AVOID_MS;
        assert!(
            later >= 1 && later as u64 <= rounds,
            "{mode:?}: {later} orders after the avoidance, {rounds} rounds"
        );
        assert!(good_hosts_at_target(&last.counts), "{mode:?}: {last:?}");
    }
}

#[test]
fn a_recovered_host_gets_its_share_back() {
    let steps = run(3, "", Mode::Refuses, Some(1_060_000), 400, 1_000);
    let last = steps.last().unwrap();
    assert_eq!(last.counts.get(BAD), Some(&2), "{last:?}");
    assert_eq!(last.counts.values().sum::<u32>(), TARGET);
    assert_eq!(last.status, StatusType::Deployed, "{}", last.message);
}

#[test]
fn with_no_other_eligible_host_the_bad_host_is_retried_and_named() {
    let only = "\n            spread:\n              - name: only\n                requirements:\n                  only: \"yes\"";
    let steps = run(3, only, Mode::Refuses, None, 300, 1_000);
    let sent: usize = steps.iter().map(|s| s.to_bad).sum();
    assert!(sent > 3, "retried past the strikes: {sent}");
    let last = steps.last().unwrap();
    assert!(last.counts.is_empty(), "{last:?}");
    assert_eq!(last.status, StatusType::Failed);
    let message = &last.message;
    assert!(message.contains("host h0") && message.contains("refused: no"), "{message}");
}
