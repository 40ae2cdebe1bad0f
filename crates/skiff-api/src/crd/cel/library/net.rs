//! The Kubernetes IP and CIDR libraries: `ip(s)`, `isIP(s)`, `ip.isCanonical(s)`, `string(ip)`,
//! and on IPs `family()`, `isUnspecified()`, `isLoopback()`, `isLinkLocalMulticast()`,
//! `isLinkLocalUnicast()`, `isGlobalUnicast()`; `cidr(s)`, `isCIDR(s)`, `string(cidr)`, and on
//! CIDRs `containsIP(ip|s)`, `containsCIDR(cidr|s)`, `ip()`, `masked()`, `prefixLength()`.
//!
//! As upstream, IPv4-mapped IPv6 addresses and zones are rejected.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use cel::common::types::STRING_TYPE;
use cel::common::value::{CowVal, Val};
use cel::{DeclarationError, ExecutionError};

use super::{Registry, boolean, fail, int, library_type, own_arg, string, string_arg, take};

/// An IP address.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Ip(IpAddr);

/// An IP prefix (`10.0.0.0/8`), keeping the address as written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

library_type!(Ip, IP_TYPE, "net.IP");
library_type!(Cidr, CIDR_TYPE, "net.CIDR");

pub(super) fn register(reg: &mut Registry<'_>) -> Result<(), DeclarationError> {
    reg.global("ip", vec![STRING_TYPE], to_ip)?;
    reg.global("isIP", vec![STRING_TYPE], is_ip)?;
    reg.global("ip.isCanonical", vec![STRING_TYPE], is_canonical)?;
    reg.global("string", vec![IP_TYPE], |a| {
        let [ip] = take(a)?;
        Ok(string(ip_of(ip.as_ref())?.to_string()))
    })?;
    reg.member("family", IP_TYPE, vec![], |a| {
        let [ip] = take(a)?;
        Ok(int(if ip_of(ip.as_ref())?.is_ipv4() { 4 } else { 6 }))
    })?;
    reg.member("isUnspecified", IP_TYPE, vec![], |a| predicate(a, |ip| ip.is_unspecified()))?;
    reg.member("isLoopback", IP_TYPE, vec![], |a| predicate(a, |ip| ip.is_loopback()))?;
    reg.member("isLinkLocalMulticast", IP_TYPE, vec![], |a| predicate(a, link_local_multicast))?;
    reg.member("isLinkLocalUnicast", IP_TYPE, vec![], |a| predicate(a, link_local_unicast))?;
    reg.member("isGlobalUnicast", IP_TYPE, vec![], |a| predicate(a, global_unicast))?;
    reg.global("cidr", vec![STRING_TYPE], to_cidr)?;
    reg.global("isCIDR", vec![STRING_TYPE], |a| {
        let [s] = take(a)?;
        Ok(boolean(parse_cidr(string_arg(s.as_ref())?).is_ok()))
    })?;
    reg.global("string", vec![CIDR_TYPE], |a| {
        let [c] = take(a)?;
        let c = cidr_of(c.as_ref())?;
        Ok(string(format!("{}/{}", c.addr, c.prefix)))
    })?;
    reg.member("containsIP", CIDR_TYPE, vec![IP_TYPE], contains_ip)?;
    reg.member("containsIP", CIDR_TYPE, vec![STRING_TYPE], contains_ip)?;
    reg.member("containsCIDR", CIDR_TYPE, vec![CIDR_TYPE], contains_cidr)?;
    reg.member("containsCIDR", CIDR_TYPE, vec![STRING_TYPE], contains_cidr)?;
    reg.member("ip", CIDR_TYPE, vec![], |a| {
        let [c] = take(a)?;
        Ok(CowVal::owned(Ip(cidr_of(c.as_ref())?.addr)))
    })?;
    reg.member("masked", CIDR_TYPE, vec![], |a| {
        let [c] = take(a)?;
        let c = cidr_of(c.as_ref())?;
        Ok(CowVal::owned(Cidr { addr: mask(c.addr, c.prefix), prefix: c.prefix }))
    })?;
    reg.member("prefixLength", CIDR_TYPE, vec![], |a| {
        let [c] = take(a)?;
        Ok(int(i64::from(cidr_of(c.as_ref())?.prefix)))
    })?;
    Ok(())
}

fn parse_ip(s: &str) -> Result<IpAddr, String> {
    if s.contains('%') {
        return Err("IP address with zone value is not allowed".into());
    }
    let ip: IpAddr = s.parse().map_err(|_| format!("IP Address {s:?} parse error during conversion from string"))?;
    if let IpAddr::V6(v6) = ip
        && v6.to_ipv4_mapped().is_some()
    {
        return Err("IPv4-mapped IPv6 address is not allowed".into());
    }
    Ok(ip)
}

fn parse_cidr(s: &str) -> Result<Cidr, String> {
    let err = || format!("network address {s:?} parse error during conversion from string");
    let (addr, prefix) = s.split_once('/').ok_or_else(err)?;
    let addr = parse_ip(addr).map_err(|_| err())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix: u8 = prefix.parse().ok().filter(|p| *p <= max && !prefix.starts_with('+')).ok_or_else(err)?;
    Ok(Cidr { addr, prefix })
}

fn ip_of(v: &dyn Val) -> Result<IpAddr, ExecutionError> {
    Ok(own_arg::<Ip>(v, "net.IP")?.0)
}

fn cidr_of(v: &dyn Val) -> Result<Cidr, ExecutionError> {
    own_arg::<Cidr>(v, "net.CIDR").cloned()
}

fn to_ip<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [s] = take(args)?;
    parse_ip(string_arg(s.as_ref())?).map(|ip| CowVal::owned(Ip(ip))).map_err(|e| fail("ip", e))
}

fn is_ip<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [s] = take(args)?;
    Ok(boolean(parse_ip(string_arg(s.as_ref())?).is_ok()))
}

fn is_canonical<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [s] = take(args)?;
    let s = string_arg(s.as_ref())?;
    let ip = parse_ip(s).map_err(|e| fail("ip.isCanonical", e))?;
    Ok(boolean(ip.to_string() == s))
}

fn to_cidr<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [s] = take(args)?;
    parse_cidr(string_arg(s.as_ref())?).map(CowVal::owned).map_err(|e| fail("cidr", e))
}

fn predicate<'b, 'v>(args: Vec<CowVal<'b, 'v>>, f: fn(&IpAddr) -> bool) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [ip] = take(args)?;
    Ok(boolean(f(&ip_of(ip.as_ref())?)))
}

fn link_local_multicast(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.octets()[..3] == [224, 0, 0],
        IpAddr::V6(v6) => v6.segments()[0] & 0xff0f == 0xff02,
    }
}

fn link_local_unicast(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
    }
}

/// Go's `netip.Addr.IsGlobalUnicast`: anything but unspecified, loopback, multicast, link-local
/// unicast and the IPv4 broadcast address.
fn global_unicast(ip: &IpAddr) -> bool {
    let special = match ip {
        IpAddr::V4(v4) => *v4 == Ipv4Addr::BROADCAST || v4.is_multicast(),
        IpAddr::V6(v6) => v6.is_multicast(),
    };
    !(special || ip.is_unspecified() || ip.is_loopback() || link_local_unicast(ip))
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) };
            IpAddr::V4(Ipv4Addr::from(bits & m))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = if prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(prefix)) };
            IpAddr::V6(Ipv6Addr::from(bits & m))
        }
    }
}

fn contains(c: &Cidr, ip: IpAddr) -> bool {
    c.addr.is_ipv4() == ip.is_ipv4() && mask(ip, c.prefix) == mask(c.addr, c.prefix)
}

fn ip_or_string(v: &dyn Val, function: &str) -> Result<IpAddr, ExecutionError> {
    match string_arg(v) {
        Ok(s) => parse_ip(s).map_err(|e| fail(function, e)),
        Err(_) => ip_of(v),
    }
}

fn contains_ip<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [c, ip] = take(args)?;
    Ok(boolean(contains(&cidr_of(c.as_ref())?, ip_or_string(ip.as_ref(), "containsIP")?)))
}

fn contains_cidr<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let [c, other] = take(args)?;
    let c = cidr_of(c.as_ref())?;
    let other = match string_arg(other.as_ref()) {
        Ok(s) => parse_cidr(s).map_err(|e| fail("containsCIDR", e))?,
        Err(_) => cidr_of(other.as_ref())?,
    };
    Ok(boolean(other.prefix >= c.prefix && contains(&c, other.addr)))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_err, assert_true};

    #[test]
    fn ips_and_cidrs_follow_the_kubernetes_library() {
        assert_true(&[
            "isIP('10.0.0.1')",
            "!isIP('10.0.0')",
            "!isIP('::ffff:10.0.0.1')",
            "ip('10.0.0.1').family() == 4",
            "ip('fe80::1').family() == 6",
            "ip('127.0.0.1').isLoopback()",
            "ip('0.0.0.0').isUnspecified()",
            "ip('fe80::1').isLinkLocalUnicast()",
            "ip('224.0.0.1').isLinkLocalMulticast()",
            "ip('8.8.8.8').isGlobalUnicast()",
            "!ip('255.255.255.255').isGlobalUnicast()",
            "ip.isCanonical('2001:db8::1')",
            "!ip.isCanonical('2001:DB8::1')",
            "string(ip('10.0.0.1')) == '10.0.0.1'",
            "ip('10.0.0.1') == ip('10.0.0.1')",
            "cidr('10.0.0.0/8').containsIP(ip('10.1.2.3'))",
            "cidr('10.0.0.0/8').containsIP('10.1.2.3')",
            "!cidr('10.0.0.0/8').containsIP('11.0.0.1')",
            "cidr('10.0.0.0/8').containsCIDR('10.1.0.0/16')",
            "!cidr('10.1.0.0/16').containsCIDR(cidr('10.0.0.0/8'))",
            "cidr('10.1.2.3/8').masked() == cidr('10.0.0.0/8')",
            "cidr('10.1.2.3/8').ip() == ip('10.1.2.3')",
            "cidr('10.0.0.0/8').prefixLength() == 8",
            "string(cidr('10.0.0.0/8')) == '10.0.0.0/8'",
            "isCIDR('::1/128')",
            "!isCIDR('10.0.0.0/33')",
        ]);
        assert_err(&[("ip('nope')", "parse error"), ("cidr('10.0.0.0')", "parse error")]);
    }
}
