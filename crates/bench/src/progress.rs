//! The live progress bar on stderr: time through warmup and measurement, then the drain, with
//! sent, accepted, delivered, errors and the current accept rate.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use tokio::task::JoinHandle;

use crate::stats::Stats;

/// How often the bar refreshes.
const TICK: Duration = Duration::from_millis(500);

/// The bar and the task that refreshes it.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
    task: JoinHandle<()>,
}

/// Shows progress over `seconds` of load, the first `warmup` of them not measured.
pub fn start(stats: Arc<Stats>, warmup: u64, seconds: u64) -> Progress {
    let bar = ProgressBar::new(seconds);
    // `wide_msg` is cut to the terminal's width: a wrapped line would break the redraw.
    if let Ok(style) = ProgressStyle::with_template("{prefix:>9} [{bar:12}] {pos:>3}/{len} s  {wide_msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    let task = tokio::spawn({
        let bar = bar.clone();
        async move {
            let began = Instant::now();
            let mut tick = tokio::time::interval(TICK);
            let (mut last_accepted, mut last_at) = (0, Instant::now());
            loop {
                tick.tick().await;
                let live = &stats.live;
                let accepted = live.accepted.load(Ordering::Relaxed);
                let rate = (accepted - last_accepted) as f64 / last_at.elapsed().as_secs_f64().max(1e-3);
                (last_accepted, last_at) = (accepted, Instant::now());
                let elapsed = began.elapsed().as_secs();
                // Past the load, the prefix is the caller's (`draining`).
                if elapsed < seconds {
                    bar.set_prefix(if elapsed < warmup { "warmup" } else { "measuring" });
                }
                bar.set_position(elapsed.min(seconds));
                bar.set_message(format!(
                    "sent {}  accepted {}  delivered {}  errors {}  {:.0}/s",
                    live.sent.load(Ordering::Relaxed),
                    accepted,
                    live.delivered.load(Ordering::Relaxed),
                    live.errors.load(Ordering::Relaxed),
                    rate
                ));
            }
        }
    });
    Progress { bar, task }
}

impl Progress {
    /// Shows that the load is over and deliveries are still being awaited.
    pub fn draining(&self) {
        self.bar.set_prefix("draining");
    }

    /// Removes the bar, so the table prints on a clean screen.
    pub fn finish(self) {
        self.task.abort();
        self.bar.finish_and_clear();
    }
}
