//! Service address allocation: ClusterIPs from the service CIDR and NodePorts from their range,
//! reserved as keys in the store so no address is handed out twice, across restarts too.
//!
//! A reservation is created before the Service is written and rolled back if the write fails;
//! addresses are released after a Service stops using them. What is absent: a repair loop for
//! reservations leaked by a crash between the two writes (they stay reserved, never doubled).

use std::net::Ipv4Addr;
use std::sync::Arc;

use bytes::Bytes;
use rand::Rng;
use serde_json::{Value, json};
use skiff_api::StatusError;
use skiff_api::status::GroupKind;
use skiff_api::validation::FieldError;
use skiff_store::{RangeRequest, Store, StoreError, StoreExt};

const IP_PREFIX: &str = "/registry/ranges/serviceips/";
const PORT_PREFIX: &str = "/registry/ranges/servicenodeports/";

/// An IPv4 CIDR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Cidr {
    /// Network address.
    pub addr: Ipv4Addr,
    /// Prefix length.
    pub prefix: u8,
}

impl Ipv4Cidr {
    /// Parses `a.b.c.d/n`.
    pub fn parse(s: &str) -> Option<Self> {
        let (a, p) = s.split_once('/')?;
        let addr: Ipv4Addr = a.parse().ok()?;
        let prefix: u8 = p.parse().ok().filter(|p| *p <= 32)?;
        let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
        Some(Self { addr: Ipv4Addr::from(u32::from(addr) & mask), prefix })
    }

    /// Number of addresses.
    pub fn size(&self) -> u64 {
        1u64 << (32 - self.prefix)
    }

    /// The `n`-th address.
    pub fn nth(&self, n: u64) -> Option<Ipv4Addr> {
        (n < self.size()).then(|| Ipv4Addr::from(u32::from(self.addr).wrapping_add(n as u32)))
    }

    /// Whether `ip` is inside.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - self.prefix) };
        u32::from(ip) & mask == u32::from(self.addr)
    }
}

impl std::fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Hands out ClusterIPs and NodePorts.
pub struct Allocator {
    store: Arc<dyn Store>,
    cidr: Ipv4Cidr,
    ports: (u16, u16),
}

/// Reservations made for one write; roll back if the write fails.
#[derive(Debug, Default)]
pub struct Reservations {
    keys: Vec<String>,
}

impl Reservations {
    /// Releases everything reserved.
    pub async fn rollback(self, alloc: &Allocator) {
        alloc.release_keys(&self.keys).await;
    }
}

fn invalid(name: &str, field: &str, value: Value, detail: String) -> StatusError {
    StatusError::invalid(&GroupKind::new("", "Service"), name, &[FieldError::invalid(field, value, detail)])
}

fn store_err(e: StoreError) -> StatusError {
    StatusError::internal(e)
}

fn is_headless_or_external(spec: &Value) -> bool {
    spec.get("type").and_then(Value::as_str) == Some("ExternalName")
        || spec.get("clusterIP").and_then(Value::as_str) == Some("None")
}

fn wants_node_ports(spec: &Value) -> bool {
    matches!(spec.get("type").and_then(Value::as_str), Some("NodePort" | "LoadBalancer"))
}

fn cluster_ip(obj: &Value) -> Option<Ipv4Addr> {
    obj.get("spec")?.get("clusterIP")?.as_str()?.parse().ok()
}

fn node_ports(obj: &Value) -> Vec<u16> {
    obj.get("spec")
        .and_then(|s| s.get("ports"))
        .and_then(Value::as_array)
        .map(|ports| ports.iter().filter_map(|p| p.get("nodePort")?.as_u64()).map(|p| p as u16).collect())
        .unwrap_or_default()
}

impl Allocator {
    /// An allocator over `cidr` and the NodePort range `ports` (inclusive).
    pub fn new(store: Arc<dyn Store>, cidr: Ipv4Cidr, ports: (u16, u16)) -> Self {
        Self { store, cidr, ports }
    }

    /// The service CIDR.
    pub fn cidr(&self) -> Ipv4Cidr {
        self.cidr
    }

    /// The first address of the service CIDR (the `kubernetes` Service).
    pub fn first_ip(&self) -> Ipv4Addr {
        self.cidr.nth(1).unwrap_or(self.cidr.addr)
    }

    async fn release_keys(&self, keys: &[String]) {
        for key in keys {
            match self.store.delete(key, None).await {
                Ok(_) | Err(StoreError::NotFound { .. }) => {}
                Err(e) => tracing::warn!(%key, error = %e, "failed to release a service address"),
            }
        }
    }

    async fn reserve(
        &self,
        key: String,
        owner: &str,
        dry_run: bool,
        out: &mut Reservations,
    ) -> Result<bool, StatusError> {
        if dry_run {
            return Ok(self.store.get(&key).await.map_err(store_err)?.is_none());
        }
        match self.store.create(&key, Bytes::from(owner.to_string())).await {
            Ok(_) => {
                out.keys.push(key);
                Ok(true)
            }
            Err(StoreError::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(store_err(e)),
        }
    }

    async fn allocate_ip(&self, owner: &str, dry_run: bool, out: &mut Reservations) -> Result<Ipv4Addr, StatusError> {
        let size = self.cidr.size();
        if size < 4 {
            return Err(StatusError::internal("the service CIDR is too small"));
        }
        // Dynamic allocations prefer the upper band; the lower band stays free for static IPs.
        let low = (size / 16).clamp(16.min(size - 2), 256).max(1);
        for _ in 0..32 {
            let n = rand::rng().random_range(low..size - 1);
            if let Some(ip) = self.cidr.nth(n)
                && self.reserve(format!("{IP_PREFIX}{ip}"), owner, dry_run, out).await?
            {
                return Ok(ip);
            }
        }
        let taken = self.taken(IP_PREFIX).await?;
        for n in 1..size - 1 {
            if let Some(ip) = self.cidr.nth(n) {
                let key = format!("{IP_PREFIX}{ip}");
                if !taken.contains(&key) && self.reserve(key, owner, dry_run, out).await? {
                    return Ok(ip);
                }
            }
        }
        Err(StatusError::internal("failed to allocate a service IP: the range is full"))
    }

    async fn allocate_port(&self, owner: &str, dry_run: bool, out: &mut Reservations) -> Result<u16, StatusError> {
        for _ in 0..32 {
            let p = rand::rng().random_range(self.ports.0..=self.ports.1);
            if self.reserve(format!("{PORT_PREFIX}{p}"), owner, dry_run, out).await? {
                return Ok(p);
            }
        }
        let taken = self.taken(PORT_PREFIX).await?;
        for p in self.ports.0..=self.ports.1 {
            let key = format!("{PORT_PREFIX}{p}");
            if !taken.contains(&key) && self.reserve(key, owner, dry_run, out).await? {
                return Ok(p);
            }
        }
        Err(StatusError::internal("failed to allocate a node port: the range is full"))
    }

    async fn taken(&self, prefix: &str) -> Result<std::collections::HashSet<String>, StatusError> {
        let resp =
            self.store.range(RangeRequest { prefix: prefix.into(), ..Default::default() }).await.map_err(store_err)?;
        Ok(resp.kvs.into_iter().map(|kv| kv.key).collect())
    }

    /// Assigns addresses to a Service being created (or gaining them on update), reserving each.
    pub async fn assign(
        &self,
        obj: &mut Value,
        old: Option<&Value>,
        owner: &str,
        dry_run: bool,
    ) -> Result<Reservations, StatusError> {
        let mut out = Reservations::default();
        match self.assign_inner(obj, old, owner, dry_run, &mut out).await {
            Ok(()) => Ok(out),
            Err(e) => {
                out.rollback(self).await;
                Err(e)
            }
        }
    }

    async fn assign_inner(
        &self,
        obj: &mut Value,
        old: Option<&Value>,
        owner: &str,
        dry_run: bool,
        out: &mut Reservations,
    ) -> Result<(), StatusError> {
        let name = obj.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or("").to_string();
        let old_ip = old.and_then(cluster_ip);
        let old_ports = old.map(node_ports).unwrap_or_default();
        let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else { return Ok(()) };
        let spec_value = Value::Object(spec.clone());
        if !is_headless_or_external(&spec_value) {
            let requested = spec.get("clusterIP").and_then(Value::as_str).unwrap_or("").to_string();
            let ip = if requested.is_empty() {
                self.allocate_ip(owner, dry_run, out).await?
            } else {
                let ip: Ipv4Addr = requested.parse().map_err(|_| {
                    invalid(&name, "spec.clusterIPs[0]", json!(requested), "must be a valid IP address".into())
                })?;
                if Some(ip) != old_ip {
                    if !self.cidr.contains(ip) || ip == self.cidr.addr {
                        return Err(invalid(
                            &name,
                            "spec.clusterIPs",
                            json!([requested]),
                            format!(
                                "failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is {}",
                                self.cidr
                            ),
                        ));
                    }
                    if !self.reserve(format!("{IP_PREFIX}{ip}"), owner, dry_run, out).await? {
                        return Err(invalid(
                            &name,
                            "spec.clusterIPs",
                            json!([requested]),
                            format!("failed to allocate IP {ip}: provided IP is already allocated"),
                        ));
                    }
                }
                ip
            };
            spec.insert("clusterIP".into(), json!(ip.to_string()));
            spec.insert("clusterIPs".into(), json!([ip.to_string()]));
        } else if spec.get("clusterIP").and_then(Value::as_str) == Some("None") {
            spec.insert("clusterIPs".into(), json!(["None"]));
        }
        if wants_node_ports(&spec_value) {
            if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                for (i, port) in ports.iter_mut().enumerate() {
                    let requested = port.get("nodePort").and_then(Value::as_u64).filter(|p| *p > 0);
                    let assigned = match requested {
                        None => self.allocate_port(owner, dry_run, out).await?,
                        Some(p) => {
                            let p16 = u16::try_from(p).unwrap_or(0);
                            if !old_ports.contains(&p16) {
                                if p16 < self.ports.0 || p16 > self.ports.1 {
                                    return Err(invalid(
                                        &name,
                                        &format!("spec.ports[{i}].nodePort"),
                                        json!(p),
                                        format!(
                                            "provided port is not in the valid range. The range of valid ports is {}-{}",
                                            self.ports.0, self.ports.1
                                        ),
                                    ));
                                }
                                if !self.reserve(format!("{PORT_PREFIX}{p16}"), owner, dry_run, out).await? {
                                    return Err(invalid(
                                        &name,
                                        &format!("spec.ports[{i}].nodePort"),
                                        json!(p),
                                        "provided port is already allocated".into(),
                                    ));
                                }
                            }
                            p16
                        }
                    };
                    if let Some(m) = port.as_object_mut() {
                        m.insert("nodePort".into(), json!(assigned));
                    }
                }
            }
        } else if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
            for port in ports.iter_mut().filter_map(Value::as_object_mut) {
                port.remove("nodePort");
            }
        }
        Ok(())
    }

    /// Keeps the stored ClusterIP and NodePorts when an update omits them (as upstream does).
    pub fn carry_over(new: &mut Value, old: &Value) {
        let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) else { return };
        let old_spec = old.get("spec");
        let new_type = spec.get("type").and_then(Value::as_str).unwrap_or("ClusterIP").to_string();
        let old_type = old_spec.and_then(|s| s.get("type")).and_then(Value::as_str).unwrap_or("ClusterIP");
        if new_type != "ExternalName" && old_type != "ExternalName" {
            for field in ["clusterIP", "clusterIPs"] {
                if spec.get(field).is_none_or(|v| v.as_str() == Some("") || v.as_array().is_some_and(Vec::is_empty))
                    && let Some(v) = old_spec.and_then(|s| s.get(field))
                {
                    spec.insert(field.into(), v.clone());
                }
            }
        }
        let old_ports: Vec<(u64, String, u64)> = old_spec
            .and_then(|s| s.get("ports"))
            .and_then(Value::as_array)
            .map(|ps| {
                ps.iter()
                    .filter_map(|p| {
                        Some((
                            p.get("port")?.as_u64()?,
                            p.get("protocol").and_then(Value::as_str).unwrap_or("TCP").to_string(),
                            p.get("nodePort")?.as_u64()?,
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
            for port in ports.iter_mut().filter_map(Value::as_object_mut) {
                if port.get("nodePort").and_then(Value::as_u64).unwrap_or(0) == 0 {
                    let num = port.get("port").and_then(Value::as_u64);
                    let proto = port.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                    if let Some((_, _, np)) = old_ports.iter().find(|(p, pr, _)| Some(*p) == num && pr == proto) {
                        port.insert("nodePort".into(), json!(np));
                    }
                }
            }
        }
    }

    /// Releases addresses `old` held that `new` (if any) no longer uses.
    pub async fn release_unused(&self, old: &Value, new: Option<&Value>) {
        let mut keys = Vec::new();
        if let Some(ip) = cluster_ip(old)
            && new.and_then(cluster_ip) != Some(ip)
        {
            keys.push(format!("{IP_PREFIX}{ip}"));
        }
        let kept = new.map(node_ports).unwrap_or_default();
        for p in node_ports(old) {
            if !kept.contains(&p) {
                keys.push(format!("{PORT_PREFIX}{p}"));
            }
        }
        self.release_keys(&keys).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_math() {
        let c = Ipv4Cidr::parse("10.43.7.9/16").expect("cidr");
        assert_eq!(c.addr, Ipv4Addr::new(10, 43, 0, 0));
        assert_eq!(c.size(), 65536);
        assert_eq!(c.nth(1), Some(Ipv4Addr::new(10, 43, 0, 1)));
        assert!(c.contains(Ipv4Addr::new(10, 43, 255, 255)));
        assert!(!c.contains(Ipv4Addr::new(10, 44, 0, 0)));
        assert!(Ipv4Cidr::parse("10.0.0.0/33").is_none());
    }

    #[tokio::test]
    async fn never_hands_out_an_address_twice() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> =
            Arc::new(skiff_store::RedbStore::open(skiff_store::RedbConfig::new(dir.path().join("db"))).expect("open"));
        let alloc = Allocator::new(store, Ipv4Cidr::parse("10.0.0.0/28").expect("cidr"), (30000, 30003));
        let mut ips = std::collections::HashSet::new();
        for i in 0..14 {
            let mut svc =
                json!({"metadata": {"name": format!("s{i}")}, "spec": {"type": "ClusterIP", "ports": [{"port": 80}]}});
            alloc.assign(&mut svc, None, "o", false).await.expect("allocated");
            assert!(ips.insert(cluster_ip(&svc).expect("ip")), "duplicate");
        }
        let mut svc = json!({"metadata": {"name": "full"}, "spec": {"ports": [{"port": 80}]}});
        assert!(alloc.assign(&mut svc, None, "o", false).await.is_err());
        let mut a = json!({"metadata": {"name": "a"}, "spec": {"type": "NodePort", "clusterIP": "None", "ports": [{"port": 80, "nodePort": 30001}]}});
        alloc.assign(&mut a, None, "o", false).await.expect("static port");
        let mut b = json!({"metadata": {"name": "b"}, "spec": {"type": "NodePort", "clusterIP": "None", "ports": [{"port": 80, "nodePort": 30001}]}});
        let err = alloc.assign(&mut b, None, "o", false).await.expect_err("taken");
        assert_eq!(err.code, 422);
        alloc.release_unused(&a, None).await;
        alloc.assign(&mut b, None, "o", false).await.expect("released port is free again");
    }
}
