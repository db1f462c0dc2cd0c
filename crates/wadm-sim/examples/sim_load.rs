//! Load figures for the simulator: start N hosts (default 1000) with 30 s heartbeats on one
//! connection, run for a while, and print this process's CPU time and RSS (from /proc/self).
//!
//! `cargo run -p wadm-sim --example sim_load -- [hosts] [seconds] [heartbeat_secs]`
//! Starts its own `nats-server` through the test harness.

use std::time::{Duration, Instant};

use wadm_sim::{HostSpec, SimConfig, SimLattice, ping_hosts};
use wadm_test_support::NatsServer;

/// (user+system CPU seconds, RSS in KiB) of this process.
fn usage() -> (f64, u64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    (cpu, rss)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let hosts = args.first().copied().unwrap_or(1000) as usize;
    let seconds = args.get(1).copied().unwrap_or(60);
    let heartbeat = Duration::from_secs(args.get(2).copied().unwrap_or(30));

    let server = NatsServer::start();
    let (cpu0, rss0) = usage();
    let mut config = SimConfig::new(server.url(), "load");
    config.heartbeat_interval = heartbeat;
    config.heartbeat_stagger = heartbeat / 4;
    let sim = SimLattice::connect(config).await.expect("connect");
    let t0 = Instant::now();
    for i in 0..hosts {
        sim.add_host(HostSpec::default().label("zone", if i % 2 == 0 { "east" } else { "west" }))
            .await;
    }
    let started = t0.elapsed();
    let (cpu1, rss1) = usage();
    let client = async_nats::connect(server.url()).await.expect("client");
    let t1 = Instant::now();
    let answers = ping_hosts(&client, "load", hosts, Duration::from_secs(30)).await.unwrap();
    let ping_time = t1.elapsed();
    let (cpu2, _) = usage();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let (cpu3, rss3) = usage();
    println!("hosts: {hosts}, heartbeat: {heartbeat:?}, steady window: {seconds}s");
    println!(
        "start: {:?} wall, {:.2}s CPU ({:.0} us CPU/host); RSS {} KiB -> {} KiB ({:.1} KiB/host)",
        started,
        cpu1 - cpu0,
        (cpu1 - cpu0) * 1e6 / hosts as f64,
        rss0,
        rss1,
        (rss1.saturating_sub(rss0)) as f64 / hosts as f64
    );
    println!(
        "ping: {} answers in {:?}, {:.3}s CPU (both ends in this process)",
        answers.len(),
        ping_time,
        cpu2 - cpu1
    );
    println!(
        "steady: {:.2}s CPU over {seconds}s = {:.2}% of one core; RSS {} KiB",
        cpu3 - cpu2,
        (cpu3 - cpu2) * 100.0 / seconds as f64,
        rss3
    );
    sim.shutdown().await;
}
