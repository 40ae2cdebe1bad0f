//! The namespace controller: when a namespace is being deleted, delete everything in it, then
//! remove the `kubernetes` finalizer through `/finalize` so the API server removes the namespace.
//!
//! Level-triggered: each reconcile looks at the namespace as it is now, deletes what is left,
//! reports progress in the namespace's deletion conditions as upstream does
//! (`NamespaceDeletionDiscoveryFailure`, `NamespaceDeletionGroupVersionParsingFailure`,
//! `NamespaceDeletionContentFailure`, `NamespaceContentRemaining`,
//! `NamespaceFinalizersRemaining`), and requeues until nothing remains.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::discovery::{Discovery, Scope, verbs};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use serde_json::json;

/// The finalizer this controller owns.
pub const FINALIZER: &str = "kubernetes";

/// Errors of one reconcile.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    /// An API call failed.
    #[error("API call failed: {0}")]
    Api(#[from] kube::Error),
    /// The namespace has no name.
    #[error("namespace without a name")]
    Unnamed,
}

struct Ctx {
    client: kube::Client,
}

/// Runs the controller until the task is aborted.
pub async fn run(client: kube::Client) {
    let api: Api<Namespace> = Api::all(client.clone());
    Controller::new(api, watcher::Config::default())
        .run(reconcile, error_policy, Arc::new(Ctx { client }))
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "namespace reconcile failed");
            }
        })
        .await;
}

fn error_policy(_ns: Arc<Namespace>, err: &NamespaceError, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(error = %err, "namespace cleanup failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action, NamespaceError> {
    if ns.metadata.deletion_timestamp.is_none() {
        return Ok(Action::await_change());
    }
    let holds = ns.spec.as_ref().and_then(|s| s.finalizers.as_ref()).is_some_and(|f| f.iter().any(|x| x == FINALIZER));
    if !holds {
        return Ok(Action::await_change());
    }
    let name = ns.metadata.name.clone().ok_or(NamespaceError::Unnamed)?;
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let report = delete_contents(&ctx.client, &name).await;
    let conditions = report.conditions(ns.status.as_ref().and_then(|s| s.conditions.as_deref()).unwrap_or(&[]));
    if ns.status.as_ref().and_then(|s| s.conditions.as_ref()) != Some(&conditions) {
        let patch = json!({"status": {"conditions": conditions}});
        match api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        }
    }
    if !report.is_clean() {
        tracing::debug!(namespace = %name, remaining = report.remaining.len(), "waiting for namespace contents to go");
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let mut finalized = (*ns).clone();
    if let Some(spec) = finalized.spec.as_mut() {
        spec.finalizers =
            Some(spec.finalizers.take().unwrap_or_default().into_iter().filter(|f| f != FINALIZER).collect());
    }
    api.replace_subresource("finalize", &name, &PostParams::default(), &finalized).await?;
    tracing::info!(namespace = %name, "namespace finalized");
    Ok(Action::await_change())
}

/// What one pass over a terminating namespace found.
#[derive(Debug, Default, PartialEq)]
struct Report {
    /// Why discovery failed, if it did.
    discovery: Option<String>,
    /// Resources whose listing or deletion failed, with the error.
    failures: Vec<String>,
    /// Objects left, by `resource.group`.
    remaining: BTreeMap<String, usize>,
    /// Objects left holding each finalizer.
    finalizers: BTreeMap<String, usize>,
}

impl Report {
    fn is_clean(&self) -> bool {
        self.discovery.is_none() && self.failures.is_empty() && self.remaining.is_empty()
    }

    /// The namespace's deletion conditions, in upstream's order, keeping the transition times of
    /// `old` conditions whose status does not change.
    fn conditions(&self, old: &[NamespaceCondition]) -> Vec<NamespaceCondition> {
        let counted = |m: &BTreeMap<String, usize>, sep: &str| {
            m.iter().map(|(k, n)| format!("{k} {sep} {n} resource instances")).collect::<Vec<_>>().join(", ")
        };
        let rows: [(&str, bool, &str, String); 5] = [
            match &self.discovery {
                Some(e) => (
                    "NamespaceDeletionDiscoveryFailure",
                    true,
                    "DiscoveryFailed",
                    format!("Discovery failed for some groups, 1 failing: {e}"),
                ),
                None => (
                    "NamespaceDeletionDiscoveryFailure",
                    false,
                    "ResourcesDiscovered",
                    "All resources successfully discovered".into(),
                ),
            },
            (
                "NamespaceDeletionGroupVersionParsingFailure",
                false,
                "ParsedGroupVersions",
                "All legacy kube types successfully parsed".into(),
            ),
            if self.failures.is_empty() {
                (
                    "NamespaceDeletionContentFailure",
                    false,
                    "ContentDeleted",
                    "All content successfully deleted, may be waiting on finalization".into(),
                )
            } else {
                let msg = format!(
                    "Failed to delete all resource types, {} remaining: {}",
                    self.failures.len(),
                    self.failures.join(", ")
                );
                ("NamespaceDeletionContentFailure", true, "ContentDeletionFailed", msg)
            },
            if self.remaining.is_empty() {
                ("NamespaceContentRemaining", false, "ContentRemoved", "All content successfully removed".into())
            } else {
                let msg = format!("Some resources are remaining: {}", counted(&self.remaining, "has"));
                ("NamespaceContentRemaining", true, "SomeResourcesRemain", msg)
            },
            if self.finalizers.is_empty() {
                (
                    "NamespaceFinalizersRemaining",
                    false,
                    "ContentHasNoFinalizers",
                    "All content-preserving finalizers finished".into(),
                )
            } else {
                let msg = format!(
                    "Some content in the namespace has finalizers remaining: {}",
                    counted(&self.finalizers, "in")
                );
                ("NamespaceFinalizersRemaining", true, "SomeFinalizersRemain", msg)
            },
        ];
        let now = Time(Timestamp::now());
        rows.into_iter()
            .map(|(type_, value, reason, message)| {
                let status = if value { "True" } else { "False" };
                let since = old
                    .iter()
                    .find(|c| c.type_ == type_ && c.status == status)
                    .and_then(|c| c.last_transition_time.clone())
                    .unwrap_or_else(|| now.clone());
                NamespaceCondition {
                    type_: type_.into(),
                    status: status.into(),
                    reason: Some(reason.into()),
                    message: Some(message),
                    last_transition_time: Some(since),
                }
            })
            .collect()
    }
}

/// Deletes every namespaced object in `namespace` and reports what is left.
async fn delete_contents(client: &kube::Client, namespace: &str) -> Report {
    let mut report = Report::default();
    let discovery = match Discovery::new(client.clone()).run().await {
        Ok(d) => d,
        Err(e) => {
            report.discovery = Some(e.to_string());
            return report;
        }
    };
    let resources: Vec<ApiResource> = discovery
        .groups()
        .flat_map(|g| g.recommended_resources())
        .filter(|(_, caps)| caps.scope == Scope::Namespaced && caps.supports_operation(verbs::LIST))
        .filter(|(_, caps)| caps.supports_operation(verbs::DELETE))
        .map(|(ar, _)| ar)
        .collect();
    let mut found = 0usize;
    for ar in &resources {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, ar);
        let list = match api.list(&ListParams::default()).await {
            Ok(l) => l,
            Err(e) => {
                report.failures.push(format!("{}.{}: {e}", ar.plural, ar.group));
                continue;
            }
        };
        for obj in list.items {
            let Some(name) = obj.metadata.name.clone() else { continue };
            found += 1;
            if obj.metadata.deletion_timestamp.is_some() {
                continue;
            }
            match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => report.failures.push(format!("{}.{}: {e}", ar.plural, ar.group)),
            }
        }
    }
    if found == 0 {
        return report;
    }
    // Count what is left (objects without finalizers are already gone after the deletes).
    for ar in &resources {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, ar);
        let Ok(list) = api.list(&ListParams::default()).await else { continue };
        if list.items.is_empty() {
            continue;
        }
        *report.remaining.entry(format!("{}.{}", ar.plural, ar.group)).or_default() += list.items.len();
        for obj in &list.items {
            for f in obj.metadata.finalizers.iter().flatten() {
                *report.finalizers.entry(f.clone()).or_default() += 1;
            }
        }
    }
    report.failures.sort();
    report.failures.dedup();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_read_as_upstream() {
        let clean = Report::default().conditions(&[]);
        let types: Vec<&str> = clean.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(
            types,
            [
                "NamespaceDeletionDiscoveryFailure",
                "NamespaceDeletionGroupVersionParsingFailure",
                "NamespaceDeletionContentFailure",
                "NamespaceContentRemaining",
                "NamespaceFinalizersRemaining"
            ]
        );
        assert!(clean.iter().all(|c| c.status == "False"));
        let stuck = Report {
            remaining: BTreeMap::from([("configmaps.".to_string(), 1), ("widgets.example.com".to_string(), 2)]),
            finalizers: BTreeMap::from([("example.com/keep".to_string(), 3)]),
            ..Default::default()
        };
        assert!(!stuck.is_clean());
        let conds = stuck.conditions(&clean);
        assert_eq!(conds[3].status, "True");
        assert_eq!(conds[3].reason.as_deref(), Some("SomeResourcesRemain"));
        assert_eq!(
            conds[3].message.as_deref(),
            Some(
                "Some resources are remaining: configmaps. has 1 resource instances, widgets.example.com has 2 resource instances"
            )
        );
        assert_eq!(
            conds[4].message.as_deref(),
            Some("Some content in the namespace has finalizers remaining: example.com/keep in 3 resource instances")
        );
        // Unchanged statuses keep their transition time.
        assert_eq!(conds[0].last_transition_time, clean[0].last_transition_time);
    }
}
