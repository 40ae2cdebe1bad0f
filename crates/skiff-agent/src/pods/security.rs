//! A container's security settings as the kubelet derives them from the pod and container
//! `securityContext`: the effective context (container fields over the pod's), the `runAsNonRoot`
//! check, the seccomp profile (container over pod, `Unconfined` when neither sets one, the
//! deprecated annotations ignored) and its filter, `procMount`, and the pod's sysctls with the
//! kubelet's admission check (the safe, namespaced allowlist).
//!
//! What does not live here: capabilities, privilege and identities in the runtime config
//! ([`super::convert`]), and how the runtime applies them (`skiff-runtime`).

use std::collections::BTreeMap;
use std::path::{Component, Path};

use k8s_openapi::api::core::v1::{Container, Pod, SeccompProfile, SecurityContext};
use serde_json::Value;
use skiff_runtime::seccomp;

use super::status::Waiting;

/// The kubelet's admission reason for a pod asking for a sysctl it does not allow.
pub const SYSCTL_FORBIDDEN: &str = "SysctlForbidden";

/// Sysctls every pod may set (the kubelet's safe set): namespaced, and without effect on other
/// pods.
pub const SAFE_SYSCTLS: [&str; 12] = [
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
];

/// `name_namespace(uid)`, how the kubelet names a pod in messages.
pub fn pod_ref(pod: &Pod) -> String {
    let m = &pod.metadata;
    format!(
        "{}_{}({})",
        m.name.as_deref().unwrap_or(""),
        m.namespace.as_deref().unwrap_or(""),
        m.uid.as_deref().unwrap_or("")
    )
}

/// The container's security context with the pod's values for the fields it leaves unset
/// (`runAsUser`, `runAsGroup`, `runAsNonRoot`, `seLinuxOptions`, `windowsOptions`,
/// `seccompProfile`, `appArmorProfile`), as upstream's `DetermineEffectiveSecurityContext`.
pub fn effective(pod: &Pod, container: &Container) -> SecurityContext {
    let mut sc = container.security_context.clone().unwrap_or_default();
    if let Some(p) = pod.spec.as_ref().and_then(|s| s.security_context.as_ref()) {
        sc.run_as_user = sc.run_as_user.or(p.run_as_user);
        sc.run_as_group = sc.run_as_group.or(p.run_as_group);
        sc.run_as_non_root = sc.run_as_non_root.or(p.run_as_non_root);
        sc.se_linux_options = sc.se_linux_options.take().or_else(|| p.se_linux_options.clone());
        sc.windows_options = sc.windows_options.take().or_else(|| p.windows_options.clone());
        sc.seccomp_profile = sc.seccomp_profile.take().or_else(|| p.seccomp_profile.clone());
        sc.app_armor_profile = sc.app_armor_profile.take().or_else(|| p.app_armor_profile.clone());
    }
    sc
}

/// The kubelet's `runAsNonRoot` check: `run_as_user` is the effective `runAsUser`, `image_uid`
/// the image's numeric user and `image_user` its user name when it is not numeric.
pub fn verify_run_as_non_root(
    pod: &Pod,
    container: &Container,
    image_uid: Option<u32>,
    image_user: Option<&str>,
) -> Result<(), String> {
    let sc = effective(pod, container);
    if sc.run_as_non_root != Some(true) {
        return Ok(());
    }
    let (pod, name) = (pod_ref(pod), &container.name);
    if let Some(uid) = sc.run_as_user {
        if uid == 0 {
            return Err(format!("container's runAsUser breaks non-root policy (pod: {pod:?}, container: {name})"));
        }
        return Ok(());
    }
    match (image_uid, image_user) {
        (None, Some(user)) if !user.is_empty() => Err(format!(
            "container has runAsNonRoot and image has non-numeric user ({user}), cannot verify user is non-root (pod: {pod:?}, container: {name})"
        )),
        (Some(0), _) => {
            Err(format!("container has runAsNonRoot and image will run as root (pod: {pod:?}, container: {name})"))
        }
        (Some(uid), _) if uid > i32::MAX as u32 => Err(format!(
            "container has runAsNonRoot and image has an invalid user id ({uid}). (Must be 1-({})): must be between 0 and {}, inclusive (pod: {pod:?}, container: {name})",
            i32::MAX,
            i32::MAX
        )),
        _ => Ok(()),
    }
}

/// Which seccomp profile a container runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeccompChoice {
    /// No filter.
    Unconfined,
    /// The runtime's default profile.
    RuntimeDefault,
    /// A profile file, relative to the node's seccomp directory.
    Localhost(String),
}

fn field_profile(profile: &SeccompProfile) -> Result<SeccompChoice, String> {
    match profile.type_.as_str() {
        "RuntimeDefault" => Ok(SeccompChoice::RuntimeDefault),
        "Localhost" => match profile.localhost_profile.as_deref().filter(|p| !p.is_empty()) {
            Some(path) => Ok(SeccompChoice::Localhost(path.to_string())),
            None => Err("localhostProfile must be set if seccompProfile type is Localhost.".into()),
        },
        _ => Ok(SeccompChoice::Unconfined),
    }
}

/// The container's seccomp profile: its own `seccompProfile`, else the pod's, else `Unconfined`
/// (the kubelet's default without `--seccomp-default`). The annotations that once chose profiles
/// are ignored, as by the kubelet since 1.27.
pub fn seccomp_choice(pod: &Pod, container: &Container) -> Result<SeccompChoice, String> {
    let own = container.security_context.as_ref().and_then(|s| s.seccomp_profile.as_ref());
    let pod_level =
        pod.spec.as_ref().and_then(|s| s.security_context.as_ref()).and_then(|s| s.seccomp_profile.as_ref());
    match own.or(pod_level) {
        Some(profile) => field_profile(profile),
        None => Ok(SeccompChoice::Unconfined),
    }
}

/// The seccomp filter (OCI `linux.seccomp`) of a container whose bounding set is `caps`, or none
/// for an unconfined or privileged one (privileged containers are not filtered, as with
/// containerd). `Localhost` profiles are read from `seccomp_dir`; an unreadable one is a
/// `CreateContainerError` (the error containerd reports), a missing `localhostProfile` a
/// `CreateContainerConfigError` (the kubelet's).
pub fn seccomp_filter(
    pod: &Pod,
    container: &Container,
    privileged: bool,
    caps: &[String],
    seccomp_dir: &Path,
) -> Result<Option<Value>, Waiting> {
    let config_error = |message: String| Waiting { reason: "CreateContainerConfigError".into(), message };
    let choice = seccomp_choice(pod, container).map_err(config_error)?;
    if privileged {
        return Ok(None);
    }
    let profile = match choice {
        SeccompChoice::Unconfined => return Ok(None),
        SeccompChoice::RuntimeDefault => seccomp::runtime_default(),
        SeccompChoice::Localhost(relative) => {
            let descends = Path::new(&relative).components().all(|c| matches!(c, Component::Normal(_)));
            if !descends {
                return Err(config_error(format!(
                    "localhostProfile {relative:?} must be a relative path below the node's seccomp directory"
                )));
            }
            let path = seccomp_dir.join(&relative);
            let create_error = |detail: String| Waiting {
                reason: "CreateContainerError".into(),
                message: format!(
                    "failed to generate seccomp spec opts: cannot load seccomp profile {:?}: {detail}",
                    path.display().to_string()
                ),
            };
            let bytes = std::fs::read(&path).map_err(|e| {
                let cause = match e.kind() {
                    std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
                    _ => e.to_string(),
                };
                create_error(format!("open {}: {cause}", path.display()))
            })?;
            seccomp::Profile::parse(&bytes).map_err(|e| create_error(e.to_string()))?
        }
    };
    Ok(Some(seccomp::render(&profile, caps, &seccomp::Host::current())))
}

/// Whether `/proc` is mounted without masked paths (`procMount: Unmasked`).
pub fn unmasked_proc(container: &Container) -> bool {
    container.security_context.as_ref().and_then(|s| s.proc_mount.as_deref()) == Some("Unmasked")
}

/// A sysctl name with `/` separators written with dots, as the kubelet compares them.
fn dotted(name: &str) -> String {
    // `a/b.c/d` (first separator a slash) means the key `a.b/c.d`: dots and slashes swap.
    if name.find(['.', '/']).is_some_and(|i| name.as_bytes()[i] == b'/') {
        name.chars()
            .map(|c| {
                if c == '/' {
                    '.'
                } else if c == '.' {
                    '/'
                } else {
                    c
                }
            })
            .collect()
    } else {
        name.to_string()
    }
}

/// The namespace a sysctl belongs to (`ipc`, `net`), if it is known to be namespaced.
fn sysctl_namespace(name: &str) -> Option<&'static str> {
    const IPC: [&str; 7] = [
        "kernel.sem",
        "kernel.shm_rmid_forced",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.msgmax",
        "kernel.msgmnb",
    ];
    if IPC.contains(&name) || name == "kernel.msgmni" || name.starts_with("fs.mqueue.") {
        Some("ipc")
    } else if name.starts_with("net.") {
        Some("net")
    } else {
        None
    }
}

/// The kubelet's sysctl admission: every sysctl of the pod must be in the safe set, and not
/// in a namespace the pod shares with the host. The message of the refusal.
pub fn admit_sysctls(pod: &Pod) -> Result<(), String> {
    let Some(spec) = pod.spec.as_ref() else { return Ok(()) };
    let sysctls = spec.security_context.as_ref().and_then(|s| s.sysctls.as_ref());
    for sysctl in sysctls.into_iter().flatten() {
        let name = dotted(&sysctl.name);
        if !SAFE_SYSCTLS.contains(&name.as_str()) {
            return Err(format!("forbidden sysctl: {name:?} not allowlisted"));
        }
        let host = match sysctl_namespace(&name) {
            Some("ipc") => spec.host_ipc == Some(true),
            Some("net") => spec.host_network == Some(true),
            _ => false,
        };
        if host {
            let ns = sysctl_namespace(&name).unwrap_or_default();
            return Err(format!("forbidden sysctl: {name:?} not allowed with host {ns} enabled"));
        }
    }
    Ok(())
}

/// The pod's sysctls, keyed by their dotted names, for each of its containers.
pub fn sysctls(pod: &Pod) -> BTreeMap<String, String> {
    let sysctls = pod.spec.as_ref().and_then(|s| s.security_context.as_ref()).and_then(|s| s.sysctls.as_ref());
    sysctls.into_iter().flatten().map(|s| (dotted(&s.name), s.value.clone())).collect()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{PodSecurityContext, PodSpec, Sysctl};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use serde_json::json;

    use super::*;

    fn pod(security: PodSecurityContext) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("prod".into()),
                uid: Some("u-1".into()),
                ..Default::default()
            },
            spec: Some(PodSpec { security_context: Some(security), ..Default::default() }),
            ..Default::default()
        }
    }

    fn container(sc: SecurityContext) -> Container {
        Container { name: "main".into(), security_context: Some(sc), ..Default::default() }
    }

    fn profile(type_: &str, localhost: Option<&str>) -> Option<SeccompProfile> {
        Some(SeccompProfile { type_: type_.into(), localhost_profile: localhost.map(String::from) })
    }

    #[test]
    fn container_fields_win_over_the_pods() {
        let p = pod(PodSecurityContext {
            run_as_user: Some(1000),
            run_as_group: Some(2000),
            run_as_non_root: Some(true),
            seccomp_profile: profile("RuntimeDefault", None),
            ..Default::default()
        });
        let sc = effective(&p, &container(SecurityContext { run_as_user: Some(7), ..Default::default() }));
        assert_eq!((sc.run_as_user, sc.run_as_group, sc.run_as_non_root), (Some(7), Some(2000), Some(true)));
        assert_eq!(sc.seccomp_profile, profile("RuntimeDefault", None));
    }

    #[test]
    fn run_as_non_root_refusals_read_like_the_kubelets() {
        let p = pod(PodSecurityContext { run_as_non_root: Some(true), ..Default::default() });
        let c = container(SecurityContext::default());
        assert_eq!(
            verify_run_as_non_root(&p, &c, Some(0), None).expect_err("root"),
            "container has runAsNonRoot and image will run as root (pod: \"web_prod(u-1)\", container: main)"
        );
        assert_eq!(
            verify_run_as_non_root(&p, &c, None, Some("nginx")).expect_err("name"),
            "container has runAsNonRoot and image has non-numeric user (nginx), cannot verify user is non-root (pod: \"web_prod(u-1)\", container: main)"
        );
        verify_run_as_non_root(&p, &c, Some(1000), None).expect("numeric non-root");
        let as_root = container(SecurityContext { run_as_user: Some(0), ..Default::default() });
        assert_eq!(
            verify_run_as_non_root(&p, &as_root, Some(1000), None).expect_err("runAsUser 0"),
            "container's runAsUser breaks non-root policy (pod: \"web_prod(u-1)\", container: main)"
        );
        let named_but_set = container(SecurityContext { run_as_user: Some(5), ..Default::default() });
        verify_run_as_non_root(&p, &named_but_set, None, Some("nginx")).expect("runAsUser decides");
        let off = pod(PodSecurityContext::default());
        verify_run_as_non_root(&off, &c, Some(0), None).expect("no policy");
    }

    #[test]
    fn seccomp_profiles_are_chosen_container_first() {
        let runtime_default =
            pod(PodSecurityContext { seccomp_profile: profile("RuntimeDefault", None), ..Default::default() });
        let plain = container(SecurityContext::default());
        assert_eq!(seccomp_choice(&runtime_default, &plain), Ok(SeccompChoice::RuntimeDefault));
        let unconfined =
            container(SecurityContext { seccomp_profile: profile("Unconfined", None), ..Default::default() });
        assert_eq!(seccomp_choice(&runtime_default, &unconfined), Ok(SeccompChoice::Unconfined));
        let local = container(SecurityContext {
            seccomp_profile: profile("Localhost", Some("p/audit.json")),
            ..Default::default()
        });
        assert_eq!(seccomp_choice(&runtime_default, &local), Ok(SeccompChoice::Localhost("p/audit.json".into())));
        let missing = container(SecurityContext { seccomp_profile: profile("Localhost", None), ..Default::default() });
        assert!(seccomp_choice(&runtime_default, &missing).is_err());
        // Neither sets one: unconfined; the old annotations change nothing.
        let mut annotated = pod(PodSecurityContext::default());
        annotated.metadata.annotations =
            Some([("seccomp.security.alpha.kubernetes.io/pod".to_string(), "runtime/default".to_string())].into());
        assert_eq!(seccomp_choice(&annotated, &plain), Ok(SeccompChoice::Unconfined));
    }

    #[test]
    fn seccomp_filters_come_from_the_default_or_the_nodes_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let caps = vec!["CAP_CHOWN".to_string()];
        let p = pod(PodSecurityContext { seccomp_profile: profile("RuntimeDefault", None), ..Default::default() });
        let c = container(SecurityContext::default());
        let filter = seccomp_filter(&p, &c, false, &caps, dir.path()).expect("filter").expect("confined");
        assert_eq!(filter["defaultAction"], json!("SCMP_ACT_ERRNO"));
        assert_eq!(seccomp_filter(&p, &c, true, &caps, dir.path()).expect("privileged"), None);
        assert_eq!(
            seccomp_filter(&pod(PodSecurityContext::default()), &c, false, &caps, dir.path()).expect("none"),
            None
        );

        let local = |path: &str| {
            container(SecurityContext { seccomp_profile: profile("Localhost", Some(path)), ..Default::default() })
        };
        let err = seccomp_filter(&p, &local("profiles/absent.json"), false, &caps, dir.path()).expect_err("missing");
        let path = dir.path().join("profiles/absent.json").display().to_string();
        assert_eq!(err.reason, "CreateContainerError");
        assert_eq!(
            err.message,
            format!(
                "failed to generate seccomp spec opts: cannot load seccomp profile {path:?}: open {path}: no such file or directory"
            )
        );
        std::fs::create_dir_all(dir.path().join("profiles")).expect("mkdir");
        std::fs::write(dir.path().join("profiles/log.json"), r#"{"defaultAction": "SCMP_ACT_LOG"}"#).expect("write");
        let filter =
            seccomp_filter(&p, &local("profiles/log.json"), false, &caps, dir.path()).expect("read").expect("filter");
        assert_eq!(filter["defaultAction"], json!("SCMP_ACT_LOG"));
        std::fs::write(dir.path().join("profiles/bad.json"), "{").expect("write");
        assert_eq!(
            seccomp_filter(&p, &local("profiles/bad.json"), false, &caps, dir.path()).expect_err("bad").reason,
            "CreateContainerError"
        );
        let escape = seccomp_filter(&p, &local("../etc/passwd"), false, &caps, dir.path()).expect_err("escape");
        assert_eq!(escape.reason, "CreateContainerConfigError");
    }

    #[test]
    fn sysctls_are_admitted_like_the_kubelet_does() {
        let with = |names: &[&str], host_network: bool| {
            let mut p = pod(PodSecurityContext {
                sysctls: Some(names.iter().map(|n| Sysctl { name: n.to_string(), value: "1".into() }).collect()),
                ..Default::default()
            });
            p.spec.as_mut().expect("spec").host_network = Some(host_network);
            p
        };
        admit_sysctls(&with(&["kernel.shm_rmid_forced", "net.ipv4.ip_unprivileged_port_start"], false)).expect("safe");
        assert_eq!(
            admit_sysctls(&with(&["kernel.msgmax"], false)).expect_err("unsafe"),
            "forbidden sysctl: \"kernel.msgmax\" not allowlisted"
        );
        assert_eq!(
            admit_sysctls(&with(&["net.ipv4.tcp_syncookies"], true)).expect_err("host net"),
            "forbidden sysctl: \"net.ipv4.tcp_syncookies\" not allowed with host net enabled"
        );
        let slashed = with(&["net/ipv4/ip_local_port_range"], false);
        admit_sysctls(&slashed).expect("slashes are dots");
        assert_eq!(sysctls(&slashed), BTreeMap::from([("net.ipv4.ip_local_port_range".to_string(), "1".to_string())]));
        assert_eq!(dotted("net/ipv4/conf/eth0.100/forwarding"), "net.ipv4.conf.eth0/100.forwarding");
        assert_eq!(dotted("net.ipv4.conf.eth0/100.forwarding"), "net.ipv4.conf.eth0/100.forwarding");
    }

    #[test]
    fn proc_mount() {
        assert!(!unmasked_proc(&container(SecurityContext::default())));
        assert!(!unmasked_proc(&container(SecurityContext {
            proc_mount: Some("Default".into()),
            ..Default::default()
        })));
        assert!(unmasked_proc(&container(SecurityContext {
            proc_mount: Some("Unmasked".into()),
            ..Default::default()
        })));
    }
}
