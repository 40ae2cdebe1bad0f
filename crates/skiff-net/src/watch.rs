//! The one watch pattern the node's nftables controllers (service proxy, NetworkPolicy) share:
//! a kube-runtime reflector whose every event wakes the controller's sync loop.
//!
//! What does not live here: what a controller does once woken.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use tokio::sync::Notify;

/// Keeps the returned store filled from a watch of `api`, notifying `changed` on every event;
/// a failed watch is logged (naming `component`) and retried after a second.
pub fn reflect<K>(api: Api<K>, changed: Arc<Notify>, component: &'static str) -> Store<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher::watcher(api, watcher::Config::default()));
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => changed.notify_one(),
                Err(e) => {
                    tracing::warn!(error = %e, component, "watch failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
    reader
}
