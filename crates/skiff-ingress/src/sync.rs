//! The control loop: reflectors of IngressClasses, Ingresses, Services, EndpointSlices, TLS
//! Secrets and Nodes; on every change the table is rebuilt and swapped (listeners keep running),
//! the IngressClass `skiff` is created if missing, served Ingresses get
//! `status.loadBalancer.ingress` = the nodes' InternalIPs (the servicelb's source), and new
//! problems become Warning events (once per Ingress generation and message).
//!
//! What does not live here: building the table ([`crate::model`]), serving ([`crate::proxy`]).

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use serde_json::json;
use skiff_controllers::events::Events;
use tokio::sync::Notify;

use crate::model::{self, CLASS_NAME, CONTROLLER, DEFAULT_CLASS_ANNOTATION, Objects};
use crate::table::TableHandle;

/// The component name of the controller's events.
pub const COMPONENT: &str = "skiff-ingress";

fn reflect<K>(api: Api<K>, cfg: watcher::Config, changed: Arc<Notify>) -> Store<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher::watcher(api, cfg));
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            if let Err(e) = event {
                tracing::warn!(error = %e, "ingress watch failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            } else {
                changed.notify_one();
            }
        }
    });
    reader
}

/// The IngressClass created at start when missing.
pub fn default_class(make_default: bool) -> IngressClass {
    let mut class = IngressClass::default();
    class.metadata.name = Some(CLASS_NAME.into());
    if make_default {
        class.metadata.annotations = Some([(DEFAULT_CLASS_ANNOTATION.to_string(), "true".to_string())].into());
    }
    class.spec = Some(k8s_openapi::api::networking::v1::IngressClassSpec {
        controller: Some(CONTROLLER.into()),
        parameters: None,
    });
    class
}

fn lb_ips(ing: &Ingress) -> Vec<String> {
    ing.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.clone())
        .collect()
}

/// Runs the loop until the task is aborted; every rebuilt table is stored into `table`.
pub async fn run(client: kube::Client, table: TableHandle) {
    let changed = Arc::new(Notify::new());
    let all = watcher::Config::default;
    let classes = reflect(Api::<IngressClass>::all(client.clone()), all(), changed.clone());
    let ingresses = reflect(Api::<Ingress>::all(client.clone()), all(), changed.clone());
    let services = reflect(Api::<Service>::all(client.clone()), all(), changed.clone());
    let slices = reflect(Api::<EndpointSlice>::all(client.clone()), all(), changed.clone());
    let secrets = reflect(Api::<Secret>::all(client.clone()), all().fields("type=kubernetes.io/tls"), changed.clone());
    let nodes = reflect(Api::<Node>::all(client.clone()), all(), changed.clone());
    for ready in [
        classes.wait_until_ready().await,
        ingresses.wait_until_ready().await,
        services.wait_until_ready().await,
        slices.wait_until_ready().await,
        secrets.wait_until_ready().await,
        nodes.wait_until_ready().await,
    ] {
        if ready.is_err() {
            return;
        }
    }
    tracing::info!("ingress controller synced");
    let events = Events::new(client.clone(), COMPONENT);
    let mut reported: HashSet<(String, i64, &'static str, String)> = HashSet::new();
    loop {
        let class_list = classes.state();
        let mut retry = false;
        if !class_list.iter().any(|c| c.metadata.name.as_deref() == Some(CLASS_NAME)) {
            let class = default_class(!model::another_default(&class_list));
            match Api::<IngressClass>::all(client.clone()).create(&PostParams::default(), &class).await {
                Ok(_) => tracing::info!(class = CLASS_NAME, "IngressClass created"),
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot create the IngressClass");
                    retry = true;
                }
            }
        }
        let (ing_list, svc_list, slice_list, secret_list) =
            (ingresses.state(), services.state(), slices.state(), secrets.state());
        let built = model::build(&Objects {
            classes: &class_list,
            ingresses: &ing_list,
            services: &svc_list,
            slices: &slice_list,
            secrets: &secret_list,
        });
        let served = built.served;
        let problems = built.problems;
        table.store(built.table);
        tracing::debug!(ingresses = served.len(), "ingress table swapped");

        let mut current = HashSet::new();
        for p in problems {
            let meta = &p.ingress.metadata;
            let key = (meta.uid.clone().unwrap_or_default(), meta.generation.unwrap_or(0), p.reason, p.message);
            if !reported.contains(&key) {
                tracing::warn!(namespace = ?meta.namespace, ingress = ?meta.name, reason = p.reason, message = %key.3, "ingress problem");
                events.warning(p.ingress.as_ref(), p.reason, key.3.clone()).await;
            }
            current.insert(key);
        }
        reported = current;

        let mut ips: Vec<Ipv4Addr> = skiff_controllers::servicelb::node_internal_ips(&nodes.state());
        ips.sort();
        ips.dedup();
        let want: Vec<String> = ips.iter().map(Ipv4Addr::to_string).collect();
        let mut patched = BTreeMap::new();
        for ing in &served {
            if lb_ips(ing) == want {
                continue;
            }
            let ns = ing.metadata.namespace.clone().unwrap_or_default();
            let name = ing.metadata.name.clone().unwrap_or_default();
            let list: Vec<serde_json::Value> = want.iter().map(|ip| json!({"ip": ip})).collect();
            let patch = json!({"status": {"loadBalancer": {"ingress": list}}});
            let api: Api<Ingress> = Api::namespaced(client.clone(), &ns);
            match api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => {
                    patched.insert((ns, name), want.clone());
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => {
                    tracing::warn!(namespace = %ns, ingress = %name, error = %e, "cannot set the Ingress status");
                    retry = true;
                }
            }
        }
        if !patched.is_empty() {
            tracing::info!(ingresses = ?patched.keys().collect::<Vec<_>>(), addresses = ?want, "Ingress status set");
        }
        if retry {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        changed.notified().await;
        // Let a burst of changes (a rollout's slices) land in one rebuild.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_class_is_default_only_when_asked() {
        let c = default_class(true);
        assert_eq!(c.metadata.name.as_deref(), Some("skiff"));
        assert_eq!(c.spec.and_then(|s| s.controller).as_deref(), Some(CONTROLLER));
        assert!(c.metadata.annotations.is_some_and(|a| a[DEFAULT_CLASS_ANNOTATION] == "true"));
        assert!(default_class(false).metadata.annotations.is_none());
    }
}
