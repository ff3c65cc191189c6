//! The live progress line on stderr: a bar when the number of events is
//! known, what was sent and acknowledged, the rate, the current p99 and
//! how far the sender is behind schedule. Redrawn in place once a second;
//! the caller decides whether to show it (a terminal, or `--progress`).

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::recorder::Recorder;

/// Interval between redraws, ms.
pub const PROGRESS_INTERVAL_MS: u64 = 1_000;
/// Width of the bar, characters.
const BAR_CHARS: usize = 24;

/// A running progress line; [`Progress::finish`] ends it with a newline.
#[derive(Debug)]
pub struct Progress {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The line for the current counters.
pub fn line(label: &str, recorder: &Recorder, events_planned: Option<u64>) -> String {
    let c = recorder.counts();
    let elapsed_s = recorder.now_us() as f64 / 1e6;
    let bar = match events_planned {
        Some(total) if total > 0 => {
            let done = (c.events_acked as f64 / total as f64).clamp(0.0, 1.0);
            let filled = (done * BAR_CHARS as f64).round() as usize;
            format!(
                "[{}{}] {:>3.0}% ",
                "#".repeat(filled),
                "-".repeat(BAR_CHARS - filled),
                done * 100.0
            )
        }
        _ => String::new(),
    };
    let rate = if elapsed_s > 0.0 {
        c.events_acked as f64 / elapsed_s
    } else {
        0.0
    };
    format!(
        "{label} {elapsed_s:>6.1}s {bar}sent {} acked {} ({rate:.0}/s) orders {} p99 {:.1} ms retries {}",
        c.events_sent,
        c.events_acked,
        c.orders_acked,
        recorder.event_p99_us() as f64 / 1000.0,
        c.retries
    )
}

impl Progress {
    /// Starts redrawing on stderr.
    pub fn start(label: String, recorder: Arc<Recorder>, events_planned: Option<u64>) -> Progress {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(PROGRESS_INTERVAL_MS));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => break,
                }
                let text = line(&label, &recorder, events_planned);
                let mut err = std::io::stderr().lock();
                let _ = write!(err, "\r\x1b[K{text}");
                let _ = err.flush();
            }
            let text = line(&label, &recorder, events_planned);
            let _ = writeln!(std::io::stderr().lock(), "\r\x1b[K{text}");
        });
        Progress { stop, task }
    }

    /// Draws the final line and stops.
    pub async fn finish(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
