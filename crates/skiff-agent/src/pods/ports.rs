//! The node ports a pod asks for: `ports[].hostPort` of its containers (init containers
//! included, as the kubelet passes them all to the network plugin), with `hostIP` and `protocol`.
//!
//! What does not live here: programming them (`skiff_net::hostport`, through the pod network).

use k8s_openapi::api::core::v1::Pod;
use skiff_net::hostport::{HostPort, Protocol};

/// The pod's hostPort mappings. Host-network pods have none (their ports are the node's), nor
/// do ports without `hostPort`; an IPv6 `hostIP` is skipped (the pod network is IPv4 only).
pub fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let Some(spec) = pod.spec.as_ref() else { return Vec::new() };
    if spec.host_network == Some(true) {
        return Vec::new();
    }
    let containers = spec.init_containers.iter().flatten().chain(&spec.containers);
    let mut out = Vec::new();
    for port in containers.flat_map(|c| c.ports.iter().flatten()) {
        let Some(host_port) = port.host_port.and_then(|p| u16::try_from(p).ok()).filter(|p| *p > 0) else { continue };
        let Ok(container_port) = u16::try_from(port.container_port) else { continue };
        let Some(protocol) = Protocol::parse(port.protocol.as_deref().unwrap_or("TCP")) else { continue };
        let host_ip = match port.host_ip.as_deref().filter(|ip| !ip.is_empty()) {
            None => None,
            Some(ip) => match ip.parse::<std::net::Ipv4Addr>() {
                Ok(ip) if ip.is_unspecified() => None,
                Ok(ip) => Some(ip),
                Err(_) => {
                    tracing::warn!(pod = ?pod.metadata.name, host_ip = ip, "hostIP is not an IPv4 address; port not mapped");
                    continue;
                }
            },
        };
        out.push(HostPort { protocol, host_ip, host_port, container_port });
    }
    out
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Container, ContainerPort, PodSpec};

    use super::*;

    fn port(
        container_port: i32,
        host_port: Option<i32>,
        protocol: Option<&str>,
        host_ip: Option<&str>,
    ) -> ContainerPort {
        ContainerPort {
            container_port,
            host_port,
            protocol: protocol.map(String::from),
            host_ip: host_ip.map(String::from),
            ..Default::default()
        }
    }

    #[test]
    fn host_ports_of_every_container() {
        let mut pod = Pod {
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "web".into(),
                    ports: Some(vec![
                        port(80, Some(8080), None, None),
                        port(53, Some(5353), Some("UDP"), Some("10.0.0.7")),
                        port(9090, None, None, None),
                        port(443, Some(8443), Some("TCP"), Some("0.0.0.0")),
                        port(1, Some(1), None, Some("::1")),
                    ]),
                    ..Default::default()
                }],
                init_containers: Some(vec![Container {
                    name: "i".into(),
                    ports: Some(vec![port(7, Some(7007), Some("SCTP"), None)]),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let tcp =
            |host_port, container_port| HostPort { protocol: Protocol::Tcp, host_ip: None, host_port, container_port };
        assert_eq!(
            host_ports(&pod),
            [
                HostPort { protocol: Protocol::Sctp, host_ip: None, host_port: 7007, container_port: 7 },
                tcp(8080, 80),
                HostPort {
                    protocol: Protocol::Udp,
                    host_ip: Some("10.0.0.7".parse().expect("ip")),
                    host_port: 5353,
                    container_port: 53
                },
                tcp(8443, 443),
            ]
        );
        pod.spec.as_mut().expect("spec").host_network = Some(true);
        assert!(host_ports(&pod).is_empty());
    }
}
