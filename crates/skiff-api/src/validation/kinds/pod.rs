//! Pod and pod-template validation (upstream `ValidatePodSpec`, `ValidatePodUpdate`,
//! `ValidatePodTemplateSpec`).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    Container, EnvVar, Pod, PodSpec, PodTemplate, PodTemplateSpec, Probe, ResourceRequirements, Toleration, Volume,
};

use super::common::{
    dns_label, dns_subdomain, each, ip, json, nonneg, port_num, port_num_or_name, qualified_name, quantity,
    resource_list, supported, supported_opt,
};
use crate::kinds::Validation;
use crate::validation::names::{self, validate_annotations, validate_labels};
use crate::validation::{ErrorList, FieldError, child, index, key};

/// Fields of a pod spec that an update may change.
const UPDATABLE_POD_SPEC_FIELDS: &[&str] = &[
    "`spec.containers[*].image`",
    "`spec.initContainers[*].image`",
    "`spec.activeDeadlineSeconds`",
    "`spec.tolerations` (only additions to existing tolerations)",
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
];

/// Validates a pod spec at `path` (usually `spec` or `spec.template.spec`).
pub fn validate_pod_spec(spec: &PodSpec, path: &str) -> ErrorList {
    let mut errs = ErrorList::new();
    let volumes = validate_volumes(&mut errs, spec.volumes.as_deref().unwrap_or_default(), &child(path, "volumes"));
    let mut names = BTreeSet::new();
    let cpath = child(path, "containers");
    if spec.containers.is_empty() {
        errs.push(FieldError::required(&cpath, ""));
    }
    let host_network = spec.host_network == Some(true);
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        let p = index(&child(path, "initContainers"), i);
        validate_container(&mut errs, c, &p, &volumes, &mut names, host_network, true);
    }
    for (i, c) in spec.containers.iter().enumerate() {
        validate_container(&mut errs, c, &index(&cpath, i), &volumes, &mut names, host_network, false);
    }
    match spec.restart_policy.as_deref() {
        None | Some("") => errs.push(FieldError::required(child(path, "restartPolicy"), "")),
        Some(v) => supported(&mut errs, &child(path, "restartPolicy"), v, &["Always", "OnFailure", "Never"]),
    }
    let dns_path = child(path, "dnsPolicy");
    match spec.dns_policy.as_deref() {
        None | Some("") => errs.push(FieldError::required(&dns_path, "")),
        Some(v) => supported(&mut errs, &dns_path, v, &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"]),
    }
    if spec.dns_policy.as_deref() == Some("None")
        && spec.dns_config.as_ref().is_none_or(|c| c.nameservers.as_ref().is_none_or(Vec::is_empty))
    {
        errs.push(FieldError::required(
            child(&child(path, "dnsConfig"), "nameservers"),
            "must provide at least one DNS nameserver when `dnsPolicy` is None",
        ));
    }
    if let Some(t) = spec.termination_grace_period_seconds {
        nonneg(&mut errs, &child(path, "terminationGracePeriodSeconds"), t);
    }
    if let Some(a) = spec.active_deadline_seconds
        && !(1..=i64::from(i32::MAX)).contains(&a)
    {
        errs.push(FieldError::invalid(
            child(path, "activeDeadlineSeconds"),
            a,
            "must be between 1 and 2147483647, inclusive",
        ));
    }
    if let Some(sel) = &spec.node_selector {
        errs.extend(validate_labels(sel, &child(path, "nodeSelector")));
    }
    validate_tolerations(&mut errs, spec.tolerations.as_deref().unwrap_or_default(), &child(path, "tolerations"));
    if let Some(h) = spec.hostname.as_deref().filter(|h| !h.is_empty()) {
        dns_label(&mut errs, &child(path, "hostname"), h);
    }
    if let Some(s) = spec.subdomain.as_deref().filter(|s| !s.is_empty()) {
        dns_label(&mut errs, &child(path, "subdomain"), s);
    }
    if let Some(sa) = spec.service_account_name.as_deref().filter(|s| !s.is_empty()) {
        dns_subdomain(&mut errs, &child(path, "serviceAccountName"), sa);
    }
    if let Some(n) = spec.node_name.as_deref().filter(|s| !s.is_empty()) {
        dns_subdomain(&mut errs, &child(path, "nodeName"), n);
    }
    if let Some(pc) = spec.priority_class_name.as_deref().filter(|s| !s.is_empty()) {
        dns_subdomain(&mut errs, &child(path, "priorityClassName"), pc);
    }
    for (i, s) in spec.image_pull_secrets.iter().flatten().enumerate() {
        let p = child(&index(&child(path, "imagePullSecrets"), i), "name");
        match s.name.as_str() {
            "" => errs.push(FieldError::required(p, "")),
            n => dns_subdomain(&mut errs, &p, n),
        }
    }
    supported_opt(
        &mut errs,
        &child(path, "preemptionPolicy"),
        spec.preemption_policy.as_deref(),
        &["PreemptLowerPriority", "Never"],
    );
    errs
}

/// Validates volumes; returns their names for mount checks.
fn validate_volumes(errs: &mut ErrorList, volumes: &[Volume], path: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, v) in volumes.iter().enumerate() {
        let p = index(path, i);
        let np = child(&p, "name");
        if v.name.is_empty() {
            errs.push(FieldError::required(&np, ""));
        } else {
            dns_label(errs, &np, &v.name);
        }
        if !v.name.is_empty() && !names.insert(v.name.clone()) {
            errs.push(FieldError::duplicate(&np, v.name.as_str()));
        }
        let sources: Vec<String> = match json(v) {
            serde_json::Value::Object(o) => o.into_iter().map(|(k, _)| k).filter(|k| k != "name").collect(),
            _ => Vec::new(),
        };
        match sources.as_slice() {
            [] => errs.push(FieldError::required(&p, "must specify a volume type")),
            [_] => {}
            [_, rest @ ..] => {
                for s in rest {
                    errs.push(FieldError::forbidden(child(&p, s), "may not specify more than 1 volume type"));
                }
            }
        }
        if let Some(s) = &v.secret {
            let sp = child(&child(&p, "secret"), "secretName");
            match s.secret_name.as_deref() {
                None | Some("") => errs.push(FieldError::required(sp, "")),
                Some(n) => dns_subdomain(errs, &sp, n),
            }
        }
        if let Some(c) = &v.config_map {
            let cp = child(&child(&p, "configMap"), "name");
            if c.name.is_empty() {
                errs.push(FieldError::required(cp, ""));
            }
        }
        if let Some(c) = &v.persistent_volume_claim
            && c.claim_name.is_empty()
        {
            errs.push(FieldError::required(child(&child(&p, "persistentVolumeClaim"), "claimName"), ""));
        }
        if let Some(h) = &v.host_path {
            if h.path.is_empty() {
                errs.push(FieldError::required(child(&child(&p, "hostPath"), "path"), ""));
            }
            supported_opt(
                errs,
                &child(&child(&p, "hostPath"), "type"),
                h.type_.as_deref(),
                &["", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket", "CharDevice", "BlockDevice"],
            );
        }
    }
    names
}

#[allow(clippy::too_many_arguments)]
fn validate_container(
    errs: &mut ErrorList,
    c: &Container,
    path: &str,
    volumes: &BTreeSet<String>,
    names: &mut BTreeSet<String>,
    host_network: bool,
    init: bool,
) {
    let np = child(path, "name");
    if c.name.is_empty() {
        errs.push(FieldError::required(&np, ""));
    } else {
        dns_label(errs, &np, &c.name);
        if !names.insert(c.name.clone()) {
            errs.push(FieldError::duplicate(&np, c.name.as_str()));
        }
    }
    let ip = child(path, "image");
    match c.image.as_deref() {
        None | Some("") => errs.push(FieldError::required(&ip, "")),
        Some(img) if img.trim() != img => {
            errs.push(FieldError::invalid(&ip, img, "must not have leading or trailing whitespace"))
        }
        Some(_) => {}
    }
    supported_opt(
        errs,
        &child(path, "imagePullPolicy"),
        c.image_pull_policy.as_deref(),
        &["Always", "IfNotPresent", "Never"],
    );
    supported_opt(
        errs,
        &child(path, "terminationMessagePolicy"),
        c.termination_message_policy.as_deref(),
        &["File", "FallbackToLogsOnError"],
    );
    let sidecar = init && c.restart_policy.as_deref() == Some("Always");
    if let Some(rp) = c.restart_policy.as_deref() {
        let rpp = child(path, "restartPolicy");
        if init {
            supported(errs, &rpp, rp, &["Always"]);
        } else {
            errs.push(FieldError::forbidden(rpp, "may not be set for non-init containers"));
        }
    }
    validate_ports(errs, c, &child(path, "ports"), host_network);
    for (i, e) in c.env.iter().flatten().enumerate() {
        validate_env(errs, e, &index(&child(path, "env"), i));
    }
    let mut mount_paths = BTreeSet::new();
    for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
        let p = index(&child(path, "volumeMounts"), i);
        if m.name.is_empty() {
            errs.push(FieldError::required(child(&p, "name"), ""));
        } else if !volumes.contains(&m.name) {
            errs.push(FieldError::not_found(child(&p, "name"), m.name.as_str()));
        }
        let mp = child(&p, "mountPath");
        if m.mount_path.is_empty() {
            errs.push(FieldError::required(&mp, ""));
        } else if !mount_paths.insert(m.mount_path.clone()) {
            errs.push(FieldError::invalid(&mp, m.mount_path.as_str(), "must be unique"));
        }
        if let Some(sp) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            let spp = child(&p, "subPath");
            if sp.starts_with('/') {
                errs.push(FieldError::invalid(&spp, sp, "must be a relative path"));
            }
            if sp.split('/').any(|s| s == "..") {
                errs.push(FieldError::invalid(&spp, sp, "must not contain '..'"));
            }
        }
    }
    if let Some(r) = &c.resources {
        validate_resources(errs, r, &child(path, "resources"));
    }
    let probes = [
        ("livenessProbe", &c.liveness_probe, true),
        ("readinessProbe", &c.readiness_probe, false),
        ("startupProbe", &c.startup_probe, true),
    ];
    for (name, probe, must_succeed_once) in probes {
        let Some(probe) = probe else { continue };
        let p = child(path, name);
        if init && !sidecar {
            errs.push(FieldError::forbidden(p, "may not be set for init containers without restartPolicy=Always"));
            continue;
        }
        validate_probe(errs, probe, &p);
        if must_succeed_once && probe.success_threshold.is_some_and(|s| s != 1) {
            errs.push(FieldError::invalid(child(&p, "successThreshold"), probe.success_threshold, "must be 1"));
        }
    }
    if init && !sidecar && c.lifecycle.is_some() {
        errs.push(FieldError::forbidden(
            child(path, "lifecycle"),
            "may not be set for init containers without restartPolicy=Always",
        ));
    }
}

fn validate_ports(errs: &mut ErrorList, c: &Container, path: &str, host_network: bool) {
    let mut port_names = BTreeSet::new();
    for (i, p) in c.ports.iter().flatten().enumerate() {
        let pp = index(path, i);
        if let Some(n) = p.name.as_deref().filter(|n| !n.is_empty()) {
            let np = child(&pp, "name");
            each(errs, &np, n, names::is_valid_port_name(n));
            if !port_names.insert(n.to_string()) {
                errs.push(FieldError::duplicate(&np, n));
            }
        }
        let cp = child(&pp, "containerPort");
        if p.container_port == 0 {
            errs.push(FieldError::required(&cp, ""));
        } else {
            port_num(errs, &cp, p.container_port);
        }
        if let Some(h) = p.host_port.filter(|h| *h != 0) {
            port_num(errs, &child(&pp, "hostPort"), h);
            if host_network && h != p.container_port {
                errs.push(FieldError::invalid(
                    child(&pp, "hostPort"),
                    h,
                    "must match `containerPort` when `hostNetwork` is true",
                ));
            }
        }
        match p.protocol.as_deref() {
            None | Some("") => errs.push(FieldError::required(child(&pp, "protocol"), "")),
            Some(proto) => supported(errs, &child(&pp, "protocol"), proto, &["SCTP", "TCP", "UDP"]),
        }
        if let Some(h) = p.host_ip.as_deref().filter(|h| !h.is_empty()) {
            ip(errs, &child(&pp, "hostIP"), h);
        }
    }
}

fn validate_env(errs: &mut ErrorList, e: &EnvVar, path: &str) {
    let np = child(path, "name");
    if e.name.is_empty() {
        errs.push(FieldError::required(&np, ""));
    } else {
        each(errs, &np, &e.name, names::is_env_var_name(&e.name));
    }
    let Some(from) = &e.value_from else { return };
    let vp = child(path, "valueFrom");
    let n = usize::from(from.field_ref.is_some())
        + usize::from(from.resource_field_ref.is_some())
        + usize::from(from.config_map_key_ref.is_some())
        + usize::from(from.secret_key_ref.is_some());
    if n == 0 {
        errs.push(FieldError::invalid(
            &vp,
            "",
            "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
        ));
    } else if n > 1 {
        errs.push(FieldError::invalid(&vp, "", "may not have more than one field specified at a time"));
    }
    if e.value.as_deref().is_some_and(|v| !v.is_empty()) && n != 0 {
        errs.push(FieldError::invalid(&vp, "", "may not be specified when `value` is not empty"));
    }
    if let Some(f) = &from.field_ref
        && f.field_path.is_empty()
    {
        errs.push(FieldError::required(child(&child(&vp, "fieldRef"), "fieldPath"), ""));
    }
    if let Some(r) = &from.config_map_key_ref {
        let p = child(&vp, "configMapKeyRef");
        if r.key.is_empty() {
            errs.push(FieldError::required(child(&p, "key"), ""));
        }
        if r.name.is_empty() {
            errs.push(FieldError::required(child(&p, "name"), ""));
        }
    }
    if let Some(r) = &from.secret_key_ref {
        let p = child(&vp, "secretKeyRef");
        if r.key.is_empty() {
            errs.push(FieldError::required(child(&p, "key"), ""));
        }
        if r.name.is_empty() {
            errs.push(FieldError::required(child(&p, "name"), ""));
        }
    }
}

/// Validates requests and limits: valid quantities, and each request at most its limit.
pub fn validate_resources(errs: &mut ErrorList, r: &ResourceRequirements, path: &str) {
    let lp = child(path, "limits");
    let rp = child(path, "requests");
    resource_list(errs, &lp, r.limits.as_ref());
    resource_list(errs, &rp, r.requests.as_ref());
    let empty = BTreeMap::new();
    let limits = r.limits.as_ref().unwrap_or(&empty);
    for (name, req) in r.requests.iter().flatten() {
        let Some(lim) = limits.get(name) else {
            continue;
        };
        let mut scratch = ErrorList::new();
        let (Some(rq), Some(lq)) = (quantity(&mut scratch, "", req), quantity(&mut scratch, "", lim)) else {
            continue;
        };
        if rq > lq {
            errs.push(FieldError::invalid(
                key(&rp, name),
                req.0.as_str(),
                format!("must be less than or equal to {name} limit of {}", lim.0),
            ));
        }
    }
}

fn validate_probe(errs: &mut ErrorList, p: &Probe, path: &str) {
    let handlers = [
        ("exec", p.exec.is_some()),
        ("httpGet", p.http_get.is_some()),
        ("tcpSocket", p.tcp_socket.is_some()),
        ("grpc", p.grpc.is_some()),
    ];
    let set: Vec<&str> = handlers.iter().filter(|(_, s)| *s).map(|(n, _)| *n).collect();
    match set.as_slice() {
        [] => errs.push(FieldError::required(path, "must specify a handler type")),
        [_] => {}
        [_, rest @ ..] => {
            for h in rest {
                errs.push(FieldError::forbidden(child(path, h), "may not specify more than 1 handler type"));
            }
        }
    }
    for (name, v) in [
        ("initialDelaySeconds", p.initial_delay_seconds),
        ("timeoutSeconds", p.timeout_seconds),
        ("periodSeconds", p.period_seconds),
        ("successThreshold", p.success_threshold),
        ("failureThreshold", p.failure_threshold),
    ] {
        if let Some(v) = v {
            nonneg(errs, &child(path, name), i64::from(v));
        }
    }
    if let Some(h) = &p.http_get {
        let hp = child(path, "httpGet");
        port_num_or_name(errs, &child(&hp, "port"), &h.port);
        supported_opt(errs, &child(&hp, "scheme"), h.scheme.as_deref(), &["HTTP", "HTTPS"]);
    }
    if let Some(t) = &p.tcp_socket {
        port_num_or_name(errs, &child(&child(path, "tcpSocket"), "port"), &t.port);
    }
    if let Some(g) = &p.grpc {
        port_num(errs, &child(&child(path, "grpc"), "port"), g.port);
    }
}

fn validate_tolerations(errs: &mut ErrorList, tolerations: &[Toleration], path: &str) {
    for (i, t) in tolerations.iter().enumerate() {
        let p = index(path, i);
        let k = t.key.as_deref().unwrap_or_default();
        if !k.is_empty() {
            qualified_name(errs, &child(&p, "key"), k);
        }
        let op = t.operator.as_deref().unwrap_or_default();
        if k.is_empty() && op != "Exists" {
            errs.push(FieldError::invalid(
                child(&p, "operator"),
                op,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        let value = t.value.as_deref().unwrap_or_default();
        match op {
            "" | "Equal" => each(errs, &child(&p, "value"), value, names::is_valid_label_value(value)),
            "Exists" => {
                if !value.is_empty() {
                    errs.push(FieldError::invalid(
                        child(&p, "operator"),
                        json(t),
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(child(&p, "operator"), other, &["Equal", "Exists"])),
        }
        let effect = t.effect.as_deref().unwrap_or_default();
        if !effect.is_empty() {
            supported(errs, &child(&p, "effect"), effect, &["NoSchedule", "PreferNoSchedule", "NoExecute"]);
        }
        if t.toleration_seconds.is_some() && effect != "NoExecute" {
            errs.push(FieldError::invalid(
                child(&p, "effect"),
                effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
    }
}

/// Validates a pod template at `path` (`spec.template`): its labels, annotations and spec.
pub fn validate_pod_template(t: &PodTemplateSpec, path: &str) -> ErrorList {
    let mut errs = ErrorList::new();
    let mp = child(path, "metadata");
    if let Some(m) = &t.metadata {
        if let Some(l) = &m.labels {
            errs.extend(validate_labels(l, &child(&mp, "labels")));
        }
        if let Some(a) = &m.annotations {
            errs.extend(validate_annotations(a, &child(&mp, "annotations")));
        }
    }
    match &t.spec {
        Some(spec) => errs.extend(validate_pod_spec(spec, &child(path, "spec"))),
        None => errs.push(FieldError::required(child(path, "spec"), "")),
    }
    errs
}

/// Top-level fields of two JSON objects that differ, for the pod update message.
fn changed_fields(old: &serde_json::Value, new: &serde_json::Value) -> Vec<String> {
    let (Some(o), Some(n)) = (old.as_object(), new.as_object()) else {
        return Vec::new();
    };
    let keys: BTreeSet<&String> = o.keys().chain(n.keys()).collect();
    keys.into_iter()
        .filter(|k| o.get(*k) != n.get(*k))
        .map(|k| {
            let show = |v: Option<&serde_json::Value>| v.map_or("<unset>".to_string(), ToString::to_string);
            format!("  {k}: {} -> {}", show(o.get(k)), show(n.get(k)))
        })
        .collect()
}

/// The mirror-pod part of upstream's `ValidatePodSpecificAnnotations`: a mirror pod is bound.
fn validate_mirror_annotation(pod: &Pod) -> ErrorList {
    let value = pod.metadata.annotations.as_ref().and_then(|a| a.get(crate::mirror::MIRROR_ANNOTATION));
    let bound = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_some_and(|n| !n.is_empty());
    match value {
        Some(value) if !bound => vec![FieldError::invalid(
            key("metadata.annotations", crate::mirror::MIRROR_ANNOTATION),
            value.as_str(),
            "must set spec.nodeName if mirror pod annotation is set",
        )],
        _ => ErrorList::new(),
    }
}

/// The mirror-pod part of upstream's `ValidatePodSpecificAnnotationUpdates`: the annotation can
/// be neither added, changed nor removed.
fn validate_mirror_annotation_update(new: &Pod, old: &Pod) -> ErrorList {
    let get = |p: &Pod| p.metadata.annotations.as_ref().and_then(|a| a.get(crate::mirror::MIRROR_ANNOTATION)).cloned();
    let path = key("metadata.annotations", crate::mirror::MIRROR_ANNOTATION);
    match (get(old), get(new)) {
        (Some(o), n) if n.as_ref() != Some(&o) => {
            vec![FieldError::forbidden(path, "may not remove or update mirror pod annotation")]
        }
        (None, Some(_)) => vec![FieldError::forbidden(path, "may not add mirror pod annotation")],
        _ => ErrorList::new(),
    }
}

impl Validation for Pod {
    fn validate_create(&self) -> ErrorList {
        let mut errs = validate_mirror_annotation(self);
        match &self.spec {
            Some(spec) => errs.extend(validate_pod_spec(spec, "spec")),
            None => errs.push(FieldError::required("spec", "")),
        }
        errs
    }

    fn validate_update(&self, old: &Self) -> ErrorList {
        let mut errs = validate_mirror_annotation_update(self, old);
        errs.extend(self.validate_create());
        let (Some(new), Some(old)) = (&self.spec, &old.spec) else {
            return errs;
        };
        // Apply every allowed mutation to a copy of the old spec; anything left over is forbidden.
        let mut munged = old.clone();
        if new.containers.len() == munged.containers.len() {
            for (m, n) in munged.containers.iter_mut().zip(&new.containers) {
                m.image.clone_from(&n.image);
            }
        }
        if let (Some(m), Some(n)) = (munged.init_containers.as_mut(), new.init_containers.as_ref())
            && m.len() == n.len()
        {
            for (m, n) in m.iter_mut().zip(n) {
                m.image.clone_from(&n.image);
            }
        }
        munged.active_deadline_seconds = new.active_deadline_seconds;
        munged.termination_grace_period_seconds = new.termination_grace_period_seconds;
        let old_tolerations = old.tolerations.as_deref().unwrap_or_default();
        let new_tolerations = new.tolerations.as_deref().unwrap_or_default();
        if old_tolerations.iter().all(|t| new_tolerations.contains(t)) {
            munged.tolerations.clone_from(&new.tolerations);
        } else {
            errs.push(FieldError::forbidden(
                "spec.tolerations",
                "existing toleration can not be modified except its tolerationSeconds",
            ));
        }
        if let Some(old_deadline) = old.active_deadline_seconds {
            match new.active_deadline_seconds {
                None => errs.push(FieldError::invalid(
                    "spec.activeDeadlineSeconds",
                    serde_json::Value::Null,
                    "must not update from a positive integer to nil value",
                )),
                Some(d) if d > old_deadline => errs.push(FieldError::invalid(
                    "spec.activeDeadlineSeconds",
                    d,
                    "must be less than or equal to previous value",
                )),
                Some(_) => {}
            }
        }
        if &munged != new {
            let diff = changed_fields(&json(&munged), &json(new)).join("\n");
            errs.push(FieldError::forbidden(
                "spec",
                format!("pod updates may not change fields other than {}\n{diff}", UPDATABLE_POD_SPEC_FIELDS.join(",")),
            ));
        }
        errs
    }

    fn validate_status_update(&self, _old: &Self) -> ErrorList {
        let mut errs = ErrorList::new();
        let Some(st) = &self.status else { return errs };
        if let Some(p) = st.pod_ip.as_deref().filter(|p| !p.is_empty()) {
            ip(&mut errs, "status.podIP", p);
        }
        let mut seen = BTreeSet::new();
        for (i, p) in st.pod_ips.iter().flatten().enumerate() {
            let pp = child(&index("status.podIPs", i), "ip");
            ip(&mut errs, &pp, &p.ip);
            if !seen.insert(p.ip.clone()) {
                errs.push(FieldError::duplicate(pp, p.ip.as_str()));
            }
        }
        if let Some(n) = st.nominated_node_name.as_deref().filter(|n| !n.is_empty()) {
            dns_subdomain(&mut errs, "status.nominatedNodeName", n);
        }
        supported_opt(
            &mut errs,
            "status.phase",
            st.phase.as_deref(),
            &["Pending", "Running", "Succeeded", "Failed", "Unknown"],
        );
        errs
    }
}

impl Validation for PodTemplate {
    fn validate_create(&self) -> ErrorList {
        match &self.template {
            Some(t) => validate_pod_template(t, "template"),
            None => vec![FieldError::required("template", "")],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::Defaulting;
    use crate::validation::ErrorKind;
    use serde_json::{Value, json};

    fn base() -> Value {
        json!({"metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "app", "image": "nginx:1",
                "ports": [{"name": "http", "containerPort": 80}],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "1"}},
                "readinessProbe": {"httpGet": {"port": "http"}}}],
            "volumes": [{"name": "data", "emptyDir": {}}]}})
    }

    fn pod(v: Value) -> Pod {
        let mut p: Pod = serde_json::from_value(v).expect("pod");
        p.set_defaults();
        p
    }

    fn set(v: &mut Value, ptr: &str, x: Value) {
        let (parent, last) = ptr.rsplit_once('/').expect("pointer");
        v.pointer_mut(parent).expect("parent")[last] = x;
    }

    #[test]
    fn valid_pod_passes() {
        assert_eq!(pod(base()).validate_create(), ErrorList::new());
    }

    #[test]
    fn mirror_annotation_needs_a_node_and_never_changes() {
        let mut v = base();
        v["metadata"]["annotations"] = json!({"kubernetes.io/config.mirror": "h1"});
        let errs = pod(v.clone()).validate_create();
        assert_eq!(
            errs.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            [
                "metadata.annotations[kubernetes.io/config.mirror]: Invalid value: \"h1\": must set spec.nodeName if mirror pod annotation is set"
            ]
        );
        v["spec"]["nodeName"] = json!("n");
        let mirror = pod(v.clone());
        assert_eq!(mirror.validate_create(), ErrorList::new());
        assert_eq!(mirror.spec.as_ref().and_then(|s| s.service_account_name.as_deref()), None, "no default SA");
        let mut changed = v.clone();
        changed["metadata"]["annotations"] = json!({"kubernetes.io/config.mirror": "h2"});
        let errs = pod(changed).validate_update(&mirror);
        assert_eq!(
            errs[0].to_string(),
            "metadata.annotations[kubernetes.io/config.mirror]: Forbidden: may not remove or update mirror pod annotation"
        );
        let mut plain = v;
        plain["metadata"]["annotations"] = json!({});
        let plain = pod(plain);
        let errs = mirror.validate_update(&plain);
        assert_eq!(
            errs[0].to_string(),
            "metadata.annotations[kubernetes.io/config.mirror]: Forbidden: may not add mirror pod annotation"
        );
    }

    #[test]
    fn invalid_pods() {
        let cases: Vec<(&str, Value, &str, ErrorKind)> = vec![
            ("/spec/containers", json!([]), "spec.containers", ErrorKind::Required),
            ("/spec/containers/0/name", json!("Bad_Name"), "spec.containers[0].name", ErrorKind::Invalid),
            ("/spec/containers/0/image", json!(""), "spec.containers[0].image", ErrorKind::Required),
            (
                "/spec/containers/0/ports/0/containerPort",
                json!(70000),
                "spec.containers[0].ports[0].containerPort",
                ErrorKind::Invalid,
            ),
            (
                "/spec/containers/0/ports/0/name",
                json!("a-very-long-port-name"),
                "spec.containers[0].ports[0].name",
                ErrorKind::Invalid,
            ),
            (
                "/spec/containers/0/ports/0/protocol",
                json!("HTTP"),
                "spec.containers[0].ports[0].protocol",
                ErrorKind::NotSupported,
            ),
            (
                "/spec/containers/0/env",
                json!([{"name": "A=B", "value": "x"}]),
                "spec.containers[0].env[0].name",
                ErrorKind::Invalid,
            ),
            (
                "/spec/containers/0/volumeMounts/0/name",
                json!("other"),
                "spec.containers[0].volumeMounts[0].name",
                ErrorKind::NotFound,
            ),
            (
                "/spec/containers/0/volumeMounts/0/mountPath",
                json!(""),
                "spec.containers[0].volumeMounts[0].mountPath",
                ErrorKind::Required,
            ),
            ("/spec/volumes/0/name", json!("Data"), "spec.volumes[0].name", ErrorKind::Invalid),
            ("/spec/volumes/0/hostPath", json!({"path": "/x"}), "spec.volumes[0].hostPath", ErrorKind::Forbidden),
            ("/spec/restartPolicy", json!("Sometimes"), "spec.restartPolicy", ErrorKind::NotSupported),
            ("/spec/dnsPolicy", json!("Google"), "spec.dnsPolicy", ErrorKind::NotSupported),
            (
                "/spec/terminationGracePeriodSeconds",
                json!(-1),
                "spec.terminationGracePeriodSeconds",
                ErrorKind::Invalid,
            ),
            (
                "/spec/containers/0/resources/requests/cpu",
                json!("2"),
                "spec.containers[0].resources.requests[cpu]",
                ErrorKind::Invalid,
            ),
            (
                "/spec/containers/0/resources/limits/cpu",
                json!("x"),
                "spec.containers[0].resources.limits[cpu]",
                ErrorKind::Invalid,
            ),
            (
                "/spec/containers/0/readinessProbe/httpGet/port",
                json!(0),
                "spec.containers[0].readinessProbe.httpGet.port",
                ErrorKind::Invalid,
            ),
            (
                "/spec/containers/0/readinessProbe/tcpSocket",
                json!({"port": 80}),
                "spec.containers[0].readinessProbe.tcpSocket",
                ErrorKind::Forbidden,
            ),
            ("/spec/nodeSelector", json!({"a b": "c"}), "spec.nodeSelector", ErrorKind::Invalid),
            (
                "/spec/tolerations",
                json!([{"operator": "Equal", "value": "x"}]),
                "spec.tolerations[0].operator",
                ErrorKind::Invalid,
            ),
            (
                "/spec/tolerations",
                json!([{"key": "k", "effect": "Sometimes"}]),
                "spec.tolerations[0].effect",
                ErrorKind::NotSupported,
            ),
            (
                "/spec/tolerations",
                json!([{"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5}]),
                "spec.tolerations[0].effect",
                ErrorKind::Invalid,
            ),
            ("/spec/hostname", json!("Host.Name"), "spec.hostname", ErrorKind::Invalid),
            ("/spec/subdomain", json!("a.b"), "spec.subdomain", ErrorKind::Invalid),
            (
                "/spec/initContainers",
                json!([{"name": "app", "image": "x"}]),
                "spec.containers[0].name",
                ErrorKind::Duplicate,
            ),
            (
                "/spec/initContainers",
                json!([{"name": "i", "image": "x", "readinessProbe": {"exec": {}}}]),
                "spec.initContainers[0].readinessProbe",
                ErrorKind::Forbidden,
            ),
        ];
        for (ptr, value, field, kind) in cases {
            let mut v = base();
            set(&mut v, ptr, value.clone());
            let errs = pod(v).validate_create();
            assert!(
                errs.iter().any(|e| e.field == field && e.kind == kind),
                "{ptr}={value}: expected {kind:?} at {field}, got {errs:?}"
            );
        }
    }

    #[test]
    fn request_above_limit_message() {
        let mut v = base();
        set(&mut v, "/spec/containers/0/resources/requests/cpu", json!("2"));
        let errs = pod(v).validate_create();
        assert_eq!(
            errs[0].to_string(),
            "spec.containers[0].resources.requests[cpu]: Invalid value: \"2\": must be less than or equal to cpu limit of 1"
        );
    }

    #[test]
    fn pod_updates() {
        let old = pod(base());
        let mut v = base();
        set(&mut v, "/spec/containers/0/image", json!("nginx:2"));
        set(&mut v, "/spec/tolerations", json!([{"key": "k", "operator": "Exists"}]));
        set(&mut v, "/spec/activeDeadlineSeconds", json!(30));
        assert_eq!(pod(v).validate_update(&old), ErrorList::new());

        let mut v = base();
        set(&mut v, "/spec/containers/0/ports/0/containerPort", json!(81));
        let errs = pod(v).validate_update(&old);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!((errs[0].field.as_str(), errs[0].kind), ("spec", ErrorKind::Forbidden));
        assert!(errs[0].detail.starts_with("pod updates may not change fields other than `spec.containers[*].image`"));
        assert!(errs[0].detail.contains("containers"), "{}", errs[0].detail);
    }

    #[test]
    fn status_update_checks_ips() {
        let mut p = pod(base());
        p.status = Some(
            serde_json::from_value(json!({"podIP": "10.0.0.300", "podIPs": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.1"}]}))
                .expect("status"),
        );
        let errs = p.validate_status_update(&pod(base()));
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["status.podIP", "status.podIPs[1].ip"]);
    }
}
