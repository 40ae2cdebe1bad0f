//! Server-side apply and `metadata.managedFields`: who owns which fields of an object.
//!
//! A pure module, like [`crate::strategic`]: it works on JSON objects and the generated schema
//! table and knows nothing of HTTP. [`apply`] merges an applied configuration into the live
//! object (creating it when there is none), detects conflicts with other managers, prunes the
//! fields the applier stopped setting, and records its `Apply` entry. [`record_update`] records
//! the `Update` entry of any other write. Both follow upstream structured-merge-diff:
//!
//! - list semantics come from `+listType`/`+listMapKey` (defaulting from the patch strategy),
//!   `+mapType`/`+structType=atomic` make maps and structs atomic; objects of kinds outside the
//!   table (custom resources) are granular maps with atomic lists;
//! - an applier owns exactly the fields of its last applied configuration; changing a field
//!   another manager owns is a conflict unless forced, setting it to its current value shares it;
//! - an update takes the fields it added or changed from everybody else;
//! - entries without fields are dropped, at most [`MAX_UPDATE_MANAGERS`] `Update` entries are
//!   kept (older ones merge into `ancient-changes`), and an entry's `time` only moves when its
//!   fields change, so no-op writes stay no-ops.
//!
//! Client-sent `managedFields` on non-apply writes are honoured as upstream does: `[{}]` clears
//! them, well-formed entries replace the stored ones, anything else (including `[]`) is ignored.
//!
//! Entries stay recorded against the API version they were written in; a write in another
//! version sees them translated into its own paths ([`versions`]).

mod fieldpath;
pub mod scale;
mod typed;
mod versions;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

pub use fieldpath::{Element, FieldSet, Path, display};
use typed::{Node, Ty};
use versions::Working;
pub use versions::{SamePaths, Versions};

/// Upstream's cap on `Update` entries.
pub const MAX_UPDATE_MANAGERS: usize = 10;

/// The manager that absorbs the oldest `Update` entries beyond the cap.
const ANCIENT_CHANGES: &str = "ancient-changes";

/// Metadata fields the server sets; never owned by anyone.
const SYSTEM_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// `Apply` or `Update`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    /// Server-side apply.
    Apply,
    /// Any other write.
    Update,
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The field manager.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: Operation,
    /// The API version the fields were written in.
    pub api_version: String,
    /// When the fields last changed (RFC 3339, seconds).
    pub time: Option<String>,
    /// `status`, `scale`, … or empty for the main resource.
    pub subresource: String,
    /// The owned fields.
    pub fields: FieldSet,
}

impl Entry {
    /// Whether two entries are the same manager identity (upstream: manager, operation,
    /// subresource, and for `Update` also the API version).
    fn same_identity(&self, other: &Entry) -> bool {
        self.manager == other.manager
            && self.operation == other.operation
            && self.subresource == other.subresource
            && (self.operation == Operation::Apply || self.api_version == other.api_version)
    }

    /// Upstream's rendering of a manager in conflict messages.
    pub fn describe(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            s.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == Operation::Update {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("manager".into(), json!(self.manager));
        m.insert("operation".into(), json!(if self.operation == Operation::Apply { "Apply" } else { "Update" }));
        m.insert("apiVersion".into(), json!(self.api_version));
        if let Some(t) = &self.time {
            m.insert("time".into(), json!(t));
        }
        m.insert("fieldsType".into(), json!("FieldsV1"));
        m.insert("fieldsV1".into(), fieldpath::to_fields_v1(&self.fields));
        if !self.subresource.is_empty() {
            m.insert("subresource".into(), json!(self.subresource));
        }
        Value::Object(m)
    }

    fn from_json(v: &Value) -> Option<Entry> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let operation = match s("operation")?.as_str() {
            "Apply" => Operation::Apply,
            "Update" => Operation::Update,
            _ => return None,
        };
        Some(Entry {
            manager: s("manager").unwrap_or_default(),
            operation,
            api_version: s("apiVersion").unwrap_or_default(),
            time: s("time"),
            subresource: s("subresource").unwrap_or_default(),
            fields: v.get("fieldsV1").map(fieldpath::from_fields_v1).unwrap_or_default(),
        })
    }
}

/// The `managedFields` of an object.
pub fn entries(obj: &Value) -> Vec<Entry> {
    obj.get("metadata")
        .and_then(|m| m.get("managedFields"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Entry::from_json).collect())
        .unwrap_or_default()
}

/// Writes `entries` into `obj` (dropping empty ones, capping `Update` entries, sorting as
/// upstream: `Apply` first, then by time, then by manager).
pub fn store_entries(obj: &mut Value, mut list: Vec<Entry>) {
    list.retain(|e| !e.fields.is_empty());
    cap_updates(&mut list);
    list.sort_by(|a, b| (a.operation, &a.time, &a.manager).cmp(&(b.operation, &b.time, &b.manager)));
    let Some(root) = obj.as_object_mut() else { return };
    if list.is_empty() {
        if let Some(meta) = root.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("managedFields");
        }
    } else if let Value::Object(meta) = root.entry("metadata").or_insert_with(|| json!({})) {
        meta.insert("managedFields".into(), Value::Array(list.iter().map(Entry::to_json).collect()));
    }
}

fn cap_updates(list: &mut Vec<Entry>) {
    let updates = list.iter().filter(|e| e.operation == Operation::Update).count();
    if updates <= MAX_UPDATE_MANAGERS {
        return;
    }
    let mut idx: Vec<usize> = (0..list.len()).filter(|i| list[*i].operation == Operation::Update).collect();
    idx.sort_by(|a, b| list[*a].time.cmp(&list[*b].time));
    let excess: Vec<usize> = idx.into_iter().take(updates - MAX_UPDATE_MANAGERS + 1).collect();
    let mut ancient = Entry {
        manager: ANCIENT_CHANGES.into(),
        operation: Operation::Update,
        api_version: String::new(),
        time: None,
        subresource: String::new(),
        fields: FieldSet::new(),
    };
    for i in &excess {
        let e = &list[*i];
        ancient.fields.extend(e.fields.iter().cloned());
        ancient.api_version.clone_from(&e.api_version);
        if ancient.time < e.time {
            ancient.time.clone_from(&e.time);
        }
    }
    let mut i = 0;
    list.retain(|_| {
        i += 1;
        !excess.contains(&(i - 1))
    });
    list.push(ancient);
}

/// Whether a path is server-owned metadata (never recorded).
fn ignored(path: &Path, ignore_status: bool) -> bool {
    match path.first().map(String::as_str) {
        Some("f:apiVersion" | "f:kind") => true,
        Some("f:status") => ignore_status,
        Some("f:metadata") => path.get(1).is_some_and(|f| SYSTEM_METADATA.iter().any(|s| f == &format!("f:{s}"))),
        _ => false,
    }
}

/// The fields an applied configuration sets: leaves and list items.
fn config_set(nodes: &BTreeMap<Path, Node>, ignore_status: bool) -> FieldSet {
    nodes
        .iter()
        .filter(|(p, n)| matches!(n, Node::Leaf(_) | Node::Item) && !ignored(p, ignore_status))
        .map(|(p, _)| p.clone())
        .collect()
}

/// What changed between two walked objects: (added or modified, removed). Non-empty structs
/// are never recorded themselves, only their members.
fn diff(old: &BTreeMap<Path, Node>, new: &BTreeMap<Path, Node>, ignore_status: bool) -> (FieldSet, FieldSet) {
    let mut changed = FieldSet::new();
    for (p, n) in new {
        if matches!(n, Node::Struct) || ignored(p, ignore_status) {
            continue;
        }
        if old.get(p) != Some(n) {
            changed.insert(p.clone());
        }
    }
    let removed = old
        .iter()
        .filter(|(p, n)| !matches!(n, Node::Struct) && !new.contains_key(*p) && !ignored(p, ignore_status))
        .map(|(p, _)| p.clone())
        .collect();
    (changed, removed)
}

/// Who is writing.
#[derive(Debug, Clone)]
pub struct Writer<'a> {
    /// API group of the kind (empty for core).
    pub group: &'a str,
    /// The kind.
    pub kind: &'a str,
    /// The field manager.
    pub manager: &'a str,
    /// The served API version (`apps/v1`).
    pub api_version: &'a str,
    /// How paths translate between the resource's versions (entries of other versions).
    pub versions: &'a dyn Versions,
    /// The subresource written (`status`, `scale`), empty for the main resource.
    pub subresource: &'a str,
    /// Whether `status` is not part of this write (main resource of a kind with a status
    /// subresource).
    pub ignore_status: bool,
    /// The write time (RFC 3339, seconds).
    pub now: &'a str,
}

impl Writer<'_> {
    fn ty(&self) -> Ty<'static> {
        Ty::root(crate::strategic::schema::schema().ok(), self.group, self.kind)
    }
}

/// One field another manager owns that an apply would change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The owner, rendered as upstream (`"kubectl" using apps/v1`).
    pub manager: String,
    /// The field in display form (`.spec.replicas`).
    pub field: String,
}

/// The annotation of kubectl's client-side apply.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The manager whose applies may take over client-side-apply fields (upstream: only kubectl's
/// default server-side manager migrates; other managers opt out).
const MIGRATING_MANAGER: &str = "kubectl";

/// The configuration kubectl's client-side apply last recorded on `obj`, if any.
fn last_applied(obj: &Value) -> Option<Value> {
    let text = obj.get("metadata")?.get("annotations")?.get(LAST_APPLIED)?.as_str()?;
    serde_json::from_str(text).ok()
}

/// An object without its `managedFields`.
fn without_managed(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
    v
}

/// Server-side apply of `config` onto `live` (`None` when the object does not exist yet).
/// Returns the new object with its `managedFields`, or the conflicts when another manager owns
/// a field the configuration changes and `force` is off.
pub fn apply(live: Option<&Value>, config: &Value, writer: &Writer<'_>, force: bool) -> Result<Value, Vec<Conflict>> {
    let ty = writer.ty();
    let mut config = without_managed(config);
    if let Some(m) = config.as_object_mut() {
        if writer.ignore_status {
            m.remove("status");
        }
        if writer.subresource == "status" {
            // Applying to /status sets only status; the rest is identity.
            m.retain(|k, _| matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status"));
            if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.retain(|k, _| SYSTEM_METADATA.contains(&k.as_str()));
            }
        }
    }
    let live_plain = live.map(without_managed).unwrap_or_else(|| json!({}));
    let (working, mut list) =
        Working::enter(live.map(entries).unwrap_or_default(), writer.api_version, writer.versions);
    let me = Entry {
        manager: writer.manager.to_string(),
        operation: Operation::Apply,
        api_version: writer.api_version.to_string(),
        time: Some(writer.now.to_string()),
        subresource: writer.subresource.to_string(),
        fields: config_set(&typed::walk(&config, ty), writer.ignore_status),
    };
    let mut merged = typed::merge(Some(&live_plain), &config, ty);
    let (changed, _) = diff(&typed::walk(&live_plain, ty), &typed::walk(&merged, ty), writer.ignore_status);
    let clashes = |list: &[Entry]| -> Vec<(usize, Path)> {
        let mut out = Vec::new();
        for (i, e) in list.iter().enumerate().filter(|(_, e)| !e.same_identity(&me)) {
            out.extend(e.fields.intersection(&changed).map(|p| (i, p.clone())));
        }
        out
    };
    let found = clashes(&list);
    // Upstream migrates from client-side apply: kubectl's applier may take the fields its
    // last-applied annotation lists.
    let migrating = writer.manager == MIGRATING_MANAGER
        && live.and_then(last_applied).is_some_and(|cfg| {
            let allowed = config_set(&typed::walk(&cfg, ty), writer.ignore_status);
            found.iter().all(|(_, p)| allowed.contains(p))
        });
    if !found.is_empty() && !force && !migrating {
        // Upstream finds conflicts in each owner's version, so the field is named as its owner
        // recorded it.
        let in_owner_version = |e: &Entry, p: &Path| {
            writer.versions.convert(p, writer.api_version, &e.api_version).unwrap_or_else(|| p.clone())
        };
        return Err(found
            .iter()
            .map(|(i, p)| Conflict { manager: list[*i].describe(), field: display(&in_owner_version(&list[*i], p)) })
            .collect());
    }
    for (i, p) in &found {
        list[*i].fields.remove(p);
    }
    if writer.manager == MIGRATING_MANAGER
        && live.and_then(last_applied).is_some()
        && let Some(annotations) = merged.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut)
    {
        // Keep client-side apply's record in step with what kubectl applied server-side.
        let mut record = config.clone();
        if let Some(a) = record.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut) {
            a.remove(LAST_APPLIED);
        }
        annotations.insert(LAST_APPLIED.into(), Value::String(format!("{record}\n")));
    }
    let previous = list.iter().position(|e| e.same_identity(&me)).map(|i| list.remove(i));
    if let Some(prev) = &previous {
        prune(&mut merged, prev, &me.fields, &list, ty);
    }
    let mut me = me;
    let unchanged = merged == live_plain;
    if let Some(prev) = previous
        && unchanged
        && prev.fields == me.fields
        && prev.api_version == me.api_version
    {
        me.time = prev.time;
    }
    list.push(me);
    store_entries(&mut merged, working.leave(list));
    Ok(merged)
}

/// Removes what the applier owned before and no longer applies, unless someone else owns it
/// (or owns something below it), or it is a key field of an item that stays.
fn prune(obj: &mut Value, prev: &Entry, now: &FieldSet, others: &[Entry], ty: Ty<'_>) {
    let owned_elsewhere =
        |p: &Path| others.iter().any(|e| e.fields.iter().any(|q| q == p || fieldpath::is_proper_prefix(p, q)));
    let mut kept: Vec<Path> = Vec::new();
    let mut removed: Vec<Path> = Vec::new();
    for p in prev.fields.difference(now) {
        if removed.iter().any(|r| fieldpath::is_proper_prefix(r, p)) {
            continue;
        }
        let item = &p[..p.len().saturating_sub(1)];
        let is_key_of_kept_item = p.len() >= 2
            && is_key_field(&p[p.len() - 2], &p[p.len() - 1])
            && (now.iter().chain(kept.iter()).any(|q| q.as_slice() == item || fieldpath::is_proper_prefix(item, q))
                || owned_elsewhere(&item.to_vec()));
        if owned_elsewhere(p) || is_key_of_kept_item || now.iter().any(|q| fieldpath::is_proper_prefix(p, q)) {
            kept.push(p.clone());
            continue;
        }
        typed::remove(obj, p, ty);
        removed.push(p.clone());
    }
}

/// Whether `field` (`f:name`) is one of the key fields of the item element `item` (`k:{…}`).
fn is_key_field(item: &str, field: &str) -> bool {
    let (Some(key), Some(name)) = (item.strip_prefix("k:"), field.strip_prefix("f:")) else { return false };
    serde_json::from_str::<Map<String, Value>>(key).is_ok_and(|m| m.contains_key(name))
}

/// What a non-apply write sent as `managedFields`.
#[derive(Debug, Clone, Default)]
pub enum Sent {
    /// Nothing usable (absent, `[]`, or malformed): the stored entries are the base.
    #[default]
    Nothing,
    /// `[{}]`: drop every entry.
    Reset,
    /// Well-formed entries: they replace the stored ones as the base (as upstream, which is how
    /// kubectl migrates client-side-apply ownership to a server-side applier).
    Entries(Vec<Entry>),
}

impl Sent {
    /// Classifies a request's `metadata.managedFields` value.
    pub fn classify(value: Option<&Value>) -> Sent {
        let Some(items) = value.and_then(Value::as_array) else { return Sent::Nothing };
        if items.len() == 1 && items[0].as_object().is_some_and(Map::is_empty) {
            return Sent::Reset;
        }
        let parsed: Vec<Entry> = items.iter().filter_map(Entry::from_json).collect();
        if parsed.is_empty() || parsed.len() != items.len() { Sent::Nothing } else { Sent::Entries(parsed) }
    }
}

/// Records the `Update` entry of a non-apply write from `old` (`None` on create) to `new`:
/// the writer gains what it added or changed (taking it from other managers) and loses what it
/// removed. `sent` is what the request carried in `managedFields` (see [`Sent`]).
pub fn record_update(old: Option<&Value>, new: &mut Value, writer: &Writer<'_>, sent: Sent) {
    let base = match sent {
        Sent::Reset => {
            store_entries(new, Vec::new());
            return;
        }
        Sent::Entries(list) => Some(list),
        Sent::Nothing => None,
    };
    let ty = writer.ty();
    let old_plain = old.map(without_managed).unwrap_or_else(|| json!({}));
    let new_plain = without_managed(new);
    let (changed, removed) = diff(&typed::walk(&old_plain, ty), &typed::walk(&new_plain, ty), writer.ignore_status);
    let base = base.unwrap_or_else(|| old.map(entries).unwrap_or_default());
    let (working, mut list) = Working::enter(base, writer.api_version, writer.versions);
    let me_id = Entry {
        manager: writer.manager.to_string(),
        operation: Operation::Update,
        api_version: writer.api_version.to_string(),
        time: Some(writer.now.to_string()),
        subresource: writer.subresource.to_string(),
        fields: FieldSet::new(),
    };
    for e in list.iter_mut().filter(|e| !e.same_identity(&me_id)) {
        e.fields.retain(|p| !changed.contains(p));
    }
    let mut me = match list.iter().position(|e| e.same_identity(&me_id)) {
        Some(i) => list.remove(i),
        None => me_id.clone(),
    };
    let before = me.fields.clone();
    me.fields.extend(changed.iter().cloned());
    me.fields.retain(|p| !removed.contains(p));
    if me.fields != before || !changed.is_empty() {
        me.time = me_id.time;
    }
    list.push(me);
    store_entries(new, working.leave(list));
}

/// Upstream's default manager name: the user agent up to its first `/`, printable characters
/// only, at most 128 of them.
pub fn manager_from_user_agent(user_agent: &str) -> String {
    user_agent.split('/').next().unwrap_or("").chars().filter(|c| !c.is_control()).take(128).collect()
}
