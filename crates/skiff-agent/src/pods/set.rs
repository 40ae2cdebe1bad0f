//! The pods the agent runs workers for, shared with the readers that need them without asking
//! the API server (the stats endpoints, as the kubelet's pod manager serves its summary
//! provider): each one the latest object its worker was handed (a static pod with its mirror's
//! status).
//!
//! What does not live here: deciding which pods run ([`super::run`]), their workers
//! ([`super::worker`]).

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use k8s_openapi::api::core::v1::Pod;

/// The pods with a worker, by UID; cheap to clone (one shared map).
#[derive(Debug, Clone, Default)]
pub struct PodSet {
    pods: Arc<RwLock<HashMap<String, Pod>>>,
}

impl PodSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<String, Pod>> {
        self.pods.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<String, Pod>> {
        self.pods.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records `pod` (handed to the worker of `uid`).
    pub fn insert(&self, uid: &str, pod: &Pod) {
        self.write().insert(uid.to_string(), pod.clone());
    }

    /// Keeps only the pods whose UID `keep` accepts.
    pub fn retain(&self, mut keep: impl FnMut(&str) -> bool) {
        let mut pods = self.write();
        if pods.keys().any(|uid| !keep(uid)) {
            pods.retain(|uid, _| keep(uid));
        }
    }

    /// The pods, in no particular order.
    pub fn pods(&self) -> Vec<Pod> {
        self.read().values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = Some(name.into());
        pod
    }

    #[test]
    fn insert_replaces_and_retain_drops_pods_without_workers() {
        let set = PodSet::new();
        set.insert("u1", &pod("a"));
        set.insert("u2", &pod("b"));
        set.insert("u1", &pod("a2"));
        let clone = set.clone();
        clone.retain(|uid| uid == "u1");
        let names: Vec<Option<String>> = set.pods().into_iter().map(|p| p.metadata.name).collect();
        assert_eq!(names, [Some("a2".to_string())]);
    }
}
