//! Ports for servers whose address must be known before they start.
//!
//! A node started in-process binds port 0 and reports its address (`Node::local_addr`), which
//! cannot clash; prefer that. But a consortium file names every member's URL before any member
//! starts, and `bank up --base-port P` takes consecutive ports: those ports are chosen here.
//!
//! The usual trick — bind port 0, read the port, release it, use it later — races: between the
//! release and the use, another test in the same process binding port 0 may be handed the same
//! port. This allocator does not do that:
//!
//! - Ports come from `20000..32000`, below Linux's ephemeral range (32768–60999), so no bind of
//!   port 0 and no outgoing connection anywhere on the machine is given one of them.
//! - Within a process an atomic counter walks the range, so no port is handed out twice (until
//!   12,000 ports have been handed out, far beyond any test binary).
//! - Each process starts at an offset derived from its pid, so test binaries running at the same
//!   time (cargo runs them one by one, but several worktrees share this machine) walk different
//!   stretches of the range.
//! - Each candidate is probed with a bind and skipped if something listens on it now.
//!
//! What remains is a process outside this allocator that binds a fixed port in the range between
//! the probe and the use: unlikely enough for tests, and it fails loudly (the server cannot bind).

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

const RANGE_START: u32 = 20_000;
const RANGE_LEN: u32 = 12_000;
/// Candidates tried before giving up (each taken block of ports counts once).
const ATTEMPTS_MAX: u32 = 1_000;

/// How far into the range this process has walked.
static TAKEN: AtomicU32 = AtomicU32::new(0);

/// Takes the next `n` ports of this process's walk, as the offset of the first one.
fn take(n: u32) -> u32 {
    let offset = std::process::id().wrapping_mul(2_654_435_761) % RANGE_LEN;
    offset + TAKEN.fetch_add(n, Ordering::Relaxed)
}

/// Whether nothing listens on `port` of 127.0.0.1 right now.
fn free_now(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A port `P` such that `P..P + n` are all free now and handed to no one else by this process.
pub fn consecutive(n: u16) -> u16 {
    let n32 = u32::from(n);
    assert!(n32 > 0 && n32 < RANGE_LEN, "{n} consecutive ports");
    for _ in 0..ATTEMPTS_MAX {
        let first = take(n32) % RANGE_LEN;
        if first + n32 > RANGE_LEN {
            // The block would wrap around the end of the range: not consecutive, skip it.
            continue;
        }
        let first = u16::try_from(RANGE_START + first).expect("the range is below 65536");
        if (first..first + n).all(free_now) {
            return first;
        }
    }
    panic!("no {n} consecutive free ports in {RANGE_START}..{}", RANGE_START + RANGE_LEN);
}

/// One free port, handed to no one else by this process.
pub fn one() -> u16 {
    consecutive(1)
}

/// `n` free ports, all different (not necessarily consecutive).
pub fn several(n: usize) -> Vec<u16> {
    (0..n).map(|_| one()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_port_is_handed_out_twice_in_a_process_even_from_many_threads() {
        let threads: Vec<_> = (0..8).map(|_| std::thread::spawn(|| several(50))).collect();
        let mut all: Vec<u16> = threads.into_iter().flat_map(|t| t.join().expect("thread")).collect();
        let count = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), count);
        assert!(all.iter().all(|p| (20_000..32_000).contains(&u32::from(*p))), "below the ephemeral range");
    }

    #[test]
    fn consecutive_ports_are_consecutive_and_free() {
        let first = consecutive(4);
        for port in first..first + 4 {
            TcpListener::bind(("127.0.0.1", port)).expect("free");
        }
    }
}
