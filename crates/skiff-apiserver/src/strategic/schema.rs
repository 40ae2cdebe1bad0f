//! The patch schema of the built-in kinds: which fields are structs, maps, lists or scalars,
//! which lists merge (by which key), and the server-side-apply list/map/struct semantics —
//! loaded once from the generated `schema.txt`. The same table's raw facts (tags and markers as
//! written, plus `+union` structs) are handed to the OpenAPI documents by [`table_facts`].
//!
//! The table is produced by `scripts/gen-patch-schema.py` from the Go type definitions of
//! kubernetes/api and kubernetes/apimachinery; see that script for the line format. Nothing
//! in `schema.txt` is edited by hand. Kinds outside kubernetes/api (the CRD kind) have a few
//! hand-written records in `schema-extra.txt`, each with the reason it is correct.

use std::collections::HashMap;
use std::sync::LazyLock;

/// The generated table.
const TABLE: &str = include_str!("schema.txt");
/// Hand-written records for kinds the generator does not cover.
const EXTRA: &str = include_str!("schema-extra.txt");

/// The JSON shape of a value at some position in an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Shape {
    /// A string, number or boolean (also custom-marshalled types like `Quantity`).
    Scalar,
    /// Arbitrary JSON without patch metadata (`RawExtension`, unknown fields): maps merge like
    /// JSON merge patch, lists are replaced.
    Free,
    /// A list of values of the inner shape.
    List(Box<Shape>),
    /// A map from strings to values of the inner shape.
    Map(Box<Shape>),
    /// A struct: index into [`Schema::structs`].
    Struct(usize),
}

/// How a field is patched (its `patchStrategy` tag).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Strategy {
    /// `merge`: lists merge (by the merge key for lists of maps, as a set for scalars).
    pub merge: bool,
    /// `retainKeys`: the client may send `$retainKeys` to clear unlisted fields.
    pub retain_keys: bool,
    /// `replace`: a map is replaced wholesale instead of merged.
    pub replace: bool,
}

/// Server-side-apply semantics of a list (`+listType`, defaulted from the patch strategy as
/// upstream's OpenAPI conversion does: merge with a key → map, merge without → set).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum ListType {
    /// Replaced as a whole (the default).
    #[default]
    Atomic,
    /// A set of scalars, items owned one by one.
    Set,
    /// An associative list: items identified by these key fields.
    Map(Vec<Box<str>>),
}

/// The patch metadata of one struct field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Field {
    /// The field's value shape.
    pub shape: Shape,
    /// The field's patch strategy.
    pub strategy: Strategy,
    /// The `patchMergeKey` of a list of maps.
    pub merge_key: Option<Box<str>>,
    /// Server-side-apply list semantics (meaningful for list shapes).
    pub list: ListType,
    /// `+mapType=atomic` or `+structType=atomic` on the field: the value is owned as a whole.
    pub atomic: bool,
    /// The field's `+default` literal (its OpenAPI `default`), if any.
    pub default: Option<serde_json::Value>,
}

/// A borrowed view of the metadata that governs one value during a merge.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FieldRef<'s> {
    /// The value's shape.
    pub shape: &'s Shape,
    /// The patch strategy of the field holding the value.
    pub strategy: Strategy,
    /// The merge key of a list of maps.
    pub merge_key: Option<&'s str>,
    /// Server-side-apply list semantics.
    pub list: &'s ListType,
    /// Whether the field's map or struct value is atomic.
    pub atomic: bool,
    /// The field's default value (its OpenAPI `default`), if any.
    pub default: Option<&'s serde_json::Value>,
}

static FREE: Shape = Shape::Free;
static ATOMIC_LIST: ListType = ListType::Atomic;

impl FieldRef<'_> {
    /// Metadata of a value nobody described.
    fn free() -> Self {
        FieldRef {
            shape: &FREE,
            strategy: Strategy::default(),
            merge_key: None,
            list: &ATOMIC_LIST,
            atomic: false,
            default: None,
        }
    }
}

/// The parsed table.
#[derive(Debug)]
pub(crate) struct Schema {
    kinds: HashMap<(String, String), usize>,
    structs: Vec<HashMap<String, Field>>,
    /// Struct types marked `+structType=atomic`.
    atomic: Vec<bool>,
    /// `Shape::Struct(i)` for every struct index `i`, to lend out root shapes.
    roots: Vec<Shape>,
}

static SCHEMA: LazyLock<Result<Schema, String>> = LazyLock::new(|| Schema::parse(&format!("{TABLE}\n{EXTRA}")));

/// The schema of the built-in kinds, or why the embedded table is malformed.
pub(crate) fn schema() -> Result<&'static Schema, &'static str> {
    SCHEMA.as_ref().map_err(String::as_str)
}

impl Schema {
    /// The root struct shape of a kind, if the table knows it.
    pub(crate) fn kind(&self, group: &str, kind: &str) -> Option<Shape> {
        self.kinds.get(&(group.to_string(), kind.to_string())).map(|i| Shape::Struct(*i))
    }

    /// The root struct shape of a kind, borrowed from the table.
    pub(crate) fn kind_ref(&self, group: &str, kind: &str) -> Option<&Shape> {
        let i = *self.kinds.get(&(group.to_string(), kind.to_string()))?;
        self.roots.get(i)
    }

    /// Metadata of the member `key` of a value of shape `parent`. Members of maps share the
    /// map's value shape; anything the table does not describe is [`Shape::Free`].
    pub(crate) fn field<'s>(&'s self, parent: &'s Shape, key: &str) -> FieldRef<'s> {
        match parent {
            Shape::Struct(i) => match self.structs.get(*i).and_then(|s| s.get(key)) {
                Some(f) => FieldRef {
                    shape: &f.shape,
                    strategy: f.strategy,
                    merge_key: f.merge_key.as_deref(),
                    list: &f.list,
                    atomic: f.atomic,
                    default: f.default.as_ref(),
                },
                None => FieldRef::free(),
            },
            Shape::Map(inner) => FieldRef {
                shape: inner,
                strategy: Strategy::default(),
                merge_key: None,
                list: &ATOMIC_LIST,
                atomic: false,
                default: None,
            },
            Shape::Scalar | Shape::Free | Shape::List(_) => FieldRef::free(),
        }
    }

    /// Whether a struct shape is a type marked `+structType=atomic`.
    pub(crate) fn is_atomic_struct(&self, shape: &Shape) -> bool {
        matches!(shape, Shape::Struct(i) if self.atomic.get(*i).copied().unwrap_or(false))
    }

    /// The shape of the elements of a list of shape `list`.
    pub(crate) fn element<'s>(&'s self, list: &'s Shape) -> &'s Shape {
        match list {
            Shape::List(inner) => inner,
            _ => &FREE,
        }
    }

    /// Parses the table format written by `scripts/gen-patch-schema.py`.
    fn parse(table: &str) -> Result<Schema, String> {
        let records: Vec<Vec<&str>> = table
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| l.split(' ').collect())
            .collect();
        let mut index = HashMap::new();
        for rec in records.iter().filter(|r| r[0] == "type") {
            let name = rec.get(1).ok_or("type record without a name")?;
            let next = index.len();
            index.insert(*name, next);
        }
        let mut structs = vec![HashMap::new(); index.len()];
        let mut kinds = HashMap::new();
        let mut atomic = vec![false; index.len()];
        for rec in &records {
            match rec.as_slice() {
                ["kind", group, kind, ty] => {
                    let i = *index.get(ty).ok_or_else(|| format!("kind {kind} names unknown type {ty}"))?;
                    let group = if *group == "-" { "" } else { group };
                    kinds.insert((group.to_string(), kind.to_string()), i);
                }
                ["type", name, fields @ ..] => {
                    let i = index[name];
                    for spec in fields {
                        let (json, field) = parse_field(spec, &index).map_err(|e| format!("type {name}: {e}"))?;
                        structs[i].insert(json.to_string(), field);
                    }
                }
                ["atomic", ty] => {
                    let i = *index.get(ty).ok_or_else(|| format!("atomic names unknown type {ty}"))?;
                    atomic[i] = true;
                }
                // OpenAPI-only facts (`x-kubernetes-unions`), read by `table_facts`.
                ["union", ty, ..] => {
                    index.get(ty).ok_or_else(|| format!("union names unknown type {ty}"))?;
                }
                other => return Err(format!("unrecognised record {:?}", other.join(" "))),
            }
        }
        let roots = (0..structs.len()).map(Shape::Struct).collect();
        Ok(Schema { kinds, structs, atomic, roots })
    }
}

/// One OpenAPI-relevant fact of the table, exactly as the generator recorded it from the Go
/// source (nothing defaulted): what upstream's OpenAPI generator turns into `x-kubernetes-*`
/// extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableFact {
    /// A struct field with a patch strategy, a merge key or server-side-apply markers.
    Field {
        /// The Go type, as the table names it (`core.v1.PodSpec`, `meta.v1.ObjectMeta`).
        type_name: &'static str,
        /// The JSON name of the field (`containers`).
        field: &'static str,
        /// The `patchStrategy` tag (`merge`, `merge,retainKeys`, `replace`), empty when none.
        strategy: &'static str,
        /// The `patchMergeKey` tag (`name`), empty when none.
        merge_key: &'static str,
        /// The `+listType`/`+listMapKey`/`+mapType`/`+structType` markers, in table order
        /// (`listMapKey` values comma-separated).
        markers: Vec<(&'static str, &'static str)>,
    },
    /// A struct type marked `+structType=atomic`.
    AtomicStruct {
        /// The Go type, as the table names it.
        type_name: &'static str,
    },
    /// A struct type marked `+union`.
    Union {
        /// The Go type, as the table names it.
        type_name: &'static str,
        /// The JSON name of its `+unionDiscriminator` field, if any.
        discriminator: Option<&'static str>,
        /// Every other field: JSON name and Go field name.
        members: Vec<(&'static str, &'static str)>,
    },
}

/// Every [`TableFact`] of the generated table and the hand-written records.
pub fn table_facts() -> impl Iterator<Item = TableFact> {
    TABLE.lines().chain(EXTRA.lines()).flat_map(|line| {
        let mut words = line.split(' ');
        let record = words.next().unwrap_or_default();
        let type_name = words.next().unwrap_or_default();
        let facts: Vec<TableFact> = match record {
            "type" => words.filter_map(|spec| field_fact(type_name, spec)).collect(),
            "atomic" => vec![TableFact::AtomicStruct { type_name }],
            "union" => {
                let discriminator = words.next().filter(|d| *d != "-");
                let members = words.filter_map(|m| m.split_once('=')).collect();
                vec![TableFact::Union { type_name, discriminator, members }]
            }
            _ => Vec::new(),
        };
        facts
    })
}

/// The fact of one `json:shape[:strategy[:mergeKey[:markers]]]` field spec, if it has any.
fn field_fact(type_name: &'static str, spec: &'static str) -> Option<TableFact> {
    let mut parts = spec.split(':');
    let field = parts.next().filter(|f| !f.is_empty())?;
    let _shape = parts.next();
    let strategy = parts.next().unwrap_or_default();
    let merge_key = parts.next().unwrap_or_default();
    let markers: Vec<(&str, &str)> =
        parts.next().unwrap_or_default().split(';').filter_map(|m| m.split_once('=')).collect();
    (!strategy.is_empty() || !merge_key.is_empty() || !markers.is_empty()).then_some(TableFact::Field {
        type_name,
        field,
        strategy,
        merge_key,
        markers,
    })
}

fn parse_field<'t>(spec: &'t str, index: &HashMap<&str, usize>) -> Result<(&'t str, Field), String> {
    let mut parts = spec.split(':');
    let json = parts.next().filter(|j| !j.is_empty()).ok_or_else(|| format!("field {spec:?} without a name"))?;
    let shape = parse_shape(parts.next().unwrap_or_default(), index)?;
    let mut strategy = Strategy::default();
    for s in parts.next().unwrap_or_default().split(',').filter(|s| !s.is_empty()) {
        match s {
            "merge" => strategy.merge = true,
            "retainKeys" => strategy.retain_keys = true,
            "replace" => strategy.replace = true,
            other => return Err(format!("field {json}: unknown patch strategy {other:?}")),
        }
    }
    let merge_key: Option<Box<str>> = parts.next().filter(|k| !k.is_empty()).map(Box::from);
    let mut list = None;
    let mut keys: Vec<Box<str>> = Vec::new();
    let mut atomic = false;
    let mut default = None;
    for marker in parts.next().unwrap_or_default().split(';').filter(|m| !m.is_empty()) {
        match marker.split_once('=') {
            Some(("listType", "atomic")) => list = Some(ListType::Atomic),
            Some(("listType", "set")) => list = Some(ListType::Set),
            Some(("listType", "map")) => list = Some(ListType::Map(Vec::new())),
            Some(("listMapKey", ks)) => keys = ks.split(',').map(Box::from).collect(),
            Some(("mapType" | "structType", value)) => atomic = value == "atomic",
            Some(("default", literal)) => {
                default = Some(
                    serde_json::from_str(literal).map_err(|e| format!("field {json}: bad default {literal:?}: {e}"))?,
                );
            }
            _ => return Err(format!("field {json}: unknown marker {marker:?}")),
        }
    }
    let list = match list {
        Some(ListType::Map(_)) => ListType::Map(keys),
        Some(other) => other,
        None if strategy.merge => match &merge_key {
            Some(k) => ListType::Map(vec![k.clone()]),
            None => ListType::Set,
        },
        None => ListType::Atomic,
    };
    Ok((json, Field { shape, strategy, merge_key, list, atomic, default }))
}

fn parse_shape(s: &str, index: &HashMap<&str, usize>) -> Result<Shape, String> {
    match s {
        "" => Err("empty shape".to_string()),
        "-" => Ok(Shape::Scalar),
        "*" => Ok(Shape::Free),
        _ => {
            if let Some(inner) = s.strip_prefix('[') {
                Ok(Shape::List(Box::new(parse_shape(inner, index)?)))
            } else if let Some(inner) = s.strip_prefix('{') {
                Ok(Shape::Map(Box::new(parse_shape(inner, index)?)))
            } else {
                index.get(s).map(|i| Shape::Struct(*i)).ok_or_else(|| format!("unknown type {s}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_table_parses_and_knows_pod_containers() {
        let schema = schema().expect("embedded table parses");
        let pod = schema.kind("", "Pod").expect("Pod is in the table");
        let spec = schema.field(&pod, "spec");
        let containers = schema.field(spec.shape, "containers");
        assert!(containers.strategy.merge);
        assert_eq!(containers.merge_key, Some("name"));
        let container = schema.element(containers.shape);
        assert_eq!(schema.field(container, "ports").merge_key, Some("containerPort"));
        assert_eq!(
            *schema.field(container, "ports").list,
            ListType::Map(vec!["containerPort".into(), "protocol".into()])
        );
        assert_eq!(*schema.field(container, "env").list, ListType::Map(vec!["name".into()]));
        let port = schema.element(schema.field(container, "ports").shape);
        assert_eq!(schema.field(port, "protocol").default, Some(&serde_json::json!("TCP")));
        assert_eq!(schema.field(port, "containerPort").default, None);
        assert_eq!(*schema.field(container, "args").list, ListType::Atomic);
        let meta = schema.field(&pod, "metadata");
        assert_eq!(*schema.field(meta.shape, "finalizers").list, ListType::Set);
        assert!(schema.field(spec.shape, "nodeSelector").atomic);
        let refs = schema.field(meta.shape, "ownerReferences");
        assert!(schema.is_atomic_struct(schema.element(refs.shape)));
    }

    #[test]
    fn table_facts_keep_tags_and_markers_as_written() {
        let all: Vec<TableFact> = table_facts().collect();
        let field = |ty: &str, name: &str| {
            all.iter()
                .find(|f| matches!(f, TableFact::Field { type_name, field, .. } if *type_name == ty && *field == name))
                .cloned()
        };
        assert_eq!(
            field("core.v1.PodSpec", "containers"),
            Some(TableFact::Field {
                type_name: "core.v1.PodSpec",
                field: "containers",
                strategy: "merge",
                merge_key: "name",
                markers: vec![("listMapKey", "name"), ("listType", "map")],
            })
        );
        let finalizers = field("meta.v1.ObjectMeta", "finalizers");
        assert!(matches!(finalizers, Some(TableFact::Field { strategy: "merge", merge_key: "", .. })));
        // Fields with nothing to say are not facts; defaults are not invented.
        assert_eq!(field("core.v1.PodSpec", "hostname"), None);
        assert!(all.contains(&TableFact::AtomicStruct { type_name: "meta.v1.LabelSelector" }));
        assert!(all.contains(&TableFact::Union {
            type_name: "core.v1.SeccompProfile",
            discriminator: Some("type"),
            members: vec![("localhostProfile", "LocalhostProfile")],
        }));
    }

    #[test]
    fn header_names_source_and_regenerate_command() {
        let header: Vec<&str> = TABLE.lines().take(2).collect();
        assert!(header[0].contains("kubernetes/api@"));
        assert!(header[1].contains("scripts/gen-patch-schema.py"));
    }
}
