//! Field paths and field sets in the FieldsV1 vocabulary: `f:<field>` for struct and map
//! members, `k:{"name":"x"}` for associative list items, `v:<json>` for set items, and `.` in
//! the serialized tree for a node that is itself a member and also has members below it.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// One step of a path, already in its FieldsV1 spelling (`f:spec`, `k:{"name":"a"}`, `v:"x"`).
pub type Element = String;

/// A path from the object root.
pub type Path = Vec<Element>;

/// A set of owned paths.
pub type FieldSet = BTreeSet<Path>;

/// `f:<name>`.
pub fn field(name: &str) -> Element {
    format!("f:{name}")
}

/// Serializes a field set as a FieldsV1 tree.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        insert(&mut root, path);
    }
    collapse(&mut root);
    Value::Object(root)
}

fn insert(node: &mut Map<String, Value>, path: &[Element]) {
    match path.split_first() {
        None => {
            node.insert(".".into(), Value::Object(Map::new()));
        }
        Some((first, rest)) => {
            if let Value::Object(child) = node.entry(first.clone()).or_insert_with(|| Value::Object(Map::new())) {
                insert(child, rest);
            }
        }
    }
}

/// A member without children is written `{}`, not `{".": {}}`.
fn collapse(node: &mut Map<String, Value>) {
    for child in node.values_mut() {
        if let Value::Object(c) = child {
            if c.len() == 1 && c.contains_key(".") {
                c.clear();
            } else {
                collapse(c);
            }
        }
    }
}

/// Parses a FieldsV1 tree into a field set; malformed parts are skipped.
pub fn from_fields_v1(value: &Value) -> FieldSet {
    let mut set = FieldSet::new();
    if let Value::Object(map) = value {
        walk_v1(map, &mut Vec::new(), &mut set);
    }
    set
}

fn walk_v1(map: &Map<String, Value>, path: &mut Path, set: &mut FieldSet) {
    for (key, child) in map {
        if key == "." {
            if !path.is_empty() {
                set.insert(path.clone());
            }
            continue;
        }
        path.push(key.clone());
        match child {
            Value::Object(c) if !c.is_empty() => walk_v1(c, path, set),
            _ => {
                set.insert(path.clone());
            }
        }
        path.pop();
    }
}

/// Upstream's display form of a path, as in conflict messages: `.spec.replicas`,
/// `.spec.containers[name="a"].image`, `.metadata.finalizers[="x"]`.
pub fn display(path: &Path) -> String {
    let mut out = String::new();
    for pe in path {
        if let Some(name) = pe.strip_prefix("f:") {
            out.push('.');
            out.push_str(name);
        } else if let Some(key) = pe.strip_prefix("k:") {
            let fields: Vec<String> = match serde_json::from_str::<Map<String, Value>>(key) {
                Ok(m) => m.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                Err(_) => vec![key.to_string()],
            };
            out.push_str(&format!("[{}]", fields.join(",")));
        } else if let Some(v) = pe.strip_prefix("v:") {
            out.push_str(&format!("[={v}]"));
        } else if let Some(i) = pe.strip_prefix("i:") {
            out.push_str(&format!("[{i}]"));
        } else {
            out.push_str(pe);
        }
    }
    out
}

/// Whether `prefix` is a proper prefix of `path`.
pub fn is_proper_prefix(prefix: &[Element], path: &[Element]) -> bool {
    path.len() > prefix.len() && path.starts_with(prefix)
}
