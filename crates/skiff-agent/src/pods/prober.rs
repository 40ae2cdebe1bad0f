//! The probes of one running container instance, scheduled as the kubelet's probe workers do:
//! the startup probe first (liveness and readiness wait for it), then liveness and readiness
//! side by side, each after `initialDelaySeconds` and every `periodSeconds`, with
//! `successThreshold`/`failureThreshold` consecutive results flipping the state. Every failed
//! check is an `Unhealthy` event worded as upstream; a check passing with a warning (an
//! `httpGet` redirect to another host) counts as a success and is a `ProbeWarning` event.
//!
//! The results live in [`ProbeState`], shared with the pod worker, which is woken on every
//! change: it reports `ready`/`started` and kills the container when liveness or startup fails.
//! A prober lives as long as its container instance; the worker aborts it when the instance
//! ends.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Probe;
use tokio::sync::Notify;

use super::probe::{self, Outcome, Target};

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `startupProbe`.
    Startup,
    /// `livenessProbe`.
    Liveness,
    /// `readinessProbe`.
    Readiness,
}

impl Kind {
    /// How events name it.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Startup => "Startup",
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
        }
    }
}

/// What the probes of one instance have established.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeState {
    /// The startup probe succeeded (or there is none).
    pub started: bool,
    /// The readiness probe says ready (or there is none, once started).
    pub ready: bool,
    /// Liveness or startup failed `failureThreshold` times: the container must be restarted.
    pub failed: Option<Kind>,
}

/// Reports a probe's event: reason (`Unhealthy`, `ProbeWarning`) and note, from [`event_of`].
pub type EventSink = Arc<dyn Fn(&'static str, String) + Send + Sync>;

/// The kubelet's event for a check's outcome: `Unhealthy` for a failure, `ProbeWarning` for a
/// warning, none for a plain success.
pub fn event_of(kind: Kind, outcome: &Outcome) -> Option<(&'static str, String)> {
    match outcome {
        Outcome::Success => None,
        Outcome::Warning(message) => Some(("ProbeWarning", format!("{} probe warning: {message}", kind.label()))),
        Outcome::Failure(message) => {
            Some(("Unhealthy", format!("{} probe failed: {}", kind.label(), message.trim_end())))
        }
    }
}

/// The probes of one container instance and where their results go.
pub struct Prober {
    /// Probes (`None` when absent).
    pub startup: Option<Probe>,
    /// Liveness probe.
    pub liveness: Option<Probe>,
    /// Readiness probe.
    pub readiness: Option<Probe>,
    /// What to check.
    pub target: Target,
    /// Shared results.
    pub state: Arc<Mutex<ProbeState>>,
    /// Woken on every change of `state`.
    pub changed: Arc<Notify>,
    /// `Unhealthy` and `ProbeWarning` events.
    pub events: EventSink,
    /// How long the instance has run already (an adopted instance does not wait its initial
    /// delay again).
    pub running_for: Duration,
}

fn seconds(v: Option<i32>, default: i32) -> Duration {
    Duration::from_secs(v.unwrap_or(default).max(0) as u64)
}

impl Prober {
    /// The state before any probe ran.
    pub fn initial(startup: bool, readiness: bool) -> ProbeState {
        ProbeState { started: !startup, ready: !startup && !readiness, failed: None }
    }

    fn update(&self, f: impl FnOnce(&mut ProbeState)) {
        let changed = match self.state.lock() {
            Ok(mut state) => {
                let before = state.clone();
                f(&mut state);
                *state != before
            }
            Err(_) => false,
        };
        if changed {
            self.changed.notify_one();
        }
    }

    /// Runs until aborted (or until liveness/startup declares the instance failed).
    pub async fn run(self) {
        let this = Arc::new(self);
        if let Some(startup) = this.startup.clone() {
            if !this.probe_loop(Kind::Startup, startup).await {
                return;
            }
            this.update(|s| {
                s.started = true;
                if this.readiness.is_none() {
                    s.ready = true;
                }
            });
        }
        let liveness = this.liveness.clone().map(|p| {
            let this = Arc::clone(&this);
            tokio::spawn(async move {
                this.probe_loop(Kind::Liveness, p).await;
            })
        });
        // Aborting this task (the instance ended) must stop the liveness task too.
        let _guard = liveness.as_ref().map(|h| AbortOnDrop(h.abort_handle()));
        if let Some(p) = this.readiness.clone() {
            this.probe_loop(Kind::Readiness, p).await;
        }
        if let Some(handle) = liveness {
            let _ = handle.await;
        }
    }

    /// One probe's loop. Startup returns true once it succeeded; liveness and startup return
    /// false once they failed for good; readiness never returns.
    async fn probe_loop(&self, kind: Kind, probe: Probe) -> bool {
        let delay = seconds(probe.initial_delay_seconds, 0).saturating_sub(self.running_for);
        let period = seconds(probe.period_seconds, 10).max(Duration::from_secs(1));
        let success_threshold = probe.success_threshold.unwrap_or(1).max(1) as u32;
        let failure_threshold = probe.failure_threshold.unwrap_or(3).max(1) as u32;
        tokio::time::sleep(delay).await;
        let (mut successes, mut failures) = (0u32, 0u32);
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let outcome = probe::check(&probe, &self.target).await;
            if let Some((reason, note)) = event_of(kind, &outcome) {
                (self.events)(reason, note);
            }
            match outcome {
                Outcome::Success | Outcome::Warning(_) => {
                    failures = 0;
                    successes += 1;
                    match kind {
                        Kind::Startup => return true,
                        Kind::Readiness if successes >= success_threshold => self.update(|s| s.ready = true),
                        _ => {}
                    }
                }
                Outcome::Failure(_) => {
                    successes = 0;
                    failures += 1;
                    if failures >= failure_threshold {
                        match kind {
                            Kind::Readiness => self.update(|s| s.ready = false),
                            Kind::Liveness | Kind::Startup => {
                                self.update(|s| s.failed = Some(kind));
                                return false;
                            }
                        }
                    }
                }
            }
        }
    }
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, TCPSocketAction};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    use skiff_runtime::container::Runtime;

    fn tcp_probe(port: u16, failure_threshold: i32) -> Probe {
        Probe {
            tcp_socket: Some(TCPSocketAction { port: IntOrString::Int(i32::from(port)), ..Default::default() }),
            period_seconds: Some(1),
            failure_threshold: Some(failure_threshold),
            ..Default::default()
        }
    }

    fn prober(
        startup: Option<Probe>,
        liveness: Option<Probe>,
        readiness: Option<Probe>,
    ) -> (Prober, Arc<Mutex<Vec<String>>>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let runtime = Arc::new(Runtime::open(dir.path(), std::path::Path::new("/bin/false")).expect("runtime"));
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&events);
        let state = Prober::initial(startup.is_some(), readiness.is_some());
        let p = Prober {
            startup,
            liveness,
            readiness,
            target: Target {
                runtime,
                instance: "x".into(),
                container: Container::default(),
                pod_ip: "127.0.0.1".into(),
            },
            state: Arc::new(Mutex::new(state)),
            changed: Arc::new(Notify::new()),
            events: Arc::new(move |reason: &'static str, note: String| {
                if let Ok(mut e) = sink.lock() {
                    e.push(format!("{reason}: {note}"));
                }
            }),
            running_for: Duration::ZERO,
        };
        (p, events)
    }

    fn closed_port() -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    }

    #[test]
    fn events_are_worded_as_upstream() {
        assert_eq!(event_of(Kind::Readiness, &Outcome::Success), None);
        assert_eq!(
            event_of(Kind::Readiness, &Outcome::Warning("Probe terminated redirects, Response body: x".into())),
            Some(("ProbeWarning", "Readiness probe warning: Probe terminated redirects, Response body: x".into()))
        );
        assert_eq!(
            event_of(Kind::Startup, &Outcome::Failure("boom\n".into())),
            Some(("Unhealthy", "Startup probe failed: boom".into()))
        );
    }

    #[tokio::test]
    async fn liveness_fails_after_threshold_with_events() {
        let port = closed_port();
        let (p, events) = prober(None, Some(tcp_probe(port, 2)), None);
        let state = Arc::clone(&p.state);
        assert!(state.lock().expect("lock").ready, "no readiness probe: ready at once");
        p.run().await;
        assert_eq!(state.lock().expect("lock").failed, Some(Kind::Liveness));
        let events = events.lock().expect("lock").clone();
        assert_eq!(events.len(), 2);
        assert!(events[0].starts_with("Unhealthy: Liveness probe failed: dial tcp 127.0.0.1:"), "{events:?}");
    }

    #[tokio::test]
    async fn readiness_and_startup_gate_the_state() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            loop {
                let _ = listener.accept().await;
            }
        });
        let (p, events) = prober(Some(tcp_probe(port, 3)), None, Some(tcp_probe(port, 3)));
        let (state, changed) = (Arc::clone(&p.state), Arc::clone(&p.changed));
        assert_eq!(*state.lock().expect("lock"), ProbeState { started: false, ready: false, failed: None });
        let task = tokio::spawn(p.run());
        tokio::time::timeout(Duration::from_secs(10), async {
            while !state.lock().expect("lock").ready {
                changed.notified().await;
            }
        })
        .await
        .expect("ready in time");
        assert!(state.lock().expect("lock").started);
        assert!(events.lock().expect("lock").is_empty());
        task.abort();
    }
}
