//! Where a pod's start-up time goes: each worker times the steps from the watch delivering its pod
//! to the status patch that first reports it `Running`, and logs them as one line at debug level
//! under the target [`TARGET`] (`RUST_LOG=info,skiff_timing=debug`; `benches/pods.py` reads it).
//!
//! What does not live here: the steps themselves (the worker), timings inside the runtime (the
//! runtime logs its own under the same target).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// The log target of start-up timings (shared with `skiff-runtime`).
pub const TARGET: &str = skiff_runtime::TIMING_TARGET;

/// The start-up timings of one pod, until it is first reported `Running` (then they are logged
/// and the timer stops).
#[derive(Debug)]
pub struct StartTiming {
    /// Wall-clock time the worker got the pod (milliseconds since the Unix epoch).
    received_unix_ms: i64,
    /// The end of the previous step.
    last: Instant,
    /// Time per step, in the order the steps were first seen (a step may run several times).
    steps: Vec<(&'static str, Duration)>,
    /// Logged (or not wanted): no more laps.
    done: bool,
}

impl StartTiming {
    /// Starts timing now (when the worker got its pod). Nothing is recorded when debug logs of
    /// [`TARGET`] are off.
    pub fn start() -> Self {
        Self {
            received_unix_ms: jiff::Timestamp::now().as_millisecond(),
            last: Instant::now(),
            steps: Vec::new(),
            done: !tracing::enabled!(target: TARGET, tracing::Level::DEBUG),
        }
    }

    /// Charges the time since the previous lap to step `step`.
    pub fn lap(&mut self, step: &'static str) {
        if self.done {
            return;
        }
        let now = Instant::now();
        let spent = now - self.last;
        self.last = now;
        match self.steps.iter_mut().find(|(s, _)| *s == step) {
            Some((_, total)) => *total += spent,
            None => self.steps.push((step, spent)),
        }
    }

    /// Logs the timings of pod `pod` (`namespace/name`) once (call when its `Running` status
    /// was written).
    pub fn finish(&mut self, pod: &str) {
        if self.done {
            return;
        }
        self.done = true;
        let total: Duration = self.steps.iter().map(|(_, d)| *d).sum();
        tracing::debug!(
            target: TARGET,
            pod,
            received_unix_ms = self.received_unix_ms,
            running_unix_ms = jiff::Timestamp::now().as_millisecond(),
            total_ms = total.as_secs_f64() * 1000.0,
            steps = %render(&self.steps),
            "pod start-up"
        );
    }
}

/// `step=ms,step=ms` with milliseconds to 0.1.
fn render(steps: &[(&'static str, Duration)]) -> String {
    let mut out = String::new();
    for (i, (step, spent)) in steps.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(out, "{sep}{step}={:.1}", spent.as_secs_f64() * 1000.0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_accumulate_in_first_seen_order() {
        let mut t = StartTiming { received_unix_ms: 0, last: Instant::now(), steps: Vec::new(), done: false };
        t.lap("sandbox");
        t.lap("start");
        t.lap("sandbox");
        let names: Vec<&str> = t.steps.iter().map(|(s, _)| *s).collect();
        assert_eq!(names, ["sandbox", "start"]);
        t.finish("p");
        t.lap("late");
        assert_eq!(t.steps.len(), 2, "no laps after finish");
    }

    #[test]
    fn rendering_is_step_equals_milliseconds() {
        let steps = [("sandbox", Duration::from_micros(12_345)), ("start", Duration::from_millis(3))];
        assert_eq!(render(&steps), "sandbox=12.3,start=3.0");
    }
}
