//! Objects every cluster has from the start: the default namespaces, the `kubernetes` Service
//! with its Endpoints and EndpointSlice pointing at this API server, the system priority
//! classes (`system-node-critical`, `system-cluster-critical`), and k3s's default StorageClass
//! `local-path` (served by the controller manager's built-in `rancher.io/local-path` provisioner).
//!
//! Created through the normal write path (so defaults, validation and address allocation apply)
//! at every start when missing; the Endpoints and EndpointSlice are also corrected when the API's
//! address or port changed.

use serde_json::{Value, json};
use skiff_api::StatusError;
use skiff_api::catalogue;

use crate::handlers::{Admission, Ctx, create_object};
use crate::reqinfo::Verb;
use crate::state::ApiState;

/// Namespaces that always exist.
pub const DEFAULT_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Namespaces the API refuses to delete (as upstream's namespace lifecycle admission does).
pub const UNDELETABLE_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

/// The default StorageClass every cluster starts with (k3s's).
pub const LOCAL_PATH_CLASS: &str = "local-path";
/// Its provisioner, built into the controller manager.
pub const LOCAL_PATH_PROVISIONER: &str = "rancher.io/local-path";

/// Creates `obj` if missing; with `repair`, also rewrites the listed top-level fields of an
/// existing object when they differ (the API's own endpoints follow its address and port).
async fn ensure_with(
    state: &ApiState,
    group: &str,
    version: &str,
    plural: &str,
    obj: Value,
    repair: &[&str],
) -> Result<(), StatusError> {
    let info =
        catalogue::find(group, version, plural).ok_or_else(|| StatusError::internal(format!("{plural} not served")))?;
    let ns = obj.get("metadata").and_then(|m| m.get("namespace")).and_then(Value::as_str).map(str::to_string);
    let ctx = Ctx::internal(info, ns.as_deref(), Verb::Update);
    let name = obj.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or("").to_string();
    let Some(kv) = state.store.get(&ctx.key(&name)).await.map_err(StatusError::internal)? else {
        return match create_object(state, &ctx, obj, &mut Admission::internal()).await {
            Ok(_) => Ok(()),
            Err(e) if e.code == 409 => Ok(()),
            Err(e) => Err(e),
        };
    };
    let current: Value = serde_json::from_slice(&kv.value).map_err(StatusError::internal)?;
    if repair.iter().all(|f| current.get(*f) == obj.get(*f)) {
        return Ok(());
    }
    let fields: Vec<String> = repair.iter().map(|f| f.to_string()).collect();
    let desired = obj.clone();
    let change = move |cur: &Value| -> Result<Value, StatusError> {
        let mut next = cur.clone();
        if let (Some(map), Some(want)) = (next.as_object_mut(), desired.as_object()) {
            for f in &fields {
                match want.get(f) {
                    Some(v) => map.insert(f.clone(), v.clone()),
                    None => map.remove(f),
                };
            }
        }
        Ok(next)
    };
    crate::handlers::update_object(state, &ctx, &name, crate::handlers::Part::Main, &mut Admission::internal(), &change)
        .await
        .map(|_| ())
}

/// Creates `obj` if missing.
async fn ensure(state: &ApiState, group: &str, version: &str, plural: &str, obj: Value) -> Result<(), StatusError> {
    ensure_with(state, group, version, plural, obj, &[]).await
}

/// Creates whatever of the bootstrap objects is missing.
pub async fn run(state: &ApiState) -> Result<(), StatusError> {
    for ns in DEFAULT_NAMESPACES {
        ensure(
            state,
            "",
            "v1",
            "namespaces",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )
        .await?;
    }
    let ip = state.alloc.first_ip().to_string();
    let port = state.config.port;
    let address = state.config.advertise_address.to_string();
    ensure(
        state,
        "",
        "v1",
        "services",
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"type": "ClusterIP", "clusterIP": ip, "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}], "sessionAffinity": "None"}}),
    )
    .await?;
    ensure_with(
        state,
        "",
        "v1",
        "endpoints",
        json!({"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": [{"addresses": [{"ip": address}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]}),
        &["subsets"],
    )
    .await?;
    ensure_with(
        state,
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"kubernetes.io/service-name": "kubernetes", "endpointslice.kubernetes.io/managed-by": "skiff-apiserver"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [address], "conditions": {"ready": true}}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}),
        &["endpoints", "ports"],
    )
    .await?;
    for (name, value, description) in crate::admission::priority::SYSTEM_CLASSES {
        ensure(
            state,
            "scheduling.k8s.io",
            "v1",
            "priorityclasses",
            json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                "metadata": {"name": name}, "value": value, "description": description}),
        )
        .await?;
    }
    ensure(
        state,
        "storage.k8s.io",
        "v1",
        "storageclasses",
        json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": LOCAL_PATH_CLASS, "annotations": {crate::admission::storage::DEFAULT_CLASS_ANNOTATION: "true"}},
            "provisioner": LOCAL_PATH_PROVISIONER, "volumeBindingMode": "WaitForFirstConsumer", "reclaimPolicy": "Delete"}),
    )
    .await?;
    state.set_bootstrapped();
    Ok(())
}
