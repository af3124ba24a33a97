//! The server's resident memory: VmRSS read from /proc/PID/status every second while the load
//! runs, summarised as start, max, end and a least-squares slope, so that "memory is flat over a
//! five-minute run" can be shown rather than eyeballed.

use std::time::Duration;

use serde::Serialize;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::error::BenchError;

/// Bytes in a MiB.
const MIB: f64 = 1024.0 * 1024.0;

/// Samples one process's memory in the background.
#[derive(Debug)]
pub struct Sampler {
    pid: u32,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Vec<[f64; 2]>>,
}

/// What the samples show.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryReport {
    /// The process sampled.
    pub pid: u32,
    /// Samples taken, one a second.
    pub samples: usize,
    /// Resident memory at the first sample, MiB.
    pub start_mib: f64,
    /// The largest sample, MiB.
    pub max_mib: f64,
    /// The last sample, MiB.
    pub end_mib: f64,
    /// Least-squares slope over all samples, MiB per minute (none with fewer than two).
    pub slope_mib_per_min: Option<f64>,
    /// Every sample: seconds since the first, MiB.
    pub series: Vec<[f64; 2]>,
}

/// Starts sampling `pid` every second.
pub fn start(pid: u32) -> Result<Sampler, BenchError> {
    resident_bytes(pid)?;
    let (stop, mut stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let began = std::time::Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut series = Vec::new();
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                _ = tick.tick() => match resident_bytes(pid) {
                    Ok(bytes) => series.push([began.elapsed().as_secs_f64(), bytes as f64 / MIB]),
                    // The process is gone: what was sampled so far is the answer.
                    Err(_) => break,
                },
            }
        }
        series
    });
    Ok(Sampler { pid, stop, task })
}

impl Sampler {
    /// Stops sampling and summarises; none if the process vanished before the first sample.
    pub async fn finish(self) -> Option<MemoryReport> {
        let _ = self.stop.send(());
        let series = self.task.await.ok()?;
        summarise(self.pid, series)
    }
}

/// The resident memory of `pid` now, in bytes.
pub fn resident_bytes(pid: u32) -> Result<u64, BenchError> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path)
        .map_err(|e| BenchError::Other(format!("--pid {pid}: cannot read {path}: {e}")))?;
    parse_vmrss(&status).ok_or_else(|| BenchError::Other(format!("--pid {pid}: no VmRSS in {path}")))
}

/// Resident bytes from the text of /proc/PID/status (`VmRSS:   12345 kB`).
pub fn parse_vmrss(status: &str) -> Option<u64> {
    let rest = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let mut parts = rest.split_whitespace();
    let value: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") => Some(value * 1024),
        _ => None,
    }
}

fn summarise(pid: u32, series: Vec<[f64; 2]>) -> Option<MemoryReport> {
    let start_mib = series.first()?[1];
    let end_mib = series.last()?[1];
    let max_mib = series.iter().map(|s| s[1]).fold(f64::MIN, f64::max);
    Some(MemoryReport {
        pid,
        samples: series.len(),
        start_mib,
        max_mib,
        end_mib,
        slope_mib_per_min: slope(&series).map(|per_s| per_s * 60.0),
        series,
    })
}

/// The least-squares slope of y over x; none with fewer than two distinct x.
pub fn slope(points: &[[f64; 2]]) -> Option<f64> {
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p[0]).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p[1]).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p[0] - mean_x).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p[0] - mean_x) * (p[1] - mean_y)).sum();
    (points.len() >= 2 && sxx > 0.0).then(|| sxy / sxx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vmrss() {
        let status = "Name:\therald\nVmPeak:\t  900000 kB\nVmRSS:\t   51200 kB\nRssAnon:\t 40000 kB\n";
        assert_eq!(parse_vmrss(status), Some(51200 * 1024));
        assert_eq!(parse_vmrss("Name:\therald\n"), None);
        assert_eq!(parse_vmrss("VmRSS:\tlots\n"), None);
        assert_eq!(parse_vmrss("VmRSS:\t12 MB\n"), None);
    }

    #[test]
    fn a_flat_series_has_no_slope_and_a_growing_one_does() {
        let flat: Vec<[f64; 2]> = (0..60).map(|s| [s as f64, 50.0]).collect();
        assert_eq!(slope(&flat), Some(0.0));
        let growing: Vec<[f64; 2]> = (0..60).map(|s| [s as f64, 50.0 + s as f64 / 30.0]).collect();
        let r = summarise(1, growing).unwrap();
        assert!((r.slope_mib_per_min.unwrap() - 2.0).abs() < 1e-9);
        assert_eq!((r.start_mib, r.end_mib, r.samples), (50.0, 50.0 + 59.0 / 30.0, 60));
        assert_eq!(slope(&[[0.0, 1.0]]), None);
    }
}
