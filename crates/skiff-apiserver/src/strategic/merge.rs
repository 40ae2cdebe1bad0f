//! The merge algorithm: applies a patch map to an original map under the patch schema.
//!
//! Follows the server-side behaviour of upstream `strategicpatch.StrategicMergeMapPatch`
//! (parallel lists are merged, unmatched `null`s are ignored), written against
//! `serde_json::Value`. Element order of merged lists follows upstream: `$setElementOrder`
//! first, then the order of the patch list, then the original order; items only on the server
//! keep their relative order and are interleaved after patch items they preceded.

use serde_json::{Map, Value};

use super::error::SmpError;
use super::schema::{FieldRef, Schema, Shape};

type Obj = Map<String, Value>;

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";

/// Applies patches using one schema.
pub(crate) struct Merger<'s> {
    schema: &'s Schema,
}

impl<'s> Merger<'s> {
    /// A merger over `schema`.
    pub(crate) fn new(schema: &'s Schema) -> Self {
        Merger { schema }
    }

    /// Merges `patch` into `original`, both maps of shape `shape` at `path`.
    pub(crate) fn merge_map(
        &self,
        mut original: Obj,
        mut patch: Obj,
        shape: &Shape,
        path: &str,
    ) -> Result<Obj, SmpError> {
        if let Some(directive) = patch.remove(PATCH) {
            return match directive.as_str() {
                Some("replace") => Ok(clean_map(patch)),
                Some("delete") => Ok(Obj::new()),
                _ => Err(bad_patch_type(&directive, &patch)),
            };
        }
        apply_retain_keys(&mut original, &mut patch)?;
        self.merge_ordered_lists(&mut original, &mut patch, shape, path)?;

        for (key, value) in patch {
            let (key, delete_list) = match key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
                Some(rest) => (rest.strip_prefix('/').ok_or(SmpError::BadPrimitiveList)?.to_string(), true),
                None => (key, false),
            };
            if value.is_null() {
                original.remove(&key);
                continue;
            }
            let Some(slot) = original.get_mut(&key) else {
                if !delete_list && let Some(v) = clean(value) {
                    original.insert(key, v);
                }
                continue;
            };
            if !same_json_type(slot, &value) {
                if !delete_list {
                    match clean(value) {
                        Some(v) => *slot = v,
                        None => {
                            original.remove(&key);
                        }
                    }
                }
                continue;
            }
            let field = self.schema.field(shape, &key);
            let child = format!("{path}.{key}");
            let merged = match (std::mem::take(slot), value) {
                (Value::Object(o), Value::Object(p)) if !field.strategy.replace => {
                    Some(Value::Object(self.merge_map(o, p, field.shape, &child)?))
                }
                (Value::Array(o), Value::Array(p)) if field.strategy.merge || delete_list => {
                    Some(Value::Array(self.merge_list(o, p, field, delete_list, &child)?))
                }
                (_, p) => clean(p),
            };
            match merged {
                Some(v) => {
                    original.insert(key, v);
                }
                None => {
                    original.remove(&key);
                }
            }
        }
        Ok(original)
    }

    /// Merges two lists of the field `field` (the caller checked its strategy).
    fn merge_list(
        &self,
        original: Vec<Value>,
        patch: Vec<Value>,
        field: FieldRef<'_>,
        delete_list: bool,
        path: &str,
    ) -> Result<Vec<Value>, SmpError> {
        if original.is_empty() && patch.is_empty() {
            return Ok(original);
        }
        if !elements_are_objects(&original, &patch, path)? {
            if delete_list {
                return Ok(original.into_iter().filter(|v| !patch.iter().any(|p| json_eq(p, v))).collect());
            }
            let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
            for v in original.iter().chain(&patch) {
                if !merged.iter().any(|m| json_eq(m, v)) {
                    merged.push(v.clone());
                }
            }
            let (in_patch, server_only) = partition(merged, &patch, None);
            return normalize_order(in_patch, server_only, &patch, &original, None);
        }

        let key = field.merge_key.ok_or_else(|| SmpError::NoMergeKeyForList { path: path.to_string() })?;
        let element = self.schema.element(field.shape);
        let (mut original, patch) = apply_list_directives(original, patch, key)?;
        let server_order = original.clone();
        for item in &patch {
            let Value::Object(p) = item else { continue };
            let wanted = p.get(key).ok_or_else(|| no_merge_key(item, key))?;
            let found = original.iter().position(|o| o.get(key).is_some_and(|v| json_eq(v, wanted)));
            match found {
                Some(i) => {
                    let Value::Object(o) = std::mem::take(&mut original[i]) else { continue };
                    let child = format!("{path}[{key}={wanted}]");
                    original[i] = Value::Object(self.merge_map(o, p.clone(), element, &child)?);
                }
                None => original.extend(clean(item.clone())),
            }
        }
        let (in_patch, server_only) = partition(original, &patch, Some(key));
        normalize_order(in_patch, server_only, &patch, &server_order, Some(key))
    }

    /// Processes every `$setElementOrder/<field>` directive of `patch` together with the patch
    /// list of that field, storing the merged and reordered list in `original`.
    fn merge_ordered_lists(
        &self,
        original: &mut Obj,
        patch: &mut Obj,
        shape: &Shape,
        path: &str,
    ) -> Result<(), SmpError> {
        let keys: Vec<String> = patch.keys().filter(|k| k.starts_with(SET_ELEMENT_ORDER)).cloned().collect();
        for directive_key in keys {
            let Some(order) = patch.remove(&directive_key) else { continue };
            let name = directive_key
                .strip_prefix(SET_ELEMENT_ORDER)
                .and_then(|r| r.strip_prefix('/'))
                .ok_or(SmpError::BadSetElementOrder)?
                .to_string();
            let child = format!("{path}.{name}");
            let Value::Array(order) = order else {
                return Err(bad_arg_type("list", &order, &child));
            };
            let original_list = match original.get(&name) {
                None => None,
                Some(Value::Array(l)) => Some(l.clone()),
                Some(other) => return Err(bad_arg_type("list", other, &child)),
            };
            let patch_list = match patch.remove(&name) {
                None => None,
                Some(Value::Array(l)) => Some(l),
                Some(other) => return Err(bad_arg_type("list", &other, &child)),
            };
            let field = self.schema.field(shape, &name);
            validate_order(patch_list.as_deref().unwrap_or_default(), &order, field.merge_key)?;
            let merged = match (original_list.clone(), patch_list) {
                (None, None) => continue,
                (Some(o), None) => o,
                (None, Some(p)) => clean_list(p),
                (Some(o), Some(p)) if field.strategy.merge => self.merge_list(o, p, field, false, &child)?,
                (Some(_), Some(p)) => clean_list(p),
            };
            let (in_order, server_only) = partition(merged, &order, field.merge_key);
            let server_order = original_list.unwrap_or_default();
            let sorted = normalize_order(in_order, server_only, &order, &server_order, field.merge_key)?;
            original.insert(name, Value::Array(sorted));
        }
        Ok(())
    }
}

/// Handles `$patch` elements of a patch list of maps: `delete` removes original elements with
/// the same merge key, `replace` makes the patch list (without directives) the new original.
/// Returns the updated original and the patch elements left to merge.
fn apply_list_directives(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
) -> Result<(Vec<Value>, Vec<Value>), SmpError> {
    let mut plain = Vec::with_capacity(patch.len());
    let mut replace = false;
    for item in patch {
        let Some(directive) = item.get(PATCH) else {
            plain.push(item);
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let wanted = item.get(key).ok_or_else(|| no_merge_key(&item, key))?;
                original.retain(|o| !o.get(key).is_some_and(|v| json_eq(v, wanted)));
            }
            Some("replace") => replace = true,
            Some("merge") => return Err(SmpError::MergeDirectiveInList),
            _ => {
                let map = item.as_object().cloned().unwrap_or_default();
                return Err(bad_patch_type(directive, &map));
            }
        }
    }
    if replace { Ok((clean_list(plain), Vec::new())) } else { Ok((original, plain)) }
}

/// Clears the fields of `original` not listed in the patch's `$retainKeys`, after checking
/// that every field the patch sets is listed.
fn apply_retain_keys(original: &mut Obj, patch: &mut Obj) -> Result<(), SmpError> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else { return Ok(()) };
    let Value::Array(retain) = retain else { return Err(SmpError::BadRetainKeys) };
    let listed = |k: &str| retain.iter().any(|r| r.as_str() == Some(k));
    let unlisted = patch.iter().any(|(k, v)| {
        !v.is_null() && !k.starts_with(DELETE_FROM_PRIMITIVE_LIST) && !k.starts_with(SET_ELEMENT_ORDER) && !listed(k)
    });
    if unlisted {
        return Err(SmpError::BadRetainKeys);
    }
    original.retain(|k, _| listed(k));
    Ok(())
}

/// Checks that the patch list's elements (deletions aside) appear in the same relative order
/// in the `$setElementOrder` list, and nowhere else.
fn validate_order(patch: &[Value], order: &[Value], key: Option<&str>) -> Result<(), SmpError> {
    if patch.is_empty() || order.is_empty() {
        return Ok(());
    }
    let mut kept = Vec::with_capacity(patch.len());
    for item in patch {
        if key.is_some() {
            let Value::Object(m) = item else { return Err(bad_arg_type("map", item, "$setElementOrder")) };
            if m.get(PATCH).and_then(Value::as_str) == Some("delete") {
                continue;
            }
        }
        kept.push(item);
    }
    let (mut p, mut o) = (0, 0);
    while p < kept.len() && o < order.len() {
        if kept[p].get(PATCH).is_some() {
            p += 1;
            continue;
        }
        let equal = match key {
            None => json_eq(kept[p], &order[o]),
            Some(key) => {
                let left = kept[p].get(key).ok_or_else(|| no_merge_key(kept[p], key))?;
                let right = order[o].get(key).ok_or_else(|| no_merge_key(&order[o], key))?;
                json_eq(left, right)
            }
        };
        if equal {
            p += 1;
        }
        o += 1;
    }
    if p < kept.len() {
        return Err(SmpError::SetElementOrderMismatch {
            patch: Value::Array(patch.to_vec()).to_string(),
            order: Value::Array(order.to_vec()).to_string(),
        });
    }
    Ok(())
}

/// The identity of a list element: its merge key value, or the element itself for scalars.
fn identity<'v>(item: &'v Value, key: Option<&str>) -> Option<&'v Value> {
    match key {
        Some(key) => item.get(key),
        None => Some(item),
    }
}

/// Position of `item` in `list` by identity.
fn position(list: &[Value], item: &Value, key: Option<&str>) -> Option<usize> {
    let id = identity(item, key);
    list.iter().position(|v| match (identity(v, key), id) {
        (Some(a), Some(b)) => json_eq(a, b),
        (None, None) => true,
        _ => false,
    })
}

/// Splits `items` into those present in `by` (by identity) and the rest, each in input order.
fn partition(items: Vec<Value>, by: &[Value], key: Option<&str>) -> (Vec<Value>, Vec<Value>) {
    items.into_iter().partition(|v| position(by, v, key).is_some())
}

/// Orders a merged list: patch items by `patch_order`, server-only items by `server_order`,
/// then interleaves them: a server-only item goes before a patch item when both appear in the
/// original and it came first there; otherwise patch items go first.
fn normalize_order(
    mut patch_items: Vec<Value>,
    mut server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    key: Option<&str>,
) -> Result<Vec<Value>, SmpError> {
    if let Some(key) = key {
        for item in patch_items.iter().chain(&server_only).chain(patch_order).chain(server_order) {
            if item.get(key).is_none() {
                return Err(no_merge_key(item, key));
            }
        }
    }
    patch_items.sort_by_key(|v| position(patch_order, v, key).unwrap_or(usize::MAX));
    server_only.sort_by_key(|v| position(server_order, v, key).unwrap_or(usize::MAX));

    let mut out = Vec::with_capacity(patch_items.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = patch_items.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => matches!(
                (position(server_order, l, key), position(server_order, r, key)),
                (Some(li), Some(ri)) if li < ri
            ),
        };
        out.extend(if take_left { left.next() } else { right.next() });
    }
    Ok(out)
}

/// Whether the elements of two lists are maps (`true`) or scalars (`false`); errors for lists
/// of lists and for mixed element types.
fn elements_are_objects(original: &[Value], patch: &[Value], path: &str) -> Result<bool, SmpError> {
    let mut first: Option<&Value> = None;
    for v in original.iter().chain(patch) {
        if v.is_array() {
            return Err(SmpError::ListOfLists);
        }
        match first {
            None => first = Some(v),
            Some(f) if !same_json_type(f, v) => return Err(SmpError::MixedElementTypes { path: path.to_string() }),
            Some(_) => {}
        }
    }
    Ok(first.is_some_and(Value::is_object))
}

/// Prepares a patch value for insertion where the original has nothing to merge with: drops
/// `null` fields, maps carrying `$patch: delete` and list elements carrying any `$patch`,
/// strips the other directives. `None` when the value itself is to be dropped.
fn clean(value: Value) -> Option<Value> {
    match value {
        Value::Object(mut m) => match m.remove(PATCH) {
            Some(d) if d.as_str() == Some("delete") => None,
            _ => Some(Value::Object(clean_map(m))),
        },
        Value::Array(l) => Some(Value::Array(clean_list(l))),
        other => Some(other),
    }
}

fn clean_map(map: Obj) -> Obj {
    map.into_iter()
        .filter(|(k, v)| {
            !v.is_null()
                && k != PATCH
                && k != RETAIN_KEYS
                && !k.starts_with(SET_ELEMENT_ORDER)
                && !k.starts_with(DELETE_FROM_PRIMITIVE_LIST)
        })
        .filter_map(|(k, v)| clean(v).map(|v| (k, v)))
        .collect()
}

fn clean_list(list: Vec<Value>) -> Vec<Value> {
    list.into_iter().filter(|v| v.get(PATCH).is_none()).filter_map(clean).collect()
}

/// Whether two values have the same JSON type.
fn same_json_type(a: &Value, b: &Value) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

/// JSON equality with numbers compared by value (`80` equals `80.0`, as in Go's float64s).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn no_merge_key(item: &Value, key: &str) -> SmpError {
    SmpError::NoMergeKey { map: item.to_string(), key: key.to_string() }
}

fn bad_patch_type(directive: &Value, map: &Obj) -> SmpError {
    let directive = directive.as_str().map(str::to_string).unwrap_or_else(|| directive.to_string());
    SmpError::BadPatchType { directive, map: Value::Object(map.clone()).to_string() }
}

fn bad_arg_type(expected: &'static str, actual: &Value, path: &str) -> SmpError {
    let actual = match actual {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "map",
    };
    SmpError::BadArgType { expected, actual, path: path.to_string() }
}
