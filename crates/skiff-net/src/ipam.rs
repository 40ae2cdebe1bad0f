//! Pod IP address management: hands out the addresses of the node's pod CIDR, one per owner
//! (a pod key), persisted as one file per allocated address so allocations survive restarts.
//!
//! Layout of the IPAM directory (`<data-dir>/agent/ipam/`):
//! ```text
//! 10.42.0.7       the owner's key (one file per allocated address)
//! last-reserved   the address handed out last; the next search starts after it
//! ```
//! An address file is published complete or not at all: its content is written to a temp file
//! first, which is then moved to the address's name with an exclusive rename (`RENAME_NOREPLACE`,
//! as exclusive as `O_EXCL` and never showing a half-written owner). Whoever publishes the name
//! first owns the address, so concurrent allocators (threads or processes) never share one.
//!
//! What does not live here: the links and routes that put the address on a pod
//! ([`crate::netlink`]), and deciding when to allocate ([`crate::PodNetwork`]).

use std::fs;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use ipnet::Ipv4Net;

/// IPAM failures.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    /// A file of the IPAM directory.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Every address of the range is taken.
    #[error("no free address left in {0}")]
    Exhausted(Ipv4Net),
    /// The range has no address to give (prefix longer than /30).
    #[error("pod CIDR {0} is too small: it needs at least two host addresses")]
    TooSmall(Ipv4Net),
    /// An owner key that cannot be stored.
    #[error("invalid IPAM owner {0:?}: it must be non-empty and single-line")]
    InvalidOwner(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> IpamError + '_ {
    move |source| IpamError::Io { path: path.to_path_buf(), source }
}

const LAST_RESERVED: &str = "last-reserved";
/// Temp files older than this are left over from a crash and removed on open.
const STALE_TEMP: Duration = Duration::from_secs(600);

/// The address allocator of one pod CIDR.
///
/// Allocations for *different* owners may run concurrently from any number of threads and
/// processes. Calls for the *same* owner must not overlap (the agent serialises the work of one
/// pod); they are idempotent once finished.
#[derive(Debug, Clone)]
pub struct Ipam {
    dir: PathBuf,
    cidr: Ipv4Net,
}

impl Ipam {
    /// Opens (creating) the IPAM directory `dir` for `cidr` and removes temp files a crash left.
    pub fn open(dir: &Path, cidr: Ipv4Net) -> Result<Self, IpamError> {
        let cidr = cidr.trunc();
        if cidr.prefix_len() > 30 {
            return Err(IpamError::TooSmall(cidr));
        }
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let ipam = Self { dir: dir.to_path_buf(), cidr };
        for entry in fs::read_dir(dir).map_err(io_err(dir))?.flatten() {
            let stale = entry.file_name().to_string_lossy().starts_with(".tmp")
                && entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| SystemTime::now().duration_since(t).ok())
                    .is_some_and(|age| age > STALE_TEMP);
            if stale {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(ipam)
    }

    /// The range addresses are handed out from.
    pub fn cidr(&self) -> Ipv4Net {
        self.cidr
    }

    /// The gateway of the range: its first host address, never handed out.
    pub fn gateway(&self) -> Ipv4Addr {
        gateway(self.cidr)
    }

    /// The address `owner` holds, allocating one if it holds none. Skips the network, gateway
    /// and broadcast addresses, and starts searching after the address handed out last, so a
    /// released address is reused as late as possible.
    pub fn allocate(&self, owner: &str) -> Result<Ipv4Addr, IpamError> {
        validate_owner(owner)?;
        if let Some(ip) = self.lookup(owner)? {
            return Ok(ip);
        }
        let candidates: Vec<Ipv4Addr> = self.cidr.hosts().filter(|ip| *ip != self.gateway()).collect();
        let start = match self.last_reserved() {
            Some(last) => candidates.iter().position(|ip| *ip == last).map_or(0, |i| i + 1),
            None => 0,
        };
        for ip in candidates[start..].iter().chain(&candidates[..start]) {
            let path = self.dir.join(ip.to_string());
            if path.exists() {
                continue;
            }
            if self.publish(&path, owner)? {
                if let Err(e) = self.write_last_reserved(*ip) {
                    tracing::warn!(error = %e, "cannot record the last reserved address");
                }
                tracing::debug!(%ip, owner, "allocated pod address");
                return Ok(*ip);
            }
        }
        Err(IpamError::Exhausted(self.cidr))
    }

    /// Writes `owner` into `path` unless `path` exists; `false` when someone else was first.
    fn publish(&self, path: &Path, owner: &str) -> Result<bool, IpamError> {
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir).map_err(io_err(&self.dir))?;
        tmp.write_all(owner.as_bytes()).map_err(io_err(tmp.path()))?;
        tmp.as_file().sync_all().map_err(io_err(tmp.path()))?;
        match tmp.persist_noclobber(path) {
            Ok(_) => {
                sync_dir(&self.dir)?;
                Ok(true)
            }
            Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(IpamError::Io { path: path.to_path_buf(), source: e.error }),
        }
    }

    /// The address `owner` holds, if any.
    pub fn lookup(&self, owner: &str) -> Result<Option<Ipv4Addr>, IpamError> {
        Ok(self.allocations()?.into_iter().find(|(_, o)| o == owner).map(|(ip, _)| ip))
    }

    /// Every allocation (address, owner), in address order. Includes addresses outside the
    /// current range left from an earlier pod CIDR, so they can be released.
    pub fn allocations(&self) -> Result<Vec<(Ipv4Addr, String)>, IpamError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_err(&self.dir))? {
            let entry = entry.map_err(io_err(&self.dir))?;
            let Ok(ip) = entry.file_name().to_string_lossy().parse::<Ipv4Addr>() else { continue };
            match fs::read_to_string(entry.path()) {
                Ok(owner) => out.push((ip, owner)),
                // Released between listing and reading.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(IpamError::Io { path: entry.path(), source: e }),
            }
        }
        out.sort();
        Ok(out)
    }

    /// Releases every address `owner` holds (none is fine) and returns them.
    pub fn release(&self, owner: &str) -> Result<Vec<Ipv4Addr>, IpamError> {
        let mut released = Vec::new();
        for (ip, o) in self.allocations()? {
            if o != owner {
                continue;
            }
            let path = self.dir.join(ip.to_string());
            match fs::remove_file(&path) {
                Ok(()) => released.push(ip),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(IpamError::Io { path, source: e }),
            }
        }
        if !released.is_empty() {
            sync_dir(&self.dir)?;
            tracing::debug!(owner, ?released, "released pod addresses");
        }
        Ok(released)
    }

    fn last_reserved(&self) -> Option<Ipv4Addr> {
        fs::read_to_string(self.dir.join(LAST_RESERVED)).ok()?.trim().parse().ok()
    }

    /// Rewritten in place (no new file per allocation): it is only where the next search starts,
    /// so a torn value just starts it at the beginning.
    fn write_last_reserved(&self, ip: Ipv4Addr) -> Result<(), IpamError> {
        let path = self.dir.join(LAST_RESERVED);
        fs::write(&path, format!("{ip:<15}")).map_err(io_err(&path))
    }
}

/// The first host address of `cidr`, which the node's bridge holds.
pub fn gateway(cidr: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(cidr.network()).saturating_add(1))
}

fn validate_owner(owner: &str) -> Result<(), IpamError> {
    if owner.is_empty() || owner.contains(['\n', '\r']) {
        return Err(IpamError::InvalidOwner(owner.to_string()));
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), IpamError> {
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;

    use super::*;

    fn cidr(s: &str) -> Ipv4Net {
        s.parse().expect("cidr")
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().expect("ip")
    }

    #[test]
    fn allocates_hosts_after_the_gateway_and_is_idempotent_per_owner() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ipam = Ipam::open(dir.path(), cidr("10.42.0.0/24")).expect("open");
        assert_eq!(ipam.gateway(), ip("10.42.0.1"));
        assert_eq!(ipam.allocate("a").expect("a"), ip("10.42.0.2"));
        assert_eq!(ipam.allocate("b").expect("b"), ip("10.42.0.3"));
        assert_eq!(ipam.allocate("a").expect("a again"), ip("10.42.0.2"));
        assert_eq!(ipam.lookup("b").expect("lookup"), Some(ip("10.42.0.3")));
        assert_eq!(ipam.lookup("c").expect("lookup"), None);
        assert_eq!(fs::read_to_string(dir.path().join("10.42.0.2")).expect("file"), "a");
    }

    #[test]
    fn exhaustion_skips_network_gateway_and_broadcast() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A /29 has hosts .1-.6; .1 is the gateway.
        let ipam = Ipam::open(dir.path(), cidr("10.1.2.8/29")).expect("open");
        let got: Vec<Ipv4Addr> = (0..5).map(|i| ipam.allocate(&format!("p{i}")).expect("allocate")).collect();
        assert_eq!(got, ["10.1.2.10", "10.1.2.11", "10.1.2.12", "10.1.2.13", "10.1.2.14"].map(ip));
        let err = ipam.allocate("p5").expect_err("exhausted");
        assert!(matches!(err, IpamError::Exhausted(_)), "{err}");
        assert_eq!(err.to_string(), "no free address left in 10.1.2.8/29");
    }

    #[test]
    fn released_addresses_are_reused_last() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ipam = Ipam::open(dir.path(), cidr("10.1.2.8/29")).expect("open");
        for owner in ["a", "b", "c"] {
            ipam.allocate(owner).expect("allocate");
        }
        assert_eq!(ipam.release("a").expect("release"), vec![ip("10.1.2.10")]);
        assert!(ipam.release("a").expect("release twice").is_empty());
        // .13 and .14 are still free and come first; then the released .10.
        assert_eq!(ipam.allocate("d").expect("d"), ip("10.1.2.13"));
        assert_eq!(ipam.allocate("e").expect("e"), ip("10.1.2.14"));
        assert_eq!(ipam.allocate("f").expect("f"), ip("10.1.2.10"));
        assert!(matches!(ipam.allocate("g"), Err(IpamError::Exhausted(_))));
    }

    #[test]
    fn allocations_survive_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let range = cidr("10.42.3.0/24");
        let first = Ipam::open(dir.path(), range).expect("open").allocate("pod-1").expect("allocate");
        let reopened = Ipam::open(dir.path(), range).expect("reopen");
        assert_eq!(reopened.lookup("pod-1").expect("lookup"), Some(first));
        assert_eq!(reopened.allocations().expect("list"), vec![(first, "pod-1".to_string())]);
        assert_ne!(reopened.allocate("pod-2").expect("allocate"), first);
    }

    #[test]
    fn concurrent_allocators_never_share_an_address() {
        let dir = tempfile::tempdir().expect("tempdir");
        let range = cidr("10.9.0.0/26"); // 61 usable addresses
        let threads: Vec<_> = (0..8)
            .map(|t| {
                // Separate instances, as separate processes would have.
                let ipam = Arc::new(Ipam::open(dir.path(), range).expect("open"));
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    for i in 0..10 {
                        match ipam.allocate(&format!("t{t}-{i}")) {
                            Ok(ip) => got.push(ip),
                            Err(IpamError::Exhausted(_)) => break,
                            Err(e) => panic!("{e}"),
                        }
                    }
                    got
                })
            })
            .collect();
        let all: Vec<Ipv4Addr> = threads.into_iter().flat_map(|t| t.join().expect("thread")).collect();
        let unique: HashSet<_> = all.iter().collect();
        assert_eq!(all.len(), 61, "every usable address is handed out once the range is exhausted");
        assert_eq!(unique.len(), all.len(), "an address was handed out twice");
        let ipam = Ipam::open(dir.path(), range).expect("open");
        assert_eq!(ipam.allocations().expect("list").len(), 61);
        assert!(!unique.contains(&ipam.gateway()));
    }

    #[test]
    fn rejects_unusable_ranges_and_owners() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(Ipam::open(dir.path(), cidr("10.0.0.0/31")), Err(IpamError::TooSmall(_))));
        let ipam = Ipam::open(dir.path(), cidr("10.0.0.0/30")).expect("open");
        assert!(matches!(ipam.allocate(""), Err(IpamError::InvalidOwner(_))));
        assert!(matches!(ipam.allocate("a\nb"), Err(IpamError::InvalidOwner(_))));
        // A /30 has one address besides the gateway.
        assert_eq!(ipam.allocate("only").expect("allocate"), ip("10.0.0.2"));
        assert!(matches!(ipam.allocate("more"), Err(IpamError::Exhausted(_))));
    }
}
