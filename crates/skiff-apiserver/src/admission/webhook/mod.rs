//! Dynamic admission webhooks (`admissionregistration.k8s.io/v1` Mutating and
//! ValidatingWebhookConfiguration), dispatched as upstream's `MutatingAdmissionWebhook` and
//! `ValidatingAdmissionWebhook` plugins: mutating webhooks one after the other in configuration
//! order (with one reinvocation round for `reinvocationPolicy: IfNeeded`), validating webhooks
//! in parallel; `failurePolicy`, `sideEffects` on dry runs, warnings, JSONPatch answers.
//!
//! Submodules: [`config`] (the compiled configurations, from the watch cache), [`rules`]
//! (matching), [`review`] (the AdmissionReview wire format) and [`client`] (HTTPS calls).
//! `matchConditions` are evaluated with the CEL engine of `skiff_api::crd::cel` (without the
//! `authorizer` variable). Audit annotations: `auditAnnotations` of the answers
//! (`<webhook>/<key>`) and upstream's `mutation.`/`patch.webhook.admission.k8s.io/round_<r>_index_<i>`.

pub mod client;
pub mod config;
pub mod review;
pub mod rules;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use skiff_api::StatusError;
use skiff_api::catalogue::{self, ResourceInfo};
use skiff_api::status::GroupResource;

use config::Hook;
pub use config::Registry;
use review::Attributes;
use rules::{NamespaceLabels, Target};

use crate::audit::Level as AuditLevel;
use crate::handlers::Ctx;
use crate::objects::meta_str;
use crate::state::ApiState;
use crate::views;

/// The write being admitted.
#[derive(Debug, Clone, Copy)]
pub struct Write<'a> {
    /// `CREATE`, `UPDATE`, `DELETE` or `CONNECT`.
    pub operation: &'static str,
    /// The object before the write (stored form).
    pub old: Option<&'a Value>,
    /// `dryRun=All`.
    pub dry_run: bool,
}

/// How the object a mutating webhook patched is taken back (stored form in, stored form out):
/// upstream decodes it into its type, dropping unknown fields, and applies the defaults again,
/// so the next webhook, the reinvocation round and validation see a defaulted object.
pub type Reread<'a> = &'a (dyn Fn(Value) -> Result<Value, StatusError> + Send + Sync);

/// The resource (and kind) a webhook receives the request as.
pub(crate) struct Invocation {
    /// The resource the webhook is matched as.
    pub(crate) info: &'static ResourceInfo,
}

/// Why one webhook call did not allow the request.
enum HookError {
    /// The call failed (upstream's `ErrCallingWebhook`); subject to `failurePolicy`.
    Calling(String),
    /// A final answer: a denial or a request the webhook cannot take.
    Status(StatusError),
}

fn is_namespace_resource(info: &ResourceInfo) -> bool {
    info.group.is_empty() && info.plural == "namespaces"
}

/// Resources serving the same stored objects as `info` (other versions, `events.k8s.io`).
pub(crate) fn equivalents(info: &'static ResourceInfo) -> impl Iterator<Item = &'static ResourceInfo> {
    let prefix = info.key_prefix();
    catalogue::builtin().iter().filter(move |r| !std::ptr::eq(*r, info) && r.key_prefix() == prefix)
}

/// Group, version and kind of `info`'s subresource `sub` (the parent kind for `status`).
pub(crate) fn kind_of(info: &'static ResourceInfo, sub: &str) -> (&'static str, &'static str, &'static str) {
    match info.subresource(sub) {
        Some(s) if !sub.is_empty() => (
            if s.group.is_empty() && s.version.is_empty() { info.group } else { s.group },
            if s.version.is_empty() { info.version } else { s.version },
            s.kind,
        ),
        _ => (info.group, info.version, info.kind),
    }
}

pub(crate) fn namespace_of(ctx: &Ctx, obj: Option<&Value>, old: Option<&Value>) -> String {
    if is_namespace_resource(ctx.storage) {
        return name_of(ctx, obj, old);
    }
    ctx.namespace.clone().unwrap_or_default()
}

pub(crate) fn name_of(ctx: &Ctx, obj: Option<&Value>, old: Option<&Value>) -> String {
    ctx.name.clone().or_else(|| obj.or(old).and_then(|o| meta_str(o, "name")).map(str::to_string)).unwrap_or_default()
}

pub(crate) fn namespace_lookup(state: &ApiState, name: &str) -> Option<BTreeMap<String, String>> {
    let cache = state.caches.cache("/registry/core/namespaces/")?;
    cache.get(&format!("/registry/core/namespaces/{name}")).map(|e| e.labels.clone())
}

/// Upstream's `ShouldCallHook`: the invocation when `hook` applies to the request.
fn should_call(
    state: &ApiState,
    ctx: &Ctx,
    hook: &Hook,
    w: &Write<'_>,
    obj: Option<&Value>,
) -> Result<Option<Invocation>, StatusError> {
    let sub = ctx.subresource.as_deref().unwrap_or_default();
    let namespace = namespace_of(ctx, obj, w.old);
    let target = |info: &ResourceInfo| Target {
        operation: w.operation,
        group: info.group,
        version: info.version,
        resource: info.plural,
        subresource: sub,
        namespace: if is_namespace_resource(info) { "" } else { namespace.as_str() },
    };
    let ns_selector = hook.namespace_selector.as_ref().map_err(StatusError::internal)?;
    if !ns_selector.is_empty() {
        let t = Target { namespace: &namespace, ..target(ctx.info) };
        match rules::namespace_labels(&t, obj, |n| namespace_lookup(state, n)) {
            Some(NamespaceLabels::NotApplicable) => {}
            Some(NamespaceLabels::Labels(labels)) => {
                if !ns_selector.matches(&labels) {
                    return Ok(None);
                }
            }
            None => return Err(StatusError::not_found(&GroupResource::new("", "namespaces"), &namespace)),
        }
    }
    let obj_selector = hook.object_selector.as_ref().map_err(StatusError::internal)?;
    if !rules::object_selector_matches(obj_selector, obj, w.old) {
        return Ok(None);
    }
    let mut invocation = None;
    if rules::any_rule_matches(&hook.rules, &target(ctx.info)) {
        invocation = Some(Invocation { info: ctx.info });
    } else if hook.equivalent {
        invocation = equivalents(ctx.info)
            .find(|eq| rules::any_rule_matches(&hook.rules, &target(eq)))
            .map(|info| Invocation { info });
    }
    match invocation {
        Some(inv) if conditions_hold(ctx, hook, &inv, w, obj)? => Ok(Some(inv)),
        _ => Ok(None),
    }
}

pub(crate) fn options(operation: &str, dry_run: bool) -> Option<Value> {
    let kind = match operation {
        "CREATE" => "CreateOptions",
        "UPDATE" => "UpdateOptions",
        "DELETE" => "DeleteOptions",
        _ => return None,
    };
    let mut o = json!({"kind": kind, "apiVersion": "meta.k8s.io/v1"});
    if dry_run {
        o["dryRun"] = json!(["All"]);
    }
    Some(o)
}

/// The attributes of the request as sent for resource `info`.
fn attributes<'a>(
    ctx: &'a Ctx,
    info: &'static ResourceInfo,
    w: &Write<'_>,
    name: &'a str,
    namespace: &'a str,
    object: Option<&'a Value>,
    old_object: Option<&'a Value>,
) -> Attributes<'a> {
    let sub = ctx.subresource.as_deref().unwrap_or_default();
    Attributes {
        operation: w.operation,
        kind: kind_of(info, sub),
        resource: (info.group, info.version, info.plural),
        request_kind: kind_of(ctx.info, sub),
        request_resource: (ctx.info.group, ctx.info.version, ctx.info.plural),
        subresource: sub,
        name,
        namespace,
        user: &ctx.user,
        object,
        old_object,
        dry_run: w.dry_run,
        options: options(w.operation, w.dry_run),
    }
}

/// The CEL variables of a request for resource `info`: `object`, `oldObject` (served forms)
/// and `request` (the AdmissionRequest without the objects).
pub(crate) fn cel_activation(
    ctx: &Ctx,
    info: &'static ResourceInfo,
    w: &Write<'_>,
    obj: Option<&Value>,
) -> skiff_api::crd::cel::Activation {
    let served = obj.map(|o| views::from_storage(info, o.clone())).unwrap_or(Value::Null);
    let served_old = w.old.map(|o| views::from_storage(info, o.clone())).unwrap_or(Value::Null);
    let (name, namespace) = (name_of(ctx, obj, w.old), namespace_of(ctx, obj, w.old));
    let attrs = attributes(ctx, info, w, &name, &namespace, None, None);
    let mut request = review::request("v1", "", &attrs)["request"].take();
    if let Some(m) = request.as_object_mut() {
        m.remove("object");
        m.remove("oldObject");
    }
    let mut act = skiff_api::crd::cel::Activation::new();
    act.bind("object", served).bind("oldObject", served_old).bind("request", request);
    act
}

/// Upstream's match conditions: every condition must hold. `Ok(false)` skips the webhook; an
/// evaluation error fails closed (403) under `failurePolicy: Fail`, else skips it.
fn conditions_hold(
    ctx: &Ctx,
    hook: &Hook,
    inv: &Invocation,
    w: &Write<'_>,
    obj: Option<&Value>,
) -> Result<bool, StatusError> {
    if hook.match_conditions.is_empty() {
        return Ok(true);
    }
    let act = cel_activation(ctx, inv.info, w, obj);
    let mut errors = Vec::new();
    for (name, expr) in &hook.match_conditions {
        let outcome = expr.as_ref().map_err(String::clone).and_then(|e| skiff_api::crd::cel::evaluate(e, &act));
        match outcome {
            Ok(skiff_api::crd::cel::Outcome::Bool(true)) => {}
            Ok(skiff_api::crd::cel::Outcome::Bool(false)) => return Ok(false),
            Ok(_) => errors.push(format!("matchCondition '{name}' must evaluate to a bool")),
            Err(e) => errors.push(format!("failed to evaluate matchCondition '{name}': {e}")),
        }
    }
    if errors.is_empty() || hook.ignore_failures {
        return Ok(errors.is_empty());
    }
    let name = name_of(ctx, obj, w.old);
    Err(StatusError::forbidden(&ctx.group_resource(), &name, &errors.join(", ")))
}

/// Calls `hook` for the request; the verdict when it allows it.
async fn call_hook(
    state: &ApiState,
    ctx: &Ctx,
    hook: &Hook,
    inv: &Invocation,
    w: &Write<'_>,
    obj: Option<&Value>,
    mutating: bool,
) -> Result<review::Verdict, HookError> {
    if w.dry_run && !matches!(hook.side_effects.as_str(), "None" | "NoneOnDryRun") {
        return Err(HookError::Status(StatusError::bad_request(format!(
            "admission webhook \"{}\" does not support dry run",
            hook.name
        ))));
    }
    let Some(version) = hook.review_version else {
        return Err(HookError::Calling(
            "could not create admission objects: webhook does not accept known AdmissionReview versions (v1, v1beta1)"
                .to_string(),
        ));
    };
    let served = obj.map(|o| views::from_storage(inv.info, o.clone()));
    let served_old = w.old.map(|o| views::from_storage(inv.info, o.clone()));
    let (name, namespace) = (name_of(ctx, obj, w.old), namespace_of(ctx, obj, w.old));
    let attrs = attributes(ctx, inv.info, w, &name, &namespace, served.as_ref(), served_old.as_ref());
    let uid = uuid::Uuid::new_v4().to_string();
    let body = review::request(version, &uid, &attrs);
    let dest =
        client::destination(state, hook).map_err(|e| HookError::Calling(format!("failed to call webhook: {e}")))?;
    let answer = client::call(hook, &dest, &body)
        .await
        .map_err(|e| HookError::Calling(format!("failed to call webhook: {e}")))?;
    let verdict = review::verify(version, &uid, mutating, &answer)
        .map_err(|e| HookError::Calling(format!("received invalid webhook response: {e}")))?;
    for (key, value) in &verdict.audit_annotations {
        ctx.audit_annotation(AuditLevel::Metadata, &format!("{}/{key}", hook.name), value.clone());
    }
    if !verdict.allowed {
        return Err(HookError::Status(review::denial(&hook.name, verdict.result.as_ref())));
    }
    Ok(verdict)
}

/// Applies `failurePolicy` to a failed call: `Ok` when the failure is ignored.
fn on_failure(hook: &Hook, err: HookError) -> Result<(), StatusError> {
    match err {
        HookError::Status(e) => Err(e),
        HookError::Calling(reason) => {
            let message = format!("failed calling webhook \"{}\": {reason}", hook.name);
            if hook.ignore_failures {
                tracing::warn!(webhook = %hook.name, error = %message, "failed calling webhook, failing open");
                Ok(())
            } else {
                tracing::warn!(webhook = %hook.name, error = %message, "failed calling webhook, failing closed");
                Err(StatusError::internal(message))
            }
        }
    }
}

fn exempt(ctx: &Ctx) -> bool {
    rules::is_exempt(ctx.storage.group, ctx.storage.kind)
}

/// Where a mutating webhook call stands in the request: upstream's `round_<r>_index_<i>`.
#[derive(Clone, Copy)]
struct Call {
    round: usize,
    index: usize,
}

/// Records a mutating webhook call in the audit log as upstream does: whether it mutated the
/// object (level Metadata) and, when it sent a patch, the patch (level Request).
fn annotate_mutation(ctx: &Ctx, hook: &Hook, call: Call, mutated: bool, patch: &[u8]) {
    let suffix = format!("round_{}_index_{}", call.round, call.index);
    let mutation = json!({"configuration": hook.configuration, "webhook": hook.name, "mutated": mutated});
    ctx.audit_annotation(
        AuditLevel::Metadata,
        &format!("mutation.webhook.admission.k8s.io/{suffix}"),
        mutation.to_string(),
    );
    if let Some(ops) = serde_json::from_slice::<Value>(patch).ok().filter(|_| !review::patch_is_empty(patch)) {
        let value = json!({
            "configuration": hook.configuration, "webhook": hook.name, "patch": ops, "patchType": "JSONPatch"
        });
        ctx.audit_annotation(
            AuditLevel::Request,
            &format!("patch.webhook.admission.k8s.io/{suffix}"),
            value.to_string(),
        );
    }
}

/// Calls one mutating webhook and applies its patch to `obj`; whether the object changed.
#[allow(clippy::too_many_arguments)]
async fn mutate_once(
    state: &ApiState,
    ctx: &Ctx,
    hook: &Hook,
    call: Call,
    inv: &Invocation,
    w: &Write<'_>,
    obj: &mut Option<&mut Value>,
    reread: Reread<'_>,
    warnings: &mut Vec<String>,
) -> Result<bool, StatusError> {
    let verdict = match call_hook(state, ctx, hook, inv, w, obj.as_deref(), true).await {
        Ok(v) => v,
        Err(e) => {
            annotate_mutation(ctx, hook, call, false, &[]);
            return on_failure(hook, e).map(|()| false);
        }
    };
    warnings.extend(verdict.warnings);
    let changed = apply_verdict_patch(hook, inv, obj, &verdict.patch, reread)?;
    annotate_mutation(ctx, hook, call, changed, &verdict.patch);
    Ok(changed)
}

/// Applies a mutating webhook's patch to `obj` and rereads the result; whether the object
/// changed.
fn apply_verdict_patch(
    hook: &Hook,
    inv: &Invocation,
    obj: &mut Option<&mut Value>,
    patch: &[u8],
    reread: Reread<'_>,
) -> Result<bool, StatusError> {
    if review::patch_is_empty(patch) {
        return Ok(false);
    }
    let Some(target) = obj.as_deref_mut() else {
        return Err(StatusError::internal(format!(
            "admission webhook \"{}\" attempted to modify the object, which is not supported for this operation",
            hook.name
        )));
    };
    let served = views::from_storage(inv.info, target.clone());
    let patched = match review::apply_patch(&served, patch) {
        Ok(p) => p,
        Err(e) if serde_json::from_slice::<json_patch::Patch>(patch).is_err() => {
            return on_failure(
                hook,
                HookError::Calling(format!("received undecodable patch in webhook response: {e}")),
            )
            .map(|()| false);
        }
        Err(e) => return Err(StatusError::internal(e)),
    };
    if patched == served {
        return Ok(false);
    }
    let patched = reread(views::to_storage(inv.info, patched))?;
    let changed = patched != *target;
    *target = patched;
    Ok(changed)
}

/// Runs the mutating webhooks on a write of `obj` (stored form; `None` for deletes), in
/// order, then once more those with `reinvocationPolicy: IfNeeded` that ran before a later
/// webhook changed the object. Each patched object goes through `reread` before the next
/// webhook sees it. Returns whether the object changed.
pub async fn mutate(
    state: &ApiState,
    ctx: &Ctx,
    w: Write<'_>,
    mut obj: Option<&mut Value>,
    reread: Reread<'_>,
    warnings: &mut Vec<String>,
) -> Result<bool, StatusError> {
    if exempt(ctx) {
        return Ok(false);
    }
    let hooks = state.webhooks.mutating(&state.caches);
    if hooks.is_empty() {
        return Ok(false);
    }
    let mut changed = false;
    let mut invoked: Vec<String> = Vec::new();
    let mut reinvoke: BTreeSet<String> = BTreeSet::new();
    for (index, hook) in hooks.iter().enumerate() {
        let Some(inv) = should_call(state, ctx, hook, &w, obj.as_deref())? else { continue };
        if mutate_once(state, ctx, hook, Call { round: 0, index }, &inv, &w, &mut obj, reread, warnings).await? {
            changed = true;
            reinvoke.extend(invoked.iter().cloned());
        }
        if hook.reinvoke_if_needed {
            invoked.push(hook.key());
        }
    }
    if changed && !reinvoke.is_empty() {
        for (index, hook) in hooks.iter().enumerate().filter(|(_, h)| reinvoke.contains(&h.key())) {
            let Some(inv) = should_call(state, ctx, hook, &w, obj.as_deref())? else { continue };
            mutate_once(state, ctx, hook, Call { round: 1, index }, &inv, &w, &mut obj, reread, warnings).await?;
        }
    }
    Ok(changed)
}

/// Runs the validating webhooks on a write of `obj` (stored form; `None` for deletes) in
/// parallel; the first failure in configuration order is the answer.
pub async fn validate(
    state: &ApiState,
    ctx: &Ctx,
    w: Write<'_>,
    obj: Option<&Value>,
    warnings: &mut Vec<String>,
) -> Result<(), StatusError> {
    if exempt(ctx) {
        return Ok(());
    }
    let hooks = state.webhooks.validating(&state.caches);
    if hooks.is_empty() {
        return Ok(());
    }
    let mut relevant = Vec::new();
    for hook in hooks.iter() {
        if let Some(inv) = should_call(state, ctx, hook, &w, obj)? {
            relevant.push((hook, inv));
        }
    }
    let calls = relevant.iter().map(|(hook, inv)| call_hook(state, ctx, hook, inv, &w, obj, false));
    let results = futures::future::join_all(calls).await;
    let mut first = None;
    for ((hook, _), result) in relevant.iter().zip(results) {
        match result {
            Ok(v) => warnings.extend(v.warnings),
            Err(e) => {
                if let Err(e) = on_failure(hook, e) {
                    first.get_or_insert(e);
                }
            }
        }
    }
    first.map_or(Ok(()), Err)
}

/// The webhooks and policies of a CONNECT (exec, attach, port-forward) whose options object is
/// `options`: the mutating webhooks may patch it (each patch taken back through `reread`, which
/// decodes it into the options' type, as upstream), then ValidatingAdmissionPolicies and the
/// validating webhooks see the result, which the connection is to use.
pub async fn admit_connect(
    state: &ApiState,
    ctx: &Ctx,
    options: &mut Value,
    reread: Reread<'_>,
) -> Result<(), StatusError> {
    let w = Write { operation: "CONNECT", old: None, dry_run: false };
    let mut warnings = Vec::new();
    mutate(state, ctx, w, Some(options), reread, &mut warnings).await?;
    super::policy::validate(state, ctx, w, Some(options), &mut warnings)?;
    validate(state, ctx, w, Some(options), &mut warnings).await
}

/// The webhooks and policies of a delete of `old` (stored form): mutating webhooks see no
/// object (a patch is an error), then ValidatingAdmissionPolicies and the validating webhooks.
pub async fn admit_delete(state: &ApiState, ctx: &Ctx, old: &Value, dry_run: bool) -> Result<(), StatusError> {
    let w = Write { operation: "DELETE", old: Some(old), dry_run };
    let mut warnings = Vec::new();
    mutate(state, ctx, w, None, &|v| Ok(v), &mut warnings).await?;
    super::policy::validate(state, ctx, w, None, &mut warnings)?;
    validate(state, ctx, w, None, &mut warnings).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodeproxy::ConnectOptions;

    fn hook() -> Hook {
        let c = serde_json::from_value(json!({
            "metadata": {"name": "c"},
            "webhooks": [{"name": "m.skiff.test", "clientConfig": {"url": "https://127.0.0.1/"},
                "sideEffects": "None", "admissionReviewVersions": ["v1"]}]
        }))
        .expect("configuration");
        config::mutating_hooks(&c).remove(0)
    }

    fn patch(ops: Value) -> Vec<u8> {
        ops.to_string().into_bytes()
    }

    #[test]
    fn a_patched_pod_is_decoded_and_defaulted_before_the_next_webhook() {
        let inv = Invocation { info: catalogue::find("", "v1", "pods").expect("pods") };
        let ops = crate::typed::ops_for("", "Pod").expect("pod ops");
        let reread = |v: Value| crate::admission::decode_patched(ops, v);
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"containers": [{"name": "a", "image": "busybox:1.36"}]}});
        let mut pod = reread(pod).expect("defaulted");
        let add = patch(json!([{"op": "add", "path": "/spec/containers/-",
            "value": {"name": "b", "image": "busybox", "bogus": 1}}]));
        assert!(apply_verdict_patch(&hook(), &inv, &mut Some(&mut pod), &add, &reread).expect("applied"));
        let added = &pod["spec"]["containers"][1];
        assert_eq!(added["imagePullPolicy"], "Always", "{added}");
        assert_eq!(added["terminationMessagePath"], "/dev/termination-log");
        assert!(added.get("bogus").is_none(), "unknown fields are dropped: {added}");
        // Restating a default changes nothing; a value of the wrong type is an internal error.
        let same = patch(json!([{"op": "add", "path": "/spec/containers/1/imagePullPolicy", "value": "Always"}]));
        assert!(!apply_verdict_patch(&hook(), &inv, &mut Some(&mut pod), &same, &reread).expect("applied"));
        let wrong = patch(json!([{"op": "replace", "path": "/spec/containers", "value": "none"}]));
        let err = apply_verdict_patch(&hook(), &inv, &mut Some(&mut pod), &wrong, &reread).expect_err("wrong type");
        assert_eq!(err.code, 500, "{}", err.message);
    }

    #[test]
    fn a_patched_exec_keeps_its_options_type() {
        let inv = Invocation { info: catalogue::find("", "v1", "pods").expect("pods") };
        let options = ConnectOptions::from_query("exec", "command=date&container=a&stdout=1").expect("options");
        let reread = |v: Value| options.reread(v);
        let mut obj = options.to_value();
        let rewrite = patch(json!([{"op": "replace", "path": "/command", "value": ["echo", "hi"]},
            {"op": "replace", "path": "/container", "value": "b"}, {"op": "add", "path": "/extra", "value": 1}]));
        assert!(apply_verdict_patch(&hook(), &inv, &mut Some(&mut obj), &rewrite, &reread).expect("applied"));
        let patched = options.decode_same_kind(obj.clone()).expect("exec options");
        assert_eq!(patched.container(), Some("b"));
        assert_eq!(patched.agent_path("ns", "p", "b"), "/exec/ns/p/b?output=1&command=echo&command=hi");
        assert!(obj.get("extra").is_none(), "{obj}");
        let wrong = patch(json!([{"op": "add", "path": "/stdin", "value": "yes"}]));
        let err = apply_verdict_patch(&hook(), &inv, &mut Some(&mut obj), &wrong, &reread).expect_err("wrong type");
        assert_eq!(err.code, 500, "{}", err.message);
    }
}
