//! Table-driven tests of the printers, the table envelope and age formatting.

use jiff::Timestamp;
use serde_json::{Value, json};
use skiff_api::catalogue;

use super::age::human_duration;
use super::fields::format_label_selector;
use super::{IncludeObject, TableOptions, age, build_table, partial_object_metadata};

const NOW: &str = "2024-05-01T12:00:00Z";

fn now() -> Timestamp {
    NOW.parse().expect("valid timestamp")
}

/// `NOW` minus `seconds`, as RFC 3339.
fn ago(seconds: i64) -> String {
    let then = now().checked_sub(jiff::SignedDuration::from_secs(seconds)).expect("in range");
    then.to_string()
}

fn opts() -> TableOptions {
    TableOptions { include_object: IncludeObject::Metadata, include_columns: true, now: now() }
}

fn info(group: &str, plural: &str) -> &'static catalogue::ResourceInfo {
    catalogue::builtin()
        .iter()
        .find(|r| r.group == group && r.plural == plural)
        .unwrap_or_else(|| panic!("{group}/{plural} in catalogue"))
}

/// The cells of the single row a table of `object` has.
fn cells(group: &str, plural: &str, object: Value) -> Vec<Value> {
    let table = build_table(info(group, plural), &[&object], json!({}), &opts());
    table["rows"][0]["cells"].as_array().expect("cells").clone()
}

/// Column names of the table for `group`/`plural`.
fn column_names(group: &str, plural: &str) -> Vec<String> {
    let table = build_table(info(group, plural), &[], json!({}), &opts());
    table["columnDefinitions"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| c["name"].as_str().expect("name").to_string())
        .collect()
}

#[test]
fn human_duration_matches_upstream_boundaries() {
    const S: i128 = 1_000_000_000;
    const M: i128 = 60 * S;
    const H: i128 = 60 * M;
    const D: i128 = 24 * H;
    let cases: &[(i128, &str)] = &[
        (-3 * S, "<invalid>"),
        (-S - S / 2, "0s"),
        (0, "0s"),
        (5 * S, "5s"),
        (119 * S, "119s"),
        (2 * M, "2m"),
        (3 * M + 20 * S, "3m20s"),
        (9 * M + 59 * S, "9m59s"),
        (10 * M + 30 * S, "10m"),
        (179 * M, "179m"),
        (3 * H, "3h"),
        (3 * H + 5 * M, "3h5m"),
        (7 * H + 59 * M, "7h59m"),
        (8 * H + 30 * M, "8h"),
        (47 * H, "47h"),
        (48 * H, "2d"),
        (51 * H, "2d3h"),
        (7 * D + 23 * H, "7d23h"),
        (8 * D + 5 * H, "8d"),
        (45 * D, "45d"),
        (729 * D, "729d"),
        (730 * D, "2y"),
        (731 * D, "2y1d"),
        (3 * 365 * D, "3y"),
        (8 * 365 * D + 100 * D, "8y"),
    ];
    for (nanos, want) in cases {
        assert_eq!(human_duration(*nanos), *want, "duration {nanos}ns");
    }
}

#[test]
fn age_of_unparsable_or_zero_timestamps_is_unknown() {
    for created in ["", "yesterday", "0001-01-01T00:00:00Z"] {
        assert_eq!(age(created, now()), "<unknown>", "{created:?}");
    }
    assert_eq!(age(&ago(200), now()), "3m20s");
    assert_eq!(age("2024-05-01T11:59:54.123456Z", now()), "5s");
}

#[test]
fn include_object_parses_query_values() {
    assert_eq!(IncludeObject::parse(None), Ok(IncludeObject::Metadata));
    assert_eq!(IncludeObject::parse(Some("")), Ok(IncludeObject::Metadata));
    assert_eq!(IncludeObject::parse(Some("None")), Ok(IncludeObject::None));
    assert_eq!(IncludeObject::parse(Some("Metadata")), Ok(IncludeObject::Metadata));
    assert_eq!(IncludeObject::parse(Some("Object")), Ok(IncludeObject::Object));
    assert!(IncludeObject::parse(Some("object")).is_err());
}

fn sample_pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "default", "creationTimestamp": ago(300), "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "nginx"}], "nodeName": "n1"},
        "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.5"}],
                   "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "state": {"running": {}}}]}
    })
}

#[test]
fn row_object_follows_include_object() {
    let pod = sample_pod();
    let cases = [
        (IncludeObject::None, Value::Null),
        (IncludeObject::Metadata, partial_object_metadata(&pod)),
        (IncludeObject::Object, pod.clone()),
    ];
    for (mode, want) in cases {
        let table = build_table(info("", "pods"), &[&pod], json!({}), &TableOptions { include_object: mode, ..opts() });
        assert_eq!(table["rows"][0]["object"], want, "{mode:?}");
    }
    let partial = partial_object_metadata(&pod);
    assert_eq!(partial["kind"], "PartialObjectMetadata");
    assert_eq!(partial["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(partial["metadata"]["labels"]["app"], "web");
}

#[test]
fn table_envelope_carries_list_metadata_and_columns() {
    let pod = sample_pod();
    let meta = json!({"resourceVersion": "42", "continue": "abc", "remainingItemCount": 3});
    let table = build_table(info("", "pods"), &[&pod], meta.clone(), &opts());
    assert_eq!(table["kind"], "Table");
    assert_eq!(table["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(table["metadata"], meta);
    let name_column = &table["columnDefinitions"][0];
    assert_eq!(name_column["name"], "Name");
    assert_eq!(name_column["format"], "name");
    assert_eq!(name_column["priority"], 0);
    assert_eq!(table["columnDefinitions"][5]["priority"], 1);

    let null_meta = build_table(info("", "pods"), &[&pod], Value::Null, &opts());
    assert_eq!(null_meta["metadata"], json!({}));
}

#[test]
fn watch_events_after_the_first_have_null_column_definitions() {
    let pod = sample_pod();
    let later = TableOptions { include_columns: false, ..opts() };
    let table = build_table(info("", "pods"), &[&pod], json!({}), &later);
    assert!(table.get("columnDefinitions").is_some_and(Value::is_null));
    assert_eq!(table["rows"].as_array().map(Vec::len), Some(1));
}

#[test]
fn every_catalogue_resource_prints_one_cell_per_column() {
    let empty = json!({"metadata": {"name": "x"}});
    for resource in catalogue::builtin() {
        let table = build_table(resource, &[&empty], json!({}), &opts());
        let columns = table["columnDefinitions"].as_array().map_or(0, Vec::len);
        let cells = table["rows"][0]["cells"].as_array().map_or(0, Vec::len);
        assert_eq!(columns, cells, "{}/{}", resource.group, resource.plural);
        let named = table["columnDefinitions"].as_array().into_iter().flatten().filter(|c| c["format"] == "name");
        assert!(named.count() >= 1, "{}/{} has a name column", resource.group, resource.plural);
    }
}

#[test]
fn pod_columns_match_upstream() {
    assert_eq!(
        column_names("", "pods"),
        ["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node", "Readiness Gates"]
    );
}

#[test]
fn pod_status_ready_and_restarts_per_state() {
    let base = |status: Value, spec_extra: Value| {
        let mut pod = json!({
            "metadata": {"name": "p", "creationTimestamp": ago(3600)},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": status,
        });
        if let (Some(spec), Some(extra)) = (pod["spec"].as_object_mut(), spec_extra.as_object()) {
            spec.extend(extra.clone());
        }
        pod
    };
    let running = |name: &str, ready: bool, restarts: i64| json!({"name": name, "ready": ready, "restartCount": restarts, "state": {"running": {}}});
    let cases: Vec<(&str, Value, &str, &str, &str)> = vec![
        (
            "running",
            base(
                json!({"phase": "Running", "containerStatuses": [running("a", true, 0), running("b", true, 0)]}),
                json!({}),
            ),
            "2/2",
            "Running",
            "0",
        ),
        (
            "pending pull",
            base(
                json!({"phase": "Pending", "containerStatuses": [
                    {"name": "a", "state": {"waiting": {"reason": "ContainerCreating"}}},
                    {"name": "b", "state": {"waiting": {"reason": "ErrImagePull"}}}]}),
                json!({}),
            ),
            "0/2",
            "ContainerCreating",
            "0",
        ),
        (
            "crash loop with recent restart",
            base(
                json!({"phase": "Running", "containerStatuses": [
                    running("a", true, 0),
                    {"name": "b", "ready": false, "restartCount": 3,
                     "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                     "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(300)}}}]}),
                json!({}),
            ),
            "1/2",
            "CrashLoopBackOff",
            "3 (5m ago)",
        ),
        (
            "init container running",
            base(
                json!({"phase": "Pending", "initContainerStatuses": [
                    {"name": "i1", "state": {"terminated": {"exitCode": 0}}},
                    {"name": "i2", "state": {"running": {}}}]}),
                json!({"initContainers": [{"name": "i1"}, {"name": "i2"}]}),
            ),
            "0/2",
            "Init:1/2",
            "0",
        ),
        (
            "init container crash looping",
            base(
                json!({"phase": "Pending", "initContainerStatuses": [
                    {"name": "i1", "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}),
                json!({"initContainers": [{"name": "i1"}]}),
            ),
            "0/2",
            "Init:CrashLoopBackOff",
            "4",
        ),
        (
            "init container failed without reason",
            base(
                json!({"phase": "Pending", "initContainerStatuses": [
                    {"name": "i1", "state": {"terminated": {"exitCode": 2}}}]}),
                json!({"initContainers": [{"name": "i1"}]}),
            ),
            "0/2",
            "Init:ExitCode:2",
            "0",
        ),
        (
            "completed",
            base(
                json!({"phase": "Succeeded", "containerStatuses": [
                    {"name": "a", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                    {"name": "b", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
                json!({}),
            ),
            "0/2",
            "Completed",
            "0",
        ),
        (
            "killed by signal",
            base(
                json!({"phase": "Failed", "containerStatuses": [
                    {"name": "a", "state": {"terminated": {"exitCode": 137, "signal": 9}}}]}),
                json!({}),
            ),
            "0/2",
            "Signal:9",
            "0",
        ),
        (
            "scheduling gated",
            base(
                json!({"phase": "Pending", "conditions": [
                    {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}),
                json!({}),
            ),
            "0/2",
            "SchedulingGated",
            "0",
        ),
        (
            "sidecar counts toward ready",
            base(
                json!({"phase": "Running",
                    "initContainerStatuses": [{"name": "proxy", "ready": true, "started": true, "state": {"running": {}}}],
                    "containerStatuses": [running("a", true, 0), running("b", false, 0)]}),
                json!({"initContainers": [{"name": "proxy", "restartPolicy": "Always"}]}),
            ),
            "2/3",
            "Running",
            "0",
        ),
    ];
    for (label, pod, ready, status, restarts) in cases {
        let row = cells("", "pods", pod);
        assert_eq!(row[1], ready, "{label}: ready");
        assert_eq!(row[2], status, "{label}: status");
        assert_eq!(row[3], restarts, "{label}: restarts");
        assert_eq!(row[4], "60m", "{label}: age");
    }
}

#[test]
fn deleted_pods_show_terminating_or_unknown() {
    let mut pod = sample_pod();
    pod["metadata"]["deletionTimestamp"] = json!(ago(1));
    assert_eq!(cells("", "pods", pod.clone())[2], "Terminating");
    pod["status"]["reason"] = json!("NodeLost");
    assert_eq!(cells("", "pods", pod.clone())[2], "Unknown");
    pod["status"]["reason"] = Value::Null;
    pod["status"]["phase"] = json!("Succeeded");
    pod["status"]["containerStatuses"] = json!([]);
    assert_eq!(cells("", "pods", pod)[2], "Succeeded");
}

#[test]
fn pod_wide_cells_and_completed_row_condition() {
    let mut pod = sample_pod();
    pod["spec"]["readinessGates"] = json!([{"conditionType": "lb/ready"}, {"conditionType": "x/ok"}]);
    pod["status"]["conditions"] = json!([{"type": "lb/ready", "status": "True"}]);
    let row = cells("", "pods", pod.clone());
    assert_eq!(&row[5..], &[json!("10.0.0.5"), json!("n1"), json!("<none>"), json!("1/2")]);

    let table = build_table(info("", "pods"), &[&pod], json!({}), &opts());
    assert!(table["rows"][0].get("conditions").is_none());
    pod["status"]["phase"] = json!("Succeeded");
    let table = build_table(info("", "pods"), &[&pod], json!({}), &opts());
    assert_eq!(table["rows"][0]["conditions"][0]["type"], "Completed");
    assert_eq!(table["rows"][0]["conditions"][0]["reason"], "Succeeded");
}

#[test]
fn services_by_type() {
    let svc = |spec: Value, status: Value| json!({"metadata": {"name": "s", "creationTimestamp": ago(90)}, "spec": spec, "status": status});
    let ports = json!([
        {"port": 80, "protocol": "TCP", "nodePort": 30080},
        {"port": 443, "protocol": "TCP", "nodePort": 30443}
    ]);
    let cases = [
        (
            svc(
                json!({"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                       "ports": [{"port": 53, "protocol": "UDP"}], "selector": {"k8s-app": "dns"}}),
                json!({}),
            ),
            ["s", "ClusterIP", "10.96.0.10", "<none>", "53/UDP", "90s", "k8s-app=dns"],
        ),
        (
            svc(json!({"type": "NodePort", "clusterIPs": ["10.96.0.11"], "ports": ports}), json!({})),
            ["s", "NodePort", "10.96.0.11", "<none>", "80:30080/TCP,443:30443/TCP", "90s", "<none>"],
        ),
        (
            svc(
                json!({"type": "LoadBalancer", "clusterIPs": ["10.96.0.12"], "ports": [{"port": 80, "protocol": "TCP"}]}),
                json!({}),
            ),
            ["s", "LoadBalancer", "10.96.0.12", "<pending>", "80/TCP", "90s", "<none>"],
        ),
        (
            svc(
                json!({"type": "LoadBalancer", "clusterIPs": ["10.96.0.13"], "externalIPs": ["1.2.3.4"]}),
                json!({"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}, {"hostname": "lb.example"}]}}),
            ),
            ["s", "LoadBalancer", "10.96.0.13", "5.6.7.8,lb.example,1.2.3.4", "<none>", "90s", "<none>"],
        ),
        (
            svc(json!({"type": "ExternalName", "externalName": "db.example.com"}), json!({})),
            ["s", "ExternalName", "<none>", "db.example.com", "<none>", "90s", "<none>"],
        ),
    ];
    for (svc, want) in cases {
        assert_eq!(cells("", "services", svc), want.map(Value::from).to_vec());
    }
}

#[test]
fn endpoints_show_three_and_count_the_rest() {
    let ep = json!({"metadata": {"name": "e"}, "subsets": [{
        "addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"ip": "fd00::3"}, {"ip": "10.0.0.4"}],
        "ports": [{"port": 80}, {"port": 443}]
    }]});
    assert_eq!(cells("", "endpoints", ep)[1], "10.0.0.1:80,10.0.0.2:80,[fd00::3]:80 + 5 more...");
    let empty = json!({"metadata": {"name": "e"}});
    assert_eq!(cells("", "endpoints", empty)[1], "<none>");
}

#[test]
fn deployment_row() {
    assert_eq!(
        column_names("apps", "deployments"),
        ["Name", "Ready", "Up-to-date", "Available", "Age", "Containers", "Images", "Selector"]
    );
    let deploy = json!({
        "metadata": {"name": "web", "creationTimestamp": ago(2 * 86400 + 3 * 3600)},
        "spec": {"replicas": 3,
                 "selector": {"matchLabels": {"app": "web"},
                              "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}]},
                 "template": {"spec": {"containers": [{"name": "app", "image": "nginx:1"}, {"name": "log", "image": "busybox"}]}}},
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}
    });
    assert_eq!(
        cells("apps", "deployments", deploy),
        [
            json!("web"),
            json!("2/3"),
            json!(3),
            json!(2),
            json!("2d3h"),
            json!("app,log"),
            json!("nginx:1,busybox"),
            json!("app=web,tier in (a,b)")
        ]
    );
}

#[test]
fn label_selectors_render_like_upstream() {
    let cases = [
        (None, "<none>"),
        (Some(json!({})), "<none>"),
        (Some(json!({"matchLabels": {"b": "2", "a": "1"}})), "a=1,b=2"),
        (
            Some(json!({"matchExpressions": [
                {"key": "z", "operator": "DoesNotExist"},
                {"key": "env", "operator": "NotIn", "values": ["prod"]},
                {"key": "has", "operator": "Exists"}]})),
            "env notin (prod),has,!z",
        ),
        (Some(json!({"matchExpressions": [{"key": "x", "operator": "Bogus"}]})), "<error>"),
    ];
    for (selector, want) in cases {
        assert_eq!(format_label_selector(selector.as_ref()), want, "{selector:?}");
    }
}

#[test]
fn node_status_roles_and_wide_cells() {
    let node = |labels: Value, conditions: Value, unschedulable: bool| {
        json!({
            "metadata": {"name": "n1", "creationTimestamp": ago(45 * 86400), "labels": labels},
            "spec": {"unschedulable": unschedulable},
            "status": {"conditions": conditions,
                       "addresses": [{"type": "InternalIP", "address": "192.168.1.10"}, {"type": "Hostname", "address": "n1"}],
                       "nodeInfo": {"kubeletVersion": "v1.33.0", "osImage": "Debian", "kernelVersion": "6.1.0",
                                    "containerRuntimeVersion": "containerd://2.0"}}
        })
    };
    let ready = json!([{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}]);
    let row = cells(
        "",
        "nodes",
        node(json!({"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/etcd": ""}), ready, false),
    );
    assert_eq!(
        row,
        [
            "n1",
            "Ready",
            "control-plane,etcd",
            "45d",
            "v1.33.0",
            "192.168.1.10",
            "<none>",
            "Debian",
            "6.1.0",
            "containerd://2.0"
        ]
        .map(Value::from)
        .to_vec()
    );
    let row = cells("", "nodes", node(json!({}), json!([{"type": "Ready", "status": "Unknown"}]), true));
    assert_eq!(row[1], "NotReady,SchedulingDisabled");
    assert_eq!(row[2], "<none>");
    let row = cells("", "nodes", node(json!({"kubernetes.io/role": "worker"}), json!([]), false));
    assert_eq!(row[1], "Unknown");
    assert_eq!(row[2], "worker");
}

#[test]
fn events_core_and_events_k8s_io() {
    let names =
        ["Last Seen", "Type", "Reason", "Object", "Subobject", "Source", "Message", "First Seen", "Count", "Name"];
    assert_eq!(column_names("", "events"), names);
    assert_eq!(column_names("events.k8s.io", "events"), names);

    let core = json!({
        "metadata": {"name": "web-1.17a", "creationTimestamp": ago(600)},
        "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{app}"},
        "reason": "Pulled", "type": "Normal", "message": "Pulled image \"nginx\"\n",
        "source": {"component": "kubelet", "host": "n1"},
        "firstTimestamp": ago(600), "lastTimestamp": ago(30), "count": 4
    });
    assert_eq!(
        cells("", "events", core),
        [
            json!("30s"),
            json!("Normal"),
            json!("Pulled"),
            json!("pod/web-1"),
            json!("spec.containers{app}"),
            json!("kubelet, n1"),
            json!("Pulled image \"nginx\""),
            json!("10m"),
            json!(4),
            json!("web-1.17a")
        ]
    );

    let new_style = json!({
        "metadata": {"name": "ev2"},
        "regarding": {"kind": "Node", "name": "n1"},
        "reason": "Starting", "type": "Normal", "note": "Starting kubelet.",
        "reportingController": "kubelet", "reportingInstance": "n1",
        "eventTime": ago(3 * 3600)
    });
    assert_eq!(
        cells("events.k8s.io", "events", new_style),
        [
            json!("3h"),
            json!("Normal"),
            json!("Starting"),
            json!("node/n1"),
            json!(""),
            json!("kubelet, n1"),
            json!("Starting kubelet."),
            json!("3h"),
            json!(1),
            json!("ev2")
        ]
    );

    let series = json!({"metadata": {"name": "ev3"}, "eventTime": ago(3600),
        "series": {"count": 7, "lastObservedTime": ago(5)}, "involvedObject": {"kind": "Pod"}});
    let row = cells("", "events", series);
    assert_eq!((&row[0], &row[3], &row[7], &row[8]), (&json!("5s"), &json!("pod"), &json!("60m"), &json!(7)));
}

#[test]
fn fallback_and_roles_print_name_and_created_at() {
    for (group, plural) in [("rbac.authorization.k8s.io", "roles"), ("", "limitranges"), ("", "bindings")] {
        let table = build_table(
            info(group, plural),
            &[&json!({"metadata": {"name": "r", "creationTimestamp": "2024-04-30T10:00:00.5+02:00"}})],
            json!({}),
            &opts(),
        );
        assert_eq!(
            table["columnDefinitions"],
            json!([
                {"name": "Name", "type": "string", "format": "name",
                 "description": "Name of the object, unique within its namespace.", "priority": 0},
                {"name": "Created At", "type": "date", "format": "",
                 "description": "When the object was created, in UTC.", "priority": 0}
            ]),
            "{group}/{plural}"
        );
        assert_eq!(table["rows"][0]["cells"], json!(["r", "2024-04-30T08:00:00Z"]));
    }
}

#[test]
fn jobs_and_cron_jobs() {
    assert_eq!(
        column_names("batch", "jobs"),
        ["Name", "Status", "Completions", "Duration", "Age", "Containers", "Images", "Selector"]
    );
    assert_eq!(
        column_names("batch", "cronjobs"),
        [
            "Name",
            "Schedule",
            "Timezone",
            "Suspend",
            "Active",
            "Last Schedule",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
    let job = |spec: Value, status: Value| json!({"metadata": {"name": "j", "creationTimestamp": ago(600)}, "spec": spec, "status": status});
    let cases = [
        (job(json!({"completions": 3}), json!({"succeeded": 1, "startTime": ago(125)})), "Running", "1/3", "2m5s"),
        (job(json!({"parallelism": 2}), json!({})), "Running", "0/1 of 2", ""),
        (
            job(
                json!({"completions": 1}),
                json!({"succeeded": 1, "startTime": ago(600), "completionTime": ago(590),
                "conditions": [{"type": "Complete", "status": "True"}]}),
            ),
            "Complete",
            "1/1",
            "10s",
        ),
        (job(json!({}), json!({"conditions": [{"type": "Failed", "status": "True"}]})), "Failed", "0/1", ""),
        (job(json!({}), json!({"conditions": [{"type": "Suspended", "status": "True"}]})), "Suspended", "0/1", ""),
    ];
    for (job, status, completions, duration) in cases {
        let row = cells("batch", "jobs", job);
        assert_eq!((&row[1], &row[2], &row[3]), (&json!(status), &json!(completions), &json!(duration)));
    }

    let cron = json!({
        "metadata": {"name": "nightly", "creationTimestamp": ago(86400)},
        "spec": {"schedule": "0 3 * * *", "suspend": false,
                 "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}},
        "status": {"active": [{"name": "nightly-1"}], "lastScheduleTime": ago(3600)}
    });
    assert_eq!(
        cells("batch", "cronjobs", cron),
        [
            json!("nightly"),
            json!("0 3 * * *"),
            json!("<none>"),
            json!("False"),
            json!(1),
            json!("60m"),
            json!("24h"),
            json!("c"),
            json!("busybox"),
            json!("<none>")
        ]
    );
}

#[test]
fn assorted_resources() {
    let cases: Vec<(&str, &str, Value, Vec<Value>)> = vec![
        (
            "",
            "configmaps",
            json!({"metadata": {"name": "cm"}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": ""}}),
            vec![json!("cm"), json!(3), json!("<unknown>")],
        ),
        (
            "",
            "secrets",
            json!({"metadata": {"name": "s"}, "type": "Opaque", "data": {"k": "dg=="}}),
            vec![json!("s"), json!("Opaque"), json!(1), json!("<unknown>")],
        ),
        (
            "apps",
            "statefulsets",
            json!({"metadata": {"name": "db"}, "spec": {"replicas": 3}, "status": {"readyReplicas": 1}}),
            vec![json!("db"), json!("1/3"), json!("<unknown>"), json!(""), json!("")],
        ),
        (
            "rbac.authorization.k8s.io",
            "clusterrolebindings",
            json!({"metadata": {"name": "b"}, "roleRef": {"kind": "ClusterRole", "name": "view"},
                   "subjects": [{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "devs"},
                                {"kind": "ServiceAccount", "namespace": "ci", "name": "bot"}, {"kind": "User", "name": "bob"}]}),
            vec![
                json!("b"),
                json!("ClusterRole/view"),
                json!("<unknown>"),
                json!("alice, bob"),
                json!("devs"),
                json!("ci/bot"),
            ],
        ),
        (
            "coordination.k8s.io",
            "leases",
            json!({"metadata": {"name": "l"}, "spec": {"holderIdentity": "node-a"}}),
            vec![json!("l"), json!("node-a"), json!("<unknown>")],
        ),
        (
            "policy",
            "poddisruptionbudgets",
            json!({"metadata": {"name": "p"}, "spec": {"minAvailable": "50%"}, "status": {"disruptionsAllowed": 1}}),
            vec![json!("p"), json!("50%"), json!("N/A"), json!(1), json!("<unknown>")],
        ),
        (
            "",
            "resourcequotas",
            json!({"metadata": {"name": "q"}, "status": {"hard": {"pods": "10", "limits.cpu": "4", "requests.cpu": "2"},
                                                        "used": {"pods": "3", "requests.cpu": "500m"}}}),
            vec![json!("q"), json!("pods: 3/10, requests.cpu: 500m/2"), json!("limits.cpu: 0/4"), json!("<unknown>")],
        ),
        (
            "",
            "persistentvolumeclaims",
            json!({"metadata": {"name": "data"}, "spec": {"volumeName": "pv1", "storageClassName": "fast"},
                   "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce"]}}),
            vec![
                json!("data"),
                json!("Bound"),
                json!("pv1"),
                json!("1Gi"),
                json!("RWO,RWX"),
                json!("fast"),
                json!("<unset>"),
                json!("<unknown>"),
                json!("<unset>"),
            ],
        ),
        (
            "networking.k8s.io",
            "ingresses",
            json!({"metadata": {"name": "i"}, "spec": {"ingressClassName": "nginx", "tls": [{}],
                   "rules": [{"host": "a"}, {"host": "b"}, {}, {"host": "d"}, {"host": "e"}]},
                   "status": {"loadBalancer": {"ingress": [{"ip": "9.9.9.9"}]}}}),
            vec![
                json!("i"),
                json!("nginx"),
                json!("a,b,d + 2 more..."),
                json!("9.9.9.9"),
                json!("80, 443"),
                json!("<unknown>"),
            ],
        ),
        (
            "autoscaling",
            "horizontalpodautoscalers",
            json!({"metadata": {"name": "h"}, "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 5,
                   "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]},
                   "status": {"currentReplicas": 2, "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 35}}}]}}),
            vec![
                json!("h"),
                json!("Deployment/web"),
                json!("cpu: 35%/80%"),
                json!("<unset>"),
                json!(5),
                json!(2),
                json!("<unknown>"),
            ],
        ),
        (
            "storage.k8s.io",
            "storageclasses",
            json!({"metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
                   "provisioner": "rancher.io/local-path", "volumeBindingMode": "WaitForFirstConsumer"}),
            vec![
                json!("standard (default)"),
                json!("rancher.io/local-path"),
                json!("Delete"),
                json!("WaitForFirstConsumer"),
                json!(false),
                json!("<unknown>"),
            ],
        ),
        (
            "apps",
            "controllerrevisions",
            json!({"metadata": {"name": "web-5d4f", "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "web", "controller": true}]}, "revision": 2}),
            vec![json!("web-5d4f"), json!("daemonset.apps/web"), json!(2), json!("<unknown>")],
        ),
        (
            "discovery.k8s.io",
            "endpointslices",
            json!({"metadata": {"name": "s"}, "addressType": "IPv4", "ports": [{"port": 80}, {"name": "dns"}],
                   "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}]}),
            vec![json!("s"), json!("IPv4"), json!("80,dns"), json!("10.0.0.1,10.0.0.2"), json!("<unknown>")],
        ),
    ];
    for (group, plural, obj, want) in cases {
        assert_eq!(cells(group, plural, obj), want, "{group}/{plural}");
    }
}
