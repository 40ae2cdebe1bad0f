//! A pod's `/etc/resolv.conf` per `dnsPolicy` and `dnsConfig`, as the kubelet writes it:
//! `ClusterFirst` points at the cluster DNS with the `<ns>.svc.<domain> svc.<domain> <domain>`
//! search list and `ndots:5`, `Default` copies the node's resolver configuration, `None` uses
//! only `dnsConfig`, and `dnsConfig` is merged into the others. Without a cluster DNS address
//! `ClusterFirst` falls back to `Default`, as the kubelet does without `--cluster-dns`
//! ([`missing_cluster_dns`] tells when, for the `MissingClusterDNS` events).
//!
//! What does not live here: the cluster DNS server (`skiff-dns`).

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Pod;

/// Upstream's limits on the merged configuration.
const MAX_NAMESERVERS: usize = 3;
const MAX_SEARCHES: usize = 32;

/// The node's resolver configuration, parsed from its `/etc/resolv.conf`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostResolv {
    /// `nameserver` lines.
    pub nameservers: Vec<String>,
    /// `search` (or `domain`) entries.
    pub searches: Vec<String>,
    /// `options` entries.
    pub options: Vec<String>,
}

impl HostResolv {
    /// Parses resolv.conf text (comments and unknown lines ignored).
    pub fn parse(text: &str) -> Self {
        let mut out = Self::default();
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => out.nameservers.extend(words.next().map(str::to_string)),
                Some("search" | "domain") => out.searches = words.map(str::to_string).collect(),
                Some("options") => out.options.extend(words.map(str::to_string)),
                _ => {}
            }
        }
        out
    }
}

/// Where the cluster DNS is, if there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDns {
    /// The cluster DNS Service address.
    pub server: Option<IpAddr>,
    /// The cluster domain (`cluster.local`).
    pub domain: String,
}

/// The kubelet's message when a pod wants the cluster DNS and there is none; the pod's
/// `MissingClusterDNS` event prefixes it with `pod: "<name>_<namespace>(<uid>)". `.
pub const MISSING_CLUSTER_DNS: &str = "kubelet does not have ClusterDNS IP configured and cannot create Pod using \
     \"ClusterFirst\" policy. Falling back to \"Default\" policy.";

/// Whether `pod`'s policy asks for the cluster DNS: `ClusterFirstWithHostNet`, or
/// `ClusterFirst` (the default) off the host network.
fn wants_cluster_dns(pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    match spec.and_then(|s| s.dns_policy.as_deref()).unwrap_or("ClusterFirst") {
        "ClusterFirstWithHostNet" => true,
        "ClusterFirst" => !host_network,
        _ => false,
    }
}

/// Whether `pod` wants the cluster DNS but there is none, so that it falls back to the node's
/// resolvers (the kubelet's `MissingClusterDNS`).
pub fn missing_cluster_dns(pod: &Pod, cluster: &ClusterDns) -> bool {
    cluster.server.is_none() && wants_cluster_dns(pod)
}

/// The `resolv.conf` of `pod`.
pub fn resolv_conf(pod: &Pod, host: &HostResolv, cluster: &ClusterDns) -> String {
    let spec = pod.spec.as_ref();
    let policy = spec.and_then(|s| s.dns_policy.as_deref()).unwrap_or("ClusterFirst");
    let (mut nameservers, mut searches, mut options) = match (policy, wants_cluster_dns(pod), cluster.server) {
        ("None", _, _) => (Vec::new(), Vec::new(), Vec::new()),
        (_, true, Some(server)) => {
            let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
            let d = &cluster.domain;
            let mut searches = vec![format!("{ns}.svc.{d}"), format!("svc.{d}"), d.clone()];
            searches.extend(host.searches.iter().filter(|s| !searches.contains(s)).cloned().collect::<Vec<_>>());
            (vec![server.to_string()], searches, vec!["ndots:5".to_string()])
        }
        _ => (host.nameservers.clone(), host.searches.clone(), host.options.clone()),
    };
    if let Some(config) = spec.and_then(|s| s.dns_config.as_ref()) {
        for server in config.nameservers.iter().flatten() {
            if !nameservers.contains(server) {
                nameservers.push(server.clone());
            }
        }
        for search in config.searches.iter().flatten() {
            if !searches.contains(search) {
                searches.push(search.clone());
            }
        }
        for option in config.options.iter().flatten() {
            let rendered = match &option.value {
                Some(v) => format!("{}:{v}", option.name.as_deref().unwrap_or("")),
                None => option.name.clone().unwrap_or_default(),
            };
            let key = |o: &String| o.split(':').next().unwrap_or("").to_string();
            options.retain(|o| key(o) != key(&rendered));
            options.push(rendered);
        }
    }
    nameservers.truncate(MAX_NAMESERVERS);
    searches.truncate(MAX_SEARCHES);
    let mut out = String::new();
    if !searches.is_empty() {
        out.push_str(&format!("search {}\n", searches.join(" ")));
    }
    for server in &nameservers {
        out.push_str(&format!("nameserver {server}\n"));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "web"}, "spec": spec})).expect("pod")
    }

    fn host() -> HostResolv {
        HostResolv::parse(
            "# generated\nnameserver 192.168.1.1\nnameserver 8.8.8.8\nsearch corp.example\noptions edns0\n",
        )
    }

    fn cluster(server: Option<&str>) -> ClusterDns {
        ClusterDns { server: server.map(|s| s.parse().expect("ip")), domain: "cluster.local".into() }
    }

    #[test]
    fn cluster_first_uses_the_cluster_dns() {
        let text = resolv_conf(&pod(json!({"containers": []})), &host(), &cluster(Some("10.43.0.10")));
        assert_eq!(
            text,
            "search web.svc.cluster.local svc.cluster.local cluster.local corp.example\nnameserver 10.43.0.10\noptions ndots:5\n"
        );
    }

    #[test]
    fn default_and_host_network_copy_the_node() {
        let expected = "search corp.example\nnameserver 192.168.1.1\nnameserver 8.8.8.8\noptions edns0\n";
        let dns = cluster(Some("10.43.0.10"));
        assert_eq!(resolv_conf(&pod(json!({"containers": [], "dnsPolicy": "Default"})), &host(), &dns), expected);
        assert_eq!(resolv_conf(&pod(json!({"containers": [], "hostNetwork": true})), &host(), &dns), expected);
        let with_host_net = pod(json!({"containers": [], "hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet"}));
        assert!(resolv_conf(&with_host_net, &host(), &dns).contains("nameserver 10.43.0.10\n"));
        // No cluster DNS: ClusterFirst falls back to the node's configuration.
        assert_eq!(resolv_conf(&pod(json!({"containers": []})), &host(), &cluster(None)), expected);
    }

    #[test]
    fn only_pods_wanting_the_cluster_dns_miss_it() {
        let (none, some) = (cluster(None), cluster(Some("10.43.0.10")));
        let plain = pod(json!({"containers": []}));
        assert!(missing_cluster_dns(&plain, &none));
        assert!(!missing_cluster_dns(&plain, &some));
        let host_net = pod(json!({"containers": [], "hostNetwork": true}));
        assert!(!missing_cluster_dns(&host_net, &none), "ClusterFirst on the host network is Default");
        let with_host_net = pod(json!({"containers": [], "hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet"}));
        assert!(missing_cluster_dns(&with_host_net, &none));
        for policy in ["Default", "None"] {
            assert!(!missing_cluster_dns(&pod(json!({"containers": [], "dnsPolicy": policy})), &none), "{policy}");
        }
        assert!(MISSING_CLUSTER_DNS.contains("using \"ClusterFirst\" policy. Falling back to \"Default\" policy."));
    }

    #[test]
    fn none_takes_only_dns_config_and_options_merge() {
        let p = pod(json!({"containers": [], "dnsPolicy": "None", "dnsConfig": {
            "nameservers": ["1.1.1.1"], "searches": ["a.example"],
            "options": [{"name": "ndots", "value": "2"}, {"name": "rotate"}]}}));
        assert_eq!(
            resolv_conf(&p, &host(), &cluster(Some("10.43.0.10"))),
            "search a.example\nnameserver 1.1.1.1\noptions ndots:2 rotate\n"
        );
        let p = pod(json!({"containers": [], "dnsConfig": {"options": [{"name": "ndots", "value": "1"}]}}));
        assert!(resolv_conf(&p, &host(), &cluster(Some("10.43.0.10"))).ends_with("options ndots:1\n"));
    }
}
