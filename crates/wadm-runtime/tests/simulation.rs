//! A deterministic whole-system simulation of wadm, with invariants checked after every step.
//!
//! ```text
//! cargo test -p wadm-runtime --test simulation                       # CI: 500 seeds
//! WADM_SIM_SEEDS=10000 cargo test -p wadm-runtime --test simulation -- seeds --nocapture
//! WADM_SIM_FIRST=20000 WADM_SIM_SEEDS=5000 cargo test ...            # another range of seeds
//! WADM_SIM_SEED=1234 cargo test -p wadm-runtime --test simulation -- replay --nocapture
//! WADM_SIM_SEED=1234 WADM_SIM_TRACE=1 cargo test ... -- replay --nocapture   # every step
//! WADM_SIM_SEED=1234 WADM_SIM_DUMP_AT=20000 cargo test ... -- replay --nocapture  # wadm's record
//! WADM_SIM_STRICT=1 cargo test -p wadm-runtime --test simulation     # no known-bug allowance
//! WADM_SIM_STRICT=moves,echo cargo test ...                          # without some of them
//! ```
//! (`docs/simulation.md` has the same, with what each scenario contains.)
//!
//! Each seed is one scenario ([`scenario::generate`]): 20 applications (spreadscaler
//! components, some with owned config; components linked to providers with an owned target
//! config; components linked to components with an owned source config), each in three
//! versions; 1–5 replicas; 1–20 hosts. Over a fault phase of 20–60 s of virtual time the
//! applications are deployed, updated (sometimes again within 3 s: an update during an update),
//! undeployed and deployed again at the same instant, or undeployed; hosts crash silently, stop
//! gracefully and start; a component may be made unable to scale (the one real failure); the
//! model hosts ([`wadm_runtime::memory::MemoryLattice`]) behave like wasmCloud 1.9.2 hosts
//! (`HostBehaviour::real_1_9_2`: update echo, doubled first start, provider refusals, no
//! responders for hosts that are gone) and, at seeded levels, drop, duplicate and delay
//! (reorder) events, lose control requests and answer them late (executed, reply lost); replica
//! steps crash (the delivery is dropped unacked and redelivered after the ack wait; the replica
//! restarts with nothing in memory and runs its start-up discovery round). The driver
//! ([`drive`]) steps replicas' event and command loops in a seeded order, publishes ticks and
//! timers the way `run.rs` does (`tick_message` per period, `timer_message` at each step's
//! `Processed::next_deadline`), runs discovery rounds (start-up, state in doubt at most every
//! 30 s, periodic), and moves the virtual clock to the next scheduled thing when idle.
//!
//! # Invariants (world-level: from the hosts' truth, the request log and the status store)
//! Checked after every step and every world action:
//! - **(a) never above target**: per application and component (or provider), the instances
//!   running across hosts never exceed the target. While a change rolls out (deploy of another
//!   version, undeploy, undeploy→deploy) the bound is the higher of the old and the new target,
//!   until the running count first reaches the new target; from then on the new target. Nothing
//!   runs that no application has.
//! - **(b) no effect sent twice while in flight**: a control request R2 with the same subject
//!   and body as an earlier request R1 that the hosts executed is a violation when, at R2's
//!   arrival, R1 is *in flight*, which is precisely: R1's effect was applied by the hosts
//!   (operation `x`, before R2 arrived), **and** no pipeline step has yet applied an
//!   event-stream message emitted after `x` that reports R1's slot (R1's own confirmation event,
//!   a later event of that component/provider/link/config, a heartbeat or `host_stopped` of
//!   R1's host, or a discovery round taken after `x`), **and** R1's slot has not changed since
//!   `x` (nothing undid the effect, its host did not go away), **and** R1's order was not
//!   reported failed (`command_failed` applied), **and** R1's order is not past its deadline
//!   (`issued_at + RuntimeConfig::order_lifetime`, after which wadm re-plans from what it
//!   observes by design). A redelivery of the *same* order (same `Nats-Msg-Id`, after a lost
//!   reply or a replica that died mid-command) is at-least-once delivery and not counted. Reads
//!   (`config.get`) are not counted.
//! - **(c) no transient shown as failed**: no application's status is `failed` unless the
//!   scenario injected a real failure into it (a component that cannot scale).
//! - **(d) convergence**: after the faults stop (and a failing component heals and the hosts are
//!   topped up to the initial count), within [`drive::SETTLE_BOUND`] (420 s: a lease, the longest failure backoff and a
//!   margin) of virtual time
//!   the hosts run exactly the desired state — every deployed component's count and image,
//!   providers on the right number of hosts, exactly the desired links and owned configs with
//!   their values, nothing of undeployed applications — and every deployed application's status
//!   is `deployed` (undeployed ones: `undeployed` or none); and it is still so
//!   [`drive::STABLE`] (10 s) later.
//!
//! # Known bugs of wadm
//! Checks that fail because of known bugs of the runtime under test are relaxed, each by one
//! named allowance as narrow as the bug ([`check::Switches`]: `moves`, `echo`, `stale`, `(a)`;
//! `no-responders`, `(c)`; `config-values`, `(d)`; `lost-events`, `(c)` and `(d)`).
//! The `seeds` test reports how often each was needed and the first seed that needed it;
//! `WADM_SIM_STRICT` turns them off (`docs/simulation.md` lists the bugs and repro seeds).
//!
//! On failure the test prints the seed, the invariant, the last steps of the trace and the
//! replay command.

#[path = "simulation/check.rs"]
mod check;
#[path = "simulation/drive.rs"]
mod drive;
#[path = "simulation/model.rs"]
mod model;
#[path = "simulation/scenario.rs"]
mod scenario;
#[path = "simulation/world.rs"]
mod world;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use drive::{Failure, Options, Report};

/// Seeds CI runs.
const CI_SEEDS: u64 = 500;

/// One counter of [`check::Stats`].
type StatOf = fn(&check::Stats) -> u64;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// `WADM_SIM_STRICT=1` turns every known-bug allowance off; a comma-separated list of
/// `moves`, `echo`, `stale`, `no-responders`, `config-values`, `lost-events`
/// turns off those.
fn switches() -> check::Switches {
    let strict = std::env::var("WADM_SIM_STRICT").unwrap_or_default();
    if strict == "1" {
        return check::Switches::strict();
    }
    let mut s = check::Switches::default();
    for name in strict.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match name {
            "moves" => s.allow_make_before_break_moves = false,
            "echo" => s.allow_echo_taken_for_loss = false,
            "stale" => s.allow_stale_redelivery = false,
            "no-responders" => s.allow_failed_after_no_responders = false,
            "config-values" => s.allow_stale_config_values = false,
            "lost-events" => s.allow_lost_link_and_config_events = false,
            other => panic!("WADM_SIM_STRICT: unknown allowance {other}"),
        }
    }
    s
}

fn options() -> Options {
    Options {
        print_trace: std::env::var_os("WADM_SIM_TRACE").is_some(),
        dump_at: env_u64("WADM_SIM_DUMP_AT"),
        switches: switches(),
    }
}

fn failure_text(seed: u64, f: &Failure) -> String {
    let trace = f.trace.join("\n");
    format!(
        "seed {seed}: invariant {} failed at {} ms: {}\n--- last steps ---\n{trace}\n--- replay ---\n\
         WADM_SIM_SEED={seed} cargo test -p wadm-runtime --test simulation -- replay --nocapture",
        f.violation.invariant, f.at, f.violation.message
    )
}

fn run_seed(seed: u64) -> Result<Report, Failure> {
    let scenario = scenario::generate(seed);
    drive::run(&scenario, options())
}

/// CI: `WADM_SIM_SEEDS` seeds (default 500) from `WADM_SIM_FIRST` (default 0), on every core.
#[test]
fn seeds() {
    let first = env_u64("WADM_SIM_FIRST").unwrap_or(0);
    let count = env_u64("WADM_SIM_SEEDS").unwrap_or(CI_SEEDS);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(count as usize);
    let next = AtomicU64::new(first);
    let failures: Mutex<Vec<(u64, String)>> = Mutex::new(Vec::new());
    let reports: Mutex<Vec<(u64, Report, f64)>> = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::SeqCst);
                    if seed >= first + count {
                        return;
                    }
                    let took = Instant::now();
                    match run_seed(seed) {
                        Ok(report) => {
                            let secs = took.elapsed().as_secs_f64();
                            reports.lock().unwrap().push((seed, report, secs));
                        }
                        Err(f) => {
                            let text = failure_text(seed, &f);
                            failures.lock().unwrap().push((seed, text));
                        }
                    }
                }
            });
        }
    });
    let elapsed = started.elapsed();
    let mut reports = reports.into_inner().unwrap();
    reports.sort_by(|a, b| b.2.total_cmp(&a.2));
    let longest = reports.iter().map(|(_, r, _)| r.stats.longest_overshoot).max().unwrap_or(0);
    // Per known-bug allowance: how many checks it let pass and the first seed that needed it
    // (replay that seed with WADM_SIM_STRICT=1 to see the bug).
    let allowances: [(&str, StatOf); 6] = [
        ("moves (make-before-break)", |s| s.overshoots_moves),
        ("echo (update echo taken for a loss)", |s| s.overshoots_echoes),
        ("stale (superseded order executed)", |s| s.overshoots_stale),
        ("no-responders (failed after no responders)", |s| s.allowed_failed_no_responders),
        ("lost-events (failed: config deleted under it)", |s| s.allowed_failed_unobserved_config),
        ("config-values/lost-events (links/configs drifted at convergence)", |s| {
            s.allowed_config_drift
        }),
    ];
    let mut by_seed = reports.clone();
    by_seed.sort_by_key(|(seed, _, _)| *seed);
    let used: Vec<String> = allowances
        .iter()
        .map(|(name, count)| {
            let total: u64 = by_seed.iter().map(|(_, r, _)| count(&r.stats)).sum();
            let seeds = by_seed.iter().filter(|(_, r, _)| count(&r.stats) > 0).count();
            let first = by_seed.iter().find(|(_, r, _)| count(&r.stats) > 0).map(|(s, _, _)| *s);
            format!("{name}: {total} checks in {seeds} seeds (first: {first:?})")
        })
        .collect();
    println!(
        "known-bug allowances (longest overshoot {:.1} s):\n  {}",
        longest as f64 / 1000.0,
        used.join("\n  ")
    );
    let slowest: Vec<String> = reports
        .iter()
        .take(3)
        .map(|(s, r, t)| format!("{s} ({t:.2} s, {} steps)", r.steps))
        .collect();
    let reports: Vec<Report> = reports.into_iter().map(|(_, r, _)| r).collect();
    let steps: u64 = reports.iter().map(|r| r.steps).sum();
    let settle = reports.iter().map(|r| r.settle_ms).max().unwrap_or(0);
    let crashes: u64 = reports.iter().map(|r| r.crashes).sum();
    let repeats: u64 = reports.iter().map(|r| r.stats.repeats).sum();
    println!(
        "{count} seeds from {first} in {:.1} s ({:.1} seeds/s on {threads} threads), {steps} \
         steps, {crashes} replica crashes, {repeats} requests repeating an executed one; slowest \
         convergence after the faults: {:.1} s; slowest seeds: {}",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64(),
        settle as f64 / 1000.0,
        slowest.join(", ")
    );
    let mut failures = failures.into_inner().unwrap();
    failures.sort();
    if let Some((_, text)) = failures.first() {
        let seeds: Vec<u64> = failures.iter().map(|(s, _)| *s).collect();
        panic!("{} of {count} seeds failed: {seeds:?}\n{text}", failures.len());
    }
}

/// Replays `WADM_SIM_SEED` (skipped without it); `WADM_SIM_TRACE=1` prints every step.
#[test]
fn replay() {
    let Some(seed) = env_u64("WADM_SIM_SEED") else {
        println!("set WADM_SIM_SEED=<seed> to replay a seed");
        return;
    };
    let scenario = scenario::generate(seed);
    println!("{}", scenario.summary());
    if std::env::var_os("WADM_SIM_TRACE").is_some() {
        for app in &scenario.apps {
            for v in &app.versions {
                let w: Vec<String> = v
                    .workloads
                    .iter()
                    .map(|w| format!("{}={}x{}", w.name, w.instances, w.image))
                    .collect();
                println!("  {} {}: {}", app.name, v.version, w.join(", "));
            }
        }
        for (at, action) in &scenario.actions {
            println!("  {at:>7} {action:?}");
        }
    }
    match drive::run(&scenario, options()) {
        Ok(report) => println!("seed {seed} passed: {report:#?}"),
        Err(f) => panic!("{}", failure_text(seed, &f)),
    }
}

/// The same seed gives the same history.
#[test]
fn a_seed_replays_exactly() {
    let seed = 7;
    let a = format!("{:?}", run_seed(seed).map(|r| (r.steps, r.virtual_ms, r.stats.requests)));
    let b = format!("{:?}", run_seed(seed).map(|r| (r.steps, r.virtual_ms, r.stats.requests)));
    assert_eq!(a, b);
}
