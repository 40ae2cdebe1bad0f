//! The `--scheduler-config` file: the subset of upstream's `KubeSchedulerConfiguration`
//! (`kubescheduler.config.k8s.io/v1`) skiff honours — `percentageOfNodesToScore`,
//! `leaderElection` (`leaderElect`, durations, lease name and namespace) and `profiles` with
//! `schedulerName`, `percentageOfNodesToScore`, `plugins` (enabled/disabled sets of the
//! `multiPoint`, `preFilter`/`filter`, `score` and `postFilter` extension points, merged into
//! the defaults as upstream's `mergePluginSet` does, `*` disabling every default) and the
//! `pluginConfig` args of NodeResourcesFit, NodeResourcesBalancedAllocation, InterPodAffinity and
//! PodTopologySpread. Anything else in the file is refused by name.

use std::time::Duration;

use serde_json::Value;

use crate::SchedulerOptions;
use crate::framework::{DefaultSpreadConstraint, FitStrategy, PluginId, Profile};
use crate::leader::LeaderElection;

/// A configuration the scheduler cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Not YAML/JSON.
    #[error("cannot parse the scheduler configuration: {0}")]
    Parse(String),
    /// Wrong `apiVersion`/`kind`.
    #[error(
        "the scheduler configuration must be apiVersion kubescheduler.config.k8s.io/v1, kind KubeSchedulerConfiguration"
    )]
    Type,
    /// A field skiff does not know or a value it cannot use.
    #[error("scheduler configuration: {0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(msg.into())
}

fn check_keys(v: &Value, path: &str, allowed: &[&str]) -> Result<(), ConfigError> {
    let Some(map) = v.as_object() else { return Err(invalid(format!("{path} must be an object"))) };
    for k in map.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(invalid(format!("{path}.{k} is not supported")));
        }
    }
    Ok(())
}

fn percentage(v: Option<&Value>, path: &str) -> Result<Option<i32>, ConfigError> {
    let Some(v) = v else { return Ok(None) };
    let p = v.as_i64().ok_or_else(|| invalid(format!("{path} must be an integer")))?;
    if !(0..=100).contains(&p) {
        return Err(invalid(format!("{path}: Invalid value: {p}: not in valid range [0-100]")));
    }
    Ok(Some(p as i32))
}

fn duration(v: Option<&Value>, path: &str, default: Duration) -> Result<Duration, ConfigError> {
    let Some(v) = v else { return Ok(default) };
    let s = v.as_str().ok_or_else(|| invalid(format!("{path} must be a duration like \"15s\"")))?;
    let parse = |num: &str, unit: f64| num.parse::<f64>().ok().map(|n| Duration::from_secs_f64(n * unit));
    let d = if let Some(n) = s.strip_suffix("ms") {
        parse(n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        parse(n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        parse(n, 60.0)
    } else {
        None
    };
    d.ok_or_else(|| invalid(format!("{path}: cannot parse duration {s:?}")))
}

struct PluginEntry {
    name: String,
    weight: Option<i64>,
}

fn plugin_set(v: Option<&Value>, path: &str) -> Result<(Vec<PluginEntry>, Vec<String>), ConfigError> {
    let Some(v) = v else { return Ok((Vec::new(), Vec::new())) };
    check_keys(v, path, &["enabled", "disabled"])?;
    let list = |key: &str| -> Result<Vec<PluginEntry>, ConfigError> {
        let mut out = Vec::new();
        for (i, e) in v.get(key).and_then(Value::as_array).into_iter().flatten().enumerate() {
            let p = format!("{path}.{key}[{i}]");
            check_keys(e, &p, &["name", "weight"])?;
            let name = e.get("name").and_then(Value::as_str).ok_or_else(|| invalid(format!("{p}.name is required")))?;
            if name != "*" && PluginId::from_name(name).is_none() {
                return Err(invalid(format!("{p}.name: plugin {name:?} does not exist")));
            }
            let weight = match e.get("weight") {
                None => None,
                Some(w) => Some(
                    w.as_i64()
                        .filter(|w| *w >= 0)
                        .ok_or_else(|| invalid(format!("{p}.weight must be a non-negative integer")))?,
                ),
            };
            out.push(PluginEntry { name: name.to_string(), weight });
        }
        Ok(out)
    };
    let enabled = list("enabled")?;
    let disabled = list("disabled")?.into_iter().map(|e| e.name).collect();
    Ok((enabled, disabled))
}

/// Applies enabled/disabled entries to an ordered list (upstream `mergePluginSet`).
fn merge<T: Clone>(
    defaults: &[(PluginId, T)],
    enabled: &[PluginEntry],
    disabled: &[String],
    make: impl Fn(PluginId, Option<i64>, Option<&T>) -> T,
) -> Vec<(PluginId, T)> {
    let all_off = disabled.iter().any(|d| d == "*");
    let mut out = Vec::new();
    let mut used = vec![false; enabled.len()];
    if !all_off {
        for (p, t) in defaults {
            if disabled.iter().any(|d| d == p.name()) {
                continue;
            }
            match enabled.iter().position(|e| e.name == p.name()) {
                Some(i) => {
                    used[i] = true;
                    out.push((*p, make(*p, enabled[i].weight, Some(t))));
                }
                None => out.push((*p, t.clone())),
            }
        }
    }
    for (i, e) in enabled.iter().enumerate() {
        if used[i] || e.name == "*" {
            continue;
        }
        if let Some(p) = PluginId::from_name(&e.name)
            && !out.iter().any(|(q, _)| *q == p)
        {
            out.push((p, make(p, e.weight, None)));
        }
    }
    out
}

fn plugins(profile: &mut Profile, v: &Value, path: &str) -> Result<(), ConfigError> {
    check_keys(
        v,
        path,
        &[
            "multiPoint",
            "preEnqueue",
            "queueSort",
            "preFilter",
            "filter",
            "postFilter",
            "preScore",
            "score",
            "reserve",
            "permit",
            "preBind",
            "bind",
            "postBind",
        ],
    )?;
    let weight = |p: PluginId, w: Option<i64>, old: Option<&i64>| {
        w.filter(|w| *w > 0).or(old.copied()).or(p.default_weight()).unwrap_or(1)
    };
    let (mp_on, mp_off) = plugin_set(v.get("multiPoint"), &format!("{path}.multiPoint"))?;
    let filters: Vec<(PluginId, ())> = profile.filters.iter().map(|p| (*p, ())).collect();
    let mp_filters: Vec<PluginEntry> = mp_on
        .iter()
        .filter(|e| PluginId::from_name(&e.name).is_some_and(PluginId::filters))
        .map(|e| PluginEntry { name: e.name.clone(), weight: None })
        .collect();
    let merged = merge(&filters, &mp_filters, &mp_off, |_, _, _| ());
    let mp_scores: Vec<PluginEntry> = mp_on
        .iter()
        .filter(|e| PluginId::from_name(&e.name).is_some_and(|p| p.default_weight().is_some() || e.weight.is_some()))
        .map(|e| PluginEntry { name: e.name.clone(), weight: e.weight })
        .collect();
    profile.scores = merge(&profile.scores, &mp_scores, &mp_off, weight);
    if mp_off.iter().any(|d| d == "*" || d == "DefaultPreemption") {
        profile.preemption = false;
    }
    if mp_on.iter().any(|e| e.name == "DefaultPreemption") {
        profile.preemption = true;
    }
    let mut filters = merged;
    for point in ["preFilter", "filter"] {
        let (on, off) = plugin_set(v.get(point), &format!("{path}.{point}"))?;
        filters = merge(&filters, &on, &off, |_, _, _| ());
    }
    profile.filters = filters.into_iter().map(|(p, _)| p).filter(|p| p.filters()).collect();
    let (on, off) = plugin_set(v.get("score"), &format!("{path}.score"))?;
    profile.scores = merge(&profile.scores, &on, &off, weight);
    let (on, off) = plugin_set(v.get("postFilter"), &format!("{path}.postFilter"))?;
    if off.iter().any(|d| d == "*" || d == "DefaultPreemption") {
        profile.preemption = false;
    }
    if on.iter().any(|e| e.name == "DefaultPreemption") {
        profile.preemption = true;
    }
    Ok(())
}

fn resources(v: &Value, path: &str) -> Result<Vec<(String, i64)>, ConfigError> {
    let list = v.as_array().ok_or_else(|| invalid(format!("{path} must be a list")))?;
    list.iter()
        .enumerate()
        .map(|(i, r)| {
            let name = r
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(format!("{path}[{i}].name is required")))?;
            let w = r.get("weight").and_then(Value::as_i64).unwrap_or(1);
            if !(1..=100).contains(&w) {
                return Err(invalid(format!(
                    "{path}[{i}].weight: Invalid value: {w}: resource weight of {name} not in valid range [1, 100]"
                )));
            }
            Ok((name.to_string(), w))
        })
        .collect()
}

fn plugin_config(profile: &mut Profile, v: &Value, path: &str) -> Result<(), ConfigError> {
    check_keys(v, path, &["name", "args"])?;
    let name = v.get("name").and_then(Value::as_str).unwrap_or("");
    let args = v.get("args").cloned().unwrap_or(Value::Null);
    let apath = format!("{path}.args");
    match name {
        "NodeResourcesFit" => {
            check_keys(
                &args,
                &apath,
                &["apiVersion", "kind", "ignoredResources", "ignoredResourceGroups", "scoringStrategy"],
            )?;
            let mut ignored: Vec<String> = Vec::new();
            for key in ["ignoredResources", "ignoredResourceGroups"] {
                ignored.extend(
                    args.get(key)
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(str::to_string),
                );
            }
            profile.ignored_resources = ignored;
            if let Some(s) = args.get("scoringStrategy") {
                check_keys(s, &format!("{apath}.scoringStrategy"), &["type", "resources"])?;
                profile.fit_strategy = match s.get("type").and_then(Value::as_str).unwrap_or("LeastAllocated") {
                    "LeastAllocated" => FitStrategy::LeastAllocated,
                    "MostAllocated" => FitStrategy::MostAllocated,
                    other => {
                        return Err(invalid(format!("{apath}.scoringStrategy.type: Unsupported value: {other:?}")));
                    }
                };
                if let Some(r) = s.get("resources") {
                    profile.fit_resources = resources(r, &format!("{apath}.scoringStrategy.resources"))?;
                }
            }
        }
        "NodeResourcesBalancedAllocation" => {
            check_keys(&args, &apath, &["apiVersion", "kind", "resources"])?;
            if let Some(r) = args.get("resources") {
                profile.balanced_resources = resources(r, &format!("{apath}.resources"))?;
            }
        }
        "InterPodAffinity" => {
            check_keys(
                &args,
                &apath,
                &["apiVersion", "kind", "hardPodAffinityWeight", "ignorePreferredTermsOfExistingPods"],
            )?;
            if let Some(w) = args.get("hardPodAffinityWeight") {
                let w = w.as_i64().filter(|w| (0..=100).contains(w)).ok_or_else(|| {
                    invalid(format!("{apath}.hardPodAffinityWeight: Invalid value: {w}: not in valid range [0, 100]"))
                })?;
                profile.hard_pod_affinity_weight = w;
            }
        }
        "PodTopologySpread" => {
            check_keys(&args, &apath, &["apiVersion", "kind", "defaultingType", "defaultConstraints"])?;
            match args.get("defaultingType").and_then(Value::as_str).unwrap_or("System") {
                "System" => profile.default_spread = None,
                "List" => {
                    let mut list = Vec::new();
                    for (i, c) in
                        args.get("defaultConstraints").and_then(Value::as_array).into_iter().flatten().enumerate()
                    {
                        let cp = format!("{apath}.defaultConstraints[{i}]");
                        check_keys(c, &cp, &["maxSkew", "topologyKey", "whenUnsatisfiable"])?;
                        if c.get("labelSelector").is_some() {
                            return Err(invalid(format!(
                                "{cp}.labelSelector: Forbidden: constraint must not define a selector, as they deduced for each pod"
                            )));
                        }
                        list.push(DefaultSpreadConstraint {
                            max_skew: c
                                .get("maxSkew")
                                .and_then(Value::as_i64)
                                .filter(|m| *m > 0)
                                .ok_or_else(|| invalid(format!("{cp}.maxSkew must be greater than zero")))?
                                as i32,
                            topology_key: c
                                .get("topologyKey")
                                .and_then(Value::as_str)
                                .filter(|k| !k.is_empty())
                                .ok_or_else(|| invalid(format!("{cp}.topologyKey is required")))?
                                .to_string(),
                            do_not_schedule: c.get("whenUnsatisfiable").and_then(Value::as_str)
                                == Some("DoNotSchedule"),
                        });
                    }
                    profile.default_spread = Some(list);
                }
                other => return Err(invalid(format!("{apath}.defaultingType: Unsupported value: {other:?}"))),
            }
        }
        "DefaultPreemption" | "NodeAffinity" | "VolumeBinding" => {}
        other => return Err(invalid(format!("{path}.name: no arguments are supported for plugin {other:?}"))),
    }
    Ok(())
}

/// Parses a configuration file's text into scheduler options (identity not set).
pub fn parse(text: &str) -> Result<(SchedulerOptions, LeaderElection), ConfigError> {
    let v: Value = serde_saphyr::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
    if v.get("apiVersion").and_then(Value::as_str) != Some("kubescheduler.config.k8s.io/v1")
        || v.get("kind").and_then(Value::as_str) != Some("KubeSchedulerConfiguration")
    {
        return Err(ConfigError::Type);
    }
    check_keys(
        &v,
        "",
        &[
            "apiVersion",
            "kind",
            "percentageOfNodesToScore",
            "profiles",
            "leaderElection",
            "parallelism",
            "podInitialBackoffSeconds",
            "podMaxBackoffSeconds",
        ],
    )?;
    let mut opts = SchedulerOptions {
        percentage_of_nodes_to_score: percentage(v.get("percentageOfNodesToScore"), "percentageOfNodesToScore")?
            .unwrap_or(0),
        ..Default::default()
    };
    let mut leader = LeaderElection::default();
    if let Some(le) = v.get("leaderElection") {
        check_keys(
            le,
            "leaderElection",
            &[
                "leaderElect",
                "leaseDuration",
                "renewDeadline",
                "retryPeriod",
                "resourceLock",
                "resourceName",
                "resourceNamespace",
            ],
        )?;
        leader.enabled = le.get("leaderElect").and_then(Value::as_bool).unwrap_or(true);
        leader.lease_duration =
            duration(le.get("leaseDuration"), "leaderElection.leaseDuration", leader.lease_duration)?;
        leader.renew_deadline =
            duration(le.get("renewDeadline"), "leaderElection.renewDeadline", leader.renew_deadline)?;
        leader.retry_period = duration(le.get("retryPeriod"), "leaderElection.retryPeriod", leader.retry_period)?;
        if let Some(lock) = le.get("resourceLock").and_then(Value::as_str).filter(|l| *l != "leases") {
            return Err(invalid(format!(
                "leaderElection.resourceLock: Unsupported value: {lock:?}: supported values: \"leases\""
            )));
        }
        if let Some(n) = le.get("resourceName").and_then(Value::as_str) {
            leader.name = n.to_string();
        }
        if let Some(n) = le.get("resourceNamespace").and_then(Value::as_str) {
            leader.namespace = n.to_string();
        }
        if leader.renew_deadline >= leader.lease_duration {
            return Err(invalid("leaderElection.leaseDuration must be greater than renewDeadline"));
        }
    }
    if let Some(list) = v.get("profiles").and_then(Value::as_array) {
        let mut profiles = Vec::new();
        for (i, p) in list.iter().enumerate() {
            let path = format!("profiles[{i}]");
            check_keys(p, &path, &["schedulerName", "percentageOfNodesToScore", "plugins", "pluginConfig"])?;
            let name = p.get("schedulerName").and_then(Value::as_str).unwrap_or("default-scheduler");
            if profiles.iter().any(|q: &Profile| q.scheduler_name == name) {
                return Err(invalid(format!("{path}.schedulerName: Duplicate value: {name:?}")));
            }
            let mut profile = Profile::default_named(name);
            profile.percentage_of_nodes_to_score =
                percentage(p.get("percentageOfNodesToScore"), &format!("{path}.percentageOfNodesToScore"))?;
            if let Some(pl) = p.get("plugins") {
                plugins(&mut profile, pl, &format!("{path}.plugins"))?;
            }
            for (j, c) in p.get("pluginConfig").and_then(Value::as_array).into_iter().flatten().enumerate() {
                plugin_config(&mut profile, c, &format!("{path}.pluginConfig[{j}]"))?;
            }
            profiles.push(profile);
        }
        if !profiles.is_empty() {
            opts.profiles = profiles;
        }
    }
    Ok((opts, leader))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_without_profiles() {
        let (o, l) =
            parse("apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n").expect("parses");
        assert_eq!(o.profiles, vec![Profile::default_named("default-scheduler")]);
        assert_eq!(
            (l.enabled, l.lease_duration.as_secs(), l.renew_deadline.as_secs(), l.retry_period.as_secs()),
            (true, 15, 10, 2)
        );
    }

    #[test]
    fn profiles_merge_plugins_weights_and_args() {
        let text = r#"
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
percentageOfNodesToScore: 40
leaderElection: {leaderElect: false}
profiles:
- schedulerName: default-scheduler
- schedulerName: bin-packer
  percentageOfNodesToScore: 100
  plugins:
    score:
      disabled: [{name: NodeResourcesBalancedAllocation}, {name: ImageLocality}]
      enabled: [{name: NodeResourcesFit, weight: 5}]
    filter:
      disabled: [{name: NodePorts}]
    postFilter:
      disabled: [{name: DefaultPreemption}]
  pluginConfig:
  - name: NodeResourcesFit
    args:
      scoringStrategy: {type: MostAllocated, resources: [{name: cpu, weight: 2}, {name: memory, weight: 1}]}
  - name: PodTopologySpread
    args:
      defaultingType: List
      defaultConstraints: [{maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: DoNotSchedule}]
"#;
        let (o, l) = parse(text).expect("parses");
        assert!(!l.enabled);
        assert_eq!(o.percentage_of_nodes_to_score, 40);
        assert_eq!(o.profiles.len(), 2);
        let p = &o.profiles[1];
        assert_eq!(p.scheduler_name, "bin-packer");
        assert_eq!(p.percentage_of_nodes_to_score, Some(100));
        assert!(!p.has_filter(PluginId::NodePorts) && p.has_filter(PluginId::NodeResourcesFit));
        assert_eq!(p.weight(PluginId::NodeResourcesFit), Some(5));
        assert_eq!(p.weight(PluginId::ImageLocality), None);
        assert_eq!(p.weight(PluginId::TaintToleration), Some(3));
        assert!(!p.preemption);
        assert_eq!(p.fit_strategy, FitStrategy::MostAllocated);
        assert_eq!(p.fit_resources, vec![("cpu".to_string(), 2), ("memory".to_string(), 1)]);
        assert_eq!(p.default_spread.as_ref().map(Vec::len), Some(1));
    }

    #[test]
    fn multipoint_star_disables_defaults() {
        let text = "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nprofiles:\n- plugins:\n    multiPoint:\n      disabled: [{name: '*'}]\n      enabled: [{name: NodeResourcesFit, weight: 3}, {name: NodeAffinity}]\n";
        let (o, _) = parse(text).expect("parses");
        let p = &o.profiles[0];
        assert_eq!(p.filters, vec![PluginId::NodeResourcesFit, PluginId::NodeAffinity]);
        assert_eq!(p.scores, vec![(PluginId::NodeResourcesFit, 3), (PluginId::NodeAffinity, 2)]);
        assert!(!p.preemption);
    }

    #[test]
    fn unknown_fields_and_plugins_are_refused() {
        let base = "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n";
        assert_eq!(parse("kind: Other\n").expect_err("refused"), ConfigError::Type);
        assert!(
            parse(&format!("{base}extenders: []\n"))
                .expect_err("refused")
                .to_string()
                .contains(".extenders is not supported")
        );
        let bad = format!("{base}profiles:\n- plugins:\n    score:\n      enabled: [{{name: Nope}}]\n");
        assert!(parse(&bad).expect_err("refused").to_string().contains("plugin \"Nope\" does not exist"));
        assert!(parse(&format!("{base}percentageOfNodesToScore: 101\n")).is_err());
    }
}
