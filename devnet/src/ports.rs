//! Loopback ports for a devnet's nodes, chosen so that nothing else on the machine takes one
//! between the choice and the node's bind.
//!
//! A devnet writes every node's ports into the configs before any node starts, so a port is
//! chosen seconds before it is bound, and again used after a node is killed and restarted.
//! Picking one by binding port 0 and letting it go gives a port of the kernel's ephemeral
//! range, which the kernel hands to every outgoing connection and every port-0 bind on the
//! machine: under parallel tests one of them took a node's port in that window ("cannot
//! listen on /ip4/127.0.0.1/tcp/33777", a CI run of 2026-12-06). So ports come from below
//! the ephemeral range (which the kernel never hands out by itself), and each is reserved
//! against other devnets, in this process or another, by an exclusive lock on a file named
//! after it. The lock lives as long as this process: the kernel releases it when the process
//! ends, however it ends, so a crashed test leaves no stale reservation.

use std::fs::{File, OpenOptions};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{Context, Result, ensure};

/// The lowest port a devnet takes: above the ports a developer's machine commonly serves on
/// (databases, web servers, the registered range's busy start).
pub const DEVNET_PORTS_FROM: u16 = 20_000;

/// Linux's default ephemeral range, assumed where `/proc` does not say.
const EPHEMERAL_DEFAULT: (u16, u16) = (32_768, 60_999);

/// The port reservations this process holds: open, locked files, kept until it exits.
static HELD: Mutex<Vec<File>> = Mutex::new(Vec::new());

/// `count` distinct loopback addresses, each free now and reserved for this process.
pub fn reserve_loopback_addresses(count: usize) -> Result<Vec<SocketAddr>> {
    let candidates = candidate_ports(ephemeral_range());
    ensure!(
        candidates.len() >= count,
        "only {} candidate ports for {count} devnet ports",
        candidates.len()
    );
    let dir = std::env::temp_dir().join("tally-devnet-ports");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // Processes start their search at different places, so they rarely meet on a file.
    let start = usize::try_from(std::process::id()).unwrap_or(0) % candidates.len();
    let mut held = match HELD.lock() {
        Ok(held) => held,
        Err(poisoned) => poisoned.into_inner(),
    };
    let mut chosen = Vec::with_capacity(count);
    for port in candidates.iter().cycle().skip(start).take(candidates.len()) {
        if chosen.len() == count {
            break;
        }
        let Some(lock) = try_reserve(dir.join(port.to_string())) else {
            continue;
        };
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, *port));
        // Reserved against devnets, but something else may be serving on it.
        if TcpListener::bind(address).is_ok() {
            held.push(lock);
            chosen.push(address);
        }
    }
    ensure!(
        chosen.len() == count,
        "found {} of {count} free loopback ports to reserve in {}",
        chosen.len(),
        dir.display()
    );
    Ok(chosen)
}

/// The file `path` opened and locked for this process alone; `None` if another holder has it
/// (or it cannot be opened).
fn try_reserve(path: PathBuf) -> Option<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .ok()?;
    file.try_lock().ok()?;
    Some(file)
}

/// The kernel's ephemeral port range, from `/proc/sys/net/ipv4/ip_local_port_range`.
fn ephemeral_range() -> (u16, u16) {
    let Ok(text) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range") else {
        return EPHEMERAL_DEFAULT;
    };
    let mut numbers = text.split_whitespace().map(str::parse::<u16>);
    match (numbers.next(), numbers.next()) {
        (Some(Ok(low)), Some(Ok(high))) if low <= high => (low, high),
        _ => EPHEMERAL_DEFAULT,
    }
}

/// The ports a devnet may take: from [`DEVNET_PORTS_FROM`] up, outside the ephemeral range
/// `(low, high)`. Where a machine's range leaves none (it starts below 20,000 and ends at
/// 65,535), every port from 20,000 up: the file locks still keep devnets apart, and only
/// the kernel's own picks can then collide, as before.
fn candidate_ports((low, high): (u16, u16)) -> Vec<u16> {
    let outside: Vec<u16> = (DEVNET_PORTS_FROM..=u16::MAX)
        .filter(|p| *p < low || *p > high)
        .collect();
    if outside.is_empty() {
        (DEVNET_PORTS_FROM..=u16::MAX).collect()
    } else {
        outside
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_come_from_outside_the_ephemeral_range() {
        let ports = candidate_ports((32_768, 60_999));
        assert_eq!(ports.first(), Some(&20_000));
        assert!(ports.contains(&32_767) && ports.contains(&61_000));
        assert!(!ports.iter().any(|p| (32_768..=60_999).contains(p)));
        // A range that leaves nothing outside it: every port from 20,000 up.
        assert_eq!(candidate_ports((1_024, 65_535)).len(), 45_536);
    }

    /// Two devnets in one process (parallel tests), and one more while the first still
    /// holds its ports: no port is handed out twice, none is in the ephemeral range, and a
    /// port this process reserved cannot be locked again by anyone.
    #[test]
    fn a_reserved_port_is_not_handed_out_again() -> Result<()> {
        let (low, high) = ephemeral_range();
        let first = reserve_loopback_addresses(10)?;
        let second = reserve_loopback_addresses(10)?;
        let mut all: Vec<u16> = first.iter().chain(&second).map(|a| a.port()).collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(
            all.len(),
            20,
            "a port was handed out twice: {first:?} {second:?}"
        );
        if !candidate_ports((low, high))
            .iter()
            .any(|p| (low..=high).contains(p))
        {
            assert!(
                !all.iter().any(|p| (low..=high).contains(p)),
                "a port of the ephemeral range {low}-{high}: {all:?}"
            );
        }
        let dir = std::env::temp_dir().join("tally-devnet-ports");
        for port in &all {
            assert!(
                try_reserve(dir.join(port.to_string())).is_none(),
                "port {port} could be reserved a second time"
            );
        }
        Ok(())
    }
}
