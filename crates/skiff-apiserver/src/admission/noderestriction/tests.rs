//! NodeRestriction's checks, with upstream's messages.

use serde_json::{Value, json};

use super::*;

fn mirror(node: &str, uid: &str) -> Value {
    json!({
        "metadata": {
            "name": "static-web-n1", "namespace": "default",
            "annotations": {MIRROR_ANNOTATION: "hash"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node, "uid": uid, "controller": true}]
        },
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}
    })
}

fn forbidden(r: Result<(), Refusal>) -> String {
    match r {
        Err(Refusal::Forbidden(why)) => why,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn only_mirror_pods_bound_and_owned_by_the_node() {
    assert_eq!(check_pod_create("n1", &mirror("n1", "u1"), Some("u1")), Ok(()));
    let mut plain = mirror("n1", "u1");
    plain["metadata"]["annotations"] = json!({});
    assert_eq!(
        forbidden(check_pod_create("n1", &plain, Some("u1"))),
        "pod does not have \"kubernetes.io/config.mirror\" annotation, node \"n1\" can only create mirror pods"
    );
    let mut elsewhere = mirror("n1", "u1");
    elsewhere["spec"]["nodeName"] = json!("n2");
    assert_eq!(
        forbidden(check_pod_create("n1", &elsewhere, Some("u1"))),
        "node \"n1\" can only create pods with spec.nodeName set to itself"
    );
    assert_eq!(
        forbidden(check_pod_create("n1", &mirror("n1", "old"), Some("u1"))),
        "node n1 UID mismatch: expected u1 got old"
    );
    assert_eq!(
        check_pod_create("n1", &mirror("n1", "u1"), None),
        Err(Refusal::NotFound(GroupResource::new("", "node"), "n1".into()))
    );
    let mut unowned = mirror("n1", "u1");
    unowned["metadata"]["ownerReferences"] = json!([]);
    assert_eq!(
        forbidden(check_pod_create("n1", &unowned, Some("u1"))),
        "node \"n1\" can only create pods with an owner reference set to itself"
    );
    let mut blocking = mirror("n1", "u1");
    blocking["metadata"]["ownerReferences"][0]["blockOwnerDeletion"] = json!(true);
    assert_eq!(
        forbidden(check_pod_create("n1", &blocking, Some("u1"))),
        "node \"n1\" must not set blockOwnerDeletion on an owner reference"
    );
}

#[test]
fn mirror_pods_reference_no_other_object() {
    let with = |path: &str, value: Value| {
        let mut p = mirror("n1", "u1");
        p["spec"][path] = value;
        check_pod_create("n1", &p, Some("u1"))
    };
    assert_eq!(
        forbidden(with("serviceAccountName", json!("default"))),
        "node \"n1\" can not create pods that reference a service account"
    );
    assert_eq!(
        forbidden(with("volumes", json!([{"name": "s", "secret": {"secretName": "x"}}]))),
        "node \"n1\" can not create pods that reference secrets"
    );
    assert_eq!(
        forbidden(with("volumes", json!([{"name": "c", "configMap": {"name": "x"}}]))),
        "node \"n1\" can not create pods that reference configmaps"
    );
    assert_eq!(
        forbidden(with("volumes", json!([{"name": "d", "persistentVolumeClaim": {"claimName": "x"}}]))),
        "node \"n1\" can not create pods that reference persistentvolumeclaims"
    );
    assert_eq!(
        forbidden(with("resourceClaims", json!([{"name": "gpu"}]))),
        "node \"n1\" can not create pods that reference resourceclaims"
    );
    let bundle =
        json!([{"name": "t", "projected": {"sources": [{"clusterTrustBundle": {"signerName": "x/y", "path": "b"}}]}}]);
    assert_eq!(
        forbidden(with("volumes", bundle)),
        "node \"n1\" can not create pods that reference clustertrustbundles"
    );
}

#[test]
fn a_node_writes_only_its_own_csinode() {
    assert_eq!(check_csi_node("n1", "n1"), Ok(()));
    assert_eq!(
        forbidden(check_csi_node("n1", "n2")),
        "can only access CSINode with the same name as the requesting node"
    );
}

fn csr(signer: &str, cn: &str) -> Value {
    use base64::Engine as _;
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name.push(rcgen::DnType::CommonName, cn);
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "system:nodes");
    let pem = params.serialize_request(&key).expect("csr").pem().expect("pem");
    let request = base64::engine::general_purpose::STANDARD.encode(pem);
    json!({"metadata": {"name": "c"}, "spec": {"signerName": signer, "request": request, "usages": ["client auth"]}})
}

#[test]
fn kubelet_certificates_only_in_the_nodes_own_name() {
    use skiff_api::certificates::{KUBE_APISERVER_CLIENT, KUBE_APISERVER_CLIENT_KUBELET, KUBELET_SERVING};
    assert_eq!(check_csr("n1", &csr(KUBE_APISERVER_CLIENT_KUBELET, "system:node:n1")), Ok(()));
    assert_eq!(check_csr("n1", &csr(KUBELET_SERVING, "system:node:n1")), Ok(()));
    assert_eq!(
        forbidden(check_csr("n1", &csr(KUBE_APISERVER_CLIENT_KUBELET, "system:node:n2"))),
        "can only create a node CSR with CN=system:node:n1"
    );
    assert_eq!(
        forbidden(check_csr("n1", &csr(KUBELET_SERVING, "system:node:n2"))),
        "can only create a node CSR with CN=system:node:n1"
    );
    assert_eq!(check_csr("n1", &csr(KUBE_APISERVER_CLIENT, "someone")), Ok(()), "other signers are not a node's");
    let mut garbled = csr(KUBELET_SERVING, "system:node:n1");
    garbled["spec"]["request"] = json!("bm90IGEgY3Ny");
    assert!(forbidden(check_csr("n1", &garbled)).starts_with("unable to parse csr: "));
}

#[test]
fn pods_of_other_nodes_are_out_of_reach() {
    let pod = json!({"metadata": {"name": "p", "labels": {"a": "1"}}, "spec": {"nodeName": "n2"}});
    assert_eq!(
        forbidden(check_pod_bound("n1", &pod, "delete")),
        "node \"n1\" can only delete pods with spec.nodeName set to itself"
    );
    assert_eq!(
        forbidden(check_pod_bound("n1", &pod, "evict")),
        "node n1 can only evict pods with spec.nodeName set to itself"
    );
    assert_eq!(check_pod_bound("n2", &pod, "delete"), Ok(()));
    assert_eq!(
        forbidden(check_pod_status("n1", &pod, &pod)),
        "node \"n1\" can only update pod status for pods with spec.nodeName set to itself"
    );
    assert_eq!(check_pod_status("n2", &pod, &pod), Ok(()));
    let mut relabelled = pod.clone();
    relabelled["metadata"]["labels"]["a"] = json!("2");
    assert_eq!(
        forbidden(check_pod_status("n2", &pod, &relabelled)),
        "node \"n2\" cannot update labels through pod status"
    );
}

#[test]
fn a_node_modifies_only_itself_and_not_its_taints_or_restricted_labels() {
    assert_eq!(forbidden(check_node("n1", "n2", None, None)), "node \"n1\" is not allowed to modify node \"n2\"");
    let node = |labels: Value, taints: Value| json!({"metadata": {"name": "n1", "labels": labels}, "spec": {"taints": taints}});
    let registered = node(json!({"kubernetes.io/hostname": "n1", "node.kubernetes.io/exclude": "x"}), json!([]));
    assert_eq!(check_node("n1", "n1", None, Some(&registered)), Ok(()));
    let restricted = node(
        json!({"node-restriction.kubernetes.io/pool": "a", "node-role.kubernetes.io/control-plane": "true"}),
        json!([]),
    );
    assert_eq!(
        forbidden(check_node("n1", "n1", None, Some(&restricted))),
        "node \"n1\" is not allowed to set the following labels: node-restriction.kubernetes.io/pool, node-role.kubernetes.io/control-plane"
    );
    let tainted = node(json!({"kubernetes.io/hostname": "n1"}), json!([{"key": "k", "effect": "NoSchedule"}]));
    assert_eq!(check_node("n1", "n1", None, Some(&tainted)), Ok(()), "taints at registration");
    let untainted = node(json!({"kubernetes.io/hostname": "n1"}), Value::Null);
    assert_eq!(
        forbidden(check_node("n1", "n1", Some(&tainted), Some(&untainted))),
        "node \"n1\" is not allowed to modify taints"
    );
    let a = node(json!({"custom": "1"}), json!([]));
    let b = node(json!({"custom": "2", "example.com/x": "y"}), Value::Null);
    assert_eq!(check_node("n1", "n1", Some(&a), Some(&b)), Ok(()));
    let c = node(json!({"custom": "2", "sub.node-restriction.kubernetes.io/x": "y"}), Value::Null);
    assert_eq!(
        forbidden(check_node("n1", "n1", Some(&a), Some(&c))),
        "is not allowed to modify labels: sub.node-restriction.kubernetes.io/x"
    );
}

#[test]
fn leases_claims_and_tokens() {
    assert_eq!(check_lease("n1", NODE_LEASE_NAMESPACE, "n1"), Ok(()));
    assert_eq!(
        forbidden(check_lease("n1", NODE_LEASE_NAMESPACE, "n2")),
        "can only access node lease with the same name as the requesting node"
    );
    assert_eq!(
        forbidden(check_lease("n1", "default", "n1")),
        "can only access leases in the \"kube-node-lease\" system namespace"
    );
    let claim = json!({"metadata": {"name": "c", "resourceVersion": "1"}, "spec": {"volumeName": "v"}, "status": {"phase": "Bound"}});
    let mut grown = claim.clone();
    grown["metadata"]["resourceVersion"] = json!("2");
    grown["status"]["capacity"] = json!({"storage": "2Gi"});
    assert_eq!(check_claim_status("n1", &claim, &grown), Ok(()));
    let mut expanding = grown.clone();
    expanding["status"]["allocatedResources"] = json!({"storage": "2Gi"});
    expanding["status"]["allocatedResourceStatuses"] = json!({"storage": "NodeResizeInProgress"});
    assert_eq!(check_claim_status("n1", &claim, &expanding), Ok(()), "a node records its expansion");
    let mut rebound = claim.clone();
    rebound["status"]["phase"] = json!("Lost");
    assert_eq!(
        forbidden(check_claim_status("n1", &claim, &rebound)),
        "node \"n1\" is not allowed to update fields other than status.capacity and status.conditions"
    );
    let mut relabelled = claim.clone();
    relabelled["metadata"]["labels"] = json!({"a": "b"});
    assert!(check_claim_status("n1", &claim, &relabelled).is_err());
    let pod = json!({"metadata": {"name": "p", "uid": "pu"}, "spec": {"nodeName": "n1"}});
    let request = |r: Value| json!({"spec": {"audiences": ["x"], "boundObjectRef": r}});
    let bound = request(json!({"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "pu"}));
    assert_eq!(check_token_request("n1", &bound, Some(&pod)), Ok(()));
    assert_eq!(
        forbidden(check_token_request("n2", &bound, Some(&pod))),
        "node requested token bound to a pod scheduled on a different node"
    );
    assert_eq!(
        forbidden(check_token_request("n1", &request(Value::Null), Some(&pod))),
        "node requested token not bound to a pod"
    );
    let no_uid = request(json!({"apiVersion": "v1", "kind": "Pod", "name": "p"}));
    assert_eq!(
        forbidden(check_token_request("n1", &no_uid, Some(&pod))),
        "node requested token with a pod binding without a uid"
    );
}

#[test]
fn only_node_users_are_restricted() {
    assert!(acting_node(&UserInfo::new("bob".into(), vec![])).is_none());
    assert!(acting_node(&UserInfo::new("system:node:n1".into(), vec![])).is_none());
    let n1 = UserInfo::new("system:node:n1".into(), vec![NODES_GROUP.into()]);
    assert_eq!(acting_node(&n1).map(|r| r.ok()), Some(Some("n1")));
    let nameless = UserInfo::new("system:node:".into(), vec![NODES_GROUP.into()]);
    let err = acting_node(&nameless).and_then(|r| r.err()).expect("refused");
    assert_eq!(err.code, 403);
    assert!(err.message.contains("could not determine node from user \"system:node:\""), "{}", err.message);
}
