//! The resource catalogue: every built-in kind skiff serves and how it is addressed.
//!
//! Each [`ResourceInfo`] carries what discovery advertises (group, version, kind, plural,
//! singular, short names, categories, verbs, subresources), how names are validated, which field
//! selectors the resource supports and where it is stored. Behaviour (defaulting, validation,
//! tables) is attached elsewhere by kind; this module is data only.
//!
//! Besides the built-in kinds, a runtime registry holds the resources of established
//! CustomResourceDefinitions ([`register_custom`], [`unregister_custom`]); [`find`],
//! [`find_kind`] and [`all`] consult the built-ins first, then the custom resources.
//! `ResourceInfo` fields are `&'static`, so the strings of registered resources are leaked
//! (`Box::leak`). Registering the same resources again leaks nothing, so the leak is bounded by
//! the number of distinct CRD changes over the process lifetime (a few KiB each).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, RwLock};

use crate::validation::names;

/// How object names of a kind are validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 subdomain (most kinds).
    Subdomain,
    /// RFC 1123 label (namespaces).
    Label,
    /// RFC 1035 label (services).
    Dns1035Label,
    /// Path segment (RBAC roles and bindings).
    PathSegment,
}

impl NameRule {
    /// Problems with `name` under this rule (empty when valid).
    pub fn check(self, name: &str) -> Vec<String> {
        match self {
            NameRule::Subdomain => names::is_dns1123_subdomain(name),
            NameRule::Label => names::is_dns1123_label(name),
            NameRule::Dns1035Label => names::is_dns1035_label(name),
            NameRule::PathSegment => names::is_path_segment_name(name),
        }
    }

    /// Problems with `prefix` as a `generateName` under this rule: a trailing `-` is allowed
    /// (upstream masks it before checking), and path segments need only avoid `/` and `%`.
    pub fn check_prefix(self, prefix: &str) -> Vec<String> {
        match self {
            NameRule::PathSegment => names::is_path_segment_prefix(prefix),
            _ => match prefix.strip_suffix('-') {
                Some(rest) => self.check(&format!("{rest}a")),
                None => self.check(prefix),
            },
        }
    }
}

/// A subresource of a resource (`status`, `scale`, `log`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subresource {
    /// Name after the slash, e.g. `status`.
    pub name: &'static str,
    /// Kind of the subresource's objects (e.g. `Scale`), or the parent kind.
    pub kind: &'static str,
    /// Group of that kind when it differs from the parent's (e.g. `autoscaling` for Scale).
    pub group: &'static str,
    /// Version of that kind when it differs from the parent's.
    pub version: &'static str,
    /// Verbs supported on the subresource.
    pub verbs: &'static [&'static str],
}

/// Where objects of a resource are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageRef {
    /// Group whose key space holds the objects (`core` for the legacy group).
    pub group: &'static str,
    /// Plural resource name in the key.
    pub resource: &'static str,
    /// `group/version` of the stored representation (`v1` for core).
    pub api_version: &'static str,
}

/// One `additionalPrinterColumns` entry of a custom resource version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrinterColumn {
    /// Column header.
    pub name: String,
    /// OpenAPI type (`string`, `integer`, `number`, `boolean`, `date`).
    pub type_: String,
    /// OpenAPI format (`name` marks the name column).
    pub format: String,
    /// Description.
    pub description: String,
    /// 0 = always shown; higher = only with `-o wide`.
    pub priority: i32,
    /// The JSONPath evaluated against each object (`.status.phase`).
    pub json_path: String,
}

/// Paths of the `scale` subresource of a custom resource version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalePaths {
    /// JSON path of the desired replicas (`.spec.replicas`).
    pub spec_replicas: String,
    /// JSON path of the observed replicas (`.status.replicas`).
    pub status_replicas: String,
    /// JSON path of the serialized label selector (`.status.selector`), if any.
    pub label_selector: Option<String>,
}

/// What a CustomResourceDefinition says about one served version of its resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomResource {
    /// Name of the defining CRD (`<plural>.<group>`).
    pub crd_name: &'static str,
    /// The version's structural `openAPIV3Schema`.
    pub schema: Option<serde_json::Value>,
    /// `additionalPrinterColumns` of the version.
    pub printer_columns: Vec<PrinterColumn>,
    /// Scale subresource paths, when the version has one.
    pub scale: Option<ScalePaths>,
    /// Whether the version is served.
    pub served: bool,
    /// Whether this is the storage version.
    pub storage: bool,
    /// The CRD's storage version.
    pub storage_version: &'static str,
}

/// One served resource (a group-version-resource) and its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceInfo {
    /// API group; empty for the core group.
    pub group: &'static str,
    /// API version.
    pub version: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Plural name (the URL segment).
    pub plural: &'static str,
    /// Singular name.
    pub singular: &'static str,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Short names (`po`, `svc`, …).
    pub short_names: &'static [&'static str],
    /// Categories (`all`).
    pub categories: &'static [&'static str],
    /// Verbs on the main resource.
    pub verbs: &'static [&'static str],
    /// Subresources.
    pub subresources: Vec<Subresource>,
    /// How names are validated.
    pub name_rule: NameRule,
    /// Supported field selector labels beyond `metadata.name`/`metadata.namespace`, each with
    /// the dotted JSON path that holds its value.
    pub field_selectors: &'static [(&'static str, &'static str)],
    /// Where the objects are stored; differs from group/version for alternative views.
    pub storage: StorageRef,
    /// CRD-derived data, for custom resources only.
    pub custom: Option<&'static CustomResource>,
}

impl ResourceInfo {
    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.to_string() } else { format!("{}/{}", self.group, self.version) }
    }

    /// The subresource named `name`, if served.
    pub fn subresource(&self, name: &str) -> Option<&Subresource> {
        self.subresources.iter().find(|s| s.name == name)
    }

    /// Whether the resource has a `status` subresource (main writes then ignore status).
    pub fn has_status(&self) -> bool {
        self.subresource("status").is_some()
    }

    /// Whether `verb` is served on the main resource.
    pub fn supports(&self, verb: &str) -> bool {
        self.verbs.contains(&verb)
    }

    /// Whether the objects are stored in a different representation than served.
    pub fn is_view(&self) -> bool {
        self.storage.api_version != self.api_version()
    }

    /// The JSON path that holds the value of a supported field selector label. Cluster-scoped
    /// custom resources do not support `metadata.namespace` (as upstream).
    pub fn field_path(&self, label: &str) -> Option<&'static str> {
        match label {
            "metadata.name" => Some("metadata.name"),
            "metadata.namespace" if self.namespaced || self.custom.is_none() => Some("metadata.namespace"),
            _ => self.field_selectors.iter().find(|(l, _)| *l == label).map(|(_, p)| *p),
        }
    }

    /// Key prefix of all objects of this resource in the store (`/registry/core/pods/`).
    pub fn key_prefix(&self) -> String {
        format!("/registry/{}/{}/", self.storage.group, self.storage.resource)
    }

    /// Key prefix of the objects in one namespace (`/registry/core/pods/default/`).
    pub fn namespace_prefix(&self, namespace: &str) -> String {
        format!("{}{namespace}/", self.key_prefix())
    }

    /// Store key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match namespace {
            Some(ns) if self.namespaced => format!("{}{ns}/{name}", self.key_prefix()),
            _ => format!("{}{name}", self.key_prefix()),
        }
    }
}

/// Every verb of a normal read-write resource.
pub const ALL_VERBS: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
const STATUS_VERBS: &[&str] = &["get", "patch", "update"];
const CREATE_ONLY: &[&str] = &["create"];
const GET_LIST: &[&str] = &["get", "list"];
const STREAM_VERBS: &[&str] = &["create", "get"];
const PROXY_VERBS: &[&str] = &["create", "delete", "get", "patch", "update"];

fn status(kind: &'static str) -> Subresource {
    Subresource { name: "status", kind, group: "", version: "", verbs: STATUS_VERBS }
}

fn scale() -> Subresource {
    Subresource { name: "scale", kind: "Scale", group: "autoscaling", version: "v1", verbs: STATUS_VERBS }
}

fn sub(name: &'static str, kind: &'static str, verbs: &'static [&'static str]) -> Subresource {
    Subresource { name, kind, group: "", version: "", verbs }
}

fn sub_in(
    name: &'static str,
    kind: &'static str,
    group: &'static str,
    version: &'static str,
    verbs: &'static [&'static str],
) -> Subresource {
    Subresource { name, kind, group, version, verbs }
}

const POD_FIELDS: &[(&str, &str)] = &[
    ("spec.nodeName", "spec.nodeName"),
    ("spec.restartPolicy", "spec.restartPolicy"),
    ("spec.schedulerName", "spec.schedulerName"),
    ("spec.serviceAccountName", "spec.serviceAccountName"),
    ("spec.hostNetwork", "spec.hostNetwork"),
    ("status.phase", "status.phase"),
    ("status.podIP", "status.podIP"),
    ("status.nominatedNodeName", "status.nominatedNodeName"),
];
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("involvedObject.kind", "involvedObject.kind"),
    ("involvedObject.namespace", "involvedObject.namespace"),
    ("involvedObject.name", "involvedObject.name"),
    ("involvedObject.uid", "involvedObject.uid"),
    ("involvedObject.apiVersion", "involvedObject.apiVersion"),
    ("involvedObject.resourceVersion", "involvedObject.resourceVersion"),
    ("involvedObject.fieldPath", "involvedObject.fieldPath"),
    ("reason", "reason"),
    ("reportingComponent", "reportingComponent"),
    ("source", "source.component"),
    ("type", "type"),
];

/// Builder for the common case of a resource stored as served.
#[allow(clippy::too_many_arguments)]
fn res(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    subresources: Vec<Subresource>,
) -> ResourceInfo {
    let storage_group = if group.is_empty() { "core" } else { group };
    let api_version: &'static str =
        if group.is_empty() { version } else { Box::leak(format!("{group}/{version}").into_boxed_str()) };
    ResourceInfo {
        group,
        version,
        kind,
        plural,
        singular: Box::leak(kind.to_lowercase().into_boxed_str()),
        namespaced,
        short_names,
        categories,
        verbs: ALL_VERBS,
        subresources,
        name_rule: NameRule::Subdomain,
        field_selectors: &[],
        storage: StorageRef { group: storage_group, resource: plural, api_version },
        custom: None,
    }
}

/// A create-only `v1` review resource: the answer is computed, nothing is stored.
fn review(group: &'static str, kind: &'static str, plural: &'static str, namespaced: bool) -> ResourceInfo {
    ResourceInfo { verbs: CREATE_ONLY, ..res(group, "v1", kind, plural, namespaced, &[], &[], vec![]) }
}

fn build() -> Vec<ResourceInfo> {
    let all: &'static [&'static str] = &["all"];
    let none: &'static [&'static str] = &[];
    let mut out = vec![
        // core/v1
        ResourceInfo { verbs: CREATE_ONLY, ..res("", "v1", "Binding", "bindings", true, none, none, vec![]) },
        res("", "v1", "ConfigMap", "configmaps", true, &["cm"], none, vec![]),
        res("", "v1", "Endpoints", "endpoints", true, &["ep"], none, vec![]),
        ResourceInfo { field_selectors: EVENT_FIELDS, ..res("", "v1", "Event", "events", true, &["ev"], none, vec![]) },
        res("", "v1", "LimitRange", "limitranges", true, &["limits"], none, vec![]),
        ResourceInfo {
            name_rule: NameRule::Label,
            verbs: &["create", "delete", "get", "list", "patch", "update", "watch"],
            field_selectors: &[("status.phase", "status.phase")],
            ..res(
                "",
                "v1",
                "Namespace",
                "namespaces",
                false,
                &["ns"],
                none,
                vec![sub("finalize", "Namespace", &["update"]), status("Namespace")],
            )
        },
        ResourceInfo {
            field_selectors: &[("spec.unschedulable", "spec.unschedulable")],
            ..res(
                "",
                "v1",
                "Node",
                "nodes",
                false,
                &["no"],
                none,
                vec![sub("proxy", "NodeProxyOptions", PROXY_VERBS), status("Node")],
            )
        },
        res(
            "",
            "v1",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            true,
            &["pvc"],
            none,
            vec![status("PersistentVolumeClaim")],
        ),
        res("", "v1", "PersistentVolume", "persistentvolumes", false, &["pv"], none, vec![status("PersistentVolume")]),
        ResourceInfo {
            field_selectors: POD_FIELDS,
            ..res(
                "",
                "v1",
                "Pod",
                "pods",
                true,
                &["po"],
                all,
                vec![
                    sub("attach", "PodAttachOptions", STREAM_VERBS),
                    sub("binding", "Binding", CREATE_ONLY),
                    sub("ephemeralcontainers", "Pod", STATUS_VERBS),
                    sub_in("eviction", "Eviction", "policy", "v1", CREATE_ONLY),
                    sub("exec", "PodExecOptions", STREAM_VERBS),
                    sub("log", "Pod", &["get"]),
                    sub("portforward", "PodPortForwardOptions", STREAM_VERBS),
                    sub("proxy", "PodProxyOptions", PROXY_VERBS),
                    status("Pod"),
                ],
            )
        },
        res("", "v1", "PodTemplate", "podtemplates", true, none, none, vec![]),
        ResourceInfo {
            field_selectors: &[("status.replicas", "status.replicas")],
            ..res(
                "",
                "v1",
                "ReplicationController",
                "replicationcontrollers",
                true,
                &["rc"],
                all,
                vec![scale(), status("ReplicationController")],
            )
        },
        res("", "v1", "ResourceQuota", "resourcequotas", true, &["quota"], none, vec![status("ResourceQuota")]),
        ResourceInfo {
            field_selectors: &[("type", "type")],
            ..res("", "v1", "Secret", "secrets", true, none, none, vec![])
        },
        res(
            "",
            "v1",
            "ServiceAccount",
            "serviceaccounts",
            true,
            &["sa"],
            none,
            vec![sub_in("token", "TokenRequest", "authentication.k8s.io", "v1", CREATE_ONLY)],
        ),
        ResourceInfo {
            name_rule: NameRule::Dns1035Label,
            verbs: &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
            field_selectors: &[("spec.clusterIP", "spec.clusterIP"), ("spec.type", "spec.type")],
            ..res(
                "",
                "v1",
                "Service",
                "services",
                true,
                &["svc"],
                all,
                vec![sub("proxy", "ServiceProxyOptions", PROXY_VERBS), status("Service")],
            )
        },
        // apps/v1
        res("apps", "v1", "ControllerRevision", "controllerrevisions", true, none, none, vec![]),
        res("apps", "v1", "DaemonSet", "daemonsets", true, &["ds"], all, vec![status("DaemonSet")]),
        res("apps", "v1", "Deployment", "deployments", true, &["deploy"], all, vec![scale(), status("Deployment")]),
        ResourceInfo {
            field_selectors: &[("status.replicas", "status.replicas")],
            ..res("apps", "v1", "ReplicaSet", "replicasets", true, &["rs"], all, vec![scale(), status("ReplicaSet")])
        },
        res("apps", "v1", "StatefulSet", "statefulsets", true, &["sts"], all, vec![scale(), status("StatefulSet")]),
        // autoscaling
        res(
            "autoscaling",
            "v2",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            true,
            &["hpa"],
            all,
            vec![status("HorizontalPodAutoscaler")],
        ),
        // batch/v1
        res("batch", "v1", "CronJob", "cronjobs", true, &["cj"], all, vec![status("CronJob")]),
        ResourceInfo {
            field_selectors: &[("status.successful", "status.succeeded")],
            ..res("batch", "v1", "Job", "jobs", true, none, all, vec![status("Job")])
        },
        // networking.k8s.io/v1
        res("networking.k8s.io", "v1", "IngressClass", "ingressclasses", false, none, none, vec![]),
        res("networking.k8s.io", "v1", "Ingress", "ingresses", true, &["ing"], none, vec![status("Ingress")]),
        res("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", true, &["netpol"], none, vec![]),
        // discovery.k8s.io/v1
        res("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", true, none, none, vec![]),
        // rbac.authorization.k8s.io/v1
        ResourceInfo {
            name_rule: NameRule::PathSegment,
            ..res(
                "rbac.authorization.k8s.io",
                "v1",
                "ClusterRoleBinding",
                "clusterrolebindings",
                false,
                none,
                none,
                vec![],
            )
        },
        ResourceInfo {
            name_rule: NameRule::PathSegment,
            ..res("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", false, none, none, vec![])
        },
        ResourceInfo {
            name_rule: NameRule::PathSegment,
            ..res("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", true, none, none, vec![])
        },
        ResourceInfo {
            name_rule: NameRule::PathSegment,
            ..res("rbac.authorization.k8s.io", "v1", "Role", "roles", true, none, none, vec![])
        },
        // authentication.k8s.io/v1 and authorization.k8s.io/v1: create-only reviews, never stored
        review("authentication.k8s.io", "TokenReview", "tokenreviews", false),
        review("authentication.k8s.io", "SelfSubjectReview", "selfsubjectreviews", false),
        review("authorization.k8s.io", "LocalSubjectAccessReview", "localsubjectaccessreviews", true),
        review("authorization.k8s.io", "SelfSubjectAccessReview", "selfsubjectaccessreviews", false),
        review("authorization.k8s.io", "SelfSubjectRulesReview", "selfsubjectrulesreviews", false),
        review("authorization.k8s.io", "SubjectAccessReview", "subjectaccessreviews", false),
        // coordination.k8s.io/v1
        res("coordination.k8s.io", "v1", "Lease", "leases", true, none, none, vec![]),
        // storage.k8s.io/v1
        res("storage.k8s.io", "v1", "CSIDriver", "csidrivers", false, none, none, vec![]),
        res("storage.k8s.io", "v1", "CSINode", "csinodes", false, none, none, vec![]),
        res("storage.k8s.io", "v1", "CSIStorageCapacity", "csistoragecapacities", true, none, none, vec![]),
        res("storage.k8s.io", "v1", "StorageClass", "storageclasses", false, &["sc"], none, vec![]),
        res(
            "storage.k8s.io",
            "v1",
            "VolumeAttachment",
            "volumeattachments",
            false,
            none,
            none,
            vec![status("VolumeAttachment")],
        ),
        // policy/v1
        res(
            "policy",
            "v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            true,
            &["pdb"],
            none,
            vec![status("PodDisruptionBudget")],
        ),
        // scheduling.k8s.io/v1
        res("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", false, &["pc"], none, vec![]),
        // admissionregistration.k8s.io/v1
        res(
            "admissionregistration.k8s.io",
            "v1",
            "MutatingWebhookConfiguration",
            "mutatingwebhookconfigurations",
            false,
            none,
            &["api-extensions"],
            vec![],
        ),
        res(
            "admissionregistration.k8s.io",
            "v1",
            "ValidatingWebhookConfiguration",
            "validatingwebhookconfigurations",
            false,
            none,
            &["api-extensions"],
            vec![],
        ),
        res(
            "admissionregistration.k8s.io",
            "v1",
            "ValidatingAdmissionPolicy",
            "validatingadmissionpolicies",
            false,
            none,
            &["api-extensions"],
            vec![status("ValidatingAdmissionPolicy")],
        ),
        res(
            "admissionregistration.k8s.io",
            "v1",
            "ValidatingAdmissionPolicyBinding",
            "validatingadmissionpolicybindings",
            false,
            none,
            &["api-extensions"],
            vec![],
        ),
        // certificates.k8s.io/v1
        ResourceInfo {
            name_rule: NameRule::PathSegment,
            field_selectors: &[("spec.signerName", "spec.signerName")],
            ..res(
                "certificates.k8s.io",
                "v1",
                "CertificateSigningRequest",
                "certificatesigningrequests",
                false,
                &["csr"],
                none,
                vec![sub("approval", "CertificateSigningRequest", STATUS_VERBS), status("CertificateSigningRequest")],
            )
        },
        // apiextensions.k8s.io/v1
        res(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
            &["crd", "crds"],
            &["api-extensions"],
            vec![status("CustomResourceDefinition")],
        ),
        // metrics.k8s.io/v1beta1: usage scraped from node agents, computed per request, never stored
        ResourceInfo {
            verbs: GET_LIST,
            ..res("metrics.k8s.io", "v1beta1", "NodeMetrics", "nodes", false, none, none, vec![])
        },
        ResourceInfo {
            verbs: GET_LIST,
            ..res("metrics.k8s.io", "v1beta1", "PodMetrics", "pods", true, none, none, vec![])
        },
    ];

    // Alternative views over another resource's storage.
    let hpa_v2 = out.iter().find(|r| r.plural == "horizontalpodautoscalers").cloned();
    if let Some(hpa) = hpa_v2 {
        out.push(ResourceInfo { version: "v1", ..hpa });
    }
    let events = out.iter().find(|r| r.group.is_empty() && r.plural == "events").cloned();
    if let Some(ev) = events {
        out.push(ResourceInfo { group: "events.k8s.io", ..ev });
    }
    out
}

static BUILTIN: LazyLock<Vec<ResourceInfo>> = LazyLock::new(build);

/// Every built-in resource skiff serves, in discovery order.
pub fn builtin() -> &'static [ResourceInfo] {
    &BUILTIN
}

/// Groups and versions of the built-in resources: `(group, [versions, preferred first])`.
pub fn builtin_groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut groups: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for r in builtin() {
        match groups.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, versions)) => {
                if !versions.contains(&r.version) {
                    versions.push(r.version);
                }
            }
            None => groups.push((r.group, vec![r.version])),
        }
    }
    groups
}

/// Custom resources by the name of their CRD.
static CUSTOM: LazyLock<RwLock<BTreeMap<String, Vec<&'static ResourceInfo>>>> = LazyLock::new(Default::default);
/// Bumped on every change of the custom registry.
static GENERATION: AtomicU64 = AtomicU64::new(0);

fn custom_read() -> std::sync::RwLockReadGuard<'static, BTreeMap<String, Vec<&'static ResourceInfo>>> {
    CUSTOM.read().unwrap_or_else(|p| p.into_inner())
}

/// Leaks a string for a `&'static` field of a registered resource (see the module docs).
pub fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

/// Leaks a list of strings for a `&'static` field of a registered resource.
pub fn leak_list(items: &[String]) -> &'static [&'static str] {
    Box::leak(items.iter().map(|s| leak(s)).collect::<Vec<_>>().into_boxed_slice())
}

/// Serves `resources` (one per served version) for the CRD `crd_name`, replacing what it served
/// before. Re-registering identical resources is a no-op (and leaks nothing).
pub fn register_custom(crd_name: &str, resources: Vec<ResourceInfo>) {
    let mut map = CUSTOM.write().unwrap_or_else(|p| p.into_inner());
    if let Some(current) = map.get(crd_name)
        && current.len() == resources.len()
        && current.iter().zip(&resources).all(|(a, b)| *a == b)
    {
        return;
    }
    let leaked: Vec<&'static ResourceInfo> = resources.into_iter().map(|r| &*Box::leak(Box::new(r))).collect();
    map.insert(crd_name.to_string(), leaked);
    GENERATION.fetch_add(1, Ordering::AcqRel);
}

/// Stops serving the resources of the CRD `crd_name`.
pub fn unregister_custom(crd_name: &str) {
    let mut map = CUSTOM.write().unwrap_or_else(|p| p.into_inner());
    if map.remove(crd_name).is_some() {
        GENERATION.fetch_add(1, Ordering::AcqRel);
    }
}

/// The resources registered for the CRD `crd_name`.
pub fn custom_of(crd_name: &str) -> Vec<&'static ResourceInfo> {
    custom_read().get(crd_name).cloned().unwrap_or_default()
}

/// Every registered custom resource, by CRD name then version order.
pub fn custom() -> Vec<&'static ResourceInfo> {
    custom_read().values().flatten().copied().collect()
}

/// A counter that changes whenever the set of custom resources does.
pub fn generation() -> u64 {
    GENERATION.load(Ordering::Acquire)
}

/// Every served resource: the built-ins, then the custom resources.
pub fn all() -> Vec<&'static ResourceInfo> {
    let mut out: Vec<&'static ResourceInfo> = builtin().iter().collect();
    out.extend(custom());
    out
}

/// Looks up a served resource by group, version and plural.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    builtin().iter().find(|r| r.group == group && r.version == version && r.plural == plural).or_else(|| {
        custom_read()
            .values()
            .flatten()
            .copied()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
    })
}

/// Looks up a served resource by group, version and kind.
pub fn find_kind(group: &str, version: &str, kind: &str) -> Option<&'static ResourceInfo> {
    builtin().iter().find(|r| r.group == group && r.version == version && r.kind == kind).or_else(|| {
        custom_read().values().flatten().copied().find(|r| r.group == group && r.version == version && r.kind == kind)
    })
}

/// The storage-version resource of the custom kind `kind` in `group`, if registered.
pub fn find_custom_storage(group: &str, kind: &str) -> Option<&'static ResourceInfo> {
    custom_read()
        .values()
        .flatten()
        .copied()
        .find(|r| r.group == group && r.kind == kind && r.custom.is_some_and(|c| c.storage))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_is_consistent() {
        let mut seen = std::collections::HashSet::new();
        for r in builtin() {
            assert!(seen.insert((r.group, r.version, r.plural)), "duplicate {} {}", r.group, r.plural);
            assert_eq!(r.singular, r.kind.to_lowercase());
            assert!(r.key_prefix().starts_with("/registry/"));
        }
        let pods = find("", "v1", "pods").expect("pods");
        assert!(pods.has_status());
        assert_eq!(pods.key(Some("default"), "a"), "/registry/core/pods/default/a");
        assert_eq!(pods.field_path("status.phase"), Some("status.phase"));
        let ev = find("events.k8s.io", "v1", "events").expect("events.k8s.io");
        assert!(ev.is_view());
        assert_eq!(ev.key_prefix(), "/registry/core/events/");
        let hpa1 = find("autoscaling", "v1", "horizontalpodautoscalers").expect("hpa v1");
        assert!(hpa1.is_view());
        let deploy = find("apps", "v1", "deployments").expect("deployments");
        assert_eq!(deploy.subresource("scale").map(|s| s.group), Some("autoscaling"));
        let groups = builtin_groups();
        assert_eq!(groups[0].0, "");
        let autoscaling = groups.iter().find(|(g, _)| *g == "autoscaling").expect("autoscaling");
        assert_eq!(autoscaling.1, vec!["v2", "v1"]);
    }
}
