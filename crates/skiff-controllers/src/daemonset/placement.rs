//! Where daemon pods go: upstream's `NodeShouldRunDaemonPod` (node name, `nodeSelector`,
//! required node affinity, taints against tolerations), the tolerations every daemon pod gets
//! automatically, the `metadata.name` node affinity that pins a daemon pod to its node for the
//! scheduler, and reading a pod's target node back.
//!
//! What does not live here: what the controller does with those decisions ([`super::plan`]).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodSpec, Taint,
    Toleration,
};

/// `NoSchedule`.
pub const NO_SCHEDULE: &str = "NoSchedule";
/// `NoExecute`.
pub const NO_EXECUTE: &str = "NoExecute";

/// The tolerations every daemon pod gets (upstream's `AddOrUpdateDaemonPodTolerations`), in
/// upstream's order: key and effect; `network-unavailable` only for host-network pods.
const AUTOMATIC: &[(&str, &str)] = &[
    ("node.kubernetes.io/not-ready", NO_EXECUTE),
    ("node.kubernetes.io/unreachable", NO_EXECUTE),
    ("node.kubernetes.io/disk-pressure", NO_SCHEDULE),
    ("node.kubernetes.io/memory-pressure", NO_SCHEDULE),
    ("node.kubernetes.io/pid-pressure", NO_SCHEDULE),
    ("node.kubernetes.io/unschedulable", NO_SCHEDULE),
];

/// The toleration host-network daemon pods get in addition.
const NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";

/// Whether two tolerations are the same (upstream's `MatchToleration`).
fn same_toleration(a: &Toleration, b: &Toleration) -> bool {
    a.key == b.key && a.effect == b.effect && a.operator == b.operator && a.value == b.value
}

/// Adds the automatic daemon tolerations to `spec` (an equal toleration already there is kept
/// in place; none is added twice).
pub fn add_daemon_tolerations(spec: &mut PodSpec) {
    let host_network = spec.host_network == Some(true);
    let extra = host_network.then_some((NETWORK_UNAVAILABLE, NO_SCHEDULE));
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for (key, effect) in AUTOMATIC.iter().copied().chain(extra) {
        let t = Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some(effect.into()),
            value: None,
            toleration_seconds: None,
        };
        if let Some(existing) = tolerations.iter_mut().find(|e| same_toleration(e, &t)) {
            *existing = t;
        } else {
            tolerations.push(t);
        }
    }
}

/// Whether `toleration` tolerates `taint` (upstream's `ToleratesTaint`).
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or("");
    let operator = toleration.operator.as_deref().unwrap_or("Equal");
    if key.is_empty() {
        return operator == "Exists";
    }
    if key != taint.key {
        return false;
    }
    match operator {
        "Exists" => true,
        "Equal" | "" => toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

/// Whether some taint of an effect `filter` accepts is tolerated by none of `tolerations`.
fn has_untolerated(taints: &[Taint], tolerations: &[Toleration], filter: impl Fn(&Taint) -> bool) -> bool {
    taints.iter().filter(|t| filter(t)).any(|t| !tolerations.iter().any(|tol| tolerates(tol, t)))
}

/// Whether one node selector requirement holds for a node (`field` for `matchFields`).
fn requirement_holds(r: &NodeSelectorRequirement, name: &str, labels: &BTreeMap<String, String>, field: bool) -> bool {
    let have: Option<&str> =
        if field { (r.key == "metadata.name").then_some(name) } else { labels.get(&r.key).map(String::as_str) };
    let values = r.values.as_deref().unwrap_or(&[]);
    match r.operator.as_str() {
        "In" => have.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => have.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" if !field => have.is_some(),
        "DoesNotExist" if !field => have.is_none(),
        "Gt" | "Lt" if !field => {
            let (Some(actual), Some(bound)) = (
                have.and_then(|v| v.parse::<i64>().ok()),
                values.first().and_then(|v| v.parse::<i64>().ok()).filter(|_| values.len() == 1),
            ) else {
                return false;
            };
            if r.operator == "Gt" { actual > bound } else { actual < bound }
        }
        _ => false,
    }
}

/// Whether a node selector term matches (an empty term matches nothing).
fn term_matches(t: &NodeSelectorTerm, name: &str, labels: &BTreeMap<String, String>) -> bool {
    let exprs = t.match_expressions.as_deref().unwrap_or(&[]);
    let fields = t.match_fields.as_deref().unwrap_or(&[]);
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs.iter().all(|r| requirement_holds(r, name, labels, false))
        && fields.iter().all(|r| requirement_holds(r, name, labels, true))
}

/// Whether `spec`'s `nodeSelector` and required node affinity admit `node`.
pub fn fits_node_affinity(spec: &PodSpec, node: &Node) -> bool {
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    let name = node.metadata.name.as_deref().unwrap_or("");
    if let Some(sel) = &spec.node_selector
        && sel.iter().any(|(k, v)| labels.get(k) != Some(v))
    {
        return false;
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| n.required_during_scheduling_ignored_during_execution.as_ref());
    required.is_none_or(|r| r.node_selector_terms.iter().any(|t| term_matches(t, name, labels)))
}

/// Whether the DaemonSet with pod template spec `template` should run a pod on `node`, and
/// whether a pod already there should keep running (upstream's `NodeShouldRunDaemonPod`): a
/// node whose untolerated taints are all `NoSchedule` keeps its pod, one with an untolerated
/// `NoExecute` taint does not.
pub fn node_should_run(template: &PodSpec, node: &Node) -> (bool, bool) {
    let node_name = node.metadata.name.as_deref().unwrap_or("");
    if template.node_name.as_deref().is_some_and(|n| !n.is_empty() && n != node_name) {
        return (false, false);
    }
    if !fits_node_affinity(template, node) {
        return (false, false);
    }
    let mut spec = template.clone();
    add_daemon_tolerations(&mut spec);
    let tolerations = spec.tolerations.as_deref().unwrap_or(&[]);
    let taints = node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or(&[]);
    if has_untolerated(taints, tolerations, |t| t.effect == NO_SCHEDULE || t.effect == NO_EXECUTE) {
        return (false, !has_untolerated(taints, tolerations, |t| t.effect == NO_EXECUTE));
    }
    (true, true)
}

/// `affinity` with its required node affinity replaced by `metadata.name In [node]` (upstream's
/// `ReplaceDaemonSetPodNodeNameNodeAffinity`; preferred terms and pod (anti-)affinity kept).
pub fn pin_to_node(affinity: Option<Affinity>, node: &str) -> Affinity {
    let selector = NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![NodeSelectorRequirement {
                key: "metadata.name".into(),
                operator: "In".into(),
                values: Some(vec![node.into()]),
            }]),
        }],
    };
    let mut affinity = affinity.unwrap_or_default();
    let na = affinity.node_affinity.get_or_insert_with(NodeAffinity::default);
    na.required_during_scheduling_ignored_during_execution = Some(selector);
    affinity
}

/// The node a daemon pod is for: its `nodeName`, else the single node its required affinity
/// pins through `metadata.name In [node]` (upstream's `GetTargetNodeName`).
pub fn target_node(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(n.to_string());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms.iter().flat_map(|t| t.match_fields.iter().flatten()).find_map(|r| {
        let values = r.values.as_deref().unwrap_or(&[]);
        (r.key == "metadata.name" && r.operator == "In" && values.len() == 1).then(|| values[0].clone())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NodeSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use serde_json::json;

    fn node(name: &str, labels: &[(&str, &str)], taints: &[(&str, &str, &str)]) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                taints: Some(
                    taints
                        .iter()
                        .map(|(k, v, e)| Taint {
                            key: k.to_string(),
                            value: (!v.is_empty()).then(|| v.to_string()),
                            effect: e.to_string(),
                            time_added: None,
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn spec(v: serde_json::Value) -> PodSpec {
        serde_json::from_value(v).expect("pod spec")
    }

    #[test]
    fn node_selector_and_required_affinity() {
        let s = spec(json!({"containers": [], "nodeSelector": {"disk": "ssd"}}));
        assert_eq!(node_should_run(&s, &node("a", &[("disk", "ssd")], &[])), (true, true));
        assert_eq!(node_should_run(&s, &node("b", &[("disk", "hdd")], &[])), (false, false));
        let s = spec(
            json!({"containers": [], "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]},
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["c"]}]}]}}}}),
        );
        assert!(node_should_run(&s, &node("a", &[("zone", "z1")], &[])).0);
        assert!(node_should_run(&s, &node("c", &[], &[])).0);
        assert!(!node_should_run(&s, &node("d", &[("zone", "z2")], &[])).0);
        let s = spec(
            json!({"containers": [], "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{"matchExpressions": [{"key": "cpus", "operator": "Gt", "values": ["4"]}]}]}}}}),
        );
        assert!(node_should_run(&s, &node("a", &[("cpus", "8")], &[])).0);
        assert!(!node_should_run(&s, &node("a", &[("cpus", "2")], &[])).0);
        let s = spec(json!({"containers": [], "nodeName": "x"}));
        assert_eq!(node_should_run(&s, &node("y", &[], &[])), (false, false));
        assert!(node_should_run(&s, &node("x", &[], &[])).0);
    }

    #[test]
    fn taints_against_tolerations() {
        let plain = spec(json!({"containers": []}));
        // An untolerated NoSchedule taint: no new pod, but a running one stays.
        assert_eq!(node_should_run(&plain, &node("a", &[], &[("dedicated", "db", "NoSchedule")])), (false, true));
        // An untolerated NoExecute taint: the pod goes.
        assert_eq!(node_should_run(&plain, &node("a", &[], &[("dedicated", "db", "NoExecute")])), (false, false));
        // PreferNoSchedule never matters.
        assert_eq!(node_should_run(&plain, &node("a", &[], &[("x", "", "PreferNoSchedule")])), (true, true));
        let tol =
            spec(json!({"containers": [], "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "db"}]}));
        assert_eq!(node_should_run(&tol, &node("a", &[], &[("dedicated", "db", "NoExecute")])), (true, true));
        assert_eq!(node_should_run(&tol, &node("a", &[], &[("dedicated", "web", "NoSchedule")])), (false, true));
        let all = spec(json!({"containers": [], "tolerations": [{"operator": "Exists"}]}));
        assert_eq!(node_should_run(&all, &node("a", &[], &[("k", "v", "NoExecute")])), (true, true));
        // The automatic tolerations cover the node-condition taints.
        for (key, effect) in [
            ("node.kubernetes.io/not-ready", "NoExecute"),
            ("node.kubernetes.io/unreachable", "NoExecute"),
            ("node.kubernetes.io/unschedulable", "NoSchedule"),
            ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ] {
            assert_eq!(node_should_run(&plain, &node("a", &[], &[(key, "", effect)])), (true, true), "{key}");
        }
        // network-unavailable only for host-network pods.
        let net = &[("node.kubernetes.io/network-unavailable", "", "NoSchedule")];
        assert_eq!(node_should_run(&plain, &node("a", &[], net)), (false, true));
        let host = spec(json!({"containers": [], "hostNetwork": true}));
        assert_eq!(node_should_run(&host, &node("a", &[], net)), (true, true));
    }

    #[test]
    fn automatic_tolerations_are_added_once() {
        let mut s = spec(json!({"containers": [], "tolerations": [
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}]}));
        add_daemon_tolerations(&mut s);
        add_daemon_tolerations(&mut s);
        let t = serde_json::to_value(&s.tolerations).expect("json");
        assert_eq!(
            t,
            json!([
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
                // An equal toleration is replaced in place (tolerationSeconds dropped, as upstream).
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
                {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
                {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
                {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
                {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
            ])
        );
        let mut h = spec(json!({"containers": [], "hostNetwork": true}));
        add_daemon_tolerations(&mut h);
        assert_eq!(h.tolerations.as_ref().map(Vec::len), Some(7));
        assert_eq!(
            h.tolerations.as_ref().and_then(|t| t.last()).and_then(|t| t.key.as_deref()),
            Some("node.kubernetes.io/network-unavailable")
        );
    }

    #[test]
    fn pods_are_pinned_by_metadata_name() {
        let user: Affinity = serde_json::from_value(json!({"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]}]},
            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1, "preference":
                {"matchExpressions": [{"key": "a", "operator": "Exists"}]}}]}}))
        .expect("affinity");
        let pinned = pin_to_node(Some(user), "n1");
        let v = serde_json::to_value(&pinned).expect("json");
        assert_eq!(
            v["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"],
            json!({"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]})
        );
        assert_eq!(v["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["weight"], 1);
        let mut pod = Pod {
            spec: Some(PodSpec { affinity: Some(pin_to_node(None, "n2")), ..Default::default() }),
            ..Default::default()
        };
        assert_eq!(target_node(&pod).as_deref(), Some("n2"));
        if let Some(s) = pod.spec.as_mut() {
            s.node_name = Some("n3".into());
        }
        assert_eq!(target_node(&pod).as_deref(), Some("n3"));
        assert_eq!(target_node(&Pod::default()), None);
    }
}
