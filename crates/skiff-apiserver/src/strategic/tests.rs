//! Table-driven cases for strategic merge patch, written from upstream's documented behaviour
//! and from the patches kubectl actually sends.

use serde_json::{Value, json};

use super::{SmpError, apply, supports};

/// One case: patch `original` (of `group`/`kind`) with `patch`, expect `want`.
struct Case {
    name: &'static str,
    group: &'static str,
    kind: &'static str,
    original: Value,
    patch: Value,
    want: Value,
}

fn deploy(containers: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "x", "namespace": "default", "resourceVersion": "7"},
        "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": containers}}}
    })
}

fn with_containers(containers: Value) -> Value {
    deploy(containers)
}

fn template_patch(spec: Value) -> Value {
    json!({"spec": {"template": {"spec": spec}}})
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "kubectl set image merges containers by name and keeps order",
            group: "apps",
            kind: "Deployment",
            original: deploy(json!([{"name": "app", "image": "img:1"}, {"name": "side", "image": "proxy:1"}])),
            patch: template_patch(json!({
                "$setElementOrder/containers": [{"name": "app"}, {"name": "side"}],
                "containers": [{"image": "img:2", "name": "app"}]
            })),
            want: deploy(json!([{"name": "app", "image": "img:2"}, {"name": "side", "image": "proxy:1"}])),
        },
        Case {
            name: "kubectl apply removing an env var deletes it by name",
            group: "apps",
            kind: "Deployment",
            original: deploy(json!([{"name": "app", "image": "i", "env": [
                {"name": "A", "value": "1"}, {"name": "B", "value": "2"}, {"name": "C", "value": "3"}
            ]}])),
            patch: template_patch(json!({
                "$setElementOrder/containers": [{"name": "app"}],
                "containers": [{"$setElementOrder/env": [{"name": "A"}, {"name": "C"}],
                                "env": [{"$patch": "delete", "name": "B"}], "name": "app"}]
            })),
            want: deploy(json!([{"name": "app", "image": "i", "env": [
                {"name": "A", "value": "1"}, {"name": "C", "value": "3"}
            ]}])),
        },
        Case {
            name: "removing a container port deletes it by containerPort",
            group: "apps",
            kind: "Deployment",
            original: deploy(json!([{"name": "app", "ports": [
                {"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443, "protocol": "TCP"}
            ]}])),
            patch: template_patch(json!({
                "$setElementOrder/containers": [{"name": "app"}],
                "containers": [{"$setElementOrder/ports": [{"containerPort": 80}],
                                "name": "app", "ports": [{"$patch": "delete", "containerPort": 443}]}]
            })),
            want: deploy(json!([{"name": "app", "ports": [{"containerPort": 80, "protocol": "TCP"}]}])),
        },
        Case {
            name: "kubectl rollout pause sets spec.paused",
            group: "apps",
            kind: "Deployment",
            original: json!({"spec": {"replicas": 1, "strategy": {"type": "Recreate"}}}),
            patch: json!({"spec": {"paused": true}}),
            want: json!({"spec": {"replicas": 1, "strategy": {"type": "Recreate"}, "paused": true}}),
        },
        Case {
            name: "kubectl rollout restart adds a template annotation next to existing ones",
            group: "apps",
            kind: "Deployment",
            original: json!({"spec": {"template": {"metadata": {"annotations": {"a": "1"}, "labels": {"app": "x"}}}}}),
            patch: json!({"spec": {"template": {"metadata": {"annotations": {
                "kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z"
            }}}}}),
            want: json!({"spec": {"template": {"metadata": {
                "annotations": {"a": "1", "kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z"},
                "labels": {"app": "x"}
            }}}}),
        },
        Case {
            name: "kubectl label adds, changes and removes labels",
            group: "",
            kind: "Pod",
            original: json!({"metadata": {"name": "p", "labels": {"app": "x", "tier": "web", "old": "1"}}}),
            patch: json!({"metadata": {"labels": {"tier": "db", "env": "prod", "old": null}}}),
            want: json!({"metadata": {"name": "p", "labels": {"app": "x", "tier": "db", "env": "prod"}}}),
        },
        Case {
            name: "labels are created when the object has none",
            group: "",
            kind: "ConfigMap",
            original: json!({"metadata": {"name": "c"}, "data": {"k": "v"}}),
            patch: json!({"metadata": {"labels": {"a": "b", "gone": null}}}),
            want: json!({"metadata": {"name": "c", "labels": {"a": "b"}}, "data": {"k": "v"}}),
        },
        Case {
            name: "service ports merge by port",
            group: "",
            kind: "Service",
            original: json!({"spec": {"ports": [
                {"name": "http", "port": 80, "targetPort": 8080}, {"name": "https", "port": 443, "targetPort": 8443}
            ]}}),
            patch: json!({"spec": {"ports": [{"port": 443, "targetPort": 9443}]}}),
            want: json!({"spec": {"ports": [
                {"name": "http", "port": 80, "targetPort": 8080}, {"name": "https", "port": 443, "targetPort": 9443}
            ]}}),
        },
        Case {
            name: "a new list item without $setElementOrder goes first, as upstream",
            group: "",
            kind: "Service",
            original: json!({"spec": {"ports": [{"port": 80}]}}),
            patch: json!({"spec": {"ports": [{"port": 8080, "name": "alt"}]}}),
            want: json!({"spec": {"ports": [{"port": 8080, "name": "alt"}, {"port": 80}]}}),
        },
        Case {
            name: "volumes merge by name and $retainKeys switches the volume source",
            group: "",
            kind: "Pod",
            original: json!({"spec": {"volumes": [
                {"name": "a", "emptyDir": {}}, {"name": "b", "configMap": {"name": "cm"}}
            ]}}),
            patch: json!({"spec": {
                "$setElementOrder/volumes": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
                "volumes": [
                    {"$retainKeys": ["name", "secret"], "name": "b", "secret": {"secretName": "s"}, "configMap": null},
                    {"name": "c", "hostPath": {"path": "/tmp"}}
                ]
            }}),
            want: json!({"spec": {"volumes": [
                {"name": "a", "emptyDir": {}}, {"name": "b", "secret": {"secretName": "s"}},
                {"name": "c", "hostPath": {"path": "/tmp"}}
            ]}}),
        },
        Case {
            name: "volumeMounts merge by mountPath",
            group: "",
            kind: "Pod",
            original: json!({"spec": {"containers": [{"name": "c", "volumeMounts": [
                {"name": "v", "mountPath": "/a"}, {"name": "v", "mountPath": "/b", "readOnly": true}
            ]}]}}),
            patch: json!({"spec": {"containers": [{"name": "c", "volumeMounts": [
                {"mountPath": "/a", "$patch": "delete"}, {"mountPath": "/b", "readOnly": false}
            ]}]}}),
            want: json!({"spec": {"containers": [{"name": "c", "volumeMounts": [
                {"name": "v", "mountPath": "/b", "readOnly": false}
            ]}]}}),
        },
        Case {
            name: "ownerReferences merge by uid",
            group: "apps",
            kind: "ReplicaSet",
            original: json!({"metadata": {"ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d", "uid": "u1", "controller": true}
            ]}}),
            patch: json!({"metadata": {
                "$setElementOrder/ownerReferences": [{"uid": "u1"}, {"uid": "u2"}],
                "ownerReferences": [
                    {"uid": "u1", "controller": false},
                    {"apiVersion": "v1", "kind": "ConfigMap", "name": "cm", "uid": "u2"}
                ]
            }}),
            want: json!({"metadata": {"ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d", "uid": "u1", "controller": false},
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "cm", "uid": "u2"}
            ]}}),
        },
        Case {
            name: "finalizers union preserving order",
            group: "",
            kind: "Namespace",
            original: json!({"metadata": {"finalizers": ["a", "b"]}}),
            patch: json!({"metadata": {"finalizers": ["b", "c"]}}),
            want: json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
        },
        Case {
            name: "$deleteFromPrimitiveList removes finalizers",
            group: "batch",
            kind: "Job",
            original: json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
            patch: json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "zz"]}}),
            want: json!({"metadata": {"finalizers": ["a", "c"]}}),
        },
        Case {
            name: "kubectl apply replacing a finalizer: order, delete list and addition together",
            group: "",
            kind: "Pod",
            original: json!({"metadata": {"finalizers": ["a", "b"]}}),
            patch: json!({"metadata": {
                "$setElementOrder/finalizers": ["a", "c"],
                "$deleteFromPrimitiveList/finalizers": ["b"],
                "finalizers": ["c"]
            }}),
            want: json!({"metadata": {"finalizers": ["a", "c"]}}),
        },
        Case {
            name: "$deleteFromPrimitiveList on an absent list adds nothing",
            group: "",
            kind: "Pod",
            original: json!({"metadata": {"name": "p"}}),
            patch: json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
            want: json!({"metadata": {"name": "p"}}),
        },
        Case {
            name: "tolerations are atomic and replaced wholesale",
            group: "",
            kind: "Pod",
            original: json!({"spec": {"tolerations": [
                {"key": "a", "operator": "Exists"}, {"key": "b", "operator": "Exists"}
            ]}}),
            patch: json!({"spec": {"tolerations": [{"key": "c", "operator": "Exists", "effect": "NoSchedule"}]}}),
            want: json!({"spec": {"tolerations": [{"key": "c", "operator": "Exists", "effect": "NoSchedule"}]}}),
        },
        Case {
            name: "pod imagePullSecrets merge by name",
            group: "",
            kind: "Pod",
            original: json!({"spec": {"imagePullSecrets": [{"name": "a"}]}}),
            patch: json!({"spec": {"$setElementOrder/imagePullSecrets": [{"name": "a"}, {"name": "b"}],
                                   "imagePullSecrets": [{"name": "b"}]}}),
            want: json!({"spec": {"imagePullSecrets": [{"name": "a"}, {"name": "b"}]}}),
        },
        Case {
            name: "ServiceAccount imagePullSecrets are atomic while its secrets merge by name",
            group: "",
            kind: "ServiceAccount",
            original: json!({"imagePullSecrets": [{"name": "a"}], "secrets": [{"name": "t"}]}),
            patch: json!({"imagePullSecrets": [{"name": "b"}], "secrets": [{"name": "u"}]}),
            want: json!({"imagePullSecrets": [{"name": "b"}], "secrets": [{"name": "u"}, {"name": "t"}]}),
        },
        Case {
            name: "status conditions merge by type",
            group: "apps",
            kind: "Deployment",
            original: json!({"status": {"conditions": [
                {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"},
                {"type": "Progressing", "status": "True"}
            ]}}),
            patch: json!({"status": {"conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}
            ]}}),
            want: json!({"status": {"conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                {"type": "Progressing", "status": "True"}
            ]}}),
        },
        Case {
            name: "$retainKeys on spec.strategy drops rollingUpdate when switching to Recreate",
            group: "apps",
            kind: "Deployment",
            original: json!({"spec": {"strategy": {"type": "RollingUpdate",
                                                  "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}}}),
            patch: json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
            want: json!({"spec": {"strategy": {"type": "Recreate"}}}),
        },
        Case {
            name: "without $retainKeys the strategy map merges",
            group: "apps",
            kind: "Deployment",
            original: json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}),
            patch: json!({"spec": {"strategy": {"rollingUpdate": {"maxUnavailable": 0}}}}),
            want: json!({"spec": {"strategy": {"type": "RollingUpdate",
                                              "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}}}),
        },
        Case {
            name: "$patch: replace on a map replaces it",
            group: "",
            kind: "Pod",
            original: json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
            patch: json!({"metadata": {"labels": {"$patch": "replace", "c": "3"}}}),
            want: json!({"metadata": {"labels": {"c": "3"}}}),
        },
        Case {
            name: "$patch: replace element replaces a merging list",
            group: "apps",
            kind: "Deployment",
            original: with_containers(json!([{"name": "a", "image": "1"}, {"name": "b", "image": "2"}])),
            patch: template_patch(json!({"containers": [{"$patch": "replace"}, {"name": "c", "image": "3"}]})),
            want: with_containers(json!([{"name": "c", "image": "3"}])),
        },
        Case {
            name: "$patch: delete on a map empties it",
            group: "",
            kind: "Pod",
            original: json!({"spec": {"securityContext": {"runAsUser": 1000}, "nodeName": "n"}}),
            patch: json!({"spec": {"securityContext": {"$patch": "delete"}}}),
            want: json!({"spec": {"securityContext": {}, "nodeName": "n"}}),
        },
        Case {
            name: "$patch: delete on an absent map adds nothing",
            group: "",
            kind: "Pod",
            original: json!({"spec": {"nodeName": "n"}}),
            patch: json!({"spec": {"affinity": {"$patch": "delete"}}}),
            want: json!({"spec": {"nodeName": "n"}}),
        },
        Case {
            name: "metadata.resourceVersion in the patch is an ordinary field",
            group: "",
            kind: "ConfigMap",
            original: json!({"metadata": {"name": "c", "resourceVersion": "5"}, "data": {"a": "1"}}),
            patch: json!({"metadata": {"resourceVersion": "5"}, "data": {"a": null, "b": "2"}}),
            want: json!({"metadata": {"name": "c", "resourceVersion": "5"}, "data": {"b": "2"}}),
        },
        Case {
            name: "null deletes a struct field",
            group: "apps",
            kind: "Deployment",
            original: json!({"spec": {"replicas": 3, "paused": true}}),
            patch: json!({"spec": {"replicas": null}}),
            want: json!({"spec": {"paused": true}}),
        },
        Case {
            name: "unknown fields inside RawExtension merge like JSON merge patch",
            group: "apps",
            kind: "ControllerRevision",
            original: json!({"data": {"spec": {"a": 1, "list": [{"name": "x", "v": 1}], "gone": true}}, "revision": 1}),
            patch: json!({"data": {"spec": {"b": 2, "list": [{"name": "x", "v": 2}], "gone": null}}}),
            want: json!({"data": {"spec": {"a": 1, "b": 2, "list": [{"name": "x", "v": 2}]}}, "revision": 1}),
        },
        Case {
            name: "PodDisruptionBudget selector has strategy replace",
            group: "policy",
            kind: "PodDisruptionBudget",
            original: json!({"spec": {"minAvailable": 1, "selector": {"matchLabels": {"a": "1"}}}}),
            patch: json!({"spec": {"selector": {"matchLabels": {"b": "2"}}}}),
            want: json!({"spec": {"minAvailable": 1, "selector": {"matchLabels": {"b": "2"}}}}),
        },
        Case {
            name: "resource limits merge as a map",
            group: "",
            kind: "Pod",
            original: json!({"spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}}),
            patch: json!({"spec": {"containers": [{"name": "c", "resources": {"limits": {"memory": "2Gi"}}}]}}),
            want: json!({"spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": "1", "memory": "2Gi"}}}]}}),
        },
        Case {
            name: "$setElementOrder alone reorders and keeps server-only items after",
            group: "",
            kind: "Pod",
            original: json!({"spec": {"containers": [
                {"name": "1"}, {"name": "3"}, {"name": "4"}, {"name": "2"}, {"name": "9"}
            ]}}),
            patch: json!({"spec": {"$setElementOrder/containers": [
                {"name": "4"}, {"name": "2"}, {"name": "3"}, {"name": "1"}
            ]}}),
            want: json!({"spec": {"containers": [
                {"name": "4"}, {"name": "2"}, {"name": "3"}, {"name": "1"}, {"name": "9"}
            ]}}),
        },
        Case {
            name: "env var inserted in the middle by kubectl apply",
            group: "",
            kind: "Pod",
            original: json!({"spec": {"containers": [{"name": "c", "env": [{"name": "A", "value": "1"}, {"name": "C"}]}]}}),
            patch: json!({"spec": {"containers": [{"name": "c",
                "$setElementOrder/env": [{"name": "A"}, {"name": "B"}, {"name": "C"}],
                "env": [{"name": "B", "value": "2"}]}]}}),
            want: json!({"spec": {"containers": [{"name": "c", "env": [
                {"name": "A", "value": "1"}, {"name": "B", "value": "2"}, {"name": "C"}
            ]}]}}),
        },
        Case {
            name: "a new container's nulls and directives are not stored",
            group: "",
            kind: "Pod",
            original: json!({"spec": {"containers": [{"name": "a"}]}}),
            patch: json!({"spec": {
                "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
                "containers": [{"name": "b", "image": "i", "args": null,
                                "$setElementOrder/env": [{"name": "E"}], "env": [{"name": "E", "value": "1"}]}]
            }}),
            want: json!({"spec": {"containers": [
                {"name": "a"}, {"name": "b", "image": "i", "env": [{"name": "E", "value": "1"}]}
            ]}}),
        },
        Case {
            name: "deleting an absent list element is a no-op",
            group: "",
            kind: "Pod",
            original: json!({"spec": {"containers": [{"name": "a"}]}}),
            patch: json!({"spec": {"containers": [{"name": "zz", "$patch": "delete"}]}}),
            want: json!({"spec": {"containers": [{"name": "a"}]}}),
        },
        Case {
            name: "HPA metrics (no patch strategy) are replaced",
            group: "autoscaling",
            kind: "HorizontalPodAutoscaler",
            original: json!({"spec": {"minReplicas": 1, "maxReplicas": 3, "metrics": [{"type": "Resource"}]}}),
            patch: json!({"spec": {"maxReplicas": 5, "metrics": [{"type": "Pods"}]}}),
            want: json!({"spec": {"minReplicas": 1, "maxReplicas": 5, "metrics": [{"type": "Pods"}]}}),
        },
        Case {
            name: "a field whose type changes is replaced",
            group: "",
            kind: "Service",
            original: json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}]}}),
            patch: json!({"spec": {"ports": [{"port": 80, "targetPort": "http"}]}}),
            want: json!({"spec": {"ports": [{"port": 80, "targetPort": "http"}]}}),
        },
        Case {
            name: "top-level $patch: replace replaces the whole object",
            group: "",
            kind: "ConfigMap",
            original: json!({"metadata": {"name": "c"}, "data": {"a": "1"}}),
            patch: json!({"$patch": "replace", "metadata": {"name": "c"}}),
            want: json!({"metadata": {"name": "c"}}),
        },
    ]
}

#[test]
fn strategic_merge_patch_cases() {
    let cases = cases();
    assert!(cases.len() >= 25);
    for case in cases {
        let got = apply(case.group, case.kind, &case.original, &case.patch)
            .unwrap_or_else(|e| panic!("{}: unexpected error: {e}", case.name));
        assert_eq!(got, case.want, "{}", case.name);
    }
}

/// One case that must fail, and how.
struct ErrCase {
    name: &'static str,
    original: Value,
    patch: Value,
    check: fn(&SmpError) -> bool,
}

#[test]
fn strategic_merge_patch_errors() {
    let pod = json!({"spec": {"containers": [{"name": "a"}], "tolerations": []}, "metadata": {"labels": {"a": "1"}}});
    let cases = vec![
        ErrCase {
            name: "invalid $patch directive on a map",
            original: pod.clone(),
            patch: json!({"metadata": {"labels": {"$patch": "bogus"}}}),
            check: |e| matches!(e, SmpError::BadPatchType { directive, .. } if directive == "bogus"),
        },
        ErrCase {
            name: "invalid $patch directive in a list",
            original: pod.clone(),
            patch: json!({"spec": {"containers": [{"name": "a", "$patch": "bogus"}]}}),
            check: |e| matches!(e, SmpError::BadPatchType { .. }),
        },
        ErrCase {
            name: "merge key missing in a list element",
            original: pod.clone(),
            patch: json!({"spec": {"containers": [{"image": "x"}]}}),
            check: |e| matches!(e, SmpError::NoMergeKey { key, .. } if key == "name"),
        },
        ErrCase {
            name: "delete directive without the merge key",
            original: pod.clone(),
            patch: json!({"spec": {"containers": [{"$patch": "delete"}]}}),
            check: |e| matches!(e, SmpError::NoMergeKey { .. }),
        },
        ErrCase {
            name: "$patch: merge in a list",
            original: pod.clone(),
            patch: json!({"spec": {"containers": [{"$patch": "merge"}]}}),
            check: |e| matches!(e, SmpError::MergeDirectiveInList),
        },
        ErrCase {
            name: "$retainKeys not listing a patched field",
            original: pod.clone(),
            patch: json!({"spec": {"$retainKeys": ["containers"], "nodeName": "n"}}),
            check: |e| matches!(e, SmpError::BadRetainKeys),
        },
        ErrCase {
            name: "$retainKeys that is not a list",
            original: pod.clone(),
            patch: json!({"spec": {"$retainKeys": "containers"}}),
            check: |e| matches!(e, SmpError::BadRetainKeys),
        },
        ErrCase {
            name: "$setElementOrder contradicting the patch list",
            original: pod.clone(),
            patch: json!({"spec": {"$setElementOrder/containers": [{"name": "a"}], "containers": [{"name": "b"}]}}),
            check: |e| matches!(e, SmpError::SetElementOrderMismatch { .. }),
        },
        ErrCase {
            name: "$deleteFromPrimitiveList without a field",
            original: pod.clone(),
            patch: json!({"metadata": {"$deleteFromPrimitiveList": ["a"]}}),
            check: |e| matches!(e, SmpError::BadPrimitiveList),
        },
        ErrCase {
            name: "a patch that is not an object",
            original: pod.clone(),
            patch: json!(["nope"]),
            check: |e| matches!(e, SmpError::BadJsonDoc) && e.http_status() == 400,
        },
        ErrCase {
            name: "a list of lists in a merging list",
            original: json!({"metadata": {"finalizers": ["a"]}}),
            patch: json!({"metadata": {"finalizers": [["b"]]}}),
            check: |e| matches!(e, SmpError::ListOfLists) && e.http_status() == 422,
        },
    ];
    for case in cases {
        match apply("", "Pod", &case.original, &case.patch) {
            Ok(v) => panic!("{}: expected an error, got {v}", case.name),
            Err(e) => assert!((case.check)(&e), "{}: wrong error {e:?}", case.name),
        }
    }
}

#[test]
fn unsupported_kinds_are_rejected() {
    assert!(!supports("example.com", "Widget"));
    assert!(!supports("apps", "Pod"));
    let err = apply("example.com", "Widget", &json!({}), &json!({})).expect_err("unknown kind");
    assert_eq!(err, SmpError::Unsupported);
    assert_eq!(err.http_status(), 415);
}

#[test]
fn every_served_builtin_storage_kind_is_supported() {
    // Create-only resources (reviews) cannot be patched and need no schema.
    for r in skiff_api::catalogue::builtin().iter().filter(|r| !r.is_view() && r.supports("patch")) {
        assert!(supports(r.group, r.kind), "{}/{} has no strategic merge patch schema", r.group, r.kind);
    }
    // Alternative views (events.k8s.io Event, autoscaling/v1 HPA) are covered too.
    for r in skiff_api::catalogue::builtin().iter().filter(|r| r.supports("patch")) {
        assert!(supports(r.group, r.kind), "{}/{}", r.group, r.kind);
    }
}

#[test]
fn inputs_are_not_mutated() {
    let original = deploy(json!([{"name": "a", "image": "1"}]));
    let patch = template_patch(json!({"containers": [{"name": "a", "image": "2"}]}));
    let (o, p) = (original.clone(), patch.clone());
    apply("apps", "Deployment", &original, &patch).expect("patch applies");
    assert_eq!((o, p), (original, patch));
}
