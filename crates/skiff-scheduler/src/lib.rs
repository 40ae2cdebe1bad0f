//! skiff's scheduler (upstream kube-scheduler's rules, built for throughput): it watches pods
//! whose `spec.schedulerName` names one of its profiles (`default-scheduler` by default) and
//! binds each to a node through `pods/binding`, like kube-scheduler, over HTTPS with its own
//! client; it never touches the store.
//!
//! Layout: [`model`] (pods and nodes parsed once), [`cache`] (nodes with their pods, indexes),
//! [`queue`] (active/backoff/unschedulable), [`framework`] (profiles, statuses, the summary
//! message), [`plugins`] (one module per in-tree plugin), [`schedule`] (one attempt),
//! [`preemption`], [`hints`] (which events retry which pods), [`core`] (the scheduling thread),
//! [`informers`], [`binder`] (API writes) and [`events`].
//!
//! Threads: informers and writers run on the async runtime; scheduling cycles run on one
//! dedicated OS thread that owns all scheduling state, so nothing is locked or copied per cycle.

pub mod binder;
pub mod cache;
pub mod config;
pub mod core;
pub mod events;
pub mod framework;
pub mod hints;
pub mod informers;
pub mod leader;
pub mod model;
pub mod nominator;
pub mod objects;
pub mod plugins;
pub mod preemption;
pub mod queue;
pub mod schedule;
#[cfg(test)]
mod testing;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

pub use crate::core::Stats;
pub use framework::Profile;

/// How the scheduler runs.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// Profiles; pods whose `schedulerName` matches none are left alone.
    pub profiles: Vec<Profile>,
    /// Global `percentageOfNodesToScore` (0: upstream's adaptive percentage).
    pub percentage_of_nodes_to_score: i32,
    /// This instance's identity (events' `reportingInstance` suffix, lease holder).
    pub identity: String,
    /// Leader election.
    pub leader_election: leader::LeaderElection,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        Self {
            profiles: vec![Profile::default_named("default-scheduler")],
            percentage_of_nodes_to_score: 0,
            identity: "skiff".to_string(),
            leader_election: leader::LeaderElection::default(),
        }
    }
}

/// A running scheduler.
pub struct Scheduler {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    stop: std::sync::mpsc::Sender<core::Input>,
    lease: Option<(kube::Client, leader::LeaderElection, String)>,
    /// Counters.
    pub stats: Arc<Stats>,
    /// Whether this instance schedules (leader).
    pub leader: Arc<AtomicBool>,
}

impl Scheduler {
    /// Stops the scheduler's tasks and thread.
    pub fn abort(&self) {
        let _ = self.stop.send(core::Input::Stop);
        self.tasks.iter().for_each(|t| t.abort());
    }

    /// Stops the scheduler and, if it leads, releases the lease so a standby takes over at once.
    pub async fn shutdown(self) {
        self.abort();
        if let Some((client, cfg, me)) = &self.lease {
            let api = kube::Api::namespaced(client.clone(), &cfg.namespace);
            leader::release(&api, cfg, me).await;
        }
    }
}

/// Starts the scheduler: informers, writers and the scheduling thread. Must be called within a
/// tokio runtime.
pub fn start(client: kube::Client, opts: SchedulerOptions) -> Scheduler {
    let (tx, rx) = std::sync::mpsc::channel::<core::Input>();
    let lease_client = client.clone();
    let (recorder, mut tasks) = events::start(client.clone(), format!("default-scheduler-{}", opts.identity));
    let (writer, writer_task) = binder::start(client.clone(), tx.clone(), recorder.clone());
    tasks.push(writer_task);
    tasks.extend(informers::start(client, tx.clone()));
    let stats = Arc::new(Stats::default());
    let election = opts.leader_election.clone();
    let leader = Arc::new(AtomicBool::new(!election.enabled));
    let mut lease = None;
    if election.enabled {
        // Lease holders are unique per process, as client-go's `<host>_<uuid>` identities are.
        let me = format!("{}_{}", opts.identity, uuid::Uuid::new_v4());
        tasks.push(tokio::spawn(leader::run(lease_client.clone(), election.clone(), me.clone(), leader.clone())));
        lease = Some((lease_client, election, me));
    }
    let core = core::Core::new(
        opts.profiles,
        opts.percentage_of_nodes_to_score,
        writer,
        recorder,
        leader.clone(),
        stats.clone(),
    );
    let spawned = std::thread::Builder::new().name("scheduler".into()).spawn(move || core.run(rx));
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the scheduling thread");
    }
    Scheduler { tasks, stop: tx, lease, stats, leader }
}
