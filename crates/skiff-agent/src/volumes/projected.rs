//! projected volumes: one directory combining configMap, secret, downwardAPI and
//! serviceAccountToken sources under the volume's `defaultMode`, with the sources' errors
//! aggregated as upstream. Like secret volumes they live on a tmpfs. Tokens are requested by
//! [`super::token_manager`].
//!
//! Not supported (fails the mount with a message saying so): `clusterTrustBundle` sources.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, ProjectedVolumeSource, Secret};

use super::atomic_writer::{FileProjection, Payload};
use super::downward_api::{self, Allocatable};
use super::{config_map, secret};

/// The objects a projected volume's sources name, already fetched: `Ok(None)` when absent.
pub struct Fetched {
    /// One entry per configMap source, in order.
    pub config_maps: Vec<Result<Option<Arc<ConfigMap>>, String>>,
    /// One entry per secret source, in order.
    pub secrets: Vec<Result<Option<Arc<Secret>>, String>>,
    /// One entry per serviceAccountToken source, in order: the token.
    pub tokens: Vec<Result<String, String>>,
}

/// The files of a projected volume.
pub fn payload(
    source: &ProjectedVolumeSource,
    pod: &Pod,
    fetched: &Fetched,
    node: &Allocatable,
) -> Result<Payload, String> {
    let mut out = Payload::new();
    let mut errors = Vec::new();
    let (mut cm_index, mut secret_index, mut token_index) = (0, 0, 0);
    for s in source.sources.iter().flatten() {
        let part = if let Some(cm) = &s.config_map {
            let optional = cm.optional.unwrap_or(false);
            let fetched = fetched.config_maps.get(cm_index).cloned().unwrap_or(Ok(None));
            cm_index += 1;
            match fetched {
                Ok(None) if !optional => Err(format!("configmap {:?} not found", cm.name)),
                Ok(obj) => config_map::payload(cm.items.as_deref(), obj.as_deref(), source.default_mode, optional),
                Err(e) => Err(e),
            }
        } else if let Some(sec) = &s.secret {
            let optional = sec.optional.unwrap_or(false);
            let fetched = fetched.secrets.get(secret_index).cloned().unwrap_or(Ok(None));
            secret_index += 1;
            match fetched {
                Ok(None) if !optional => Err(format!("secret {:?} not found", sec.name)),
                Ok(obj) => secret::payload(sec.items.as_deref(), obj.as_deref(), source.default_mode, optional),
                Err(e) => Err(e),
            }
        } else if let Some(d) = &s.downward_api {
            downward_api::payload(d.items.as_deref().unwrap_or_default(), pod, source.default_mode, node)
        } else if let Some(t) = &s.service_account_token {
            let fetched = fetched.tokens.get(token_index).cloned().unwrap_or_else(|| Err("no token".into()));
            token_index += 1;
            fetched.map(|token| {
                let mode = source.default_mode.unwrap_or(0o644) as u32;
                Payload::from([(t.path.clone(), FileProjection { data: token.into_bytes(), mode })])
            })
        } else if s.cluster_trust_bundle.is_some() {
            Err("clusterTrustBundle projections are not supported by skiff's agent".into())
        } else {
            Ok(Payload::new())
        };
        match part {
            Ok(files) => out.extend(files),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(downward_api::aggregate(errors)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::{
        ConfigMapProjection, DownwardAPIProjection, DownwardAPIVolumeFile, ObjectFieldSelector, SecretProjection,
        ServiceAccountTokenProjection, VolumeProjection,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn source(sources: Vec<VolumeProjection>) -> ProjectedVolumeSource {
        ProjectedVolumeSource { default_mode: Some(0o440), sources: Some(sources) }
    }

    fn cm_source(name: &str, optional: bool) -> VolumeProjection {
        VolumeProjection {
            config_map: Some(ConfigMapProjection { name: name.into(), optional: Some(optional), items: None }),
            ..Default::default()
        }
    }

    #[test]
    fn combines_sources_under_the_default_mode() {
        let cm = ConfigMap { data: Some([("a".to_string(), "1".to_string())].into()), ..Default::default() };
        let sec = Secret { data: Some([("s".to_string(), ByteString(b"x".to_vec()))].into()), ..Default::default() };
        let src = source(vec![
            cm_source("c", false),
            VolumeProjection {
                secret: Some(SecretProjection { name: "s".into(), optional: None, items: None }),
                ..Default::default()
            },
            VolumeProjection {
                downward_api: Some(DownwardAPIProjection {
                    items: Some(vec![DownwardAPIVolumeFile {
                        path: "name".into(),
                        field_ref: Some(ObjectFieldSelector {
                            field_path: "metadata.name".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }]),
                }),
                ..Default::default()
            },
        ]);
        let pod = Pod { metadata: ObjectMeta { name: Some("p".into()), ..Default::default() }, ..Default::default() };
        let fetched = Fetched {
            config_maps: vec![Ok(Some(Arc::new(cm)))],
            secrets: vec![Ok(Some(Arc::new(sec)))],
            tokens: vec![],
        };
        let p = payload(&src, &pod, &fetched, &Allocatable::default()).expect("payload");
        assert_eq!(p.keys().collect::<Vec<_>>(), ["a", "name", "s"]);
        assert!(p.values().all(|f| f.mode == 0o440));
        assert_eq!(p["name"].data, b"p");
    }

    #[test]
    fn missing_sources_and_tokens_fail_together() {
        let src = source(vec![
            cm_source("gone", false),
            cm_source("maybe", true),
            VolumeProjection {
                service_account_token: Some(ServiceAccountTokenProjection {
                    path: "token".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ]);
        let fetched = Fetched {
            config_maps: vec![Ok(None), Ok(None)],
            secrets: vec![],
            tokens: vec![Err("failed to fetch token: boom".into())],
        };
        let err = payload(&src, &Pod::default(), &fetched, &Allocatable::default()).expect_err("errors");
        assert_eq!(err, "[configmap \"gone\" not found, failed to fetch token: boom]");
        let fetched = Fetched { config_maps: vec![], secrets: vec![], tokens: vec![Ok("jwt".into())] };
        let only_token = source(vec![src.sources.as_ref().expect("sources")[2].clone()]);
        let p = payload(&only_token, &Pod::default(), &fetched, &Allocatable::default()).expect("token");
        assert_eq!(p["token"].data, b"jwt");
        assert_eq!(p["token"].mode, 0o440);
    }
}
