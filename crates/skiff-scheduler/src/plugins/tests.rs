//! Plugin tests against hand-built clusters, one section per plugin. Expectations follow
//! upstream's plugin semantics and test cases (`fit_test.go`, `least_allocated_test.go`,
//! `balanced_allocation_test.go`, `taint_toleration_test.go`, `node_affinity_test.go`,
//! `filtering_test.go`/`scoring_test.go` of PodTopologySpread and InterPodAffinity, …).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;

use super::*;
use crate::framework::{Code, FitStrategy, PluginId, Profile};
use crate::objects::Objects;
use crate::schedule::{Failure, pre_filter};
use crate::testing::{cluster, failure_message, node, node_json, on, pod, pod_req, schedule};

fn profile() -> Profile {
    Profile::default_named("default-scheduler")
}

// --- NodeResourcesFit ------------------------------------------------------------------------

#[test]
fn fit_reports_every_shortfall_in_upstream_order() {
    let c = cluster(vec![node("n", "10", "20", &[])], vec![on(pod_req("used", "8", "19"), "n")]);
    let n = c.node("n").unwrap();
    assert!(fit::insufficient(&pod_req("a", "2", "1"), n, &[]).is_empty());
    assert_eq!(fit::insufficient(&pod_req("b", "3", "1"), n, &[]), ["Insufficient cpu"]);
    assert_eq!(fit::insufficient(&pod_req("c", "3", "2"), n, &[]), ["Insufficient cpu", "Insufficient memory"]);
    // A pod requesting nothing only needs a pod slot.
    assert!(fit::insufficient(&pod(json!({})), n, &[]).is_empty());
}

#[test]
fn fit_counts_init_containers_pods_and_extended_resources() {
    let spec = node_json(
        json!({"metadata": {"name": "n"}, "status": {"allocatable": {"cpu": "4", "memory": "4Gi", "pods": "1", "example.com/gpu": "1"}}}),
    );
    let c = cluster(vec![spec], vec![]);
    let n = c.node("n").unwrap();
    let init =
        pod(json!({"spec": {"initContainers": [{"name": "i", "image": "x", "resources": {"requests": {"cpu": "5"}}}],
        "containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": "1"}}}]}}));
    assert_eq!(fit::insufficient(&init, n, &[]), ["Insufficient cpu"]);
    let gpu = pod(
        json!({"spec": {"containers": [{"name": "c", "image": "x", "resources": {"requests": {"example.com/gpu": "2"}}}]}}),
    );
    assert_eq!(fit::insufficient(&gpu, n, &[]), ["Insufficient example.com/gpu"]);
    assert!(fit::insufficient(&gpu, n, &["example.com/gpu".to_string()]).is_empty());
    assert!(fit::insufficient(&gpu, n, &["example.com".to_string()]).is_empty(), "ignored resource group");
    let c = cluster(
        vec![node_json(json!({"metadata": {"name": "n"}, "status": {"allocatable": {"cpu": "4", "pods": "1"}}}))],
        vec![on(pod(json!({"metadata": {"name": "x"}})), "n")],
    );
    assert_eq!(fit::insufficient(&pod(json!({})), c.node("n").unwrap(), &[]), ["Too many pods"]);
}

#[test]
fn least_most_and_balanced_scores_match_upstream_examples() {
    // Upstream: requested 3000m/5000 on nodes 4000m/10000 and 6000m/10000.
    let c = cluster(vec![node("n1", "4", "10000", &[]), node("n2", "6", "10000", &[])], vec![]);
    let p = pod_req("p", "3", "5000");
    let mut prof = profile();
    let reqs = fit::pre_score(&p, &prof);
    assert_eq!(fit::score(&reqs, c.node("n1").unwrap(), &prof), 37);
    assert_eq!(fit::score(&reqs, c.node("n2").unwrap(), &prof), 50);
    prof.fit_strategy = FitStrategy::MostAllocated;
    assert_eq!(fit::score(&reqs, c.node("n1").unwrap(), &prof), 62);
    let b = balanced::pre_score(&p, &prof).unwrap();
    assert_eq!(balanced::score(&b, c.node("n1").unwrap(), &prof), 87);
    assert_eq!(balanced::score(&b, c.node("n2").unwrap(), &prof), 100);
    // Best-effort pods are not scored for balance; least-allocated counts the defaults.
    assert!(balanced::pre_score(&pod(json!({})), &prof).is_none());
    assert_eq!(fit::pre_score(&pod(json!({})), &profile()), vec![100, 200 * 1024 * 1024]);
}

// --- TaintToleration, NodeUnschedulable, NodeName, NodePorts ---------------------------------

#[test]
fn taints_block_and_prefer_as_upstream() {
    let tainted = node_json(json!({"metadata": {"name": "t"}, "spec": {"taints": [
        {"key": "soft", "effect": "PreferNoSchedule"}, {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]},
        "status": {"allocatable": {"cpu": "1", "pods": "10"}}}));
    let c = cluster(vec![tainted], vec![]);
    let n = c.node("t").unwrap();
    let s = taint_toleration::filter(&pod(json!({})), n).unwrap();
    assert_eq!(
        (s.code, s.message()),
        (Code::UnschedulableAndUnresolvable, "node(s) had untolerated taint {dedicated: gpu}".to_string())
    );
    let tolerating = pod(
        json!({"spec": {"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]}}),
    );
    assert!(taint_toleration::filter(&tolerating, n).is_none());
    assert_eq!(taint_toleration::score(&taint_toleration::prefer_no_schedule_tolerations(&tolerating), n), 1);
    let soft = pod(json!({"spec": {"tolerations": [{"key": "soft", "operator": "Exists"}]}}));
    assert_eq!(taint_toleration::score(&taint_toleration::prefer_no_schedule_tolerations(&soft), n), 0);
}

#[test]
fn unschedulable_nodes_name_and_ports() {
    let c = cluster(
        vec![node_json(
            json!({"metadata": {"name": "u"}, "spec": {"unschedulable": true}, "status": {"allocatable": {"pods": "1"}}}),
        )],
        vec![],
    );
    let n = c.node("u").unwrap();
    assert_eq!(node_unschedulable::filter(&pod(json!({})), n).unwrap().message(), "node(s) were unschedulable");
    let tol = pod(
        json!({"spec": {"tolerations": [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]}}),
    );
    assert!(node_unschedulable::filter(&tol, n).is_none());
    let named = pod(json!({"spec": {"nodeName": "other"}}));
    assert_eq!(node_name::filter(&named, n).unwrap().message(), "node(s) didn't match the requested node name");

    let web = |name: &str| {
        pod(
            json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 80, "hostPort": 8080}]}]}}),
        )
    };
    let c = cluster(vec![node("n", "1", "1Gi", &[])], vec![on(web("a"), "n")]);
    let s = node_ports::filter(&web("b"), c.node("n").unwrap()).unwrap();
    assert_eq!(
        (s.code, s.message()),
        (Code::Unschedulable, "node(s) didn't have free ports for the requested pod ports".to_string())
    );
}

// --- NodeAffinity ------------------------------------------------------------------------------

#[test]
fn node_affinity_filters_scores_and_pins_names() {
    let c = cluster(vec![node("a", "1", "1Gi", &[("zone", "z1")]), node("b", "1", "1Gi", &[("zone", "z2")])], vec![]);
    let p = pod(json!({"spec": {"nodeSelector": {"zone": "z1"}}}));
    assert!(node_affinity::filter(&p, c.node("a").unwrap()).is_none());
    assert_eq!(
        node_affinity::filter(&p, c.node("b").unwrap()).unwrap().message(),
        "node(s) didn't match Pod's node affinity/selector"
    );
    let pref = pod(json!({"spec": {"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 10, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z2"]}]}}]}}}}));
    assert_eq!(node_affinity::score(&pref, c.node("b").unwrap()), 10);
    let pinned = pod(
        json!({"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b"]}]}]}}}}}),
    );
    assert_eq!(node_affinity::pre_filter(&pinned), node_affinity::PreFilter::Nodes(vec!["b".to_string()]));
    assert_eq!(node_affinity::pre_filter(&pod(json!({}))), node_affinity::PreFilter::Skip);
}

#[test]
fn pinned_pods_report_other_nodes_as_not_satisfying_the_plugin() {
    let mut c = cluster(vec![node("a", "1", "1Gi", &[]), node("b", "1", "1Gi", &[])], vec![]);
    let pinned =
        pod(json!({"spec": {"containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": "2"}}}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b"]}]}]}}}}}));
    assert_eq!(
        failure_message(&mut c, &pinned),
        "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) didn't satisfy plugin(s) [NodeAffinity]. \
         preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod, 1 Preemption is not helpful for scheduling.."
    );
}

// --- PodTopologySpread ------------------------------------------------------------------------

fn spread_pod(name: &str, key: &str, max_skew: i32, when: &str) -> crate::model::PodInfo {
    pod(json!({"metadata": {"name": name, "labels": {"app": "web"}}, "spec": {"topologySpreadConstraints": [
        {"maxSkew": max_skew, "topologyKey": key, "whenUnsatisfiable": when, "labelSelector": {"matchLabels": {"app": "web"}}}]}}))
}

fn zones() -> Vec<crate::model::NodeSpec> {
    vec![
        node("a1", "10", "10Gi", &[("zone", "z1")]),
        node("a2", "10", "10Gi", &[("zone", "z1")]),
        node("b1", "10", "10Gi", &[("zone", "z2")]),
        node("b2", "10", "10Gi", &[("zone", "z2")]),
    ]
}

#[test]
fn spread_filter_keeps_skew_within_max_skew() {
    let existing = |n: &str| on(pod(json!({"metadata": {"name": format!("e-{n}"), "labels": {"app": "web"}}})), n);
    let mut c =
        cluster(zones(), vec![existing("a1"), existing("a2"), existing("a1").clone_named("e-a1b"), existing("b1")]);
    let p = spread_pod("new", "zone", 1, "DoNotSchedule");
    let state = pre_filter(&p, &mut c, &profile(), &Objects::default()).unwrap().state;
    let s = state.spread.as_ref().unwrap();
    for (n, ok) in [("a1", false), ("a2", false), ("b1", true), ("b2", true)] {
        let slot = c.slot(n).unwrap();
        assert_eq!(s.filter(slot).is_none(), ok, "{n}");
    }
    let slot = c.slot("a1").unwrap();
    assert_eq!(s.filter(slot).unwrap().message(), "node(s) didn't match pod topology spread constraints");
    // A node without the topology key is unresolvable.
    let mut c = cluster(vec![node("x", "1", "1Gi", &[])], vec![]);
    let state = pre_filter(&p, &mut c, &profile(), &Objects::default()).unwrap().state;
    let st = state.spread.unwrap().filter(c.slot("x").unwrap()).unwrap();
    assert_eq!(st.code, Code::UnschedulableAndUnresolvable);
    assert_eq!(st.message(), "node(s) didn't match pod topology spread constraints (missing required label)");
}

#[test]
fn spread_min_domains_treats_the_global_minimum_as_zero() {
    let existing = |name: &str, n: &str| on(pod(json!({"metadata": {"name": name, "labels": {"app": "web"}}})), n);
    let mut c = cluster(zones(), vec![existing("x", "a1"), existing("y", "b1")]);
    let mut p = spread_pod("new", "zone", 1, "DoNotSchedule");
    p.spread[0].min_domains = 3;
    let state = pre_filter(&p, &mut c, &profile(), &Objects::default()).unwrap().state;
    // Two domains < minDomains 3: minimum 0, so 1 + 1 - 0 = 2 > 1 everywhere.
    assert!(zones().iter().all(|n| state.spread.as_ref().unwrap().filter(c.slot(&n.name).unwrap()).is_some()));
}

#[test]
fn spread_score_prefers_emptier_domains_and_spreads_placements() {
    let existing = |name: &str, n: &str| on(pod(json!({"metadata": {"name": name, "labels": {"app": "web"}}})), n);
    let mut c = cluster(zones(), vec![existing("x", "a1"), existing("y", "a2"), existing("z", "b1")]);
    let p = spread_pod("new", "zone", 1, "ScheduleAnyway");
    let slots: Vec<usize> = ["a1", "a2", "b1", "b2"].iter().map(|n| c.slot(n).unwrap()).collect();
    let st = spread::pre_score(&p, &slots, &mut c, &profile(), &Objects::default()).unwrap();
    let mut scores: Vec<(usize, i64)> = slots.iter().map(|&s| (s, st.score(s, &c))).collect();
    st.normalize(&mut scores);
    // z1 holds 2 matching pods, z2 one: weight ln(4); raw 3 and 1; normalized 100*(3+1-s)/3.
    assert_eq!(scores.iter().map(|(_, s)| *s).collect::<Vec<_>>(), [33, 33, 100, 100]);
}

trait CloneNamed {
    fn clone_named(&self, name: &str) -> Self;
}

impl CloneNamed for crate::model::PodInfo {
    fn clone_named(&self, name: &str) -> Self {
        let mut p = self.clone();
        p.name = name.into();
        p.uid = name.into();
        p
    }
}

// --- InterPodAffinity ---------------------------------------------------------------------------

fn with_affinity(name: &str, kind: &str, app: &str, key: &str) -> crate::model::PodInfo {
    pod(
        json!({"metadata": {"name": name, "labels": {"app": name}}, "spec": {"affinity": {kind: {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key}]}}}}),
    )
}

#[test]
fn interpod_anti_affinity_affinity_and_symmetry() {
    let db = on(pod(json!({"metadata": {"name": "db", "labels": {"app": "db"}}})), "a1");
    let mut c = cluster(zones(), vec![db]);
    let run = |c: &mut crate::cache::Cache, p: &crate::model::PodInfo, n: &str| {
        let state = pre_filter(p, c, &profile(), &Objects::default()).unwrap().state;
        let slot = c.slot(n).unwrap();
        state.interpod.as_ref().and_then(|s| s.filter(p, slot, c.node(n).unwrap())).map(|s| (s.code, s.message()))
    };
    let anti = with_affinity("web", "podAntiAffinity", "db", "zone");
    assert_eq!(run(&mut c, &anti, "a2"), Some((Code::Unschedulable, interpod::REASON_ANTI.to_string())));
    assert_eq!(run(&mut c, &anti, "b1"), None);
    let aff = with_affinity("cache", "podAffinity", "db", "zone");
    assert_eq!(run(&mut c, &aff, "a2"), None);
    assert_eq!(
        run(&mut c, &aff, "b1"),
        Some((Code::UnschedulableAndUnresolvable, interpod::REASON_AFFINITY.to_string()))
    );
    // The first pod of a self-affine series may go anywhere.
    let mut empty = cluster(zones(), vec![]);
    let selfish = pod(
        json!({"metadata": {"name": "s", "labels": {"app": "s"}}, "spec": {"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "s"}}, "topologyKey": "zone"}]}}}}),
    );
    assert_eq!(run(&mut empty, &selfish, "b2"), None);
    // An existing pod's anti-affinity repels the incoming pod (symmetry).
    let lonely = on(with_affinity("lonely", "podAntiAffinity", "intruder", "zone"), "b1");
    let mut c = cluster(zones(), vec![lonely]);
    let intruder = pod(json!({"metadata": {"name": "intruder", "labels": {"app": "intruder"}}}));
    assert_eq!(run(&mut c, &intruder, "b2"), Some((Code::Unschedulable, interpod::REASON_EXISTING_ANTI.to_string())));
    assert_eq!(run(&mut c, &intruder, "a1"), None);
}

#[test]
fn interpod_preferred_affinity_pulls_towards_matching_pods() {
    let db = on(pod(json!({"metadata": {"name": "db", "labels": {"app": "db"}}})), "b2");
    let mut c = cluster(zones(), vec![db]);
    let p = pod(
        json!({"metadata": {"name": "web"}, "spec": {"affinity": {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 50, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "zone"}}]}}}}),
    );
    let st = interpod::pre_score(&p, &mut c, &profile()).unwrap();
    let mut scores: Vec<(usize, i64)> =
        ["a1", "b1"].iter().map(|n| (c.slot(n).unwrap(), st.score(c.node(n).unwrap()))).collect();
    interpod::ScoreState::normalize(&mut scores);
    assert_eq!(scores.iter().map(|(_, s)| *s).collect::<Vec<_>>(), [0, 100]);
    assert!(schedule(&mut c, &p).unwrap().node.starts_with('b'));
}

// --- ImageLocality -----------------------------------------------------------------------------

#[test]
fn image_locality_prefers_nodes_with_the_image() {
    let with_image = node_json(json!({"metadata": {"name": "i"}, "status": {"allocatable": {"cpu": "1", "pods": "10"},
        "images": [{"names": ["busybox:latest"], "sizeBytes": 500 * 1024 * 1024}]}}));
    let c = cluster(vec![with_image, node("plain", "1", "1Gi", &[])], vec![]);
    let p = pod(json!({}));
    // 500 MiB on 1 of 2 nodes: 250 MiB scaled between 23 and 1000 MiB.
    assert_eq!(image_locality::score(&p, c.node("i").unwrap(), &c), 100 * (250 - 23) / (1000 - 23));
    assert_eq!(image_locality::score(&p, c.node("plain").unwrap(), &c), 0);
}

// --- VolumeBinding -----------------------------------------------------------------------------

#[test]
fn volume_binding_prefilter_and_filter_messages() {
    use crate::objects::{Claim, Class, Volume};
    let claimed = pod(
        json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": {"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}}),
    );
    let mut objects = Objects::default();
    let err = volume_binding::pre_filter(&claimed, &objects).unwrap_err();
    assert_eq!(err.message(), "persistentvolumeclaim \"data\" not found");
    objects.claims.insert(("ns".into(), "data".into()), Claim { storage_class: "slow".into(), ..Default::default() });
    assert_eq!(
        volume_binding::pre_filter(&claimed, &objects).unwrap_err().message(),
        volume_binding::REASON_UNBOUND_IMMEDIATE
    );
    // Bound to a local volume on node a1 only.
    objects.claims.insert(("ns".into(), "data".into()), Claim { volume_name: "pv".into(), ..Default::default() });
    let affinity = crate::model::nodeaffinity::Selector::new(
        &serde_json::from_value(json!({"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["a1"]}]}]}))
        .unwrap(),
    );
    objects.volumes.insert("pv".into(), Volume { node_affinity: Some(affinity.clone()), ..Default::default() });
    let c = cluster(zones(), vec![]);
    let state = volume_binding::pre_filter(&claimed, &objects).unwrap().unwrap();
    assert!(state.filter(&claimed, c.node("a1").unwrap(), &objects).is_none());
    assert_eq!(
        state.filter(&claimed, c.node("b1").unwrap(), &objects).unwrap().message(),
        volume_binding::REASON_NODE_CONFLICT
    );
    // WaitForFirstConsumer: an available local volume decides the node.
    objects.classes.insert(
        "local".into(),
        Class { wait_for_first_consumer: true, provisioner: "kubernetes.io/no-provisioner".into() },
    );
    objects.claims.insert(
        ("ns".into(), "data".into()),
        Claim { storage_class: "local".into(), request: 1, ..Default::default() },
    );
    objects.volumes.insert(
        "pv".into(),
        Volume { node_affinity: Some(affinity), storage_class: "local".into(), capacity: 10, ..Default::default() },
    );
    let state = volume_binding::pre_filter(&claimed, &objects).unwrap().unwrap();
    assert!(state.filter(&claimed, c.node("a1").unwrap(), &objects).is_none());
    assert_eq!(
        state.filter(&claimed, c.node("b1").unwrap(), &objects).unwrap().message(),
        volume_binding::REASON_BIND_CONFLICT
    );
}

// --- The whole attempt ------------------------------------------------------------------------

#[test]
fn summary_names_the_first_failing_filter_per_node() {
    let tainted = node_json(
        json!({"metadata": {"name": "t", "labels": {"disk": "ssd"}}, "spec": {"taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]},
        "status": {"allocatable": {"cpu": "1", "memory": "1Gi", "pods": "10"}}}),
    );
    let mut c = cluster(
        vec![tainted, node("small", "1", "1Gi", &[("disk", "ssd")]), node("hdd", "8", "8Gi", &[("disk", "hdd")])],
        vec![],
    );
    let p = pod(
        json!({"spec": {"nodeSelector": {"disk": "ssd"}, "containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": "2"}}}]}}),
    );
    assert_eq!(
        failure_message(&mut c, &p),
        "0/3 nodes are available: 1 Insufficient cpu, 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint {k: v}. \
         preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, 2 Preemption is not helpful for scheduling.."
    );
    let none = failure_message(&mut cluster(vec![], vec![]), &p);
    assert_eq!(none, "no nodes available to schedule pods");
}

#[test]
fn least_allocated_spreads_pods_over_equal_nodes() {
    let mut c = cluster(vec![node("a", "4", "4Gi", &[]), node("b", "4", "4Gi", &[])], vec![]);
    let mut placed = Vec::new();
    for i in 0..4 {
        let p = pod_req(&format!("p{i}"), "1", "1Gi");
        let node = schedule(&mut c, &p).unwrap().node;
        c.add_pod(std::sync::Arc::new(on(p, &node)), true);
        placed.push(node);
    }
    assert_eq!(placed.iter().filter(|n| *n == "a").count(), 2, "{placed:?}");
}

#[test]
fn feasible_nodes_to_find_follows_upstream_formula() {
    let a = crate::schedule::Algorithm::new(0);
    assert_eq!(a.num_feasible_nodes_to_find(None, 50), 50);
    assert_eq!(a.num_feasible_nodes_to_find(None, 100), 100);
    assert_eq!(a.num_feasible_nodes_to_find(None, 1000), 420);
    assert_eq!(a.num_feasible_nodes_to_find(None, 5000), 500);
    assert_eq!(a.num_feasible_nodes_to_find(None, 6000), 300);
    assert_eq!(a.num_feasible_nodes_to_find(Some(100), 5000), 5000);
    assert_eq!(a.num_feasible_nodes_to_find(Some(1), 5000), 100);
}

#[test]
fn preemption_evicts_the_fewest_lowest_priority_pods() {
    let low = |name: &str, prio: i32, cpu: &str| {
        let mut p = on(pod_req(name, cpu, ""), "n");
        p.priority = prio;
        p
    };
    let mut c = cluster(vec![node("n", "4", "4Gi", &[])], vec![low("a", 1, "2"), low("b", 2, "1"), low("c", 100, "1")]);
    let mut p = pod_req("urgent", "2", "");
    p.priority = 50;
    let Err(Failure::Unschedulable { diagnosis, num_nodes, state }) = schedule(&mut c, &p) else {
        panic!("should not fit")
    };
    let outcome = crate::preemption::preempt(
        &p,
        &state.unwrap(),
        &diagnosis,
        num_nodes,
        &mut c,
        &profile(),
        &Objects::default(),
        &crate::nominator::Nominator::default(),
    );
    assert_eq!(outcome.message, "");
    assert_eq!(outcome.nominated_node.as_deref(), Some("n"));
    let plan = outcome.plan.unwrap();
    // Removing "a" (2 cpu, lowest priority) suffices; "b" is reprieved first as more important.
    assert_eq!(plan.victims.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(), ["a"]);
    // A pod that never preempts says so.
    let mut never = pod_req("never", "2", "");
    never.never_preempts = true;
    never.priority = 50;
    let Err(Failure::Unschedulable { diagnosis, num_nodes, state }) = schedule(&mut c, &never) else { panic!() };
    let o = crate::preemption::preempt(
        &never,
        &state.unwrap(),
        &diagnosis,
        num_nodes,
        &mut c,
        &profile(),
        &Objects::default(),
        &Default::default(),
    );
    assert_eq!(o.message, "preemption: not eligible due to preemptionPolicy=Never.");
    let _ = PluginId::DefaultPreemption;
}
