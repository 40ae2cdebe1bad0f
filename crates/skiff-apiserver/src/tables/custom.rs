//! Tables of custom resources: `Name`, then the version's `additionalPrinterColumns` (or `Age`
//! when it declares none, as upstream's table convertor does), with cells read by the JSONPath
//! subset CRDs use.
//!
//! Supported JSONPath: `.a.b`, `.a[0].b`, `.a[*].b`, `['a.b']`, and filters
//! `[?(@.type=="Ready")]` (also `!=`), optionally wrapped in `{…}`. As upstream, a cell shows the
//! first result; no result is `null`.

use jiff::Timestamp;
use serde_json::{Value, json};
use skiff_api::catalogue::{CustomResource, PrinterColumn};

use super::{age, fields};

/// One step of a parsed JSONPath.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    /// A member by name.
    Field(String),
    /// An array element (negative counts from the end).
    Index(i64),
    /// Every element (or member value).
    Wildcard,
    /// Array elements whose `path` compares to `value`.
    Filter { path: Vec<String>, equal: bool, value: Value },
}

/// A parse failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPathError(pub String);

fn parse(path: &str) -> Result<Vec<Step>, JsonPathError> {
    let mut s = path.trim();
    if let Some(inner) = s.strip_prefix('{').and_then(|x| x.strip_suffix('}')) {
        s = inner.trim();
    }
    let bad = |why: &str| JsonPathError(format!("invalid JSONPath {path:?}: {why}"));
    let chars: Vec<char> = s.chars().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    if chars.first() == Some(&'$') {
        i = 1;
    }
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                let start = i;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                let name: String = chars[start..i].iter().collect();
                if name == "*" {
                    steps.push(Step::Wildcard);
                } else if !name.is_empty() {
                    steps.push(Step::Field(name));
                }
            }
            '[' => {
                let close = find_close(&chars, i).ok_or_else(|| bad("unterminated '['"))?;
                let inner: String = chars[i + 1..close].iter().collect();
                let inner = inner.trim();
                i = close + 1;
                if inner == "*" {
                    steps.push(Step::Wildcard);
                } else if let Some(f) = inner.strip_prefix("?(").and_then(|x| x.strip_suffix(')')) {
                    steps.push(parse_filter(f).ok_or_else(|| bad("unsupported filter"))?);
                } else if let Some(q) = unquote(inner) {
                    steps.push(Step::Field(q));
                } else {
                    steps.push(Step::Index(inner.parse().map_err(|_| bad("unsupported subscript"))?));
                }
            }
            _ => {
                let start = i;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                steps.push(Step::Field(chars[start..i].iter().collect()));
            }
        }
    }
    Ok(steps)
}

fn find_close(chars: &[char], open: usize) -> Option<usize> {
    let mut quote: Option<char> = None;
    for (j, c) in chars.iter().enumerate().skip(open + 1) {
        match (quote, *c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(*c),
            (None, ']') => return Some(j),
            _ => {}
        }
    }
    None
}

fn unquote(s: &str) -> Option<String> {
    let s = s.trim();
    for q in ['\'', '"'] {
        if let Some(inner) = s.strip_prefix(q).and_then(|x| x.strip_suffix(q)) {
            return Some(inner.to_string());
        }
    }
    None
}

fn parse_filter(f: &str) -> Option<Step> {
    let (lhs, rhs, equal) = if let Some((l, r)) = f.split_once("==") {
        (l, r, true)
    } else {
        let (l, r) = f.split_once("!=")?;
        (l, r, false)
    };
    let path: Vec<String> =
        lhs.trim().strip_prefix('@')?.split('.').filter(|p| !p.is_empty()).map(str::to_string).collect();
    let rhs = rhs.trim();
    let value = match unquote(rhs) {
        Some(s) => Value::String(s),
        None => serde_json::from_str(rhs).ok()?,
    };
    Some(Step::Filter { path, equal, value })
}

fn eval<'a>(steps: &[Step], current: Vec<&'a Value>) -> Vec<&'a Value> {
    let Some((step, rest)) = steps.split_first() else { return current };
    let mut next = Vec::new();
    for v in current {
        match step {
            Step::Field(name) => next.extend(v.get(name.as_str())),
            Step::Index(i) => {
                if let Some(items) = v.as_array() {
                    let idx = if *i < 0 { items.len() as i64 + i } else { *i };
                    next.extend(usize::try_from(idx).ok().and_then(|i| items.get(i)));
                }
            }
            Step::Wildcard => match v {
                Value::Array(items) => next.extend(items.iter()),
                Value::Object(map) => next.extend(map.values()),
                _ => {}
            },
            Step::Filter { path, equal, value } => {
                if let Some(items) = v.as_array() {
                    for item in items {
                        let found = path.iter().try_fold(item, |acc, p| acc.get(p.as_str()));
                        if (found == Some(value)) == *equal {
                            next.push(item);
                        }
                    }
                }
            }
        }
    }
    eval(rest, next)
}

/// Every value `path` selects in `obj`, in document order.
pub fn find<'a>(path: &str, obj: &'a Value) -> Result<Vec<&'a Value>, JsonPathError> {
    Ok(eval(&parse(path)?, vec![obj]))
}

/// The columns of a custom resource version (`Name` first).
pub fn columns(custom: &CustomResource) -> Vec<Value> {
    let mut out = vec![json!({
        "name": "Name", "type": "string", "format": "name", "priority": 0,
        "description": "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
    })];
    for c in effective(custom) {
        out.push(json!({"name": c.name, "type": c.type_, "format": c.format, "description": c.description, "priority": c.priority}));
    }
    out
}

fn effective(custom: &CustomResource) -> Vec<PrinterColumn> {
    if !custom.printer_columns.is_empty() {
        return custom.printer_columns.clone();
    }
    vec![PrinterColumn {
        name: "Age".into(),
        type_: "date".into(),
        format: String::new(),
        description: "CreationTimestamp is a timestamp representing the server time when this object was created."
            .into(),
        priority: 0,
        json_path: ".metadata.creationTimestamp".into(),
    }]
}

/// The cells of one object.
pub fn cells(custom: &CustomResource, obj: &Value, now: Timestamp) -> Vec<Value> {
    let mut out = vec![json!(fields::name(obj))];
    for c in effective(custom) {
        let first = find(&c.json_path, obj).ok().and_then(|r| r.first().map(|v| (*v).clone()));
        let cell = match first {
            None | Some(Value::Null) => Value::Null,
            Some(v) => match c.type_.as_str() {
                "date" => match v.as_str() {
                    Some(t) => json!(age::age(t, now)),
                    None => v,
                },
                "string" => match v {
                    Value::String(s) => Value::String(s),
                    other => Value::String(other.to_string()),
                },
                _ => v,
            },
        };
        out.push(cell);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonpath_subset_matches_upstream_uses() {
        let obj = json!({
            "spec": {"replicas": 3, "items": [{"name": "a"}, {"name": "b"}], "dotted": {"a.b": 1}},
            "status": {"conditions": [{"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}]},
        });
        let one = |p: &str| find(p, &obj).expect("parses").into_iter().cloned().collect::<Vec<_>>();
        assert_eq!(one(".spec.replicas"), vec![json!(3)]);
        assert_eq!(one("{.spec.replicas}"), vec![json!(3)]);
        assert_eq!(one(".spec.items[1].name"), vec![json!("b")]);
        assert_eq!(one(".spec.items[-1].name"), vec![json!("b")]);
        assert_eq!(one(".spec.items[*].name"), vec![json!("a"), json!("b")]);
        assert_eq!(one(".status.conditions[?(@.type==\"Ready\")].status"), vec![json!("True")]);
        assert_eq!(one(".status.conditions[?(@.type!=\"Ready\")].type"), vec![json!("Synced")]);
        assert_eq!(one(".spec['dotted']['a.b']"), vec![json!(1)]);
        assert!(one(".spec.missing").is_empty());
        assert!(find(".spec[", &obj).is_err());
    }

    #[test]
    fn cells_follow_the_columns() {
        let custom = CustomResource {
            crd_name: "w.example.com",
            schema: None,
            printer_columns: vec![
                PrinterColumn {
                    name: "Replicas".into(),
                    type_: "integer".into(),
                    format: String::new(),
                    description: String::new(),
                    priority: 0,
                    json_path: ".spec.replicas".into(),
                },
                PrinterColumn {
                    name: "Missing".into(),
                    type_: "string".into(),
                    format: String::new(),
                    description: String::new(),
                    priority: 1,
                    json_path: ".status.nothing".into(),
                },
            ],
            scale: None,
            served: true,
            storage: true,
            storage_version: "v1",
        };
        let obj = json!({"metadata": {"name": "x"}, "spec": {"replicas": 2}});
        let now = Timestamp::now();
        assert_eq!(cells(&custom, &obj, now), vec![json!("x"), json!(2), Value::Null]);
        assert_eq!(columns(&custom).len(), 3);
        let bare = CustomResource { printer_columns: vec![], ..custom };
        assert_eq!(columns(&bare)[1]["name"], "Age");
    }
}
