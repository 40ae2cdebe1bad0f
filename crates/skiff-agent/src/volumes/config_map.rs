//! configMap volumes (and the configMap sources of projected volumes): the payload of a
//! ConfigMap for a volume, from `data` and `binaryData`, `items` (key → path, mode), `defaultMode`
//! and `optional`, with the kubelet's messages. Fetching the ConfigMap is `objects`' job,
//! writing the payload the atomic writer's.

use k8s_openapi::api::core::v1::{ConfigMap, KeyToPath};

use super::atomic_writer::{FileProjection, Payload};

/// The mode files get when neither the item nor the volume says (0644, the API default).
pub const DEFAULT_MODE: i32 = 0o644;

fn mode(m: i32) -> u32 {
    (m as u32) & 0o7777
}

/// The files `cm` projects (`None`: the ConfigMap does not exist, which the caller allowed
/// because the source is optional).
pub fn payload(
    items: Option<&[KeyToPath]>,
    cm: Option<&ConfigMap>,
    default_mode: Option<i32>,
    optional: bool,
) -> Result<Payload, String> {
    let default_mode = mode(default_mode.unwrap_or(DEFAULT_MODE));
    let data = cm.and_then(|c| c.data.as_ref());
    let binary = cm.and_then(|c| c.binary_data.as_ref());
    let mut out = Payload::new();
    match items.filter(|i| !i.is_empty()) {
        None => {
            for (k, v) in data.into_iter().flatten() {
                out.insert(k.clone(), FileProjection { data: v.as_bytes().to_vec(), mode: default_mode });
            }
            for (k, v) in binary.into_iter().flatten() {
                out.insert(k.clone(), FileProjection { data: v.0.clone(), mode: default_mode });
            }
        }
        Some(items) => {
            for item in items {
                let content = match (data.and_then(|d| d.get(&item.key)), binary.and_then(|b| b.get(&item.key))) {
                    (Some(s), _) => s.as_bytes().to_vec(),
                    (None, Some(b)) => b.0.clone(),
                    (None, None) if optional => continue,
                    (None, None) => return Err(format!("configmap references non-existent config key: {}", item.key)),
                };
                let m = item.mode.map_or(default_mode, mode);
                out.insert(item.path.clone(), FileProjection { data: content, mode: m });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn cm() -> ConfigMap {
        ConfigMap {
            data: Some([("a".to_string(), "1".to_string()), ("b".to_string(), "2".to_string())].into()),
            binary_data: Some([("bin".to_string(), ByteString(vec![0, 1, 2]))].into()),
            ..Default::default()
        }
    }

    fn item(key: &str, path: &str, mode: Option<i32>) -> KeyToPath {
        KeyToPath { key: key.into(), path: path.into(), mode }
    }

    #[test]
    fn all_keys_with_the_default_mode() {
        let p = payload(None, Some(&cm()), Some(0o440), false).expect("payload");
        assert_eq!(p.keys().collect::<Vec<_>>(), ["a", "b", "bin"]);
        assert_eq!(p["bin"].data, vec![0, 1, 2]);
        assert!(p.values().all(|f| f.mode == 0o440));
        let p = payload(Some(&[]), Some(&cm()), None, false).expect("payload");
        assert_eq!((p.len(), p["a"].mode), (3, 0o644));
    }

    #[test]
    fn items_map_keys_to_paths_and_modes() {
        let items = [item("a", "conf/a.txt", Some(0o400)), item("bin", "b", None)];
        let p = payload(Some(&items), Some(&cm()), Some(0o600), false).expect("payload");
        assert_eq!(p.keys().collect::<Vec<_>>(), ["b", "conf/a.txt"]);
        assert_eq!((p["conf/a.txt"].mode, p["b"].mode), (0o400, 0o600));
        let missing = [item("zzz", "z", None)];
        assert_eq!(
            payload(Some(&missing), Some(&cm()), None, false).expect_err("missing key"),
            "configmap references non-existent config key: zzz"
        );
        assert!(payload(Some(&missing), Some(&cm()), None, true).expect("optional").is_empty());
        assert!(payload(None, None, None, true).expect("optional and absent").is_empty());
    }
}
