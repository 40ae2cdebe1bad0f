//! Reads the few values a cache entry keeps (namespace, name, labels, selectable fields) out of a
//! stored object's JSON in one pass, without building the whole document: the parser skips
//! everything else (a pod's containers, volumes, status) instead of allocating it. Every write of
//! a watched resource goes through here once, so this is on the write path of every object.
//!
//! What does not live here: rendering (`objects`), and the entry itself (`entry`).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::objects;

/// What [`pick`] read.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Picked {
    /// `metadata.namespace`, empty when absent.
    pub namespace: String,
    /// `metadata.name`, empty when absent.
    pub name: String,
    /// `metadata.labels` (string values only).
    pub labels: BTreeMap<String, String>,
    /// The selectable fields found, rendered as field-selector strings.
    pub fields: Vec<(&'static str, String)>,
}

/// Reads namespace, name, labels and the values at `field_paths` (dotted) from `json`; `None`
/// when `json` is not valid JSON.
pub fn pick(json: &[u8], field_paths: &[&'static str]) -> Option<Picked> {
    const FIXED: [&str; 3] = ["metadata.namespace", "metadata.name", "metadata.labels"];
    let mut root = Node::default();
    for (i, path) in FIXED.iter().chain(field_paths).enumerate() {
        root.insert(path, i);
    }
    let mut out: Vec<Option<Value>> = vec![None; FIXED.len() + field_paths.len()];
    let mut de = serde_json::Deserializer::from_slice(json);
    Visit { node: &root, out: &mut out }.deserialize(&mut de).ok()?;
    de.end().ok()?;
    let mut values = out.into_iter();
    let mut text = || values.next().flatten().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    let namespace = text();
    let name = text();
    let labels = objects::string_map(values.next().flatten().as_ref());
    let fields =
        field_paths.iter().zip(values).filter_map(|(path, v)| Some((*path, objects::field_string(&v?)?))).collect();
    Some(Picked { namespace, name, labels, fields })
}

/// The wanted paths as a tree of keys; a node is wanted whole when it has slots.
#[derive(Debug, Default)]
struct Node<'p> {
    /// Indexes in the output this node's value fills.
    slots: Vec<usize>,
    /// Wanted members below this node.
    children: Vec<(&'p str, Node<'p>)>,
}

impl<'p> Node<'p> {
    fn insert(&mut self, path: &'p str, slot: usize) {
        let mut node = self;
        for part in path.split('.') {
            let at = match node.children.iter().position(|(k, _)| *k == part) {
                Some(at) => at,
                None => {
                    node.children.push((part, Node::default()));
                    node.children.len() - 1
                }
            };
            node = &mut node.children[at].1;
        }
        node.slots.push(slot);
    }

    /// Fills this node's slots and its descendants' from a parsed value.
    fn fill_from(&self, value: &Value, out: &mut [Option<Value>]) {
        for (key, child) in &self.children {
            if let Some(v) = value.get(*key) {
                child.fill_from(v, out);
            }
        }
        for &slot in &self.slots {
            out[slot] = Some(value.clone());
        }
    }
}

/// Walks one JSON value, descending only into wanted members.
struct Visit<'n, 'p, 'o> {
    node: &'n Node<'p>,
    out: &'o mut [Option<Value>],
}

impl<'de> DeserializeSeed<'de> for Visit<'_, '_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Visit<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            match self.node.children.iter().find(|(k, _)| *k == key) {
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
                Some((_, child)) if child.slots.is_empty() => {
                    map.next_value_seed(Visit { node: child, out: &mut *self.out })?;
                }
                Some((_, child)) => {
                    let value: Value = map.next_value()?;
                    child.fill_from(&value, self.out);
                }
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

/// An object key, borrowed from the input unless it has escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }

            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }

            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_string())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// What a full parse gives, for comparison.
    fn full(json: &str, paths: &[&'static str]) -> Picked {
        let v: Value = serde_json::from_str(json).unwrap();
        Picked {
            namespace: objects::meta_str(&v, "namespace").unwrap_or_default().to_string(),
            name: objects::meta_str(&v, "name").unwrap_or_default().to_string(),
            labels: objects::labels(&v),
            fields: paths.iter().filter_map(|p| objects::field_value(&v, p).map(|s| (*p, s))).collect(),
        }
    }

    const PATHS: &[&str] = &["spec.nodeName", "status.phase", "spec.hostNetwork", "spec.priority", "spec.gone"];

    #[test]
    fn matches_a_full_parse() {
        for json in [
            r#"{"metadata":{"name":"p","namespace":"d","labels":{"a":"1","b":"x\"y","c":3},"managedFields":[{"x":{"y":[1,2]}}]},
               "spec":{"containers":[{"name":"c","env":[{"name":"spec","value":"nodeName"}]}],"nodeName":"n1","hostNetwork":true,"priority":-5},
               "status":{"phase":"Running","conditions":[]}}"#,
            r#"{"kind":"Pod","status":{"phase":null},"spec":{"nodeName":{"nested":1}},"metadata":{"name":"z"}}"#,
            r#"{"metadata":{"name":"esc\u00e9\n","labels":{"k\u002fescaped":"v"}},"spec":[1,2,{"nodeName":"no"}]}"#,
            r#"{"spec":"text","status":7,"metadata":null}"#,
            r#"{"metadata":{"name":"first"},"metadata":{"name":"last"}}"#,
        ] {
            assert_eq!(pick(json.as_bytes(), PATHS).unwrap(), full(json, PATHS), "{json}");
        }
    }

    #[test]
    fn a_wanted_object_and_a_path_below_it_are_both_filled() {
        let json = r#"{"metadata":{"labels":{"app":"web"}},"spec":{"selector":{"app":"web"}}}"#;
        let got = pick(json.as_bytes(), &["metadata.labels.app", "spec.selector.app"]).unwrap();
        assert_eq!(got.labels["app"], "web");
        assert_eq!(
            got.fields,
            vec![("metadata.labels.app", "web".to_string()), ("spec.selector.app", "web".to_string())]
        );
    }

    #[test]
    fn invalid_json_is_none() {
        assert_eq!(pick(b"{\"metadata\":", &[]), None);
        assert_eq!(pick(b"{} trailing", &[]), None);
    }
}
