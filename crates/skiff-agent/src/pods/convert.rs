//! From a Pod's container to a runtime [`ContainerConfig`], following the kubelet's rules:
//! command/args over the image's Entrypoint/Cmd, environment from the image then the container
//! (`value`, `valueFrom` already resolved by the caller) with `$(VAR)` expansion, working
//! directory, user and group from the image and `securityContext` (with the `runAsNonRoot`
//! check), capabilities and privilege, `readOnlyRootFilesystem`, `allowPrivilegeEscalation`,
//! `procMount`, the pod's sysctls, and cgroup limits from requests and limits.
//!
//! Pure functions only: fetching ConfigMaps and Secrets, mounts and namespaces are the worker's.

use k8s_openapi::api::core::v1::{Container, Pod};
use skiff_api::quantity::Quantity;
use skiff_runtime::images::ContainerDefaults;
use skiff_runtime::spec::{ContainerConfig, DEFAULT_CAPABILITIES, ProcessUser, Resources};

/// Why a container cannot be configured (the kubelet's `CreateContainerConfigError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Expands `$(NAME)` references from `vars` (earlier definitions win as upstream: the caller
/// passes what is defined so far); `$$` escapes a `$`; unknown references stay as written.
pub fn expand(input: &str, vars: &[(String, String)]) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('(')
            && let Some(end) = body.find(')')
        {
            let name = &body[..end];
            match vars.iter().rev().find(|(k, _)| k == name) {
                Some((_, value)) => out.push_str(value),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The argument vector: `command` replaces the Entrypoint (and drops Cmd), `args` replaces Cmd.
pub fn argv(
    container: &Container,
    image: &ContainerDefaults,
    env: &[(String, String)],
) -> Result<Vec<String>, ConfigError> {
    let expand_all = |v: &Vec<String>| v.iter().map(|s| expand(s, env)).collect::<Vec<_>>();
    let args = match (&container.command, &container.args) {
        (Some(cmd), args) if !cmd.is_empty() => {
            let mut v = expand_all(cmd);
            v.extend(args.as_ref().map(expand_all).unwrap_or_default());
            v
        }
        (_, Some(args)) if !args.is_empty() => {
            let mut v = image.entrypoint.clone().unwrap_or_default();
            v.extend(expand_all(args));
            v
        }
        _ => {
            let mut v = image.entrypoint.clone().unwrap_or_default();
            v.extend(image.cmd.clone().unwrap_or_default());
            v
        }
    };
    if args.is_empty() {
        return Err(ConfigError("no command specified".into()));
    }
    Ok(args)
}

/// Parses an image `User` (`uid`, `uid:gid`); names need the image's `/etc/passwd`, which
/// `lookup` resolves (None when unknown).
pub fn image_user(
    user: Option<&str>,
    lookup: &dyn Fn(&str) -> Option<(u32, u32)>,
) -> Result<(u32, Option<u32>), ConfigError> {
    let Some(user) = user.filter(|u| !u.is_empty()) else { return Ok((0, None)) };
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let (uid, passwd_gid) = match u.parse::<u32>() {
        Ok(uid) => (uid, None),
        Err(_) => {
            let (uid, gid) = lookup(u)
                .ok_or_else(|| ConfigError(format!("unable to find user {u}: no matching entries in passwd file")))?;
            (uid, Some(gid))
        }
    };
    let gid = match g {
        Some(g) => Some(
            g.parse::<u32>()
                .map_err(|_| ConfigError(format!("unable to find group {g}: only numeric groups are supported")))?,
        ),
        None => passwd_gid,
    };
    Ok((uid, gid))
}

fn quantity(q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity) -> Option<Quantity> {
    Quantity::parse(&q.0).ok()
}

/// cgroup limits from the container's requests and limits (upstream's conversions: shares =
/// milliCPU × 1024 / 1000 with a minimum of 2, quota over a 100 ms period, memory in bytes).
pub fn resources(container: &Container) -> Resources {
    let res = container.resources.as_ref();
    let get = |which: Option<
        &std::collections::BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    >,
               name: &str| { which.and_then(|m| m.get(name)).and_then(quantity) };
    let requests = res.and_then(|r| r.requests.as_ref());
    let limits = res.and_then(|r| r.limits.as_ref());
    let cpu_request = get(requests, "cpu").or_else(|| get(limits, "cpu"));
    let cpu_limit = get(limits, "cpu");
    const PERIOD: u64 = 100_000;
    Resources {
        cpu_shares: Some(cpu_request.map_or(2, |q| ((q.milli_value().max(0) as u64) * 1024 / 1000).max(2))),
        cpu_quota: cpu_limit.map(|q| (q.milli_value() * PERIOD as i64 / 1000).max(1000)),
        cpu_period: cpu_limit.map(|_| PERIOD),
        memory_limit: get(limits, "memory").map(|q| q.value()),
        pids_limit: None,
    }
}

/// The runtime config of `container` of `pod`: argv, environment, working dir, identity,
/// privileges and limits. `env` is the container's resolved environment (image env first).
pub fn container_config(
    container: &Container,
    image: &ContainerDefaults,
    env: Vec<(String, String)>,
    pod: &Pod,
    lookup_user: &dyn Fn(&str) -> Option<(u32, u32)>,
) -> Result<ContainerConfig, ConfigError> {
    let pod_security = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let args = argv(container, image, &env)?;
    let mut config = ContainerConfig::new(args);
    config.env = env.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    config.cwd = container
        .working_dir
        .clone()
        .filter(|d| !d.is_empty())
        .or_else(|| image.working_dir.clone().filter(|d| !d.is_empty()))
        .unwrap_or_else(|| "/".into());
    let sc = container.security_context.as_ref();
    let effective = super::security::effective(pod, container);
    // The kubelet checks runAsNonRoot against the image's user as written (a name cannot be
    // checked); the runtime resolves names afterwards.
    let written = image.user.as_deref().filter(|u| !u.is_empty()).map(|u| u.split(':').next().unwrap_or(u));
    let written_uid = written.map_or(Some(0), |u| u.parse::<u32>().ok());
    super::security::verify_run_as_non_root(pod, container, written_uid, written).map_err(ConfigError)?;
    let (run_as_user, run_as_group) = (effective.run_as_user, effective.run_as_group);
    let (image_uid, image_gid) = match run_as_user {
        // runAsUser replaces the image's user and group (the group becomes the user's primary
        // group from the image's passwd, which is not read: 0).
        Some(_) => (0, None),
        None => image_user(image.user.as_deref(), lookup_user)?,
    };
    let uid = run_as_user.map_or(image_uid, |u| u as u32);
    let gid = run_as_group.map_or(image_gid.unwrap_or(0), |g| g as u32);
    let mut groups: Vec<u32> = pod_security
        .and_then(|p| p.supplemental_groups.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|g| g as u32)
        .collect();
    if let Some(fs_group) = pod_security.and_then(|p| p.fs_group) {
        groups.push(fs_group as u32);
    }
    config.user = ProcessUser { uid, gid, additional_gids: groups };
    config.privileged = sc.and_then(|s| s.privileged).unwrap_or(false);
    config.readonly_rootfs = sc.and_then(|s| s.read_only_root_filesystem).unwrap_or(false);
    config.no_new_privileges = sc.and_then(|s| s.allow_privilege_escalation) == Some(false);
    // Attachable standard input and a terminal (`kubectl run -it`, `kubectl attach`).
    config.terminal = container.tty.unwrap_or(false);
    config.stdin = container.stdin.unwrap_or(false);
    config.stdin_once = config.stdin && container.stdin_once.unwrap_or(false);
    config.unmasked_proc = super::security::unmasked_proc(container);
    config.sysctls = super::security::sysctls(pod);
    let mut caps: Vec<String> = DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect();
    if let Some(c) = sc.and_then(|s| s.capabilities.as_ref()) {
        let norm = |c: &String| {
            let upper = c.to_ascii_uppercase();
            if upper.starts_with("CAP_") { upper } else { format!("CAP_{upper}") }
        };
        let drops: Vec<String> = c.drop.iter().flatten().map(norm).collect();
        if drops.iter().any(|d| d == "CAP_ALL") {
            caps.clear();
        } else {
            caps.retain(|cap| !drops.contains(cap));
        }
        for add in c.add.iter().flatten().map(norm) {
            if add == "CAP_ALL" {
                caps = skiff_runtime::spec::all_current_capabilities().iter().map(|c| c.to_string()).collect();
            } else if !caps.contains(&add) {
                caps.push(add);
            }
        }
    }
    config.capabilities = caps;
    config.resources = resources(container);
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Capabilities, PodSecurityContext, PodSpec, ResourceRequirements, SecurityContext, Sysctl,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity as Q;

    fn pod_with(security: PodSecurityContext) -> Pod {
        let mut pod = Pod {
            spec: Some(PodSpec { security_context: Some(security), ..Default::default() }),
            ..Default::default()
        };
        pod.metadata.name = Some("p".into());
        pod.metadata.namespace = Some("ns".into());
        pod.metadata.uid = Some("u".into());
        pod
    }

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn expands_like_the_kubelet() {
        let env = vars(&[("A", "x"), ("B", "y")]);
        assert_eq!(expand("$(A)-$(B)", &env), "x-y");
        assert_eq!(expand("$$(A)", &env), "$(A)");
        assert_eq!(expand("$(C)", &env), "$(C)");
        assert_eq!(expand("cost $5", &env), "cost $5");
        assert_eq!(expand("$(A", &env), "$(A");
        assert_eq!(expand("$", &env), "$");
    }

    fn image(entry: &[&str], cmd: &[&str]) -> ContainerDefaults {
        ContainerDefaults {
            entrypoint: Some(entry.iter().map(|s| s.to_string()).collect()),
            cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn command_and_args_override_the_image() {
        let img = image(&["/entry"], &["default"]);
        let env = vars(&[("WHO", "world")]);
        let mut c = Container::default();
        assert_eq!(argv(&c, &img, &env).expect("argv"), ["/entry", "default"]);
        c.args = Some(vec!["hello $(WHO)".into()]);
        assert_eq!(argv(&c, &img, &env).expect("argv"), ["/entry", "hello world"]);
        c.command = Some(vec!["sh".into(), "-c".into()]);
        assert_eq!(argv(&c, &img, &env).expect("argv"), ["sh", "-c", "hello world"]);
        c.args = None;
        assert_eq!(argv(&c, &img, &env).expect("argv"), ["sh", "-c"]);
        assert!(argv(&Container::default(), &ContainerDefaults::default(), &env).is_err());
    }

    #[test]
    fn users_and_non_root_policy() {
        let lookup = |name: &str| (name == "app").then_some((1000, 1001));
        assert_eq!(image_user(None, &lookup).expect("user"), (0, None));
        assert_eq!(image_user(Some("7:8"), &lookup).expect("user"), (7, Some(8)));
        assert_eq!(image_user(Some("app"), &lookup).expect("user"), (1000, Some(1001)));
        assert!(image_user(Some("ghost"), &lookup).is_err());

        let mut c = Container { command: Some(vec!["sh".into()]), ..Default::default() };
        c.security_context = Some(SecurityContext { run_as_non_root: Some(true), ..Default::default() });
        c.name = "main".into();
        let plain = pod_with(PodSecurityContext::default());
        let err =
            container_config(&c, &ContainerDefaults::default(), vec![], &plain, &lookup).expect_err("root refused");
        assert_eq!(err.0, "container has runAsNonRoot and image will run as root (pod: \"p_ns(u)\", container: main)");
        let pod = pod_with(PodSecurityContext {
            run_as_user: Some(1000),
            fs_group: Some(2000),
            supplemental_groups: Some(vec![3000]),
            ..Default::default()
        });
        let cfg = container_config(&c, &ContainerDefaults::default(), vec![], &pod, &lookup).expect("non-root");
        assert_eq!((cfg.user.uid, cfg.user.gid, cfg.user.additional_gids.clone()), (1000, 0, vec![3000, 2000]));

        // A named image user cannot be checked against runAsNonRoot, even if it resolves.
        let named = ContainerDefaults { user: Some("app".into()), ..Default::default() };
        let err = container_config(&c, &named, vec![], &plain, &lookup).expect_err("unverifiable");
        assert!(err.0.starts_with("container has runAsNonRoot and image has non-numeric user (app)"), "{}", err.0);
        let cfg = container_config(&c, &named, vec![], &pod, &|_| None).expect("runAsUser decides, no lookup");
        assert_eq!(cfg.user.uid, 1000);
        // Without the policy a named user resolves in the image.
        let free = Container { command: Some(vec!["sh".into()]), ..Default::default() };
        let cfg = container_config(&free, &named, vec![], &plain, &lookup).expect("resolved");
        assert_eq!((cfg.user.uid, cfg.user.gid), (1000, 1001));
        let numeric = ContainerDefaults { user: Some("7:8".into()), ..Default::default() };
        let cfg = container_config(&c, &numeric, vec![], &plain, &lookup).expect("numeric non-root");
        assert_eq!((cfg.user.uid, cfg.user.gid), (7, 8));
        let group_only = pod_with(PodSecurityContext { run_as_group: Some(50), ..Default::default() });
        let cfg = container_config(&free, &numeric, vec![], &group_only, &lookup).expect("runAsGroup");
        assert_eq!((cfg.user.uid, cfg.user.gid), (7, 50));
    }

    #[test]
    fn capabilities_and_limits() {
        let mut c = Container { command: Some(vec!["sh".into()]), ..Default::default() };
        c.security_context = Some(SecurityContext {
            capabilities: Some(Capabilities { add: Some(vec!["NET_ADMIN".into()]), drop: Some(vec!["ALL".into()]) }),
            allow_privilege_escalation: Some(false),
            ..Default::default()
        });
        c.resources = Some(ResourceRequirements {
            requests: Some([("cpu".to_string(), Q("250m".into()))].into()),
            limits: Some([("cpu".to_string(), Q("500m".into())), ("memory".to_string(), Q("64Mi".into()))].into()),
            ..Default::default()
        });
        let cfg =
            container_config(&c, &ContainerDefaults::default(), vec![], &Pod::default(), &|_| None).expect("config");
        assert_eq!(cfg.capabilities, ["CAP_NET_ADMIN"]);
        assert!(cfg.no_new_privileges);
        assert_eq!(cfg.resources.cpu_shares, Some(256));
        assert_eq!((cfg.resources.cpu_quota, cfg.resources.cpu_period), (Some(50_000), Some(100_000)));
        assert_eq!(cfg.resources.memory_limit, Some(64 << 20));
        let best_effort = resources(&Container::default());
        assert_eq!((best_effort.cpu_shares, best_effort.memory_limit), (Some(2), None));
    }

    #[test]
    fn hardening_fields() {
        let base = Container { command: Some(vec!["sh".into()]), ..Default::default() };
        let pod = pod_with(PodSecurityContext {
            sysctls: Some(vec![Sysctl { name: "net/ipv4/ip_unprivileged_port_start".into(), value: "0".into() }]),
            ..Default::default()
        });
        let cfg = container_config(&base, &ContainerDefaults::default(), vec![], &pod, &|_| None).expect("defaults");
        assert!(!cfg.readonly_rootfs && !cfg.no_new_privileges && !cfg.unmasked_proc && !cfg.privileged);
        assert_eq!(cfg.sysctls.get("net.ipv4.ip_unprivileged_port_start").map(String::as_str), Some("0"));
        assert_eq!(cfg.capabilities.len(), DEFAULT_CAPABILITIES.len());

        let hardened = Container {
            security_context: Some(SecurityContext {
                read_only_root_filesystem: Some(true),
                allow_privilege_escalation: Some(false),
                proc_mount: Some("Unmasked".into()),
                capabilities: Some(Capabilities { drop: Some(vec!["NET_RAW".into(), "cap_chown".into()]), add: None }),
                ..Default::default()
            }),
            ..base.clone()
        };
        let cfg =
            container_config(&hardened, &ContainerDefaults::default(), vec![], &pod, &|_| None).expect("hardened");
        assert!(cfg.readonly_rootfs && cfg.no_new_privileges && cfg.unmasked_proc);
        assert!(!cfg.capabilities.iter().any(|c| c == "CAP_NET_RAW" || c == "CAP_CHOWN"));
        // allowPrivilegeEscalation true (or unset) leaves no_new_privs off.
        let allowed = Container {
            security_context: Some(SecurityContext { allow_privilege_escalation: Some(true), ..Default::default() }),
            ..base.clone()
        };
        assert!(
            !container_config(&allowed, &ContainerDefaults::default(), vec![], &pod, &|_| None)
                .expect("cfg")
                .no_new_privileges
        );
        let privileged = Container {
            security_context: Some(SecurityContext { privileged: Some(true), ..Default::default() }),
            ..base
        };
        assert!(
            container_config(&privileged, &ContainerDefaults::default(), vec![], &pod, &|_| None)
                .expect("cfg")
                .privileged
        );
    }
}
