//! `wadm bench --quick --output json` runs the whole harness (its own nats-server, wadm and
//! simulated hosts) and reports every figure: heartbeat throughput, mass deploy with every
//! application deployed, host-loss latencies, backlog drain rates for 1 and 3 replicas on 1 and
//! 3 lattices, and CPU and memory of wadm and the simulator.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use wadm_test_support::wait_until;

const WADM: &str = env!("CARGO_BIN_EXE_wadm");
/// The quick configuration finishes in well under a minute; the deadline allows a busy machine.
const DEADLINE: Duration = Duration::from_secs(240);

fn number(report: &Value, path: &str) -> f64 {
    report
        .pointer(path)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{path} is missing or not a number in {report:#}"))
}

#[test]
fn quick_bench_reports_every_figure_and_deploys_every_app() {
    let mut child = Command::new(WADM)
        .args(["bench", "--quick", "--output", "json"])
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("wadm runs");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        stdout.read_to_string(&mut text).map(|_| text)
    });
    let finished = wait_until(DEADLINE, || child.try_wait().ok().flatten().is_some());
    if !finished {
        let _ = child.kill();
        let _ = child.wait();
        panic!("wadm bench --quick did not finish within {DEADLINE:?}");
    }
    let status = child.wait().unwrap();
    let text = reader.join().unwrap().unwrap();
    assert!(status.success(), "wadm bench failed ({status}); stdout: {text}");
    let report: Value = serde_json::from_str(&text).expect("the report is JSON");

    // Deploy: every generated application reached `deployed`.
    let apps = number(&report, "/plan/apps");
    assert_eq!(number(&report, "/deploy/apps"), apps);
    assert_eq!(number(&report, "/deploy/apps_deployed"), apps, "{report:#}");
    assert_eq!(report.pointer("/deploy/all_deployed"), Some(&Value::Bool(true)));
    let instances = number(&report, "/deploy/instances");
    assert_eq!(number(&report, "/deploy/instances_running"), instances, "{report:#}");
    let components = apps * number(&report, "/plan/components");
    assert!(number(&report, "/deploy/commands_issued") >= components, "{report:#}");
    // The simulator saw every host at once: no component ever ran above its target.
    for phase in ["deploy", "host_loss"] {
        let over = report.pointer(&format!("/{phase}/overshoots")).and_then(Value::as_array);
        assert_eq!(over.map(Vec::len), Some(0), "{phase} overshoots: {report:#}");
    }
    assert!(number(&report, "/deploy/deploy_to_commands_issued_ms") > 0.0);
    assert!(number(&report, "/deploy/deploy_to_all_deployed_ms") > 0.0);

    // Host loss: one latency per crash, each at least most of a lease (nothing replaces
    // instances before the host is declared lost), percentiles ordered.
    let crashes = number(&report, "/plan/crashes") as usize;
    let latencies = report.pointer("/host_loss/latencies_ms").and_then(Value::as_array).unwrap();
    assert_eq!(latencies.len(), crashes);
    let lease = number(&report, "/host_loss/lease_ms");
    let heartbeat = number(&report, "/host_loss/heartbeat_ms");
    assert!(lease >= 2.0 * heartbeat);
    for latency in latencies {
        assert!(latency.as_f64().unwrap() >= lease - heartbeat, "{report:#}");
    }
    let (p50, p99) = (number(&report, "/host_loss/p50_ms"), number(&report, "/host_loss/p99_ms"));
    assert!(p50 > 0.0 && p50 <= p99);
    assert_eq!(
        number(&report, "/host_loss/reaction_p50_ms"),
        ((p50 - lease) * 10.0).round() / 10.0
    );

    // Events: heartbeats were offered and handled.
    assert!(number(&report, "/events/offered_per_s") > 0.0);
    assert!(number(&report, "/events/handled_per_s") > 0.0);
    assert!(number(&report, "/events/handled_ratio") > 0.0);
    number(&report, "/events/backlog_end");

    // Drain: each configuration worked off every heartbeat stored for it, on every lattice.
    let runs = report.pointer("/drain/runs").and_then(Value::as_array).expect("drain runs");
    let configs: Vec<(f64, f64)> =
        runs.iter().map(|r| (number(r, "/replicas"), number(r, "/lattices"))).collect();
    assert_eq!(configs, [(1.0, 1.0), (3.0, 1.0), (1.0, 3.0), (3.0, 3.0)]);
    let per_lattice =
        number(&report, "/plan/drain_hosts") * number(&report, "/plan/drain_events_per_host");
    for run in runs {
        let lattices = number(run, "/lattices");
        assert_eq!(number(run, "/published"), per_lattice * lattices, "{run:#}");
        assert!(number(run, "/backlog_events") >= per_lattice * lattices, "{run:#}");
        assert!(number(run, "/events_per_s") > 0.0, "{run:#}");
        let drained = run.pointer("/lattice_drain_ms").and_then(Value::as_array).unwrap();
        assert_eq!(drained.len() as f64, lattices);
        let slowest = drained.iter().filter_map(Value::as_f64).fold(0.0, f64::max);
        assert_eq!(number(run, "/drain_ms"), slowest);
        assert!(number(run, "/first_ack_ms") <= slowest);
        number(run, "/commands_during_drain");
        number(run, "/stalls");
        assert!(number(run, "/events_per_s_without_stalls") >= number(run, "/events_per_s"));
    }
    for ratio in [
        "three_replicas_one_lattice",
        "one_replica_three_lattices",
        "three_replicas_three_lattices",
        "three_vs_one_replica_on_three_lattices",
    ] {
        assert!(number(&report, &format!("/drain/ratios/{ratio}")) > 0.0, "{ratio}");
        number(&report, &format!("/drain/ratios_without_stalls/{ratio}"));
    }

    // Resources: wadm and the simulator both used CPU; memory is reported.
    for phase in ["events", "deploy", "host_loss"] {
        assert!(number(&report, &format!("/{phase}/usage/wadm_cpu_s")) > 0.0, "{phase}");
        number(&report, &format!("/{phase}/usage/sim_cpu_s"));
        number(&report, &format!("/{phase}/usage/nats_server_cpu_s"));
    }
    assert!(number(&report, "/events/sim_alone/sim_cpu_s") > 0.0);
    assert!(number(&report, "/events/sim_alone/wadm_cpu_s") == 0.0, "wadm did not run yet");
    number(&report, "/events/sim_alone_rss_mib");
    number(&report, "/events/wadm_rss_added_mib");
    assert!(number(&report, "/memory/peak_rss_mib") > 0.0);
}
