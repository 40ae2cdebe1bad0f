use serde_json::json;

use super::*;

fn pod(spec: serde_json::Value) -> (ObjectMeta, PodSpec) {
    (ObjectMeta::default(), serde_json::from_value(spec).expect("pod spec"))
}

fn message(level: Level, minor: u32, spec: serde_json::Value) -> String {
    let (meta, spec) = pod(spec);
    detail(&evaluate(level, minor, &meta, &spec))
}

#[test]
fn a_plain_pod_passes_baseline_but_not_restricted() {
    let spec = json!({"containers": [{"name": "c", "image": "busybox"}]});
    assert_eq!(message(Level::Baseline, MAX_MINOR, spec.clone()), "");
    assert_eq!(
        message(Level::Restricted, MAX_MINOR, spec),
        "allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false), \
         unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"]), \
         runAsNonRoot != true (pod or container \"c\" must set securityContext.runAsNonRoot=true), \
         seccompProfile (pod or container \"c\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
    );
}

#[test]
fn a_hardened_pod_passes_restricted() {
    let spec = json!({
        "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{"name": "c", "image": "busybox", "securityContext": {
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}
        }}],
        "volumes": [{"name": "v", "emptyDir": {}}, {"name": "s", "secret": {"secretName": "x"}}]
    });
    assert_eq!(message(Level::Restricted, MAX_MINOR, spec), "");
}

#[test]
fn baseline_violations_in_upstream_order_and_words() {
    let spec = json!({
        "hostNetwork": true,
        "hostPID": true,
        "securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}, {"name": "net.ipv4.tcp_syncookies", "value": "1"}]},
        "initContainers": [{"name": "init", "image": "b", "securityContext": {"privileged": true}}],
        "containers": [
            {"name": "a", "image": "b", "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 9, "hostPort": 80}],
             "securityContext": {"privileged": true, "capabilities": {"add": ["SYS_ADMIN", "CHOWN", "NET_ADMIN"]}}},
            {"name": "b", "image": "b", "securityContext": {"procMount": "Unmasked", "seccompProfile": {"type": "Unconfined"}}}
        ],
        "volumes": [{"name": "host", "hostPath": {"path": "/"}}]
    });
    assert_eq!(
        message(Level::Baseline, MAX_MINOR, spec),
        "non-default capabilities (container \"a\" must not include \"NET_ADMIN\", \"SYS_ADMIN\" in securityContext.capabilities.add), \
         host namespaces (hostNetwork=true, hostPID=true), \
         hostPath volumes (volume \"host\"), \
         hostPort (container \"a\" uses hostPorts 80, 8080), \
         privileged (containers \"init\", \"a\" must not set securityContext.privileged=true), \
         procMount (container \"b\" must not set securityContext.procMount to \"Unmasked\"), \
         seccompProfile (container \"b\" must not set securityContext.seccompProfile.type to \"Unconfined\"), \
         forbidden sysctls (kernel.msgmax)"
    );
}

#[test]
fn restricted_replaces_the_baseline_checks_it_overrides() {
    let spec = json!({
        "securityContext": {"runAsNonRoot": true, "runAsUser": 0, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{"name": "c", "image": "b", "securityContext": {
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"], "add": ["SYS_TIME"]}
        }}],
        "volumes": [{"name": "h", "hostPath": {"path": "/"}}, {"name": "n", "nfs": {"server": "s", "path": "/"}}]
    });
    assert_eq!(
        message(Level::Restricted, MAX_MINOR, spec),
        "unrestricted capabilities (container \"c\" must not include \"SYS_TIME\" in securityContext.capabilities.add), \
         restricted volume types (volumes \"h\", \"n\" use restricted volume types \"hostPath\", \"nfs\"), \
         runAsUser=0 (pod must not set runAsUser=0)"
    );
}

#[test]
fn older_policy_versions_use_older_checks() {
    // Before 1.22 the restricted level had no drop-ALL rule, only the baseline capabilities
    // check; before 1.23 runAsUser=0 was allowed; before 1.8 privilege escalation was not checked.
    let spec = json!({
        "securityContext": {"runAsNonRoot": true, "runAsUser": 0, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{"name": "c", "image": "b", "securityContext": {"allowPrivilegeEscalation": false}}]
    });
    assert_eq!(message(Level::Restricted, 21, spec.clone()), "");
    assert_eq!(
        message(Level::Restricted, 22, spec.clone()),
        "unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"])"
    );
    assert!(message(Level::Restricted, 23, spec).ends_with("runAsUser=0 (pod must not set runAsUser=0)"));
    // Versions newer than the server evaluate as the newest it knows.
    let sysctl =
        json!({"securityContext": {"sysctls": [{"name": "net.ipv4.tcp_rmem", "value": "1"}]}, "containers": []});
    assert_eq!(message(Level::Baseline, 31, sysctl.clone()), "forbidden sysctls (net.ipv4.tcp_rmem)");
    assert_eq!(message(Level::Baseline, 99, sysctl), "");
}

#[test]
fn seccomp_annotations_are_judged_before_1_19() {
    let annotations = [("seccomp.security.alpha.kubernetes.io/pod".to_string(), "unconfined".to_string())];
    let meta = ObjectMeta { annotations: Some(annotations.into_iter().collect()), ..Default::default() };
    let (_, spec) = pod(json!({"containers": [{"name": "c", "image": "b"}]}));
    assert_eq!(
        detail(&evaluate(Level::Baseline, 18, &meta, &spec)),
        "seccompProfile (forbidden annotation seccomp.security.alpha.kubernetes.io/pod=\"unconfined\")"
    );
    assert!(evaluate(Level::Baseline, 19, &meta, &spec).is_empty());
}

#[test]
fn explicit_false_settings_are_named() {
    let spec = json!({
        "securityContext": {"runAsNonRoot": false, "seLinuxOptions": {"type": "spc_t", "user": "root"}},
        "containers": [{"name": "c", "image": "b", "securityContext": {"runAsNonRoot": false, "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}}}]
    });
    assert_eq!(
        message(Level::Restricted, MAX_MINOR, spec),
        "seLinuxOptions (pod set forbidden securityContext.seLinuxOptions: type \"spc_t\"; user may not be set), \
         runAsNonRoot != true (pod and container \"c\" must not set securityContext.runAsNonRoot=false)"
    );
}

#[test]
fn windows_pods_skip_linux_only_restricted_checks_from_1_25() {
    let spec = json!({"os": {"name": "windows"}, "securityContext": {"runAsNonRoot": true},
        "containers": [{"name": "c", "image": "b"}]});
    assert_eq!(message(Level::Restricted, 25, spec.clone()), "");
    assert!(message(Level::Restricted, 24, spec).starts_with("allowPrivilegeEscalation != false"));
}
