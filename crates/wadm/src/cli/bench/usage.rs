//! Resource usage read from `/proc`: the process's RSS (`/proc/self/status`), its total CPU
//! (`/proc/self/stat`) and the CPU of each of its threads (`/proc/self/task/*/stat`), grouped by
//! thread name. The bench runs wadm and the simulator on separate tokio runtimes whose threads
//! are named [`WADM_THREADS`] and [`SIM_THREADS`], so their CPU is measured apart exactly; the
//! rest of the process (the driver) is "other". The nats-server child is read by pid.

use std::time::Instant;

/// Thread name of wadm's runtime (API server and deployment runtime).
pub const WADM_THREADS: &str = "wadm-core";
/// Thread name of the simulator's runtime.
pub const SIM_THREADS: &str = "wadm-sim";

/// Linux's USER_HZ: `/proc` reports CPU time in these ticks (100 on every mainstream kernel).
const TICKS_PER_SECOND: f64 = 100.0;

/// One reading of everything the bench reports about resources.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    pub at: Instant,
    /// CPU seconds of the threads named [`WADM_THREADS`].
    pub wadm_cpu: f64,
    /// CPU seconds of the threads named [`SIM_THREADS`].
    pub sim_cpu: f64,
    /// CPU seconds of the whole process (including threads that have exited).
    pub process_cpu: f64,
    /// CPU seconds of the nats-server child.
    pub nats_cpu: f64,
    /// Resident set size now, MiB.
    pub rss_mib: f64,
    /// Peak resident set size so far (`VmHWM`), MiB.
    pub peak_rss_mib: f64,
}

impl Snapshot {
    /// Read now. `nats_pid` is the nats-server's process id, if one runs.
    pub fn take(nats_pid: Option<u32>) -> Snapshot {
        let (mut wadm_cpu, mut sim_cpu) = (0.0, 0.0);
        if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
            for task in tasks.flatten() {
                let path = task.path();
                let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
                let cpu =
                    std::fs::read_to_string(path.join("stat")).ok().and_then(|s| cpu_seconds(&s));
                match (name.trim(), cpu) {
                    (n, Some(cpu)) if n.starts_with(WADM_THREADS) => wadm_cpu += cpu,
                    (n, Some(cpu)) if n.starts_with(SIM_THREADS) => sim_cpu += cpu,
                    _ => {}
                }
            }
        }
        let read_cpu = |path: String| {
            std::fs::read_to_string(path).ok().and_then(|s| cpu_seconds(&s)).unwrap_or(0.0)
        };
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        Snapshot {
            at: Instant::now(),
            wadm_cpu,
            sim_cpu,
            process_cpu: read_cpu("/proc/self/stat".into()),
            nats_cpu: nats_pid.map(|pid| read_cpu(format!("/proc/{pid}/stat"))).unwrap_or(0.0),
            rss_mib: status_kib(&status, "VmRSS:").unwrap_or(0) as f64 / 1024.0,
            peak_rss_mib: status_kib(&status, "VmHWM:").unwrap_or(0) as f64 / 1024.0,
        }
    }
}

/// CPU used between two snapshots, as seconds and as a share of one core.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct CpuUse {
    pub wall_s: f64,
    pub wadm_cpu_s: f64,
    /// wadm's CPU as a percentage of one core over the wall time.
    pub wadm_cpu_pct: f64,
    pub sim_cpu_s: f64,
    pub sim_cpu_pct: f64,
    /// The rest of this process (the bench driver).
    pub other_cpu_s: f64,
    pub nats_server_cpu_s: f64,
    pub nats_server_cpu_pct: f64,
}

impl CpuUse {
    pub fn between(before: &Snapshot, after: &Snapshot) -> CpuUse {
        let wall = after.at.duration_since(before.at).as_secs_f64().max(1e-9);
        let wadm = (after.wadm_cpu - before.wadm_cpu).max(0.0);
        let sim = (after.sim_cpu - before.sim_cpu).max(0.0);
        let process = (after.process_cpu - before.process_cpu).max(0.0);
        let nats = (after.nats_cpu - before.nats_cpu).max(0.0);
        CpuUse {
            wall_s: round(wall, 2),
            wadm_cpu_s: round(wadm, 2),
            wadm_cpu_pct: round(100.0 * wadm / wall, 1),
            sim_cpu_s: round(sim, 2),
            sim_cpu_pct: round(100.0 * sim / wall, 1),
            other_cpu_s: round((process - wadm - sim).max(0.0), 2),
            nats_server_cpu_s: round(nats, 2),
            nats_server_cpu_pct: round(100.0 * nats / wall, 1),
        }
    }
}

/// utime + stime of a `/proc/.../stat` line, in seconds. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted after its closing parenthesis.
pub fn cpu_seconds(stat: &str) -> Option<f64> {
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ")": state is field 3 of the line, utime field 14 and stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SECOND)
}

/// A `Key:   123 kB` line of `/proc/self/status`, in KiB.
pub fn status_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

/// `value` rounded to `digits` decimals (for readable JSON).
pub fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat = "42 (tokio (x) 1) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0";
        assert_eq!(cpu_seconds(stat), Some(3.0));
        assert_eq!(cpu_seconds("garbage"), None);
    }

    #[test]
    fn status_lines_parse_in_kib() {
        let status = "Name:\twadm\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(1024));
        assert_eq!(status_kib(status, "VmHWM:"), Some(2048));
        assert_eq!(status_kib(status, "VmSwap:"), None);
    }

    #[test]
    fn this_process_is_readable() {
        let now = Snapshot::take(None);
        assert!(now.rss_mib > 0.0 && now.peak_rss_mib >= now.rss_mib);
    }
}
