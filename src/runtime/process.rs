//! The process's own figures on `/metrics`, read from `/proc` at each scrape (Linux; elsewhere
//! they are left out), under the names Prometheus client libraries give them, and the build's
//! version and commit.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// `/proc` counts CPU time in clock ticks of this length (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// The commit the binary was built from: `CCS_ENDPOINT_COMMIT` at build time (the Dockerfile
/// and release builds set it), else "unknown".
pub const COMMIT: &str = match option_env!("CCS_ENDPOINT_COMMIT") {
    Some(commit) => commit,
    None => "unknown",
};

/// Reads `/proc/self` at each scrape.
#[derive(Debug, Default)]
pub struct ProcessCollector;

/// What one scrape reads.
#[derive(Debug, Default, PartialEq)]
struct Figures {
    cpu_seconds: Option<f64>,
    start_time_seconds: Option<f64>,
    resident_bytes: Option<i64>,
    open_fds: Option<i64>,
    max_fds: Option<i64>,
}

fn read() -> Figures {
    let stat = std::fs::read_to_string("/proc/self/stat").ok();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .as_deref()
        .and_then(|s| s.rsplit_once(')'))
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // Counting from `state` (field 3 of proc(5)): utime is 14, stime 15, starttime 22.
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<f64>().ok())
    });
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let resident_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok());
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let max_fds = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse::<i64>().ok());
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| i64::try_from(d.count()).unwrap_or(i64::MAX));
    Figures {
        cpu_seconds: field(14)
            .zip(field(15))
            .map(|(user, system)| (user + system) / TICKS_PER_SECOND),
        start_time_seconds: field(22)
            .zip(boot)
            .map(|(start, boot)| boot + start / TICKS_PER_SECOND),
        resident_bytes: resident_kib.map(|k| k * 1024),
        open_fds,
        max_fds,
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let figures = read();
        if let Some(v) = figures.cpu_seconds {
            let counter = ConstCounter::new(v);
            let m = encoder.encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time spent",
                None,
                counter.metric_type(),
            )?;
            counter.encode(m)?;
        }
        let gauges = [
            (
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch",
                figures.start_time_seconds,
            ),
            (
                "process_resident_memory_bytes",
                "Resident memory",
                figures.resident_bytes.map(|v| v as f64),
            ),
            (
                "process_open_fds",
                "Open file descriptors",
                figures.open_fds.map(|v| v as f64),
            ),
            (
                "process_max_fds",
                "The most file descriptors the process may open",
                figures.max_fds.map(|v| v as f64),
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(v) = value {
                let gauge = ConstGauge::new(v);
                let m = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
                gauge.encode(m)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn reads_this_process() {
        let f = read();
        assert!(f.cpu_seconds.is_some_and(|v| v >= 0.0), "{f:?}");
        assert!(f.resident_bytes.is_some_and(|v| v > 1 << 20), "{f:?}");
        assert!(f.open_fds.is_some_and(|v| v >= 3), "{f:?}");
        assert!(
            f.max_fds.is_some_and(|v| v >= f.open_fds.unwrap_or(0)),
            "{f:?}"
        );
        let now = time::OffsetDateTime::now_utc().unix_timestamp() as f64;
        assert!(
            f.start_time_seconds
                .is_some_and(|t| t <= now + 1.0 && t > now - 86_400.0 * 365.0),
            "{f:?}"
        );
    }
}
