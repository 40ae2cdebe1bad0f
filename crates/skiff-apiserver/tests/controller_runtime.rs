//! A kube-rs operator end to end against an in-process API server: a `#[derive(CustomResource)]`
//! type whose generated CRD is installed by server-side apply, and a real
//! `kube::runtime::Controller` that owns a ConfigMap per object (controller owner reference),
//! applies `.status` through the status subresource, guards deletion with
//! `kube::runtime::finalizer`, and publishes Events with `kube::runtime::events::Recorder`.
//!
//! The reconciler only ever returns `Action::await_change()`, so every reconciliation after the
//! first is driven by the watch. The test reads everything back from the server.
//!
//! Server-side apply of `/scale` on a custom resource lives in `server_side_apply.rs`, not here.

// `duplicated_attributes` misreads the two `printcolumn(...)` arguments of `#[kube]` as repeated attributes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::duplicated_attributes, missing_docs)]

mod support;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Event as CoreEvent};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{self, finalizer};
use kube::runtime::{conditions, wait::await_condition, watcher};
use kube::{CustomResource, CustomResourceExt, Resource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use support::TestServer;

/// The custom resource the operator manages: it echoes `spec.message` into a ConfigMap.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "operator.skiff.test",
    version = "v1",
    kind = "Echo",
    plural = "echoes",
    namespaced,
    status = "EchoStatus",
    shortname = "ech",
    printcolumn(name = "Message", type_ = "string", json_path = ".spec.message"),
    printcolumn(name = "Observed", type_ = "string", json_path = ".status.observedMessage", priority = "1")
)]
#[serde(rename_all = "camelCase")]
pub struct EchoSpec {
    message: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EchoStatus {
    observed_message: Option<String>,
    config_map: Option<String>,
}

const MANAGER: &str = "echo-operator";
const FINALIZER: &str = "operator.skiff.test/cleanup";
const NS: &str = "default";

#[derive(Debug, thiserror::Error)]
enum ReconcileError {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Finalizer(#[source] Box<finalizer::Error<kube::Error>>),
}

struct Ctx {
    client: kube::Client,
    recorder: Recorder,
}

fn config_map_name(echo: &Echo) -> String {
    format!("{}-echo", echo.name_any())
}

/// Creates or updates the owned ConfigMap, applies the status and records an Event.
async fn apply(echo: Arc<Echo>, ctx: &Ctx) -> Result<Action, kube::Error> {
    let ns = echo.namespace().unwrap_or_else(|| NS.into());
    let owner = echo.controller_owner_ref(&()).expect("an Echo read from the server has a uid");
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(config_map_name(&echo)),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([("message".to_string(), echo.spec.message.clone())])),
        ..ConfigMap::default()
    };
    let apply = PatchParams::apply(MANAGER).force();
    Api::<ConfigMap>::namespaced(ctx.client.clone(), &ns)
        .patch(&config_map_name(&echo), &apply, &Patch::Apply(&cm))
        .await?;
    let status = json!({
        "apiVersion": Echo::api_version(&()),
        "kind": Echo::kind(&()),
        "status": EchoStatus { observed_message: Some(echo.spec.message.clone()), config_map: Some(config_map_name(&echo)) },
    });
    Api::<Echo>::namespaced(ctx.client.clone(), &ns)
        .patch_status(&echo.name_any(), &apply, &Patch::Apply(&status))
        .await?;
    let event = Event {
        type_: EventType::Normal,
        reason: "Echoed".into(),
        note: Some(format!("echoed {:?}", echo.spec.message)),
        action: "Reconcile".into(),
        secondary: None,
    };
    ctx.recorder.publish(&event, &echo.object_ref(&())).await?;
    Ok(Action::await_change())
}

/// Runs before the finalizer is removed: records that cleanup happened.
async fn cleanup(echo: Arc<Echo>, ctx: &Ctx) -> Result<Action, kube::Error> {
    let event = Event {
        type_: EventType::Normal,
        reason: "CleanedUp".into(),
        note: Some("finalizer ran".into()),
        action: "Finalize".into(),
        secondary: None,
    };
    ctx.recorder.publish(&event, &echo.object_ref(&())).await?;
    Ok(Action::await_change())
}

async fn reconcile(echo: Arc<Echo>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    let ns = echo.namespace().unwrap_or_else(|| NS.into());
    let api: Api<Echo> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&api, FINALIZER, echo, |event| async {
        match event {
            finalizer::Event::Apply(e) => apply(e, &ctx).await,
            finalizer::Event::Cleanup(e) => cleanup(e, &ctx).await,
        }
    })
    .await
    .map_err(|e| ReconcileError::Finalizer(Box::new(e)))
}

fn error_policy(_: Arc<Echo>, err: &ReconcileError, _: Arc<Ctx>) -> Action {
    eprintln!("reconcile failed: {err}");
    Action::requeue(Duration::from_millis(200))
}

/// Polls `check` against the server until it yields a value (10 s at most).
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    for _ in 0..200 {
        if let Some(v) = check().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Events about an object, read through core/v1 (the Recorder writes events.k8s.io/v1).
async fn reasons(client: &kube::Client, name: &str) -> Vec<String> {
    let events: Api<CoreEvent> = Api::namespaced(client.clone(), NS);
    let lp = ListParams::default().fields(&format!("involvedObject.name={name},involvedObject.kind=Echo"));
    events.list(&lp).await.unwrap().items.into_iter().filter_map(|e| e.reason).collect()
}

#[tokio::test]
async fn derived_custom_resource_is_reconciled_by_a_kube_runtime_controller() {
    let ts = TestServer::start().await;
    let client = ts.client().await;

    // Install the generated CRD by server-side apply and wait until it is Established.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd_name = Echo::crd_name();
    crds.patch(crd_name, &PatchParams::apply("installer").force(), &Patch::Apply(Echo::crd())).await.unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        await_condition(crds.clone(), crd_name, conditions::is_crd_established()),
    )
    .await
    .expect("the CRD is established in time")
    .unwrap();
    let crd = crds.get(crd_name).await.unwrap();
    assert_eq!(crd.spec.names.short_names, Some(vec!["ech".to_string()]));
    let version = &crd.spec.versions[0];
    assert!(version.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some(), "status subresource");
    let columns: Vec<String> =
        version.additional_printer_columns.iter().flatten().map(|c| c.json_path.clone()).collect();
    assert_eq!(columns, [".spec.message", ".status.observedMessage"]);

    // The operator.
    let echoes: Api<Echo> = Api::namespaced(client.clone(), NS);
    let reporter = Reporter { controller: MANAGER.into(), instance: Some("test-0".into()) };
    let ctx = Arc::new(Ctx { client: client.clone(), recorder: Recorder::new(client.clone(), reporter) });
    let controller = Controller::new(echoes.clone(), watcher::Config::default())
        .owns(Api::<ConfigMap>::namespaced(client.clone(), NS), watcher::Config::default())
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()));
    let operator = tokio::spawn(controller);

    // Create two objects: each gets its ConfigMap (owned by it), status and finalizer.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    for (name, message) in [("first", "hello"), ("second", "bonjour")] {
        let created = echoes
            .create(&PostParams::default(), &Echo::new(name, EchoSpec { message: message.into() }))
            .await
            .unwrap();
        let cm =
            eventually("the owned ConfigMap", || async { cms.get_opt(&format!("{name}-echo")).await.unwrap() }).await;
        assert_eq!(cm.data.unwrap()["message"], message);
        let owner = &cm.metadata.owner_references.unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("Echo", name));
        assert_eq!(owner.controller, Some(true));
        assert_eq!(Some(&owner.uid), created.metadata.uid.as_ref());
        let echo = eventually("the status", || async {
            let e = echoes.get_status(name).await.unwrap();
            (e.status.as_ref().and_then(|s| s.observed_message.as_deref()) == Some(message)).then_some(e)
        })
        .await;
        assert_eq!(echo.status.unwrap().config_map.as_deref(), Some(format!("{name}-echo").as_str()));
        assert_eq!(echo.metadata.finalizers, Some(vec![FINALIZER.to_string()]));
        let status_entry = echo
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .find(|e| e.manager.as_deref() == Some(MANAGER) && e.subresource.as_deref() == Some("status"))
            .expect("the status apply is recorded against the status subresource");
        assert_eq!(status_entry.operation.as_deref(), Some("Apply"));
        eventually("the Echoed event", || async {
            reasons(&client, name).await.contains(&"Echoed".into()).then_some(())
        })
        .await;
    }

    // An update is picked up from the watch (the reconciler never requeues).
    echoes
        .patch("first", &PatchParams::default(), &Patch::Merge(json!({"spec": {"message": "changed"}})))
        .await
        .unwrap();
    eventually("the ConfigMap to follow the update", || async {
        let cm = cms.get("first-echo").await.unwrap();
        (cm.data.unwrap()["message"] == "changed").then_some(())
    })
    .await;
    eventually("the status to follow the update", || async {
        let e = echoes.get_status("first").await.unwrap();
        (e.status.and_then(|s| s.observed_message).as_deref() == Some("changed")).then_some(())
    })
    .await;

    // Deleting holds the object on the finalizer until the cleanup ran, then it is gone.
    echoes.delete("first", &DeleteParams::default()).await.unwrap();
    eventually("the object to disappear", || async { echoes.get_opt("first").await.unwrap().is_none().then_some(()) })
        .await;
    let seen = reasons(&client, "first").await;
    assert!(seen.contains(&"CleanedUp".to_string()), "the finalizer's cleanup ran: {seen:?}");
    assert!(echoes.get_opt("second").await.unwrap().is_some(), "the other object is untouched");
    assert!(!reasons(&client, "second").await.contains(&"CleanedUp".to_string()));

    operator.abort();
}
