//! Pod spec defaults (upstream `SetDefaults_PodSpec`, `SetDefaults_Container`, …), the Pod and
//! PodTemplate hooks, and the QoS class computation.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, EnvVar, HTTPGetAction, Lifecycle, LifecycleHandler, ObjectFieldSelector, Pod, PodCondition,
    PodSecurityContext, PodSpec, PodStatus, PodTemplate, PodTemplateSpec, Probe, Volume,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;

use super::{or_set, or_str};
use crate::kinds::{Defaulting, Strategy};
use crate::quantity::Quantity;

/// Mode bits upstream gives projected files when none is set (`0644`).
const DEFAULT_MODE: i32 = 0o644;

/// Applies the defaults every pod spec gets, in pods and in templates alike.
pub fn default_pod_spec(spec: &mut PodSpec) {
    or_str(&mut spec.dns_policy, "ClusterFirst");
    or_str(&mut spec.restart_policy, "Always");
    or_set(&mut spec.termination_grace_period_seconds, 30);
    or_str(&mut spec.scheduler_name, "default-scheduler");
    or_set(&mut spec.security_context, PodSecurityContext::default());
    let host_network = spec.host_network == Some(true);
    for c in spec.containers.iter_mut().chain(spec.init_containers.iter_mut().flatten()) {
        default_container(c, host_network);
    }
    for v in spec.volumes.iter_mut().flatten() {
        default_volume(v);
    }
}

/// Applies [`default_pod_spec`] to a template's spec, if it has one.
pub fn default_pod_template(template: &mut PodTemplateSpec) {
    if let Some(spec) = template.spec.as_mut() {
        default_pod_spec(spec);
    }
}

fn default_container(c: &mut Container, host_network: bool) {
    if c.image_pull_policy.as_deref().is_none_or(str::is_empty) {
        let policy =
            if image_tag(c.image.as_deref().unwrap_or_default()) == Some("latest") { "Always" } else { "IfNotPresent" };
        c.image_pull_policy = Some(policy.to_string());
    }
    or_str(&mut c.termination_message_path, "/dev/termination-log");
    or_str(&mut c.termination_message_policy, "File");
    for p in c.ports.iter_mut().flatten() {
        or_str(&mut p.protocol, "TCP");
        if host_network && p.host_port.unwrap_or(0) == 0 {
            p.host_port = Some(p.container_port);
        }
    }
    for probe in [&mut c.liveness_probe, &mut c.readiness_probe, &mut c.startup_probe].into_iter().flatten() {
        default_probe(probe);
    }
    if let Some(lc) = c.lifecycle.as_mut() {
        default_lifecycle(lc);
    }
    for e in c.env.iter_mut().flatten() {
        default_env(e);
    }
}

/// The tag of an image reference: `latest` when there is neither tag nor digest, `None` when
/// only a digest pins it.
fn image_tag(image: &str) -> Option<&str> {
    let (name, digest) = match image.split_once('@') {
        Some((n, _)) => (n, true),
        None => (image, false),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.split_once(':') {
        Some((_, tag)) => Some(tag),
        None if digest => None,
        None => Some("latest"),
    }
}

fn default_probe(p: &mut Probe) {
    or_set(&mut p.timeout_seconds, 1);
    or_set(&mut p.period_seconds, 10);
    or_set(&mut p.success_threshold, 1);
    or_set(&mut p.failure_threshold, 3);
    if let Some(h) = p.http_get.as_mut() {
        default_http_get(h);
    }
}

fn default_http_get(h: &mut HTTPGetAction) {
    or_str(&mut h.path, "/");
    or_str(&mut h.scheme, "HTTP");
}

fn default_lifecycle(lc: &mut Lifecycle) {
    for h in [&mut lc.post_start, &mut lc.pre_stop].into_iter().flatten() {
        default_handler(h);
    }
}

fn default_handler(h: &mut LifecycleHandler) {
    if let Some(g) = h.http_get.as_mut() {
        default_http_get(g);
    }
}

fn default_field_ref(f: &mut ObjectFieldSelector) {
    or_str(&mut f.api_version, "v1");
}

fn default_env(e: &mut EnvVar) {
    if let Some(f) = e.value_from.as_mut().and_then(|v| v.field_ref.as_mut()) {
        default_field_ref(f);
    }
}

fn default_volume(v: &mut Volume) {
    let has_source = serde_json::to_value(&*v)
        .ok()
        .and_then(|j| j.as_object().map(|o| o.keys().any(|k| k != "name")))
        .unwrap_or(true);
    if !has_source {
        v.empty_dir = Some(Default::default());
    }
    if let Some(s) = v.secret.as_mut() {
        or_set(&mut s.default_mode, DEFAULT_MODE);
    }
    if let Some(s) = v.config_map.as_mut() {
        or_set(&mut s.default_mode, DEFAULT_MODE);
    }
    if let Some(s) = v.downward_api.as_mut() {
        or_set(&mut s.default_mode, DEFAULT_MODE);
        for item in s.items.iter_mut().flatten() {
            if let Some(f) = item.field_ref.as_mut() {
                default_field_ref(f);
            }
        }
    }
    if let Some(s) = v.projected.as_mut() {
        or_set(&mut s.default_mode, DEFAULT_MODE);
        for src in s.sources.iter_mut().flatten() {
            for item in src.downward_api.iter_mut().flat_map(|d| d.items.iter_mut().flatten()) {
                if let Some(f) = item.field_ref.as_mut() {
                    default_field_ref(f);
                }
            }
            if let Some(t) = src.service_account_token.as_mut() {
                or_set(&mut t.expiration_seconds, 3600);
            }
        }
    }
    if let Some(h) = v.host_path.as_mut() {
        or_set(&mut h.type_, String::new());
    }
}

/// Copies each limit into the requests when that request is missing (upstream `SetDefaults_Pod`).
fn default_requests_from_limits(c: &mut Container) {
    let Some(res) = c.resources.as_mut() else {
        return;
    };
    let Some(limits) = res.limits.as_ref().filter(|l| !l.is_empty()) else {
        return;
    };
    let requests = res.requests.get_or_insert_with(BTreeMap::new);
    for (k, v) in limits {
        requests.entry(k.clone()).or_insert_with(|| v.clone());
    }
}

/// The QoS class of a pod (upstream `ComputePodQOS`): `Guaranteed` when every container (init
/// containers included) sets equal CPU and memory requests and limits, `BestEffort` when none
/// sets any CPU or memory request or limit, `Burstable` otherwise.
pub fn pod_qos_class(spec: &PodSpec) -> &'static str {
    let mut requests: BTreeMap<&str, Quantity> = BTreeMap::new();
    let mut limits: BTreeMap<&str, Quantity> = BTreeMap::new();
    let mut guaranteed = true;
    fn add<'a>(sum: &mut BTreeMap<&'a str, Quantity>, list: Option<&'a BTreeMap<String, K8sQuantity>>) -> usize {
        let mut found = 0;
        for (name, q) in list.into_iter().flatten() {
            if name != "cpu" && name != "memory" {
                continue;
            }
            let Ok(q) = Quantity::parse(&q.0) else {
                continue;
            };
            if q > Quantity::ZERO {
                found += 1;
                let e = sum.entry(name.as_str()).or_insert(Quantity::ZERO);
                *e = e.add(q);
            }
        }
        found
    }
    for c in spec.containers.iter().chain(spec.init_containers.iter().flatten()) {
        let res = c.resources.as_ref();
        add(&mut requests, res.and_then(|r| r.requests.as_ref()));
        if add(&mut limits, res.and_then(|r| r.limits.as_ref())) < 2 {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if guaranteed && requests.len() == limits.len() && requests.iter().all(|(k, v)| limits.get(k) == Some(v)) {
        return "Guaranteed";
    }
    "Burstable"
}

/// The defaults a pod gets from decoding alone (upstream's scheme defaults and the v1
/// `serviceAccount`/`serviceAccountName` conversion), without admission: what the kubelet applies
/// to a static pod read from a file.
pub fn default_pod(pod: &mut Pod) {
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    for c in spec.containers.iter_mut().chain(spec.init_containers.iter_mut().flatten()) {
        default_requests_from_limits(c);
    }
    or_set(&mut spec.enable_service_links, true);
    if spec.service_account_name.as_deref().is_none_or(str::is_empty) && spec.service_account.is_some() {
        spec.service_account_name.clone_from(&spec.service_account);
    }
    spec.service_account.clone_from(&spec.service_account_name);
    default_pod_spec(spec);
}

impl Defaulting for Pod {
    fn set_defaults(&mut self) {
        default_pod(self);
        // What the ServiceAccount admission plugin does for every pod but mirror pods (their spec
        // must stay the static pod's; `crate::mirror::admit` refuses them a service account).
        if crate::mirror::is_mirror(self) {
            return;
        }
        let Some(spec) = self.spec.as_mut() else {
            return;
        };
        if spec.service_account_name.as_deref().is_none_or(str::is_empty) {
            spec.service_account_name = Some("default".to_string());
        }
        spec.service_account.clone_from(&spec.service_account_name);
    }
}

impl Strategy for Pod {
    fn admit_create(&self) -> Result<(), String> {
        if crate::mirror::is_mirror(self) {
            crate::mirror::admit(self).map_err(str::to_string)?;
        }
        Ok(())
    }

    fn prepare_for_create(&mut self) {
        let qos = self.spec.as_ref().map(pod_qos_class).unwrap_or("BestEffort");
        let gated = self.spec.as_ref().and_then(|s| s.scheduling_gates.as_ref()).is_some_and(|g| !g.is_empty());
        // Upstream `applySchedulingGatedCondition`.
        let conditions = gated.then(|| {
            vec![PodCondition {
                type_: "PodScheduled".to_string(),
                status: "False".to_string(),
                reason: Some("SchedulingGated".to_string()),
                message: Some("Scheduling is blocked due to non-empty scheduling gates".to_string()),
                ..Default::default()
            }]
        });
        self.status = Some(PodStatus {
            phase: Some("Pending".to_string()),
            qos_class: Some(qos.to_string()),
            conditions,
            ..Default::default()
        });
    }
}

impl Defaulting for PodTemplate {
    fn set_defaults(&mut self) {
        if let Some(t) = self.template.as_mut() {
            default_pod_template(t);
        }
    }
}

impl Strategy for PodTemplate {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).expect("valid pod")
    }

    #[test]
    fn pod_defaults_match_upstream() {
        let mut p = pod(json!({"metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "c", "image": "nginx",
                "ports": [{"containerPort": 80}],
                "livenessProbe": {"httpGet": {"port": 80}},
                "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                "resources": {"limits": {"cpu": "1"}}}],
            "volumes": [{"name": "v"}, {"name": "s", "secret": {"secretName": "x"}}]}}));
        p.set_defaults();
        let s = serde_json::to_value(&p.spec).expect("serialise");
        assert_eq!(s["restartPolicy"], "Always");
        assert_eq!(s["dnsPolicy"], "ClusterFirst");
        assert_eq!(s["schedulerName"], "default-scheduler");
        assert_eq!(s["terminationGracePeriodSeconds"], 30);
        assert_eq!(s["securityContext"], json!({}));
        assert_eq!(s["enableServiceLinks"], true);
        assert_eq!(s["serviceAccountName"], "default");
        assert_eq!(s["serviceAccount"], "default");
        let c = &s["containers"][0];
        assert_eq!(c["imagePullPolicy"], "Always");
        assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(c["terminationMessagePolicy"], "File");
        assert_eq!(c["ports"][0]["protocol"], "TCP");
        assert_eq!(
            c["livenessProbe"],
            json!({"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
                "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
        );
        assert_eq!(c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
        assert_eq!(c["resources"]["requests"]["cpu"], "1");
        assert_eq!(s["volumes"][0]["emptyDir"], json!({}));
        assert_eq!(s["volumes"][1]["secret"]["defaultMode"], 420);
        let again = p.clone();
        p.set_defaults();
        assert_eq!(p, again, "defaulting is idempotent");
    }

    #[test]
    fn image_pull_policy_follows_the_tag() {
        for (image, want) in [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("nginx:1.25", "IfNotPresent"),
            ("registry:5000/nginx", "Always"),
            ("registry:5000/nginx:1", "IfNotPresent"),
            ("nginx@sha256:abcd", "IfNotPresent"),
            ("nginx:latest@sha256:abcd", "Always"),
        ] {
            let mut c = Container { name: "c".into(), image: Some(image.into()), ..Default::default() };
            default_container(&mut c, false);
            assert_eq!(c.image_pull_policy.as_deref(), Some(want), "{image}");
        }
    }

    #[test]
    fn qos_classes() {
        let res = |v: serde_json::Value| -> PodSpec {
            serde_json::from_value(json!({"containers": [{"name": "a", "resources": v}]})).expect("spec")
        };
        let cases = [
            (json!({}), "BestEffort"),
            (json!({"requests": {"ephemeral-storage": "1Gi"}}), "BestEffort"),
            (json!({"requests": {"cpu": "100m"}}), "Burstable"),
            (json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}}), "Guaranteed"),
            (
                json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m", "memory": "1Gi"}}),
                "Burstable",
            ),
            (json!({"limits": {"cpu": "1"}, "requests": {"cpu": "1"}}), "Burstable"),
        ];
        for (r, want) in cases {
            assert_eq!(pod_qos_class(&res(r.clone())), want, "{r}");
        }
        let with_init: PodSpec = serde_json::from_value(json!({
            "containers": [{"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}}}],
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "1"}}}]
        }))
        .expect("spec");
        assert_eq!(pod_qos_class(&with_init), "Burstable");
    }

    #[test]
    fn pod_create_resets_status_with_qos() {
        let mut p = pod(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c",
            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1"}}));
        p.set_defaults();
        p.prepare_for_create();
        let st = p.status.expect("status");
        assert_eq!(st.phase.as_deref(), Some("Pending"));
        assert_eq!(st.qos_class.as_deref(), Some("Guaranteed"));
        assert_eq!(st.pod_ip, None);
    }

    #[test]
    fn templates_get_pod_spec_defaults_but_not_pod_only_ones() {
        let mut t: PodTemplate = serde_json::from_value(
            json!({"metadata": {"name": "t"}, "template": {"spec": {"containers": [{"name": "c", "image": "x:1"}]}}}),
        )
        .expect("template");
        t.set_defaults();
        let spec = t.template.and_then(|t| t.spec).expect("spec");
        assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
        assert_eq!(spec.containers[0].image_pull_policy.as_deref(), Some("IfNotPresent"));
        assert_eq!(spec.service_account_name, None);
        assert_eq!(spec.enable_service_links, None);
    }

    #[test]
    fn gated_pods_are_created_with_the_scheduling_gated_condition() {
        let mut p = pod(json!({"spec": {"containers": [{"name": "c"}], "schedulingGates": [{"name": "g"}]}}));
        p.prepare_for_create();
        let c = &p.status.as_ref().and_then(|s| s.conditions.as_ref()).expect("conditions")[0];
        assert_eq!(
            (c.type_.as_str(), c.status.as_str(), c.reason.as_deref()),
            ("PodScheduled", "False", Some("SchedulingGated"))
        );
        assert_eq!(c.message.as_deref(), Some("Scheduling is blocked due to non-empty scheduling gates"));
        let mut plain = pod(json!({"spec": {"containers": [{"name": "c"}]}}));
        plain.prepare_for_create();
        assert!(plain.status.and_then(|s| s.conditions).is_none());
    }
}
