//! Objects seen through the schema: which values are atomic leaves, which are structs and maps
//! owned member by member, and which lists are sets or associative lists. Provides the walk
//! that lists every node of an object, the structured merge of an applied configuration into
//! a live object, and removal of owned paths.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::fieldpath::{Element, Path, field};
use crate::strategic::schema::{ListType, Schema, Shape};

static ATOMIC: ListType = ListType::Atomic;
static FREE: Shape = Shape::Free;

/// The type of a value: its shape plus the apply semantics of the field holding it.
#[derive(Clone, Copy)]
pub struct Ty<'s> {
    schema: Option<&'s Schema>,
    shape: &'s Shape,
    list: &'s ListType,
    atomic: bool,
    /// The OpenAPI default of the field holding the value.
    default: Option<&'s Value>,
}

impl<'s> Ty<'s> {
    /// The root type of a kind; unknown kinds (custom resources) are free-form.
    pub fn root(schema: Option<&'s Schema>, group: &str, kind: &str) -> Ty<'s> {
        let shape: &'s Shape = schema.and_then(|s| s.kind_ref(group, kind)).unwrap_or(&FREE);
        Ty { schema, shape, list: &ATOMIC, atomic: false, default: None }
    }

    /// A value nobody described.
    fn free() -> Ty<'s> {
        Ty { schema: None, shape: &FREE, list: &ATOMIC, atomic: false, default: None }
    }

    /// The type of member `key` of a struct or map.
    fn child(&self, key: &str) -> Ty<'s> {
        match self.schema {
            Some(s) => {
                let f = s.field(self.shape, key);
                Ty {
                    schema: self.schema,
                    shape: f.shape,
                    list: f.list,
                    atomic: f.atomic || s.is_atomic_struct(f.shape),
                    default: f.default,
                }
            }
            None => Ty::free(),
        }
    }

    /// The type of the items of a list.
    fn item(&self) -> Ty<'s> {
        match self.schema {
            Some(s) => {
                let shape = s.element(self.shape);
                Ty { schema: self.schema, shape, list: &ATOMIC, atomic: s.is_atomic_struct(shape), default: None }
            }
            None => Ty::free(),
        }
    }

    /// How a value of this type is owned.
    fn class(&self, value: &Value) -> Class<'s> {
        match value {
            Value::Object(m) if !m.is_empty() && !self.atomic => match self.shape {
                Shape::Struct(_) => Class::Struct,
                Shape::Map(_) | Shape::Free => Class::Map,
                _ => Class::Leaf,
            },
            Value::Array(items) if !items.is_empty() && matches!(self.shape, Shape::List(_)) => match self.list {
                ListType::Set => Class::Set,
                ListType::Map(keys) if items.iter().all(|i| item_key(i, keys, self.item()).is_some()) => {
                    Class::Assoc(keys)
                }
                _ => Class::Leaf,
            },
            _ => Class::Leaf,
        }
    }
}

enum Class<'s> {
    Leaf,
    Struct,
    Map,
    Set,
    Assoc(&'s [Box<str>]),
}

/// A node of a walked object.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// An atomic value (scalar, atomic list/map/struct, or an empty map or struct).
    Leaf(Value),
    /// A non-empty struct, owned member by member.
    Struct,
    /// A non-empty granular map.
    Map,
    /// A non-empty set or associative list.
    List,
    /// An item of a set or associative list.
    Item,
}

/// The `k:` element of an associative-list item of type `item_ty`. A key field the item omits
/// takes the field's OpenAPI default, as upstream's structured-merge-diff does (so an applied
/// container port without `protocol` is keyed `"protocol":"TCP"`); `None` when a key field is
/// missing and has no default.
fn item_key(item: &Value, keys: &[Box<str>], item_ty: Ty<'_>) -> Option<Element> {
    let obj = item.as_object()?;
    let mut key = Map::new();
    for k in keys {
        let v = match obj.get(k.as_ref()) {
            Some(v) => v.clone(),
            None => item_ty.child(k).default?.clone(),
        };
        key.insert(k.to_string(), v);
    }
    Some(format!("k:{}", Value::Object(key)))
}

fn set_key(item: &Value) -> Element {
    format!("v:{item}")
}

/// Every node of `value` (the root itself excluded) with its path.
pub fn walk(value: &Value, ty: Ty<'_>) -> BTreeMap<Path, Node> {
    let mut out = BTreeMap::new();
    if let Value::Object(m) = value {
        for (k, v) in m {
            walk_into(v, ty.child(k), &mut vec![field(k)], &mut out);
        }
    }
    out
}

fn walk_into(value: &Value, ty: Ty<'_>, path: &mut Path, out: &mut BTreeMap<Path, Node>) {
    match ty.class(value) {
        Class::Leaf => {
            // An empty granular map is as good as absent (Go drops it with `omitempty`).
            let empty_map = value.as_object().is_some_and(Map::is_empty)
                && !ty.atomic
                && matches!(ty.shape, Shape::Map(_) | Shape::Free);
            if !empty_map {
                out.insert(path.clone(), Node::Leaf(value.clone()));
            }
        }
        Class::Struct | Class::Map => {
            let node = if matches!(ty.class(value), Class::Struct) { Node::Struct } else { Node::Map };
            out.insert(path.clone(), node);
            if let Value::Object(m) = value {
                for (k, v) in m {
                    path.push(field(k));
                    walk_into(v, ty.child(k), path, out);
                    path.pop();
                }
            }
        }
        Class::Set => {
            out.insert(path.clone(), Node::List);
            for item in value.as_array().into_iter().flatten() {
                path.push(set_key(item));
                out.insert(path.clone(), Node::Item);
                path.pop();
            }
        }
        Class::Assoc(keys) => {
            out.insert(path.clone(), Node::List);
            let item_ty = ty.item();
            for item in value.as_array().into_iter().flatten() {
                let Some(key) = item_key(item, keys, item_ty) else { continue };
                path.push(key);
                out.insert(path.clone(), Node::Item);
                if let Value::Object(m) = item {
                    for (k, v) in m {
                        path.push(field(k));
                        walk_into(v, item_ty.child(k), path, out);
                        path.pop();
                    }
                }
                path.pop();
            }
        }
    }
}

/// Merges an applied configuration into a live value: members of structs and granular maps
/// merge, associative-list items merge by key (new items appended), sets are unioned, anything
/// atomic is replaced.
pub fn merge(live: Option<&Value>, config: &Value, ty: Ty<'_>) -> Value {
    let Some(live) = live else { return config.clone() };
    match (ty.class(config), live, config) {
        (Class::Struct | Class::Map, Value::Object(l), Value::Object(c)) if !ty.atomic => {
            let mut out = l.clone();
            for (k, cv) in c {
                let merged = merge(l.get(k), cv, ty.child(k));
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Class::Set, Value::Array(l), Value::Array(c)) => {
            let mut out = l.clone();
            for item in c {
                if !out.contains(item) {
                    out.push(item.clone());
                }
            }
            Value::Array(out)
        }
        (Class::Assoc(keys), Value::Array(l), Value::Array(c)) => {
            let item_ty = ty.item();
            let mut out = l.clone();
            for citem in c {
                let key = item_key(citem, keys, item_ty);
                match out.iter().position(|i| item_key(i, keys, item_ty) == key) {
                    Some(idx) => out[idx] = merge(Some(&out[idx]), citem, item_ty),
                    None => out.push(citem.clone()),
                }
            }
            Value::Array(out)
        }
        _ => config.clone(),
    }
}

/// Removes the node at `path` from `obj`; maps and lists left empty by the removal are removed
/// too (as Go's `omitempty` would), structs are kept. Returns whether something was removed.
pub fn remove(obj: &mut Value, path: &[Element], ty: Ty<'_>) -> bool {
    let Some((first, rest)) = path.split_first() else { return false };
    let (child_ty, found) = match step(obj, first, ty) {
        Some((t, c)) => (t, c),
        None => return false,
    };
    let is_list_item = !first.starts_with("f:");
    if rest.is_empty() {
        return detach(obj, first, ty);
    }
    let Some(child) = found else { return false };
    let Some(child_value) = child_mut(obj, child) else { return false };
    let removed = remove(child_value, rest, child_ty);
    let now_empty = match child_value {
        Value::Object(m) => m.is_empty() && !matches!(child_ty.shape, Shape::Struct(_)) && !is_list_item,
        Value::Array(a) => a.is_empty(),
        _ => false,
    };
    if removed && now_empty {
        detach(obj, first, ty);
    }
    removed
}

/// Where a path element points inside `obj`.
enum Slot {
    Key(String),
    Index(usize),
}

fn step<'s>(obj: &Value, pe: &str, ty: Ty<'s>) -> Option<(Ty<'s>, Option<Slot>)> {
    if let Some(name) = pe.strip_prefix("f:") {
        let present = obj.as_object().is_some_and(|m| m.contains_key(name));
        return Some((ty.child(name), present.then(|| Slot::Key(name.to_string()))));
    }
    let items = obj.as_array()?;
    let idx = if pe.starts_with("k:") {
        let ListType::Map(keys) = ty.list else { return None };
        items.iter().position(|i| item_key(i, keys, ty.item()).as_deref() == Some(pe))
    } else {
        items.iter().position(|i| set_key(i) == pe)
    };
    Some((ty.item(), idx.map(Slot::Index)))
}

fn child_mut(obj: &mut Value, slot: Slot) -> Option<&mut Value> {
    match slot {
        Slot::Key(k) => obj.as_object_mut()?.get_mut(&k),
        Slot::Index(i) => obj.as_array_mut()?.get_mut(i),
    }
}

fn detach(obj: &mut Value, pe: &str, ty: Ty<'_>) -> bool {
    match step(obj, pe, ty) {
        Some((_, Some(Slot::Key(k)))) => obj.as_object_mut().is_some_and(|m| m.remove(&k).is_some()),
        Some((_, Some(Slot::Index(i)))) => obj.as_array_mut().is_some_and(|a| {
            a.remove(i);
            true
        }),
        _ => false,
    }
}
