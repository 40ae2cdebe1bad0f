//! Static pods: pods the agent reads from manifest files in its pod-manifest directory
//! (`<data-dir>/agent/pod-manifests/` unless `--pod-manifest-path` says otherwise) and runs
//! without the API server, as the kubelet's file source does. `manifest` parses one file,
//! `identity` names, hashes and defaults the pod, `source` reads the directory and watches it.
//!
//! What does not live here: running them (the same pod workers as API pods, fed by `pods`) and
//! their mirror pods in the API server (`pods::mirror`).

pub mod identity;
pub mod manifest;
pub mod source;

use k8s_openapi::api::core::v1::Pod;

/// Annotation holding a static pod's hash (its UID); mirror pods carry it too.
pub const CONFIG_HASH: &str = "kubernetes.io/config.hash";
/// Annotation naming where a pod came from (`file` for static pods).
pub const CONFIG_SOURCE: &str = "kubernetes.io/config.source";
/// Annotation recording when the agent first saw a static pod (RFC 3339, nanoseconds).
pub const CONFIG_SEEN: &str = "kubernetes.io/config.seen";
/// The mirror annotation (its value is the static pod's hash).
pub use skiff_api::mirror::MIRROR_ANNOTATION as CONFIG_MIRROR;
/// `kubernetes.io/config.source` of pods read from files.
pub const FILE_SOURCE: &str = "file";

/// Whether `pod` is a static pod (it came from a file, not from the API server).
pub fn is_static(pod: &Pod) -> bool {
    identity::from_file(pod)
}

/// Whether `pod` (as the API server has it) is the mirror of a static pod.
pub fn is_mirror(pod: &Pod) -> bool {
    skiff_api::mirror::is_mirror(pod)
}

/// The hash a mirror pod says its static pod has.
pub fn mirror_hash(pod: &Pod) -> Option<&str> {
    pod.metadata.annotations.as_ref()?.get(CONFIG_MIRROR).map(String::as_str)
}

/// The UID the agent runs `pod` under: for a mirror pod, its static pod's (the hash it carries),
/// else its own.
pub fn runtime_uid(pod: &Pod) -> String {
    mirror_hash(pod).map(str::to_string).or_else(|| pod.metadata.uid.clone()).unwrap_or_default()
}

/// `<name>_<namespace>`, the kubelet's full name of a pod (unique per node across sources).
pub fn full_name(pod: &Pod) -> String {
    format!("{}_{}", pod.metadata.name.as_deref().unwrap_or(""), pod.metadata.namespace.as_deref().unwrap_or(""))
}
