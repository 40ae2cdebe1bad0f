//! secret volumes (and the secret sources of projected volumes): the payload of a Secret for a
//! volume, from `data`, `items` (key → path, mode), `defaultMode` and `optional`, with the
//! kubelet's messages. Secret volumes live on a tmpfs, never on disk; their content is never
//! logged (payloads print only sizes).

use k8s_openapi::api::core::v1::{KeyToPath, Secret};

use super::atomic_writer::{FileProjection, Payload};
use super::config_map::DEFAULT_MODE;

fn mode(m: i32) -> u32 {
    (m as u32) & 0o7777
}

/// The files `secret` projects (`None`: it does not exist and the source is optional).
pub fn payload(
    items: Option<&[KeyToPath]>,
    secret: Option<&Secret>,
    default_mode: Option<i32>,
    optional: bool,
) -> Result<Payload, String> {
    let default_mode = mode(default_mode.unwrap_or(DEFAULT_MODE));
    let data = secret.and_then(|s| s.data.as_ref());
    let mut out = Payload::new();
    match items.filter(|i| !i.is_empty()) {
        None => {
            for (k, v) in data.into_iter().flatten() {
                out.insert(k.clone(), FileProjection { data: v.0.clone(), mode: default_mode });
            }
        }
        Some(items) => {
            for item in items {
                let Some(content) = data.and_then(|d| d.get(&item.key)) else {
                    if optional {
                        continue;
                    }
                    return Err(format!("references non-existent secret key: {}", item.key));
                };
                let m = item.mode.map_or(default_mode, mode);
                out.insert(item.path.clone(), FileProjection { data: content.0.clone(), mode: m });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn secret() -> Secret {
        Secret {
            data: Some(
                [("user".to_string(), ByteString(b"admin".to_vec())), ("pass".to_string(), ByteString(b"pw".to_vec()))]
                    .into(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn keys_items_and_modes() {
        let p = payload(None, Some(&secret()), Some(0o400), false).expect("payload");
        assert_eq!(p.keys().collect::<Vec<_>>(), ["pass", "user"]);
        assert_eq!((p["user"].data.as_slice(), p["user"].mode), (&b"admin"[..], 0o400));
        let items = [KeyToPath { key: "pass".into(), path: "creds/password".into(), mode: Some(0o600) }];
        let p = payload(Some(&items), Some(&secret()), None, false).expect("payload");
        assert_eq!(p.keys().collect::<Vec<_>>(), ["creds/password"]);
        assert_eq!(p["creds/password"].mode, 0o600);
        let missing = [KeyToPath { key: "token".into(), path: "t".into(), mode: None }];
        assert_eq!(
            payload(Some(&missing), Some(&secret()), None, false).expect_err("missing"),
            "references non-existent secret key: token"
        );
        assert!(payload(Some(&missing), None, None, true).expect("optional").is_empty());
    }
}
