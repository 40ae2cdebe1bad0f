//! The ClusterRole aggregation controller (upstream `clusterrole-aggregation-controller`),
//! run inside the API server: every ClusterRole with an `aggregationRule` gets as `rules` the
//! union of the rules of the other ClusterRoles its `clusterRoleSelectors` match (in name
//! order, duplicates dropped), kept current by following the ClusterRole watch cache and
//! written through the internal write path (a no-op when nothing changes).

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::{Value, json};
use skiff_api::StatusError;
use skiff_api::catalogue;
use skiff_api::selector::LabelSelectorExpr;
use tokio::sync::broadcast;

use super::rbac::rules::Rule;
use crate::cache::{Entry, Message};
use crate::handlers::{self, Admission, Ctx, Part};
use crate::reqinfo::Verb;
use crate::state::ApiState;

const PREFIX: &str = "/registry/rbac.authorization.k8s.io/clusterroles/";

/// The selectors of an aggregated ClusterRole, `None` when it has no `aggregationRule`.
fn selectors(obj: &Value) -> Option<Vec<LabelSelectorExpr>> {
    let rule = obj.get("aggregationRule").filter(|r| !r.is_null())?;
    let list = rule.get("clusterRoleSelectors").and_then(Value::as_array).cloned().unwrap_or_default();
    Some(
        list.iter()
            .filter_map(|s| serde_json::from_value::<LabelSelector>(s.clone()).ok())
            .filter_map(|s| LabelSelectorExpr::from_label_selector(Some(&s)).ok())
            .collect(),
    )
}

fn rules_of(obj: &Value) -> Vec<Rule> {
    obj.get("rules").and_then(|r| serde_json::from_value(r.clone()).ok()).unwrap_or_default()
}

/// The rules the aggregated role `name` with `selectors` should have, given all ClusterRoles
/// (name order).
pub fn aggregated_rules(name: &str, selectors: &[LabelSelectorExpr], all: &[Arc<Entry>]) -> Vec<Rule> {
    let mut out: Vec<Rule> = Vec::new();
    for e in all {
        if e.name == name || !selectors.iter().any(|s| s.matches(&e.labels)) {
            continue;
        }
        for r in rules_of(&e.value()) {
            if !out.contains(&r) {
                out.push(r);
            }
        }
    }
    out
}

/// Brings every aggregated ClusterRole up to date once.
pub async fn sync(state: &ApiState) {
    let Some(cache) = state.caches.cache(PREFIX) else { return };
    let mut all: Vec<Arc<Entry>> = cache.snapshot().objects.values().cloned().collect();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    for e in &all {
        let obj = e.value();
        let Some(sels) = selectors(&obj) else { continue };
        let want = aggregated_rules(&e.name, &sels, &all);
        if rules_of(&obj) == want {
            continue;
        }
        if let Err(err) = write_rules(state, &e.name, want).await {
            tracing::warn!(clusterrole = %e.name, error = %err.message, "aggregating a ClusterRole failed");
        }
    }
}

async fn write_rules(state: &ApiState, name: &str, rules: Vec<Rule>) -> Result<(), StatusError> {
    let info = catalogue::find("rbac.authorization.k8s.io", "v1", "clusterroles")
        .ok_or_else(|| StatusError::internal("clusterroles not served"))?;
    let ctx = Ctx::internal(info, None, Verb::Update);
    let rules = json!(rules);
    let change = move |current: &Value| -> Result<Value, StatusError> {
        let mut next = current.clone();
        next["rules"] = rules.clone();
        Ok(next)
    };
    handlers::update_object(state, &ctx, name, Part::Main, &mut Admission::internal(), &change).await.map(|_| ())
}

/// Starts the controller; it ends when the server shuts down.
pub fn spawn(state: Arc<ApiState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let shutdown = state.shutdown_signal();
        tokio::select! {
            _ = shutdown => {}
            _ = run(state.clone()) => {}
        }
    })
}

async fn run(state: Arc<ApiState>) {
    loop {
        let Some(cache) = state.caches.cache(PREFIX) else { return };
        let (_, mut rx) = cache.snapshot_and_subscribe();
        sync(&state).await;
        loop {
            match rx.recv().await {
                Ok(Message::Event(_)) => {
                    // Coalesce a burst of changes into one pass.
                    while let Ok(Message::Event(_)) = rx.try_recv() {}
                    sync(&state).await;
                }
                Ok(Message::Reset) | Err(broadcast::error::RecvError::Lagged(_)) => break,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::authz::rbac::rules::rule;

    fn entry(name: &str, labels: &[(&str, &str)], body: Value) -> Arc<Entry> {
        let mut obj = body;
        obj["metadata"] = json!({"name": name});
        Arc::new(Entry {
            key: format!("{PREFIX}{name}"),
            namespace: String::new(),
            name: name.into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            fields: vec![],
            json: Bytes::from(serde_json::to_vec(&obj).expect("test value")),
            revision: 1,
        })
    }

    #[test]
    fn union_of_matching_roles_in_name_order() {
        let agg = json!({"aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"a": "true"}}]}});
        let get = json!({"rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]});
        let list = json!({"rules": [{"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]},
                                     {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]});
        let all = vec![
            entry("agg", &[("a", "true")], agg.clone()),
            entry("p1", &[("a", "true")], get),
            entry("p2", &[("a", "true")], list),
            entry(
                "other",
                &[("a", "false")],
                json!({"rules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]}),
            ),
        ];
        let sels = selectors(&agg).expect("aggregated");
        assert_eq!(
            aggregated_rules("agg", &sels, &all),
            vec![rule(&["get"], &[""], &["pods"]), rule(&["list"], &[""], &["pods"])]
        );
        assert!(selectors(&json!({"rules": []})).is_none());
    }
}
