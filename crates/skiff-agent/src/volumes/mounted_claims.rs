//! The persistentVolumeClaim volumes the volume manager has set up, per pod: which claim each
//! one is and the host path it resolved to. The stats collector reads it to measure them (the
//! summary's `pvcRef` volumes) without asking the API server at each request.
//!
//! What does not live here: resolving claims ([`super::pvc`]) and measuring ([`crate::stats`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// One set-up claim volume of a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountedClaim {
    /// The volume's name in the pod.
    pub volume: String,
    /// The claim's name.
    pub claim: String,
    /// The claim's (and the pod's) namespace.
    pub namespace: String,
    /// The host path of the bound PersistentVolume.
    pub path: PathBuf,
}

/// The set-up claim volumes of every pod, by pod UID; cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct MountedClaims(Arc<Mutex<HashMap<String, Vec<MountedClaim>>>>);

impl MountedClaims {
    fn locked(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<MountedClaim>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records `claim` for pod `uid`, replacing what its volume was before.
    pub fn record(&self, uid: &str, claim: MountedClaim) {
        let mut map = self.locked();
        let list = map.entry(uid.to_string()).or_default();
        list.retain(|c| c.volume != claim.volume);
        list.push(claim);
    }

    /// Forgets the claims of pod `uid` (its volumes were released).
    pub fn forget(&self, uid: &str) {
        self.locked().remove(uid);
    }

    /// The claim volumes of pod `uid`, in the order they were set up.
    pub fn of(&self, uid: &str) -> Vec<MountedClaim> {
        self.locked().get(uid).cloned().unwrap_or_default()
    }

    /// The claim volumes of every pod, in no particular order.
    pub fn all(&self) -> Vec<MountedClaim> {
        self.locked().values().flatten().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(volume: &str, path: &str) -> MountedClaim {
        MountedClaim { volume: volume.into(), claim: "data".into(), namespace: "ns".into(), path: path.into() }
    }

    #[test]
    fn records_replace_per_volume_and_forget_per_pod() {
        let claims = MountedClaims::default();
        let shared = claims.clone();
        claims.record("u1", claim("a", "/old"));
        claims.record("u1", claim("b", "/b"));
        claims.record("u1", claim("a", "/new"));
        assert_eq!(shared.of("u1"), [claim("b", "/b"), claim("a", "/new")]);
        assert!(shared.of("u2").is_empty());
        claims.record("u2", claim("c", "/c"));
        assert_eq!(shared.all().len(), 3);
        claims.forget("u1");
        assert!(shared.of("u1").is_empty());
    }
}
