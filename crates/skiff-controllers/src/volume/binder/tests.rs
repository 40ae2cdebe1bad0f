use super::*;
use serde_json::{Value, json};

fn pv(name: &str, size: &str, class: &str, extra: Value) -> Arc<PersistentVolume> {
    let mut v = json!({
        "metadata": {"name": name},
        "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"], "storageClassName": class,
                 "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": format!("/srv/{name}")}},
        "status": {"phase": "Available"}
    });
    merge(&mut v, extra);
    Arc::new(serde_json::from_value(v).expect("pv"))
}

fn pvc(extra: Value) -> PersistentVolumeClaim {
    let mut c = json!({
        "metadata": {"name": "data", "namespace": "ns", "uid": "u1", "resourceVersion": "3"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        "status": {"phase": "Pending"}
    });
    merge(&mut c, extra);
    serde_json::from_value(c).expect("pvc")
}

fn class(name: &str, mode: &str) -> Arc<StorageClass> {
    Arc::new(
        serde_json::from_value(json!({"metadata": {"name": name}, "provisioner": "rancher.io/local-path",
            "volumeBindingMode": mode}))
        .expect("class"),
    )
}

fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

#[test]
fn claims_without_class_bind_statically_or_wait_with_upstreams_event() {
    let vols = vec![pv("a", "1Gi", "", json!({})), pv("fast", "1Gi", "fast", json!({}))];
    let claim = pvc(json!({"spec": {"storageClassName": ""}}));
    assert_eq!(decide_claim(&claim, &vols, &[]), ClaimStep::Bind("a".into()));
    let big = pvc(json!({"spec": {"storageClassName": "", "resources": {"requests": {"storage": "5Gi"}}}}));
    assert_eq!(
        decide_claim(&big, &vols, &[]),
        ClaimStep::Pending(Some(normal(
            "FailedBinding",
            "no persistent volumes available for this claim and no storage class is set"
        )))
    );
}

#[test]
fn wait_for_first_consumer_until_a_node_is_selected_then_provision() {
    let classes = vec![class("local-path", "WaitForFirstConsumer")];
    let claim = pvc(json!({"spec": {"storageClassName": "local-path"}}));
    assert_eq!(
        decide_claim(&claim, &[], &classes),
        ClaimStep::Pending(Some(normal(
            "WaitForFirstConsumer",
            "waiting for first consumer to be created before binding"
        )))
    );
    let placed = pvc(json!({"metadata": {"annotations": {ANN_SELECTED_NODE: "n1"}},
        "spec": {"storageClassName": "local-path"}}));
    assert_eq!(decide_claim(&placed, &[], &classes), ClaimStep::Provision("rancher.io/local-path".into()));
    let missing = pvc(json!({"spec": {"storageClassName": "gold"}}));
    assert!(
        matches!(decide_claim(&missing, &[], &classes), ClaimStep::Pending(Some(n)) if n.reason == "ProvisioningFailed"
        && n.message == "storageclass.storage.k8s.io \"gold\" not found")
    );
}

#[test]
fn provisioned_volume_pre_bound_to_the_claim_is_bound() {
    let classes = vec![class("local-path", "WaitForFirstConsumer")];
    let placed = pvc(json!({"metadata": {"annotations": {ANN_SELECTED_NODE: "n1"}},
        "spec": {"storageClassName": "local-path"}}));
    let vols = vec![pv(
        "pvc-u1",
        "1Gi",
        "local-path",
        json!({"spec": {"claimRef": {"namespace": "ns", "name": "data", "uid": "u1"}}}),
    )];
    assert_eq!(decide_claim(&placed, &vols, &classes), ClaimStep::Bind("pvc-u1".into()));
}

#[test]
fn volume_name_pre_binding() {
    let vols = vec![
        pv("small", "500Mi", "", json!({})),
        pv("mine", "1Gi", "", json!({})),
        pv("taken", "1Gi", "", json!({"spec": {"claimRef": {"namespace": "ns", "name": "other", "uid": "u9"}}})),
    ];
    let want = |v: &str| pvc(json!({"spec": {"storageClassName": "", "volumeName": v}}));
    assert_eq!(decide_claim(&want("mine"), &vols, &[]), ClaimStep::Bind("mine".into()));
    assert_eq!(decide_claim(&want("absent"), &vols, &[]), ClaimStep::Pending(None));
    assert_eq!(
        decide_claim(&want("small"), &vols, &[]),
        ClaimStep::Pending(Some(warning(
            "VolumeMismatch",
            "Cannot bind to requested volume \"small\": requested PV is too small"
        )))
    );
    assert_eq!(
        decide_claim(&want("taken"), &vols, &[]),
        ClaimStep::Pending(Some(warning("FailedBinding", "volume \"taken\" already bound to a different claim.")))
    );
}

#[test]
fn bound_claims_become_lost() {
    let done = |v: &str| {
        pvc(json!({"metadata": {"annotations": {ANN_BIND_COMPLETED: "yes"}}, "spec": {"volumeName": v},
            "status": {"phase": "Bound"}}))
    };
    let vols = vec![
        pv("mine", "1Gi", "", json!({"spec": {"claimRef": {"namespace": "ns", "name": "data", "uid": "u1"}}})),
        pv("theirs", "1Gi", "", json!({"spec": {"claimRef": {"namespace": "ns", "name": "data", "uid": "u2"}}})),
    ];
    assert_eq!(decide_claim(&done("mine"), &vols, &[]), ClaimStep::Bind("mine".into()));
    assert!(matches!(decide_claim(&done("gone"), &vols, &[]), ClaimStep::Lost(n)
        if n.message == "Bound claim has lost its PersistentVolume. Data on the volume is lost!"));
    assert!(matches!(decide_claim(&done(""), &vols, &[]), ClaimStep::Lost(n) if n.reason == "ClaimLost"));
    assert!(matches!(decide_claim(&done("theirs"), &vols, &[]), ClaimStep::Lost(n) if n.reason == "ClaimMisbound"));
}

#[test]
fn binding_writes_both_sides_once() {
    let v = pv("a", "1Gi", "", json!({}));
    let c = pvc(json!({"spec": {"storageClassName": ""}}));
    let (nv, nc) = bound_pair(&v, &c);
    let nv = nv.expect("volume written");
    let r = nv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()).expect("claimRef");
    assert_eq!(
        (r.name.as_deref(), r.uid.as_deref(), r.resource_version.as_deref()),
        (Some("data"), Some("u1"), Some("3"))
    );
    assert!(has_annotation(&nv.metadata, ANN_BOUND_BY_CONTROLLER));
    let nc = nc.expect("claim written");
    assert_eq!(volume_name(&nc), "a");
    assert!(has_annotation(&nc.metadata, ANN_BIND_COMPLETED) && has_annotation(&nc.metadata, ANN_BOUND_BY_CONTROLLER));
    assert_eq!(bound_pair(&nv, &nc), (None, None), "nothing left to write");
    // A claim naming its volume is not marked bound-by-controller.
    let named = pvc(json!({"spec": {"volumeName": "a"}}));
    let (_, nc) = bound_pair(&v, &named);
    assert!(!has_annotation(&nc.expect("claim").metadata, ANN_BOUND_BY_CONTROLLER));
    let status = claim_status(&c, "Bound", Some(&v)).expect("status");
    let s = status.status.as_ref().expect("status");
    assert_eq!(s.capacity.as_ref().and_then(|c| c.get("storage")).map(|q| q.0.as_str()), Some("1Gi"));
    assert_eq!(s.access_modes, Some(vec!["ReadWriteOnce".to_string()]));
    assert_eq!(claim_status(&status, "Bound", Some(&v)), None);
}

#[test]
fn volume_phases() {
    let claim = pvc(json!({"spec": {"volumeName": "a"}}));
    let free = pv("a", "1Gi", "", json!({}));
    assert_eq!(decide_volume(&free, None), VolumeStep::Phase("Available"));
    let prebound = pv("a", "1Gi", "", json!({"spec": {"claimRef": {"namespace": "ns", "name": "data"}}}));
    assert_eq!(decide_volume(&prebound, Some(&claim)), VolumeStep::Phase("Available"));
    let bound = pv("a", "1Gi", "", json!({"spec": {"claimRef": {"namespace": "ns", "name": "data", "uid": "u1"}}}));
    assert_eq!(decide_volume(&bound, Some(&claim)), VolumeStep::Phase("Bound"));
    assert_eq!(decide_volume(&bound, None), VolumeStep::Release);
    let recreated = pvc(json!({"metadata": {"uid": "u2"}}));
    assert_eq!(decide_volume(&bound, Some(&recreated)), VolumeStep::Release, "same name, new claim");
    let unbound = pvc(json!({}));
    assert_eq!(decide_volume(&bound, Some(&unbound)), VolumeStep::SyncClaim("ns/data".into()));
    let elsewhere = pvc(json!({"spec": {"volumeName": "b"}}));
    assert_eq!(decide_volume(&bound, Some(&elsewhere)), VolumeStep::Unbind { keep_ref: true });
    let by_ctrl = pv(
        "a",
        "1Gi",
        "",
        json!({"metadata": {"annotations": {ANN_BOUND_BY_CONTROLLER: "yes"}},
        "spec": {"claimRef": {"namespace": "ns", "name": "data", "uid": "u1"}}}),
    );
    assert_eq!(decide_volume(&by_ctrl, Some(&elsewhere)), VolumeStep::Unbind { keep_ref: false });
}

#[test]
fn reclaim_policies() {
    let retain = pv("a", "1Gi", "", json!({}));
    assert_eq!(reclaim(&retain), Reclaim::Nothing);
    let delete = pv("a", "1Gi", "", json!({"spec": {"persistentVolumeReclaimPolicy": "Delete"}}));
    assert_eq!(
        reclaim(&delete),
        Reclaim::Fail(warning(
            "VolumeFailedDelete",
            "host_path deleter only supports /tmp/.+ but received provided /srv/a"
        ))
    );
    let provisioned = pv(
        "a",
        "1Gi",
        "",
        json!({"metadata": {"annotations": {ANN_PROVISIONED_BY: "rancher.io/local-path"}},
        "spec": {"persistentVolumeReclaimPolicy": "Delete"}}),
    );
    assert_eq!(reclaim(&provisioned), Reclaim::Nothing, "its provisioner deletes it");
    let now = Timestamp::UNIX_EPOCH;
    let released = volume_phase(&retain, "Released", None, now).expect("phase changes");
    assert_eq!(released.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Released"));
    assert!(released.status.as_ref().and_then(|s| s.last_phase_transition_time.as_ref()).is_some());
    assert_eq!(volume_phase(&released, "Released", None, now), None);
}
