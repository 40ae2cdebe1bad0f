//! downwardAPI volumes (and the downwardAPI sources of projected volumes): files holding the
//! pod's name, namespace, uid, labels and annotations (`fieldRef`) and its containers' requests
//! and limits (`resourceFieldRef` with `divisor`), formatted as the kubelet formats them. Labels
//! and annotations are rewritten when they change (the worker hands every pod update over).

use k8s_openapi::api::core::v1::{Container, DownwardAPIVolumeFile, Pod};
use skiff_api::quantity::Quantity;

use super::atomic_writer::{FileProjection, Payload};
use super::config_map::DEFAULT_MODE;

/// What the node offers pods, the default for limits a container does not set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Allocatable {
    /// CPU in millicores.
    pub milli_cpu: i64,
    /// Memory in bytes.
    pub memory: i64,
    /// Ephemeral storage in bytes.
    pub ephemeral_storage: i64,
}

/// Go's `strconv.Quote` (what `%q` prints): `"` and `\` escaped, control and non-printable
/// characters as `\n`, `\x1b`, `\u00a0`, everything else as is.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{07}' => out.push_str("\\a"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0b}' => out.push_str("\\v"),
            c if printable(c) => out.push(c),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// Go's `unicode.IsPrint`, close enough: no controls, no spaces but U+0020, no format
/// characters, no private use.
fn printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(c as u32,
        0xad | 0x600..=0x605 | 0x61c | 0x6dd | 0x70f | 0x180e | 0x200b..=0x200f | 0x202a..=0x202e
        | 0x2060..=0x206f | 0xe000..=0xf8ff | 0xfeff | 0xfff9..=0xfffb | 0xf0000..=0x10ffff)
}

/// The kubelet's rendering of labels or annotations: `key="value"` lines sorted by key,
/// without a final newline.
pub fn format_map(map: Option<&std::collections::BTreeMap<String, String>>) -> String {
    map.into_iter().flatten().map(|(k, v)| format!("{k}={}", go_quote(v))).collect::<Vec<_>>().join("\n")
}

/// The value of a `fieldRef` path in a downwardAPI volume.
pub fn field_value(pod: &Pod, path: &str) -> Result<String, String> {
    let meta = &pod.metadata;
    if let Some(rest) = path.strip_suffix("']")
        && let Some((base, key)) = rest.split_once("['")
        && !base.is_empty()
    {
        return match base {
            "metadata.labels" => Ok(meta.labels.as_ref().and_then(|m| m.get(key)).cloned().unwrap_or_default()),
            "metadata.annotations" => {
                Ok(meta.annotations.as_ref().and_then(|m| m.get(key)).cloned().unwrap_or_default())
            }
            _ => Err(format!("fieldPath {path:?} does not support subscript")),
        };
    }
    Ok(match path {
        "metadata.annotations" => format_map(meta.annotations.as_ref()),
        "metadata.labels" => format_map(meta.labels.as_ref()),
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        other => return Err(format!("unsupported fieldPath: {other}")),
    })
}

fn find_container<'a>(pod: &'a Pod, name: &str) -> Result<&'a Container, String> {
    let spec = pod.spec.as_ref();
    spec.map(|s| s.containers.as_slice())
        .unwrap_or_default()
        .iter()
        .chain(spec.and_then(|s| s.init_containers.as_deref()).unwrap_or_default())
        .find(|c| c.name == name)
        .ok_or_else(|| format!("container {name} not found"))
}

fn quantity_of(container: &Container, which: &str, name: &str) -> Option<Quantity> {
    let res = container.resources.as_ref()?;
    let map = if which == "limits" { res.limits.as_ref() } else { res.requests.as_ref() }?;
    Quantity::parse(&map.get(name)?.0).ok()
}

fn div_ceil(a: i128, b: i128) -> i128 {
    if b == 0 {
        return 0;
    }
    let q = a / b;
    if (a % b != 0) && ((a < 0) == (b < 0)) { q + 1 } else { q }
}

/// The value of a `resourceFieldRef` (`limits.cpu` with divisor `1m` → `500`). Unset limits of
/// cpu, memory and ephemeral-storage are the node's allocatable, as upstream.
pub fn resource_value(
    pod: &Pod,
    container_name: &str,
    resource: &str,
    divisor: Option<&str>,
    node: &Allocatable,
) -> Result<String, String> {
    let container = find_container(pod, container_name)?;
    let divisor =
        divisor.and_then(|d| Quantity::parse(d).ok()).filter(|q| !q.is_zero()).unwrap_or(Quantity::from_units(1));
    let (which, name) =
        resource.split_once('.').ok_or_else(|| format!("unsupported container resource : {resource}"))?;
    let supported = matches!(name, "cpu" | "memory" | "ephemeral-storage") || name.starts_with("hugepages-");
    if !matches!(which, "limits" | "requests") || !supported {
        return Err(format!("unsupported container resource : {resource}"));
    }
    let mut q = quantity_of(container, which, name).unwrap_or(Quantity::ZERO);
    if which == "limits" && q.is_zero() {
        q = match name {
            "cpu" => Quantity::from_millis(node.milli_cpu),
            "memory" => Quantity::from_units(node.memory),
            "ephemeral-storage" => Quantity::from_units(node.ephemeral_storage),
            _ => q,
        };
    }
    let value = if name == "cpu" {
        div_ceil(q.milli_value().into(), divisor.milli_value().into())
    } else {
        div_ceil(q.value().into(), divisor.value().into())
    };
    Ok(value.to_string())
}

/// The files of a downwardAPI volume (or source). Every item is tried; failures are reported
/// together, as upstream aggregates them.
pub fn payload(
    items: &[DownwardAPIVolumeFile],
    pod: &Pod,
    default_mode: Option<i32>,
    node: &Allocatable,
) -> Result<Payload, String> {
    let default_mode = (default_mode.unwrap_or(DEFAULT_MODE) as u32) & 0o7777;
    let mut out = Payload::new();
    let mut errors = Vec::new();
    for item in items {
        let mode = item.mode.map_or(default_mode, |m| (m as u32) & 0o7777);
        let value = if let Some(f) = &item.field_ref {
            field_value(pod, &f.field_path)
        } else if let Some(r) = &item.resource_field_ref {
            resource_value(
                pod,
                r.container_name.as_deref().unwrap_or(""),
                &r.resource,
                r.divisor.as_ref().map(|d| d.0.as_str()),
                node,
            )
        } else {
            Ok(String::new())
        };
        match value {
            Ok(v) => {
                out.insert(item.path.clone(), FileProjection { data: v.into_bytes(), mode });
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(aggregate(errors)) }
}

/// apimachinery's error aggregate: one message as is, several as `[a, b]` without repeats.
pub fn aggregate(errors: Vec<String>) -> String {
    let mut unique: Vec<String> = Vec::new();
    for e in errors {
        if !unique.contains(&e) {
            unique.push(e);
        }
    }
    match unique.len() {
        0 => String::new(),
        1 => unique.remove(0),
        _ => format!("[{}]", unique.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ObjectFieldSelector, PodSpec, ResourceFieldSelector, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity as Q;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("prod".into()),
                uid: Some("u-1".into()),
                labels: Some(
                    [("tier".to_string(), "front".to_string()), ("app".to_string(), "a\"b".to_string())].into(),
                ),
                annotations: Some([("note".to_string(), "line1\nline2\té".to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "main".into(),
                    resources: Some(ResourceRequirements {
                        requests: Some(
                            [("cpu".to_string(), Q("250m".into())), ("memory".to_string(), Q("64Mi".into()))].into(),
                        ),
                        limits: Some([("memory".to_string(), Q("128Mi".into()))].into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    const NODE: Allocatable = Allocatable { milli_cpu: 2000, memory: 4 << 30, ephemeral_storage: 10 << 30 };

    #[test]
    fn quotes_like_go() {
        assert_eq!(go_quote("plain"), "\"plain\"");
        assert_eq!(go_quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(go_quote("x\ny\t\u{1b}"), "\"x\\ny\\t\\x1b\"");
        assert_eq!(go_quote("café ☕"), "\"café ☕\"");
        assert_eq!(go_quote("\u{a0}\u{200b}"), "\"\\u00a0\\u200b\"");
    }

    #[test]
    fn field_refs_render_like_the_kubelet() {
        let p = pod();
        assert_eq!(field_value(&p, "metadata.labels").expect("labels"), "app=\"a\\\"b\"\ntier=\"front\"");
        assert_eq!(field_value(&p, "metadata.annotations").expect("ann"), "note=\"line1\\nline2\\té\"");
        assert_eq!(field_value(&p, "metadata.labels['tier']").expect("label"), "front");
        assert_eq!(field_value(&p, "metadata.annotations['missing']").expect("ann"), "");
        assert_eq!(field_value(&p, "metadata.name").expect("name"), "web");
        assert_eq!(field_value(&p, "metadata.namespace").expect("ns"), "prod");
        assert_eq!(field_value(&p, "metadata.uid").expect("uid"), "u-1");
        assert_eq!(field_value(&p, "spec.nodeName").expect_err("unsupported"), "unsupported fieldPath: spec.nodeName");
        assert_eq!(field_value(&Pod::default(), "metadata.labels").expect("empty"), "");
    }

    #[test]
    fn resource_refs_divide_and_round_up() {
        let p = pod();
        let v = |res: &str, div: Option<&str>| resource_value(&p, "main", res, div, &NODE);
        assert_eq!(v("requests.cpu", None).expect("cpu"), "1");
        assert_eq!(v("requests.cpu", Some("1m")).expect("cpu"), "250");
        assert_eq!(v("limits.cpu", None).expect("cpu"), "2", "unset limit: node allocatable");
        assert_eq!(v("limits.memory", Some("1Mi")).expect("mem"), "128");
        assert_eq!(v("requests.memory", Some("1Gi")).expect("mem"), "1");
        assert_eq!(v("limits.ephemeral-storage", Some("1Gi")).expect("es"), "10");
        assert_eq!(v("requests.ephemeral-storage", None).expect("es"), "0");
        assert_eq!(v("limits.gpu", None).expect_err("bad"), "unsupported container resource : limits.gpu");
        assert_eq!(
            resource_value(&p, "ghost", "limits.cpu", None, &NODE).expect_err("missing"),
            "container ghost not found"
        );
    }

    #[test]
    fn payload_uses_item_modes_and_aggregates_errors() {
        let items = vec![
            DownwardAPIVolumeFile {
                path: "labels".into(),
                field_ref: Some(ObjectFieldSelector { field_path: "metadata.labels".into(), ..Default::default() }),
                ..Default::default()
            },
            DownwardAPIVolumeFile {
                path: "mem".into(),
                mode: Some(0o400),
                resource_field_ref: Some(ResourceFieldSelector {
                    container_name: Some("main".into()),
                    resource: "limits.memory".into(),
                    divisor: Some(Q("1Mi".into())),
                }),
                ..Default::default()
            },
        ];
        let p = payload(&items, &pod(), Some(0o444), &NODE).expect("payload");
        assert_eq!((p["labels"].mode, p["mem"].mode), (0o444, 0o400));
        assert_eq!(p["mem"].data, b"128");
        let bad = vec![
            DownwardAPIVolumeFile {
                path: "x".into(),
                field_ref: Some(ObjectFieldSelector { field_path: "spec.x".into(), ..Default::default() }),
                ..Default::default()
            },
            DownwardAPIVolumeFile {
                path: "y".into(),
                field_ref: Some(ObjectFieldSelector { field_path: "status.y".into(), ..Default::default() }),
                ..Default::default()
            },
        ];
        assert_eq!(
            payload(&bad, &pod(), None, &NODE).expect_err("errors"),
            "[unsupported fieldPath: spec.x, unsupported fieldPath: status.y]"
        );
        assert_eq!(aggregate(vec!["a".into(), "a".into()]), "a");
    }
}
