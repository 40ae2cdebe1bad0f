//! The control-plane role label of the server's own Node
//! (`node-role.kubernetes.io/control-plane`), set by the server rather than by its agent: the
//! NodeRestriction admission plugin forbids a node to set `kubernetes.io` labels outside the
//! kubelet's own set, as upstream (where `kubeadm` labels control-plane nodes with its admin
//! credentials). The label is (re)applied whenever the Node appears without it.

use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{WatchStreamExt as _, watcher};

/// The label marking control-plane nodes.
pub const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";

/// Labels Node `node` as a control-plane node whenever it lacks the label, until dropped.
pub async fn run(client: kube::Client, node: String) {
    let api: Api<Node> = Api::all(client);
    let config = watcher::Config::default().fields(&format!("metadata.name={node}"));
    let mut stream = watcher(api.clone(), config).default_backoff().applied_objects().boxed();
    while let Some(event) = stream.next().await {
        let Ok(n) = event else { continue };
        if n.metadata.labels.as_ref().is_some_and(|l| l.contains_key(CONTROL_PLANE_LABEL)) {
            continue;
        }
        let patch = serde_json::json!({"metadata": {"labels": {CONTROL_PLANE_LABEL: "true"}}});
        for attempt in 0..5u64 {
            match api.patch(&node, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(node = %node, error = %e, "cannot label the control-plane node; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await;
                }
            }
        }
    }
}
