//! Table-driven tests of field sets, apply merges, conflicts, pruning and update recording.

use serde_json::{Value, json};

use super::*;

const T0: &str = "2026-01-01T00:00:00Z";
const T1: &str = "2026-01-01T00:01:00Z";

fn writer<'a>(manager: &'a str, now: &'a str) -> Writer<'a> {
    Writer {
        group: "apps",
        kind: "Deployment",
        manager,
        api_version: "apps/v1",
        versions: &SamePaths,
        subresource: "",
        ignore_status: true,
        now,
    }
}

/// One write in a scenario.
enum Step {
    /// `manager` applies the configuration (`force`).
    Apply(&'static str, Value, bool),
    /// `manager` writes the previous object with a JSON merge patch applied.
    Update(&'static str, Value),
}

type Outcome = Result<Value, Vec<Conflict>>;

/// Runs steps; stops at the first conflict.
fn run(steps: Vec<Step>) -> Outcome {
    let mut obj: Option<Value> = None;
    for (i, step) in steps.into_iter().enumerate() {
        let now = if i == 0 { T0 } else { T1 };
        match step {
            Step::Apply(m, cfg, force) => obj = Some(apply(obj.as_ref(), &cfg, &writer(m, now), force)?),
            Step::Update(m, patch) => {
                let old = obj.clone().unwrap_or_else(|| json!({}));
                let mut new = old.clone();
                json_patch::merge(&mut new, &patch);
                record_update(obj.as_ref(), &mut new, &writer(m, now), Sent::Nothing);
                obj = Some(new);
            }
        }
    }
    obj.ok_or_else(Vec::new)
}

fn owned(obj: &Value, manager: &str) -> Vec<String> {
    entries(obj).iter().filter(|e| e.manager == manager).flat_map(|e| e.fields.iter().map(display)).collect()
}

fn deploy(spec: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "ns"}, "spec": spec})
}

fn containers(list: Value) -> Value {
    deploy(json!({"template": {"spec": {"containers": list}}}))
}

fn ok(o: &Outcome) -> &Value {
    o.as_ref().expect("no conflict")
}

struct Case {
    name: &'static str,
    steps: fn() -> Vec<Step>,
    check: fn(&Outcome),
}

const CASES: &[Case] = &[
    Case {
        name: "create_via_apply_records_apply_entry",
        steps: || vec![Step::Apply("a", deploy(json!({"replicas": 2})), false)],
        check: |o| {
            let obj = ok(o);
            assert_eq!(obj["spec"]["replicas"], 2);
            let e = &obj["metadata"]["managedFields"][0];
            assert_eq!(e["manager"], "a");
            assert_eq!(e["operation"], "Apply");
            assert_eq!(e["apiVersion"], "apps/v1");
            assert_eq!(e["time"], T0);
            assert_eq!(e["fieldsType"], "FieldsV1");
            assert_eq!(e["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
        },
    },
    Case {
        name: "reapply_same_config_is_a_noop_and_keeps_time",
        steps: || {
            vec![
                Step::Apply("a", deploy(json!({"replicas": 2})), false),
                Step::Apply("a", deploy(json!({"replicas": 2})), false),
            ]
        },
        check: |o| assert_eq!(ok(o)["metadata"]["managedFields"][0]["time"], T0),
    },
    Case {
        name: "changed_apply_moves_time",
        steps: || {
            vec![
                Step::Apply("a", deploy(json!({"replicas": 2})), false),
                Step::Apply("a", deploy(json!({"replicas": 2, "paused": true})), false),
            ]
        },
        check: |o| assert_eq!(ok(o)["metadata"]["managedFields"][0]["time"], T1),
    },
    Case {
        name: "changed_value_of_an_owned_field_moves_time",
        steps: || {
            vec![
                Step::Apply("a", deploy(json!({"replicas": 2})), false),
                Step::Apply("a", deploy(json!({"replicas": 3})), false),
            ]
        },
        check: |o| assert_eq!(ok(o)["metadata"]["managedFields"][0]["time"], T1),
    },
    Case {
        name: "field_dropped_from_config_is_removed",
        steps: || {
            vec![
                Step::Apply("a", deploy(json!({"replicas": 2, "paused": true})), false),
                Step::Apply("a", deploy(json!({"replicas": 2})), false),
            ]
        },
        check: |o| {
            assert!(ok(o)["spec"].get("paused").is_none());
            assert_eq!(owned(ok(o), "a"), vec![".spec.replicas"]);
        },
    },
    Case {
        name: "field_also_owned_by_another_applier_is_kept",
        steps: || {
            vec![
                Step::Apply("a", deploy(json!({"replicas": 2})), false),
                Step::Apply("b", deploy(json!({"replicas": 2})), false),
                Step::Apply("a", deploy(json!({"paused": true})), false),
            ]
        },
        check: |o| {
            assert_eq!(ok(o)["spec"]["replicas"], 2);
            assert_eq!(owned(ok(o), "b"), vec![".spec.replicas"]);
        },
    },
    Case {
        name: "conflict_with_update_manager",
        steps: || {
            vec![
                Step::Apply("a", deploy(json!({"replicas": 2})), false),
                Step::Update("kubectl", json!({"spec": {"replicas": 5}})),
                Step::Apply("a", deploy(json!({"replicas": 3})), false),
            ]
        },
        check: |o| {
            let c = o.as_ref().expect_err("conflict");
            assert_eq!(
                c,
                &vec![Conflict { manager: "\"kubectl\" using apps/v1".into(), field: ".spec.replicas".into() }]
            );
        },
    },
    Case {
        name: "applying_the_live_value_shares_without_conflict",
        steps: || {
            vec![
                Step::Update("kubectl", json!({"spec": {"replicas": 5}})),
                Step::Apply("a", deploy(json!({"replicas": 5})), false),
            ]
        },
        check: |o| {
            assert_eq!(owned(ok(o), "a"), vec![".spec.replicas"]);
            assert_eq!(owned(ok(o), "kubectl"), vec![".spec.replicas"]);
        },
    },
    Case {
        name: "force_takes_ownership",
        steps: || {
            vec![
                Step::Update("kubectl", json!({"spec": {"replicas": 5, "paused": false}})),
                Step::Apply("a", deploy(json!({"replicas": 3})), true),
            ]
        },
        check: |o| {
            assert_eq!(ok(o)["spec"]["replicas"], 3);
            assert_eq!(owned(ok(o), "a"), vec![".spec.replicas"]);
            assert_eq!(owned(ok(o), "kubectl"), vec![".spec.paused"]);
        },
    },
    Case {
        name: "conflict_with_other_applier",
        steps: || {
            vec![
                Step::Apply("b", deploy(json!({"replicas": 2})), false),
                Step::Apply("a", deploy(json!({"replicas": 3})), false),
            ]
        },
        check: |o| assert_eq!(o.as_ref().expect_err("conflict")[0].manager, "\"b\""),
    },
    Case {
        name: "containers_merge_by_name_keeping_other_managers_items",
        steps: || {
            vec![
                Step::Apply("b", containers(json!([{"name": "b", "image": "b:1"}])), false),
                Step::Apply("a", containers(json!([{"name": "a", "image": "a:1"}])), false),
            ]
        },
        check: |o| {
            let list = &ok(o)["spec"]["template"]["spec"]["containers"];
            assert_eq!(list.as_array().map(Vec::len), Some(2));
            assert_eq!(
                owned(ok(o), "a"),
                vec![
                    ".spec.template.spec.containers[name=\"a\"]",
                    ".spec.template.spec.containers[name=\"a\"].image",
                    ".spec.template.spec.containers[name=\"a\"].name"
                ]
            );
        },
    },
    Case {
        name: "container_dropped_from_config_is_removed",
        steps: || {
            vec![
                Step::Apply(
                    "a",
                    containers(json!([{"name": "a", "image": "a:1"}, {"name": "c", "image": "c:1"}])),
                    false,
                ),
                Step::Apply("a", containers(json!([{"name": "a", "image": "a:1"}])), false),
            ]
        },
        check: |o| {
            assert_eq!(ok(o)["spec"]["template"]["spec"]["containers"], json!([{"name": "a", "image": "a:1"}]));
        },
    },
    Case {
        name: "container_item_kept_when_another_manager_owns_a_member",
        steps: || {
            vec![
                Step::Apply("a", containers(json!([{"name": "c", "image": "c:1"}])), false),
                Step::Update(
                    "kubectl",
                    json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "c:1", "tty": true}]}}}}),
                ),
                Step::Apply("a", deploy(json!({"replicas": 1})), false),
            ]
        },
        check: |o| {
            let c = &ok(o)["spec"]["template"]["spec"]["containers"][0];
            assert_eq!(c["name"], "c");
            assert_eq!(c["tty"], true);
            assert!(c.get("image").is_none());
        },
    },
    Case {
        name: "ports_keyed_by_container_port_and_protocol",
        steps: || {
            vec![Step::Apply(
                "a",
                containers(
                    json!([{"name": "a", "image": "x", "ports": [{"containerPort": 53}, {"containerPort": 53, "protocol": "UDP"}]}]),
                ),
                false,
            )]
        },
        check: |o| {
            let set = owned(ok(o), "a");
            assert!(set.contains(
                &".spec.template.spec.containers[name=\"a\"].ports[containerPort=53,protocol=\"TCP\"]".to_string()
            ));
            assert!(set.contains(
                &".spec.template.spec.containers[name=\"a\"].ports[containerPort=53,protocol=\"UDP\"]".to_string()
            ));
        },
    },
    Case {
        name: "env_merges_by_name",
        steps: || {
            vec![
                Step::Apply("b", containers(json!([{"name": "a", "env": [{"name": "X", "value": "1"}]}])), false),
                Step::Apply("a", containers(json!([{"name": "a", "env": [{"name": "Y", "value": "2"}]}])), false),
            ]
        },
        check: |o| {
            let env = &ok(o)["spec"]["template"]["spec"]["containers"][0]["env"];
            assert_eq!(env, &json!([{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]));
        },
    },
    Case {
        name: "finalizers_are_a_set",
        steps: || {
            vec![
                Step::Apply("b", json!({"metadata": {"name": "d", "finalizers": ["x"]}}), false),
                Step::Apply("a", json!({"metadata": {"name": "d", "finalizers": ["y"]}}), false),
            ]
        },
        check: |o| {
            assert_eq!(ok(o)["metadata"]["finalizers"], json!(["x", "y"]));
            assert_eq!(owned(ok(o), "a"), vec![".metadata.finalizers[=\"y\"]"]);
        },
    },
    Case {
        name: "finalizer_dropped_by_its_applier_is_removed",
        steps: || {
            vec![
                Step::Apply("b", json!({"metadata": {"name": "d", "finalizers": ["x"]}}), false),
                Step::Apply("a", json!({"metadata": {"name": "d", "finalizers": ["y"]}}), false),
                Step::Apply("a", json!({"metadata": {"name": "d", "labels": {"k": "v"}}}), false),
            ]
        },
        check: |o| assert_eq!(ok(o)["metadata"]["finalizers"], json!(["x"])),
    },
    Case {
        name: "atomic_lists_are_replaced_and_owned_whole",
        steps: || {
            vec![
                Step::Apply("a", containers(json!([{"name": "a", "args": ["1", "2"]}])), false),
                Step::Apply("a", containers(json!([{"name": "a", "args": ["3"]}])), false),
            ]
        },
        check: |o| {
            assert_eq!(ok(o)["spec"]["template"]["spec"]["containers"][0]["args"], json!(["3"]));
            assert!(owned(ok(o), "a").contains(&".spec.template.spec.containers[name=\"a\"].args".to_string()));
        },
    },
    Case {
        name: "atomic_list_change_conflicts_with_its_owner",
        steps: || {
            vec![
                Step::Apply("b", containers(json!([{"name": "a", "args": ["1"]}])), false),
                Step::Apply("a", containers(json!([{"name": "a", "args": ["2"]}])), false),
            ]
        },
        check: |o| {
            assert_eq!(o.as_ref().expect_err("conflict")[0].field, ".spec.template.spec.containers[name=\"a\"].args");
        },
    },
    Case {
        name: "granular_maps_are_owned_per_key",
        steps: || {
            vec![
                Step::Apply("b", json!({"metadata": {"name": "d", "labels": {"x": "1"}}}), false),
                Step::Apply("a", json!({"metadata": {"name": "d", "labels": {"y": "2"}}}), false),
                Step::Apply("a", json!({"metadata": {"name": "d", "annotations": {"z": "3"}}}), false),
            ]
        },
        check: |o| {
            assert_eq!(ok(o)["metadata"]["labels"], json!({"x": "1"}));
            assert_eq!(owned(ok(o), "a"), vec![".metadata.annotations.z"]);
        },
    },
    Case {
        name: "last_map_key_removed_drops_the_map",
        steps: || {
            vec![
                Step::Apply("a", json!({"metadata": {"name": "d", "labels": {"y": "2"}}}), false),
                Step::Apply("a", deploy(json!({"replicas": 1})), false),
            ]
        },
        check: |o| assert!(ok(o)["metadata"].get("labels").is_none()),
    },
    Case {
        name: "atomic_struct_label_selector_is_one_leaf",
        steps: || vec![Step::Apply("a", deploy(json!({"selector": {"matchLabels": {"app": "x"}}})), false)],
        check: |o| assert_eq!(owned(ok(o), "a"), vec![".spec.selector"]),
    },
    Case {
        name: "nested_structs_are_owned_by_leaf",
        steps: || {
            vec![
                Step::Apply("b", deploy(json!({"strategy": {"rollingUpdate": {"maxSurge": 1}}})), false),
                Step::Apply("a", deploy(json!({"strategy": {"rollingUpdate": {"maxUnavailable": 0}}})), false),
            ]
        },
        check: |o| {
            assert_eq!(ok(o)["spec"]["strategy"]["rollingUpdate"], json!({"maxSurge": 1, "maxUnavailable": 0}));
            assert_eq!(owned(ok(o), "a"), vec![".spec.strategy.rollingUpdate.maxUnavailable"]);
        },
    },
    Case {
        name: "status_is_not_applied_on_the_main_resource",
        steps: || vec![Step::Apply("a", json!({"metadata": {"name": "d"}, "status": {"replicas": 3}}), false)],
        check: |o| {
            assert!(ok(o).get("status").is_none());
            assert!(owned(ok(o), "a").is_empty());
        },
    },
    Case {
        name: "update_on_create_records_maps_and_items_with_dot",
        steps: || vec![Step::Update("kubectl-create", containers(json!([{"name": "a", "image": "x"}])))],
        check: |o| {
            let e = &ok(o)["metadata"]["managedFields"][0];
            assert_eq!(e["operation"], "Update");
            assert_eq!(
                e["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"],
                json!({".": {}, "k:{\"name\":\"a\"}": {".": {}, "f:image": {}, "f:name": {}}})
            );
        },
    },
    Case {
        name: "update_takes_changed_fields_from_the_applier",
        steps: || {
            vec![
                Step::Apply("a", deploy(json!({"replicas": 1, "paused": true})), false),
                Step::Update("kubectl-scale", json!({"spec": {"replicas": 4}})),
            ]
        },
        check: |o| {
            assert_eq!(owned(ok(o), "a"), vec![".spec.paused"]);
            assert_eq!(owned(ok(o), "kubectl-scale"), vec![".spec.replicas"]);
        },
    },
    Case {
        name: "noop_update_adds_no_entry",
        steps: || {
            vec![
                Step::Apply("a", deploy(json!({"replicas": 1})), false),
                Step::Update("kubectl", json!({"spec": {"replicas": 1}})),
            ]
        },
        check: |o| assert_eq!(entries(ok(o)).len(), 1),
    },
    Case {
        name: "update_removing_its_field_drops_the_empty_entry",
        steps: || {
            vec![
                Step::Update("kubectl", json!({"metadata": {"labels": {"a": "1"}}})),
                Step::Update("kubectl", json!({"metadata": {"labels": {"a": null}}})),
            ]
        },
        check: |o| assert!(ok(o)["metadata"].get("managedFields").is_none()),
    },
];

#[test]
fn apply_and_update_scenarios() {
    let mut failed = Vec::new();
    for case in CASES {
        let outcome = run((case.steps)());
        if std::panic::catch_unwind(|| (case.check)(&outcome)).is_err() {
            failed.push(format!("{}: {outcome:?}", case.name));
        }
    }
    assert!(failed.is_empty(), "failed cases:\n{}", failed.join("\n"));
}

#[test]
fn status_apply_owns_only_status() {
    let w = Writer { subresource: "status", ignore_status: false, ..writer("ctl", T0) };
    let cfg =
        json!({"metadata": {"name": "d", "labels": {"a": "b"}}, "spec": {"replicas": 9}, "status": {"replicas": 1}});
    let live = deploy(json!({"replicas": 2}));
    let obj = apply(Some(&live), &cfg, &w, false).expect("applies");
    assert_eq!(obj["spec"]["replicas"], 2);
    assert!(obj["metadata"].get("labels").is_none());
    assert_eq!(owned(&obj, "ctl"), vec![".status.replicas"]);
    assert_eq!(entries(&obj)[0].subresource, "status");
}

#[test]
fn kubectl_takes_over_fields_from_its_client_side_apply() {
    let last = deploy(json!({"replicas": 1})).to_string();
    let mut live = deploy(json!({"replicas": 1}));
    live["metadata"]["annotations"] = json!({LAST_APPLIED: last});
    let mut created = live.clone();
    record_update(None, &mut created, &writer("kubectl-client-side-apply", T0), Sent::Nothing);
    let cfg = deploy(json!({"replicas": 3}));
    assert!(apply(Some(&created), &cfg, &writer("other", T1), false).is_err(), "other managers still conflict");
    let obj = apply(Some(&created), &cfg, &writer("kubectl", T1), false).expect("migrates");
    assert_eq!(obj["spec"]["replicas"], 3);
    assert_eq!(owned(&obj, "kubectl"), vec![".spec.replicas"]);
    let record: Value =
        serde_json::from_str(obj["metadata"]["annotations"][LAST_APPLIED].as_str().expect("kept")).expect("json");
    assert_eq!(record["spec"]["replicas"], 3);
}

#[test]
fn fields_v1_round_trips_with_dot_for_members_with_children() {
    let v = json!({"f:metadata": {"f:labels": {".": {}, "f:a": {}}}, "f:spec": {"f:replicas": {}}});
    let set = fieldpath::from_fields_v1(&v);
    assert_eq!(set.len(), 3);
    assert_eq!(fieldpath::to_fields_v1(&set), v);
}

#[test]
fn reset_drops_all_entries() {
    let obj = run(vec![Step::Apply("a", deploy(json!({"replicas": 1})), false)]).expect("applies");
    let mut new = obj.clone();
    record_update(Some(&obj), &mut new, &writer("k", T1), Sent::Reset);
    assert!(new["metadata"].get("managedFields").is_none());
    assert!(matches!(Sent::classify(Some(&json!([{}]))), Sent::Reset));
    assert!(matches!(Sent::classify(Some(&json!([]))), Sent::Nothing));
    assert!(matches!(Sent::classify(Some(&json!([{"manager": "x"}]))), Sent::Nothing));
}

#[test]
fn sent_entries_replace_the_stored_ones() {
    let obj = run(vec![Step::Update("kubectl-client-side-apply", deploy(json!({"replicas": 1})))]).expect("writes");
    let mut migrated = entries(&obj);
    migrated[0].manager = "kubectl".into();
    migrated[0].operation = Operation::Apply;
    let mut new = obj.clone();
    record_update(Some(&obj), &mut new, &writer("kubectl", T1), Sent::Entries(migrated));
    assert_eq!(owned(&new, "kubectl"), vec![".spec.replicas"]);
    assert!(owned(&new, "kubectl-client-side-apply").is_empty());
}

#[test]
fn update_entries_are_capped_into_ancient_changes() {
    let mut obj = json!({"metadata": {"name": "d"}});
    for i in 0..12 {
        let mut new = obj.clone();
        new["metadata"]["labels"] = json!({format!("k{i}"): "v"});
        let m = format!("m{i:02}");
        let t = format!("2026-01-01T00:00:{i:02}Z");
        record_update(Some(&obj), &mut new, &writer(&m, &t), Sent::Nothing);
        obj = new;
    }
    let list = entries(&obj);
    assert_eq!(list.len(), MAX_UPDATE_MANAGERS);
    assert!(list.iter().any(|e| e.manager == ANCIENT_CHANGES));
}

#[test]
fn custom_resources_are_granular_maps_with_atomic_lists() {
    let w = Writer { group: "example.com", kind: "Widget", ..writer("a", T0) };
    let obj = apply(None, &json!({"metadata": {"name": "w"}, "spec": {"size": 1, "tags": ["x"]}}), &w, false)
        .expect("applies");
    assert_eq!(owned(&obj, "a"), vec![".spec.size", ".spec.tags"]);
}

#[test]
fn manager_defaults_to_the_user_agent_prefix() {
    assert_eq!(manager_from_user_agent("kubectl/v1.32.0 (linux/amd64) kubernetes/abc"), "kubectl");
    assert_eq!(manager_from_user_agent("Python-urllib/3.12"), "Python-urllib");
    assert_eq!(manager_from_user_agent(""), "");
}

#[test]
fn omitted_list_map_keys_take_their_openapi_default() {
    // Service ports key on port and protocol; `protocol` defaults to TCP in the schema, so an
    // applied port without it is the same item as the stored, defaulted one.
    let w = Writer { group: "", kind: "Service", ..writer("a", T0) };
    let svc = |ports: Value| json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": ports}});
    let live =
        apply(None, &svc(json!([{"port": 80, "protocol": "TCP", "targetPort": 8080}])), &w, false).expect("applies");
    let again = apply(Some(&live), &svc(json!([{"port": 80, "targetPort": 9090}])), &w, false).expect("applies");
    assert_eq!(again["spec"]["ports"], json!([{"port": 80, "protocol": "TCP", "targetPort": 9090}]));
    assert_eq!(
        owned(&again, "a"),
        vec![
            ".spec.ports[port=80,protocol=\"TCP\"]",
            ".spec.ports[port=80,protocol=\"TCP\"].port",
            ".spec.ports[port=80,protocol=\"TCP\"].targetPort"
        ]
    );

    // A key field without a default cannot be filled in: the list is then owned as a whole.
    let keyless = apply(None, &svc(json!([{"targetPort": 8080}])), &w, false).expect("applies");
    assert_eq!(owned(&keyless, "a"), vec![".spec.ports"]);
}
