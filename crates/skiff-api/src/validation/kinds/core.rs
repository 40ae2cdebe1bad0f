//! Validation of the remaining core/v1 kinds: Namespace, PersistentVolumeClaim,
//! PersistentVolume, Endpoints, Node, Event, Binding, LimitRange and ResourceQuota.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{
    Binding, Endpoints, Event, LimitRange, Namespace, Node, PersistentVolume, PersistentVolumeClaim, ResourceQuota,
};

use super::common::{
    cidr, dns_label, dns_subdomain, each, immutable, ip, json, label_selector, port_num, qualified_name, quantity,
    resource_list, supported, supported_opt,
};
use crate::kinds::Validation;
use crate::validation::names::is_valid_label_value;
use crate::validation::{ErrorList, FieldError, child, index, key};

const ACCESS_MODES: &[&str] = &["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"];

fn access_modes(errs: &mut ErrorList, modes: &[String], path: &str) {
    if modes.is_empty() {
        errs.push(FieldError::required(path, "at least 1 access mode is required"));
    }
    for m in modes {
        supported(errs, path, m, ACCESS_MODES);
    }
    if modes.len() > 1 && modes.iter().any(|m| m == "ReadWriteOncePod") {
        errs.push(FieldError::forbidden(path, "may not use ReadWriteOncePod with other access modes"));
    }
}

impl Validation for Namespace {
    fn validate_create(&self) -> ErrorList {
        let mut errs = ErrorList::new();
        for f in self.spec.iter().flat_map(|s| s.finalizers.iter().flatten()) {
            qualified_name(&mut errs, "spec.finalizers", f);
            if !f.contains('/') && f != "kubernetes" {
                errs.push(FieldError::invalid(
                    "spec.finalizers",
                    f.as_str(),
                    "name is neither a standard finalizer name nor is it fully qualified",
                ));
            }
        }
        errs
    }
}

impl Validation for PersistentVolumeClaim {
    fn validate_create(&self) -> ErrorList {
        let mut errs = ErrorList::new();
        let Some(spec) = &self.spec else {
            return vec![FieldError::required("spec", "")];
        };
        access_modes(&mut errs, spec.access_modes.as_deref().unwrap_or_default(), "spec.accessModes");
        let sp = key("spec.resources.requests", "storage");
        match spec.resources.as_ref().and_then(|r| r.requests.as_ref()).and_then(|r| r.get("storage")) {
            None => errs.push(FieldError::required(&sp, "")),
            Some(q) => {
                if let Some(v) = quantity(&mut errs, &sp, q)
                    && v <= crate::quantity::Quantity::ZERO
                {
                    errs.push(FieldError::invalid(&sp, q.0.as_str(), "must be greater than zero"));
                }
            }
        }
        supported_opt(&mut errs, "spec.volumeMode", spec.volume_mode.as_deref(), &["Block", "Filesystem"]);
        if let Some(sc) = spec.storage_class_name.as_deref().filter(|s| !s.is_empty()) {
            dns_subdomain(&mut errs, "spec.storageClassName", sc);
        }
        if let Some(sel) = &spec.selector {
            label_selector(&mut errs, "spec.selector", sel);
        }
        errs
    }

    fn validate_update(&self, old: &Self) -> ErrorList {
        let mut errs = self.validate_create();
        let (Some(n), Some(o)) = (&self.spec, &old.spec) else {
            return errs;
        };
        let mut munged = o.clone();
        munged.resources.clone_from(&n.resources);
        munged.volume_attributes_class_name.clone_from(&n.volume_attributes_class_name);
        if o.volume_name.as_deref().is_none_or(str::is_empty) {
            munged.volume_name.clone_from(&n.volume_name);
        }
        if &munged != n {
            errs.push(FieldError::forbidden(
                "spec",
                "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
            ));
        }
        let storage = |s: &k8s_openapi::api::core::v1::PersistentVolumeClaimSpec| {
            s.resources.as_ref().and_then(|r| r.requests.as_ref()).and_then(|r| r.get("storage")).cloned()
        };
        let mut scratch = ErrorList::new();
        if let (Some(nq), Some(oq)) = (storage(n), storage(o))
            && let (Some(nv), Some(ov)) = (quantity(&mut scratch, "", &nq), quantity(&mut scratch, "", &oq))
            && nv < ov
        {
            errs.push(FieldError::forbidden(
                key("spec.resources.requests", "storage"),
                "field can not be less than previous value",
            ));
        }
        errs
    }
}

/// Persistent volume sources (exactly one must be set).
const PV_SOURCES: &[&str] = &[
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "csi",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "glusterfs",
    "hostPath",
    "iscsi",
    "local",
    "nfs",
    "photonPersistentDisk",
    "portworxVolume",
    "quobyte",
    "rbd",
    "scaleIO",
    "storageos",
    "vsphereVolume",
];

impl Validation for PersistentVolume {
    fn validate_create(&self) -> ErrorList {
        let mut errs = ErrorList::new();
        let Some(spec) = &self.spec else {
            return vec![FieldError::required("spec", "")];
        };
        access_modes(&mut errs, spec.access_modes.as_deref().unwrap_or_default(), "spec.accessModes");
        match &spec.capacity {
            None => errs.push(FieldError::required("spec.capacity", "")),
            Some(c) if c.is_empty() => errs.push(FieldError::required("spec.capacity", "")),
            Some(c) => {
                if !c.contains_key("storage") || c.len() > 1 {
                    errs.push(FieldError::not_supported(
                        "spec.capacity",
                        json(&c.keys().collect::<Vec<_>>()),
                        &["storage"],
                    ));
                }
                resource_list(&mut errs, "spec.capacity", Some(c));
            }
        }
        supported_opt(
            &mut errs,
            "spec.persistentVolumeReclaimPolicy",
            spec.persistent_volume_reclaim_policy.as_deref(),
            &["Delete", "Recycle", "Retain"],
        );
        supported_opt(&mut errs, "spec.volumeMode", spec.volume_mode.as_deref(), &["Block", "Filesystem"]);
        if let Some(sc) = spec.storage_class_name.as_deref().filter(|s| !s.is_empty()) {
            dns_subdomain(&mut errs, "spec.storageClassName", sc);
        }
        let obj = json(spec);
        let set: Vec<&str> = PV_SOURCES.iter().copied().filter(|s| obj.get(*s).is_some()).collect();
        match set.as_slice() {
            [] => errs.push(FieldError::required("spec", "must specify a volume type")),
            [_] => {}
            [_, rest @ ..] => {
                for s in rest {
                    errs.push(FieldError::forbidden(child("spec", s), "may not specify more than 1 volume type"));
                }
            }
        }
        errs
    }

    fn validate_update(&self, old: &Self) -> ErrorList {
        let mut errs = self.validate_create();
        let (Some(n), Some(o)) = (&self.spec, &old.spec) else {
            return errs;
        };
        let (nj, oj) = (json(n), json(o));
        if PV_SOURCES.iter().any(|s| nj.get(*s) != oj.get(*s)) {
            errs.push(FieldError::forbidden(
                "spec.persistentvolumesource",
                "spec.persistentvolumesource is immutable after creation",
            ));
        }
        immutable(&mut errs, "volumeMode", &n.volume_mode, &o.volume_mode);
        errs
    }
}

impl Validation for Endpoints {
    fn validate_create(&self) -> ErrorList {
        let mut errs = ErrorList::new();
        for (i, s) in self.subsets.iter().flatten().enumerate() {
            let sp = index("subsets", i);
            for (field, list) in [("addresses", &s.addresses), ("notReadyAddresses", &s.not_ready_addresses)] {
                for (j, a) in list.iter().flatten().enumerate() {
                    let ap = index(&child(&sp, field), j);
                    ip(&mut errs, &child(&ap, "ip"), &a.ip);
                    if let Some(h) = a.hostname.as_deref().filter(|h| !h.is_empty()) {
                        dns_label(&mut errs, &child(&ap, "hostname"), h);
                    }
                    if let Some(n) = a.node_name.as_deref().filter(|n| !n.is_empty()) {
                        dns_subdomain(&mut errs, &child(&ap, "nodeName"), n);
                    }
                }
            }
            let ports = s.ports.as_deref().unwrap_or_default();
            for (j, p) in ports.iter().enumerate() {
                let pp = index(&child(&sp, "ports"), j);
                match p.name.as_deref().unwrap_or_default() {
                    "" if ports.len() > 1 => errs.push(FieldError::required(child(&pp, "name"), "")),
                    "" => {}
                    n => dns_label(&mut errs, &child(&pp, "name"), n),
                }
                port_num(&mut errs, &child(&pp, "port"), p.port);
                match p.protocol.as_deref().unwrap_or_default() {
                    "" => errs.push(FieldError::required(child(&pp, "protocol"), "")),
                    v => supported(&mut errs, &child(&pp, "protocol"), v, &["SCTP", "TCP", "UDP"]),
                }
            }
        }
        errs
    }
}

impl Validation for Node {
    fn validate_create(&self) -> ErrorList {
        let mut errs = ErrorList::new();
        let Some(spec) = &self.spec else { return errs };
        for (i, c) in spec.pod_cidrs.iter().flatten().enumerate() {
            cidr(&mut errs, &index("spec.podCIDRs", i), c);
        }
        if let Some(c) = spec.pod_cidr.as_deref().filter(|c| !c.is_empty()) {
            cidr(&mut errs, "spec.podCIDR", c);
            if spec.pod_cidrs.as_ref().and_then(|l| l.first()).is_some_and(|f| f != c) {
                errs.push(FieldError::invalid("spec.podCIDRs", c, "must match spec.podCIDR as its first element"));
            }
        }
        let mut seen = BTreeSet::new();
        for (i, t) in spec.taints.iter().flatten().enumerate() {
            let p = index("spec.taints", i);
            qualified_name(&mut errs, &child(&p, "key"), &t.key);
            let v = t.value.as_deref().unwrap_or_default();
            each(&mut errs, &child(&p, "value"), v, is_valid_label_value(v));
            supported(&mut errs, &child(&p, "effect"), &t.effect, &["NoSchedule", "PreferNoSchedule", "NoExecute"]);
            if !seen.insert((t.key.clone(), t.effect.clone())) {
                errs.push(FieldError::duplicate(&p, json(t)));
            }
        }
        errs
    }

    fn validate_update(&self, old: &Self) -> ErrorList {
        let mut errs = self.validate_create();
        let cidrs = |n: &Node| n.spec.as_ref().and_then(|s| s.pod_cidrs.clone()).unwrap_or_default();
        let (new, old) = (cidrs(self), cidrs(old));
        if !old.is_empty() && new != old {
            errs.push(FieldError::forbidden(
                "spec.podCIDRs",
                "node updates may not change podCIDR except from \"\" to valid",
            ));
        }
        errs
    }
}

impl Validation for Event {
    fn validate_create(&self) -> ErrorList {
        let mut errs = ErrorList::new();
        let ns = self.metadata.namespace.as_deref().unwrap_or_default();
        let involved = self.involved_object.namespace.as_deref().unwrap_or_default();
        if !involved.is_empty() && !ns.is_empty() && involved != ns {
            errs.push(FieldError::invalid("involvedObject.namespace", involved, "does not match event.namespace"));
        }
        supported_opt(&mut errs, "type", self.type_.as_deref().filter(|t| !t.is_empty()), &["Normal", "Warning"]);
        errs
    }
}

impl Validation for Binding {
    fn validate_create(&self) -> ErrorList {
        let mut errs = ErrorList::new();
        if let Some(k) = self.target.kind.as_deref().filter(|k| !k.is_empty() && *k != "Node") {
            errs.push(FieldError::not_supported("target.kind", k, &["Node", "<empty>"]));
        }
        if self.target.name.as_deref().is_none_or(str::is_empty) {
            errs.push(FieldError::required("target.name", ""));
        }
        errs
    }
}

impl Validation for LimitRange {
    fn validate_create(&self) -> ErrorList {
        let mut errs = ErrorList::new();
        let mut types = BTreeSet::new();
        for (i, item) in self.spec.iter().flat_map(|s| s.limits.iter()).enumerate() {
            let p = index("spec.limits", i);
            if !types.insert(item.type_.clone()) {
                errs.push(FieldError::duplicate(child(&p, "type"), item.type_.as_str()));
            }
            for (name, list) in [
                ("max", &item.max),
                ("min", &item.min),
                ("default", &item.default),
                ("defaultRequest", &item.default_request),
                ("maxLimitRequestRatio", &item.max_limit_request_ratio),
            ] {
                resource_list(&mut errs, &child(&p, name), list.as_ref());
            }
            let mut scratch = ErrorList::new();
            for (k, min) in item.min.iter().flatten() {
                if let Some(max) = item.max.as_ref().and_then(|m| m.get(k))
                    && let (Some(a), Some(b)) = (quantity(&mut scratch, "", min), quantity(&mut scratch, "", max))
                    && a > b
                {
                    errs.push(FieldError::invalid(
                        key(&child(&p, "min"), k),
                        min.0.as_str(),
                        format!("min value {} is greater than max value {}", min.0, max.0),
                    ));
                }
            }
        }
        errs
    }
}

impl Validation for ResourceQuota {
    fn validate_create(&self) -> ErrorList {
        let mut errs = ErrorList::new();
        let Some(spec) = &self.spec else { return errs };
        resource_list(&mut errs, "spec.hard", spec.hard.as_ref());
        for (i, s) in spec.scopes.iter().flatten().enumerate() {
            supported(
                &mut errs,
                &index("spec.scopes", i),
                s,
                &[
                    "Terminating",
                    "NotTerminating",
                    "BestEffort",
                    "NotBestEffort",
                    "PriorityClass",
                    "CrossNamespacePodAffinity",
                    "VolumeAttributesClass",
                ],
            );
        }
        errs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::Defaulting;
    use crate::validation::ErrorKind;
    use serde_json::{Value, json};

    fn obj<T: serde::de::DeserializeOwned + Defaulting>(v: Value) -> T {
        let mut t: T = serde_json::from_value(v).expect("object");
        t.set_defaults();
        t
    }

    fn has(errs: &ErrorList, field: &str, kind: ErrorKind) -> bool {
        errs.iter().any(|e| e.field == field && e.kind == kind)
    }

    #[test]
    fn namespaces() {
        let ok: Namespace =
            obj(json!({"metadata": {"name": "n"}, "spec": {"finalizers": ["kubernetes", "example.com/x"]}}));
        assert_eq!(ok.validate_create(), ErrorList::new());
        let bad: Namespace = obj(json!({"metadata": {"name": "n"}, "spec": {"finalizers": ["custom"]}}));
        assert!(has(&bad.validate_create(), "spec.finalizers", ErrorKind::Invalid));
    }

    #[test]
    fn claims() {
        let pvc = |spec: Value| -> PersistentVolumeClaim { obj(json!({"metadata": {"name": "c"}, "spec": spec})) };
        let good = json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}});
        assert_eq!(pvc(good.clone()).validate_create(), ErrorList::new());
        assert!(has(
            &pvc(json!({"resources": {"requests": {"storage": "1Gi"}}})).validate_create(),
            "spec.accessModes",
            ErrorKind::Required
        ));
        assert!(has(
            &pvc(json!({"accessModes": ["ReadWriteOnce"]})).validate_create(),
            "spec.resources.requests[storage]",
            ErrorKind::Required
        ));
        assert!(has(
            &pvc(json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "0"}}}))
                .validate_create(),
            "spec.resources.requests[storage]",
            ErrorKind::Invalid
        ));
        assert!(has(
            &pvc(json!({"accessModes": ["Sometimes"], "resources": {"requests": {"storage": "1"}}})).validate_create(),
            "spec.accessModes",
            ErrorKind::NotSupported
        ));
        let old = pvc(good.clone());
        let mut grown = good.clone();
        grown["resources"]["requests"]["storage"] = json!("2Gi");
        assert_eq!(pvc(grown).validate_update(&old), ErrorList::new());
        let mut shrunk = good.clone();
        shrunk["resources"]["requests"]["storage"] = json!("1Mi");
        assert!(has(&pvc(shrunk).validate_update(&old), "spec.resources.requests[storage]", ErrorKind::Forbidden));
        let mut changed = good;
        changed["accessModes"] = json!(["ReadWriteMany"]);
        assert!(has(&pvc(changed).validate_update(&old), "spec", ErrorKind::Forbidden));
    }

    #[test]
    fn volumes() {
        let pv = |spec: Value| -> PersistentVolume { obj(json!({"metadata": {"name": "v"}, "spec": spec})) };
        let good =
            json!({"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/x"}});
        assert_eq!(pv(good.clone()).validate_create(), ErrorList::new());
        assert!(has(
            &pv(json!({"accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/x"}})).validate_create(),
            "spec.capacity",
            ErrorKind::Required
        ));
        assert!(has(
            &pv(json!({"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]})).validate_create(),
            "spec",
            ErrorKind::Required
        ));
        let mut two = good.clone();
        two["nfs"] = json!({"server": "s", "path": "/p"});
        assert!(has(&pv(two.clone()).validate_create(), "spec.nfs", ErrorKind::Forbidden));
        let mut moved = good.clone();
        moved["hostPath"] = json!({"path": "/y"});
        assert!(has(&pv(moved).validate_update(&pv(good)), "spec.persistentvolumesource", ErrorKind::Forbidden));
    }

    #[test]
    fn endpoints_nodes_events_bindings() {
        let ep: Endpoints =
            obj(json!({"metadata": {"name": "e"}, "subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "x"}],
            "ports": [{"port": 80, "name": "a"}, {"port": 0}]}]}));
        let errs = ep.validate_create();
        assert!(has(&errs, "subsets[0].addresses[1].ip", ErrorKind::Invalid));
        assert!(has(&errs, "subsets[0].ports[1].name", ErrorKind::Required));
        assert!(has(&errs, "subsets[0].ports[1].port", ErrorKind::Invalid));
        let node: Node = obj(json!({"metadata": {"name": "n"}, "spec": {"podCIDRs": ["10.0.0.0/33"],
            "taints": [{"key": "k", "effect": "Never"}]}}));
        let errs = node.validate_create();
        assert!(has(&errs, "spec.podCIDRs[0]", ErrorKind::Invalid));
        assert!(has(&errs, "spec.taints[0].effect", ErrorKind::NotSupported));
        let ev: Event = serde_json::from_value(
            json!({"metadata": {"name": "e", "namespace": "a"}, "involvedObject": {"namespace": "b"}}),
        )
        .expect("event");
        assert!(has(&ev.validate_create(), "involvedObject.namespace", ErrorKind::Invalid));
        let b: Binding =
            serde_json::from_value(json!({"metadata": {"name": "p"}, "target": {"kind": "Pod"}})).expect("binding");
        let errs = b.validate_create();
        assert!(has(&errs, "target.kind", ErrorKind::NotSupported) && has(&errs, "target.name", ErrorKind::Required));
    }

    #[test]
    fn limit_ranges_and_quotas() {
        let lr: LimitRange = obj(
            json!({"metadata": {"name": "l"}, "spec": {"limits": [{"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"}}]}}),
        );
        assert!(has(&lr.validate_create(), "spec.limits[0].min[cpu]", ErrorKind::Invalid));
        let rq: ResourceQuota = serde_json::from_value(
            json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "x"}, "scopes": ["Bogus"]}}),
        )
        .expect("quota");
        let errs = rq.validate_create();
        assert!(
            has(&errs, "spec.hard[pods]", ErrorKind::Invalid) && has(&errs, "spec.scopes[0]", ErrorKind::NotSupported)
        );
    }
}
