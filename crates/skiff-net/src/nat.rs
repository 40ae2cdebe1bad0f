//! Masquerade for pod traffic leaving the pod CIDR, in the nftables table `ip skiff-nat`.
//!
//! Each pod network (one per bridge) owns one chain of that table, `postrouting-<bridge>`, hooked
//! at `postrouting` with source-NAT priority. It is written by one `nft -f` script that creates
//! the table and chain if missing, flushes the chain and adds its rule, so applying it is atomic
//! (one nftables transaction) and idempotent, and repairs a chain someone flushed. The table
//! leaves room for more chains (hostPorts, other bridges); the service proxy has its own table.
//!
//! What does not live here: links and addresses ([`crate::netlink`]).

use std::io::{self, Write as _};
use std::process::{Command, Stdio};

use ipnet::Ipv4Net;

/// The nftables table pod networks put their NAT chains in.
pub const TABLE: &str = "skiff-nat";

/// nftables failures.
#[derive(Debug, thiserror::Error)]
pub enum NatError {
    /// `nft` could not be run.
    #[error("running nft: {0}")]
    Spawn(io::Error),
    /// `nft` rejected the script.
    #[error("nft -f failed ({status}): {stderr}")]
    Rejected {
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it printed.
        stderr: String,
    },
}

/// The masquerade rule of one pod network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Masquerade {
    /// The bridge (names the chain).
    pub bridge: String,
    /// The pod CIDR whose outgoing traffic is masqueraded.
    pub pod_cidr: Ipv4Net,
}

impl Masquerade {
    /// The chain of this pod network.
    pub fn chain(&self) -> String {
        format!("postrouting-{}", self.bridge)
    }

    /// The script that (re)programs the chain.
    pub fn apply_script(&self) -> String {
        let (chain, cidr) = (self.chain(), self.pod_cidr.trunc());
        format!(
            "add table ip {TABLE}\n\
             add chain ip {TABLE} {chain} {{ type nat hook postrouting priority srcnat; policy accept; }}\n\
             flush chain ip {TABLE} {chain}\n\
             add rule ip {TABLE} {chain} ip saddr {cidr} ip daddr != {cidr} counter masquerade\n"
        )
    }

    /// The script that removes the chain (absent is fine: it is created first, in the same
    /// transaction, so the delete always finds it).
    pub fn delete_script(&self) -> String {
        let chain = self.chain();
        format!(
            "add table ip {TABLE}\n\
             add chain ip {TABLE} {chain} {{ type nat hook postrouting priority srcnat; policy accept; }}\n\
             delete chain ip {TABLE} {chain}\n"
        )
    }
}

/// `nft` from `PATH`, else Debian's `/usr/sbin/nft` (a service's `PATH` may lack `sbin`).
fn nft_command() -> Command {
    let on_path =
        std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("nft").is_file()));
    Command::new(if on_path { "nft" } else { "/usr/sbin/nft" })
}

/// Runs `script` with `nft -f -` as one transaction.
pub fn nft(script: &str) -> Result<(), NatError> {
    let mut child = nft_command()
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(NatError::Spawn)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes()).map_err(NatError::Spawn)?;
    }
    let output = child.wait_with_output().map_err(NatError::Spawn)?;
    if !output.status.success() {
        return Err(NatError::Rejected {
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// Runs `nft` with `args` and returns what it printed.
pub fn nft_output(args: &[&str]) -> Result<String, NatError> {
    let output = nft_command().args(args).output().map_err(NatError::Spawn)?;
    if !output.status.success() {
        return Err(NatError::Rejected {
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Deletes the table when no chain is left in it (after the last pod network on the node is
/// removed).
pub fn delete_table_if_empty() -> Result<(), NatError> {
    let output = nft_command().args(["list", "table", "ip", TABLE]).output().map_err(NatError::Spawn)?;
    if !output.status.success() {
        return Ok(()); // no table
    }
    let listing = String::from_utf8_lossy(&output.stdout);
    if listing.lines().any(|l| l.trim_start().starts_with("chain ")) {
        return Ok(());
    }
    nft(&format!("delete table ip {TABLE}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_is_recreated_and_flushed_in_one_script() {
        let m = Masquerade { bridge: "skiff0".into(), pod_cidr: "10.42.0.1/24".parse().expect("cidr") };
        let script = m.apply_script();
        assert_eq!(
            script,
            "add table ip skiff-nat\n\
             add chain ip skiff-nat postrouting-skiff0 { type nat hook postrouting priority srcnat; policy accept; }\n\
             flush chain ip skiff-nat postrouting-skiff0\n\
             add rule ip skiff-nat postrouting-skiff0 ip saddr 10.42.0.0/24 ip daddr != 10.42.0.0/24 counter masquerade\n"
        );
        assert!(m.delete_script().ends_with("delete chain ip skiff-nat postrouting-skiff0\n"));
    }
}
