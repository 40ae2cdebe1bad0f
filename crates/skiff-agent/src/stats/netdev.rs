//! Interface counters of a network namespace from `/proc/<pid>/net/dev` (the namespace of any
//! process in it: a pod's is read through one of its containers' processes), and the choice of
//! the interface the summary reports at its top level (`eth0` where there is one, as the
//! kubelet does).
//!
//! What does not live here: finding a pod's process ([`super::cgroup`]).

use std::fs;

use super::Interface;

/// The interface named first in the summary's network stats when it exists.
pub const DEFAULT_INTERFACE: &str = "eth0";

/// The interfaces of a `net/dev` text, loopback left out, in the file's order.
pub fn parse(text: &str) -> Vec<Interface> {
    text.lines()
        .filter_map(|line| {
            let (name, counters) = line.split_once(':')?;
            let name = name.trim();
            let fields: Vec<u64> = counters.split_whitespace().map(|f| f.parse().ok()).collect::<Option<_>>()?;
            if name == "lo" || fields.len() < 11 {
                return None;
            }
            Some(Interface {
                name: name.to_string(),
                rx_bytes: fields[0],
                rx_errors: fields[2],
                tx_bytes: fields[8],
                tx_errors: fields[10],
            })
        })
        .collect()
}

/// The interfaces of the network namespace of process `pid` (`None`: the host's). Blocking.
pub fn read(pid: Option<u32>) -> Vec<Interface> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/net/dev"),
        None => "/proc/net/dev".to_string(),
    };
    fs::read_to_string(path).map(|t| parse(&t)).unwrap_or_default()
}

/// The interface reported at the top level: `eth0`, else the first one.
pub fn default_interface(interfaces: &[Interface]) -> Option<&Interface> {
    interfaces.iter().find(|i| i.name == DEFAULT_INTERFACE).or_else(|| interfaces.first())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET_DEV: &str = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    5000      50    0    0    0     0          0         0     5000      50    0    0    0     0       0          0
  eth0:  123456     100    2    0    0     0          0         0    65432      90    1    0    0     0       0          0
  ens3: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16
";

    #[test]
    fn parses_counters_and_leaves_loopback_out() {
        let interfaces = parse(NET_DEV);
        assert_eq!(
            interfaces[0],
            Interface { name: "eth0".into(), rx_bytes: 123_456, rx_errors: 2, tx_bytes: 65_432, tx_errors: 1 }
        );
        assert_eq!(interfaces.len(), 2);
        assert_eq!((interfaces[1].rx_bytes, interfaces[1].tx_bytes, interfaces[1].tx_errors), (1, 9, 11));
        assert_eq!(default_interface(&interfaces).map(|i| i.name.as_str()), Some("eth0"));
        assert_eq!(default_interface(&interfaces[1..]).map(|i| i.name.as_str()), Some("ens3"));
        assert!(parse("garbage\n  x: 1 2\n").is_empty());
    }
}
