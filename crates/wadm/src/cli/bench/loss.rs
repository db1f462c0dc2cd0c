//! Host loss: crash one host at a time and time how long until the instances it ran run
//! elsewhere, as the simulator sees it (the sum of each lost component's instances over the
//! running hosts is back to what the manifest asks for). Before each crash the simulated
//! lattice runs exactly what the manifests ask for.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::bail;
use wadm_sim::SimLattice;

/// How often the simulator's hosts are read while waiting for the replacement.
const POLL_EVERY: Duration = Duration::from_millis(25);

/// Instances of every component over the running hosts, per component id.
pub fn instance_totals(sim: &SimLattice) -> BTreeMap<String, u64> {
    let mut totals = BTreeMap::new();
    for host in sim.hosts() {
        if let Some(state) = sim.host_state(&host) {
            for (id, component) in state.components {
                *totals.entry(id).or_default() += u64::from(component.count);
            }
        }
    }
    totals
}

/// Components that ever ran more instances at once across the lattice than `desired` asks
/// for (the simulator tracks every host's counts), as (component, peak, target), worst first.
pub fn overshoots(sim: &SimLattice, desired: &BTreeMap<String, u64>) -> Vec<Overshoot> {
    let peaks = sim.peak_totals();
    let mut over: Vec<Overshoot> = desired
        .iter()
        .filter_map(|(id, target)| {
            let peak = peaks.get(id).copied().unwrap_or(0);
            (peak > *target).then(|| Overshoot { component: id.clone(), peak, target: *target })
        })
        .collect();
    over.sort_by_key(|o| (std::cmp::Reverse(o.peak - o.target), o.component.clone()));
    over
}

/// One component that ran more instances than asked for.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Overshoot {
    pub component: String,
    pub peak: u64,
    pub target: u64,
}

/// How `overshoots` reads in the report.
pub fn overshoot_text(over: &[Overshoot], components: usize) -> String {
    match over.first() {
        None => format!("never above target ({components} components)"),
        Some(worst) => format!(
            "{} of {components} components ran above target (worst {}: {} of {})",
            over.len(),
            worst.component,
            worst.peak,
            worst.target
        ),
    }
}

/// Crash `crashes` hosts that run something, one after another (the next once the previous
/// one's instances are replaced and the lattice runs exactly `desired` again), on `crash_on`
/// (the simulator's runtime). Returns each crash-to-replacement latency. Fails when the
/// lattice does not converge or a replacement takes longer than `timeout`.
pub async fn crash_and_time(
    sim: &std::sync::Arc<SimLattice>,
    crash_on: &tokio::runtime::Handle,
    desired: &BTreeMap<String, u64>,
    crashes: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<Duration>> {
    let mut latencies = Vec::new();
    for round in 0..crashes {
        let converged =
            super::rig::wait_for(timeout, "the lattice to run what was deployed", || {
                std::future::ready((instance_totals(sim) == *desired).then_some(()))
            })
            .await;
        converged.map_err(|e| anyhow::anyhow!("before crash {round}: {e}"))?;
        let busy: Vec<(String, Vec<String>)> = sim
            .hosts()
            .into_iter()
            .filter_map(|h| {
                let state = sim.host_state(&h)?;
                (!state.components.is_empty()).then(|| (h, state.components.into_keys().collect()))
            })
            .collect();
        if busy.is_empty() {
            bail!("no host runs anything to crash (round {round})");
        }
        // Spread the victims over the sorted list of busy hosts.
        let (victim, lost) = busy[(round * 7919) % busy.len()].clone();
        let crashed_sim = sim.clone();
        let crashed = victim.clone();
        crash_on.spawn(async move { crashed_sim.crash_host(&crashed).await }).await?;
        let crashed_at = Instant::now();
        loop {
            let now = instance_totals(sim);
            let replaced = lost.iter().all(|id| {
                now.get(id).copied().unwrap_or(0) >= desired.get(id).copied().unwrap_or(0)
            });
            if replaced {
                latencies.push(crashed_at.elapsed());
                break;
            }
            if crashed_at.elapsed() > timeout {
                bail!(
                    "host {victim}'s instances were not replaced within {timeout:?} (crash {round})"
                );
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }
    Ok(latencies)
}

/// The nearest-rank `pct` percentile of `samples` (sorted here), or zero when empty.
pub fn percentile(samples: &[Duration], pct: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = ((pct / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let ms = |v: u64| Duration::from_millis(v);
        let samples: Vec<Duration> = (1..=10).rev().map(ms).collect();
        assert_eq!(percentile(&samples, 50.0), ms(5));
        assert_eq!(percentile(&samples, 99.0), ms(10));
        assert_eq!(percentile(&[ms(3)], 50.0), ms(3));
        assert_eq!(percentile(&[], 99.0), Duration::ZERO);
    }
}
