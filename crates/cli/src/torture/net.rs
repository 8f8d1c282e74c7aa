//! The torture run's network: every bank in its own Linux network namespace, all joined by a
//! bridge in a hub namespace, and a veth from the root namespace (where the clients run) to the
//! bridge. Partitions are nftables rules in the banks' namespaces.
//!
//! ```text
//!   root ns: <tag>h 10.A.B.254 ──┐
//!   <tag>-hub: br0 ── up0 ───────┘
//!              ├── v1 ──── <tag>-b1: eth0 10.A.B.1
//!              ├── v2 ──── <tag>-b2: eth0 10.A.B.2
//!              └── …
//! ```
//!
//! Every name carries the run's tag `bt<pid>`, so parallel runs never collide and a leftover of a
//! run whose process is gone is recognised and removed by [`sweep_leftovers`]. Only the root-side
//! veth lives outside the namespaces; it disappears with its peer when the hub is deleted.
//!
//! A partition is a set of directed pairs `(from, to)`: packets from bank `from` to bank `to`
//! are dropped in `to`'s input hook (dropping at the receiver makes the sender see a silent
//! network, not an immediate `EPERM`). Clients (at `.254`) are never blocked.

use anyhow::{Context, Result, bail};
use std::collections::BTreeSet;
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

/// Every name of a run starts with this, then the pid of the `bank torture` that made it.
pub const TAG_PREFIX: &str = "bt";
/// Most banks a network is built for (one /24; addresses .1 to .N, clients at .254).
pub const BANKS_MAX: u32 = 9;
/// The clients' address in the banks' subnet.
const CLIENT_HOST: u8 = 254;
/// The nftables table every partition lives in, inside a bank's namespace.
const TABLE: &str = "torture";

/// A directed pair of bank ids: traffic from `.0` to `.1` is dropped.
pub type Blocked = BTreeSet<(u32, u32)>;

/// The tag of the run of process `pid`.
pub fn tag_for(pid: u32) -> String {
    format!("{TAG_PREFIX}{pid}")
}

/// The pid a tagged name (`bt123-hub`, `bt123h`) belongs to.
pub fn pid_of_name(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(TAG_PREFIX)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let after = &rest[digits.len()..];
    if digits.is_empty() || !(after.starts_with('-') || after == "h") {
        return None;
    }
    digits.parse().ok()
}

/// Refuses clearly when this process cannot create namespaces.
pub fn require_root() -> Result<()> {
    if effective_uid() != Some(0) {
        bail!(
            "bank torture needs root: it creates network namespaces, veth pairs, a bridge and nftables rules \
             (run it as root, e.g. with sudo, or in a container with CAP_NET_ADMIN and CAP_SYS_ADMIN)"
        );
    }
    for tool in ["ip", "nft"] {
        let found = Command::new(tool).arg("-V").stdout(Stdio::null()).stderr(Stdio::null()).status();
        if found.is_err() {
            bail!("bank torture needs `{tool}` (apt-get install iproute2 nftables)");
        }
    }
    Ok(())
}

/// This process's effective uid, from `/proc/self/status` (`Uid: real effective saved fs`).
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Runs one command; its stderr becomes the error.
fn run(program: &str, args: &[&str]) -> Result<()> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    if !output.status.success() {
        bail!("`{program} {}` failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(())
}

/// Runs `nft -f -` inside namespace `ns` with `script` on its standard input.
fn nft_script(ns: &str, script: &str) -> Result<()> {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run nft")?;
    child.stdin.take().context("nft stdin")?.write_all(script.as_bytes()).context("cannot write to nft")?;
    let output = child.wait_with_output().context("nft did not finish")?;
    if !output.status.success() {
        bail!("nft in {ns} refused the rules: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(())
}

/// The nftables script that makes bank `to`'s namespace drop packets from `sources` (replacing
/// whatever the table held: the table is declared, deleted and declared again, atomically).
pub fn input_rules(sources: &[Ipv4Addr]) -> String {
    let mut script = format!("table inet {TABLE} {{}}\ndelete table inet {TABLE}\ntable inet {TABLE} {{\n");
    script.push_str("  chain input {\n    type filter hook input priority 0; policy accept;\n");
    if !sources.is_empty() {
        let list: Vec<String> = sources.iter().map(ToString::to_string).collect();
        script.push_str(&format!("    ip saddr {{ {} }} drop\n", list.join(", ")));
    }
    script.push_str("  }\n}\n");
    script
}

/// The network of one run. Dropping it removes every namespace it made.
#[derive(Debug)]
pub struct Net {
    tag: String,
    /// First two octets after `10.`: the banks' /24 is `10.A.B.0/24`.
    subnet: (u8, u8),
    banks: u32,
    /// Namespaces created so far (removed in reverse on drop).
    namespaces: Vec<String>,
    root_veth: Option<String>,
    blocked: Blocked,
}

impl Net {
    /// Builds the network for banks `1..=banks` under `tag`. A failure part-way removes what
    /// was made.
    pub fn create(tag: &str, banks: u32) -> Result<Net> {
        if banks == 0 || banks > BANKS_MAX {
            bail!("a torture network has 1 to {BANKS_MAX} banks, not {banks}");
        }
        let subnet = free_subnet(tag)?;
        let mut net = Net {
            tag: tag.to_owned(),
            subnet,
            banks,
            namespaces: Vec::new(),
            root_veth: None,
            blocked: Blocked::new(),
        };
        net.build().with_context(|| format!("cannot build the network of {tag}"))?;
        Ok(net)
    }

    fn add_namespace(&mut self, name: String) -> Result<()> {
        run("ip", &["netns", "add", &name])?;
        self.namespaces.push(name.clone());
        run("ip", &["-n", &name, "link", "set", "lo", "up"])
    }

    fn build(&mut self) -> Result<()> {
        let hub = self.hub();
        self.add_namespace(hub.clone())?;
        run("ip", &["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        run("ip", &["-n", &hub, "link", "set", "br0", "up"])?;
        for id in 1..=self.banks {
            let ns = self.namespace(id);
            self.add_namespace(ns.clone())?;
            let port = format!("v{id}");
            run("ip", &["-n", &hub, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns])?;
            run("ip", &["-n", &hub, "link", "set", &port, "master", "br0", "up"])?;
            let address = format!("{}/24", self.bank_ip(id));
            run("ip", &["-n", &ns, "addr", "add", &address, "dev", "eth0"])?;
            run("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
            nft_script(&ns, &input_rules(&[]))?;
        }
        let root = format!("{}h", self.tag);
        run("ip", &["link", "add", &root, "type", "veth", "peer", "name", "up0", "netns", &hub])?;
        self.root_veth = Some(root.clone());
        run("ip", &["-n", &hub, "link", "set", "up0", "master", "br0", "up"])?;
        let client = format!("{}/24", self.client_ip());
        run("ip", &["addr", "add", &client, "dev", &root])?;
        run("ip", &["link", "set", &root, "up"])
    }

    pub fn tag(&self) -> &str {
        &self.tag
    }

    fn hub(&self) -> String {
        format!("{}-hub", self.tag)
    }

    /// The namespace bank `id` runs in.
    pub fn namespace(&self, id: u32) -> String {
        format!("{}-b{id}", self.tag)
    }

    pub fn bank_ip(&self, id: u32) -> Ipv4Addr {
        Ipv4Addr::new(10, self.subnet.0, self.subnet.1, id as u8)
    }

    pub fn client_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, self.subnet.0, self.subnet.1, CLIENT_HOST)
    }

    /// The pairs blocked now.
    pub fn blocked(&self) -> &Blocked {
        &self.blocked
    }

    /// Makes exactly `blocked` the dropped directions (only the banks whose rules change are
    /// rewritten).
    pub fn set_blocked(&mut self, blocked: &Blocked) -> Result<()> {
        for to in 1..=self.banks {
            let sources = |set: &Blocked| -> Vec<Ipv4Addr> {
                set.iter().filter(|(_, t)| *t == to).map(|(from, _)| self.bank_ip(*from)).collect()
            };
            let wanted = sources(blocked);
            if wanted != sources(&self.blocked) {
                nft_script(&self.namespace(to), &input_rules(&wanted))?;
            }
        }
        self.blocked = blocked.clone();
        Ok(())
    }

    /// Removes every partition.
    pub fn heal(&mut self) -> Result<()> {
        self.set_blocked(&Blocked::new())
    }

    /// Whether bank `from` can reach bank `to` now (a ping from inside `from`'s namespace).
    pub fn can_ping(&self, from: u32, to: u32) -> bool {
        let target = self.bank_ip(to).to_string();
        Command::new("ip")
            .args(["netns", "exec", &self.namespace(from), "ping", "-c", "1", "-W", "1", &target])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        if let Some(root) = self.root_veth.take() {
            let _ = run("ip", &["link", "del", &root]);
        }
        while let Some(ns) = self.namespaces.pop() {
            if let Err(e) = run("ip", &["netns", "del", &ns]) {
                eprintln!("torture: cannot remove namespace {ns}: {e:#}");
            }
        }
    }
}

/// Picks `10.A.B.0/24` from the tag, moving on while the root namespace already has an address
/// in it (another run, or the machine's own network).
fn free_subnet(tag: &str) -> Result<(u8, u8)> {
    let used = String::from_utf8_lossy(
        &Command::new("ip").args(["-4", "-o", "addr", "show"]).output().context("cannot list addresses")?.stdout,
    )
    .into_owned();
    let seed = pid_of_name(&format!("{tag}h")).unwrap_or(0);
    for step in 0..256u32 {
        let n = seed.wrapping_add(step * 7919);
        let subnet = (100 + (n % 100) as u8, ((n / 100) % 256) as u8);
        let prefix = format!(" 10.{}.{}.", subnet.0, subnet.1);
        if !used.contains(&prefix) {
            return Ok(subnet);
        }
    }
    bail!("no free 10.x.y.0/24 subnet for the torture network")
}

/// Names of namespaces (and the root veth) left by runs whose process is gone; removes them and
/// returns what it removed.
pub fn sweep_leftovers() -> Vec<String> {
    let Ok(output) = Command::new("ip").args(["netns", "list"]).output() else { return Vec::new() };
    let listing = String::from_utf8_lossy(&output.stdout).into_owned();
    let mut removed = Vec::new();
    let mut dead_pids = BTreeSet::new();
    for name in listing.lines().filter_map(|line| line.split_whitespace().next()) {
        let Some(pid) = pid_of_name(name) else { continue };
        let alive =
            i32::try_from(pid).is_ok_and(|p| nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None).is_ok());
        if !alive && run("ip", &["netns", "del", name]).is_ok() {
            removed.push(name.to_owned());
            dead_pids.insert(pid);
        }
    }
    for pid in dead_pids {
        let veth = format!("{}h", tag_for(pid));
        if run("ip", &["link", "del", &veth]).is_ok() {
            removed.push(veth);
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_a_run_carry_its_pid_and_nothing_else_matches() {
        assert_eq!(tag_for(4242), "bt4242");
        assert_eq!(pid_of_name("bt4242-hub"), Some(4242));
        assert_eq!(pid_of_name("bt4242-b3"), Some(4242));
        assert_eq!(pid_of_name("bt4242h"), Some(4242));
        assert_eq!(pid_of_name("bt-hub"), None);
        assert_eq!(pid_of_name("bt42x"), None);
        assert_eq!(pid_of_name("btrfs"), None);
        assert_eq!(pid_of_name("other-ns"), None);
    }

    #[test]
    fn input_rules_drop_exactly_the_blocked_sources() {
        let script = input_rules(&[Ipv4Addr::new(10, 1, 2, 3), Ipv4Addr::new(10, 1, 2, 4)]);
        assert!(script.contains("ip saddr { 10.1.2.3, 10.1.2.4 } drop"), "{script}");
        assert!(script.contains("delete table inet torture"), "replaces the old rules: {script}");
        assert!(!input_rules(&[]).contains("drop"));
    }

    /// Real namespaces: only as root (required under CI=1).
    #[test]
    fn a_network_is_built_partitioned_healed_and_removed() {
        if require_root().is_err() {
            assert!(std::env::var("CI").is_err(), "CI=1 but network namespaces cannot be made here");
            eprintln!("SKIPPED: not root or no ip/nft; network namespaces cannot be made here");
            return;
        }
        // A tag of this process with a suffix, so it never meets a real run's names.
        let tag = format!("{}-t", tag_for(std::process::id()));
        let mut net = Net::create(&tag, 2).expect("network");
        assert!(net.can_ping(1, 2) && net.can_ping(2, 1), "banks reach each other");
        net.set_blocked(&Blocked::from([(1, 2)])).expect("one-way");
        assert!(!net.can_ping(1, 2), "1 → 2 is dropped");
        net.heal().expect("heal");
        assert!(net.can_ping(1, 2), "healed");
        let namespaces = net.namespaces.clone();
        drop(net);
        let listing = String::from_utf8_lossy(
            &Command::new("ip").args(["netns", "list"]).output().expect("ip netns list").stdout,
        )
        .into_owned();
        for ns in namespaces {
            assert!(!listing.contains(&ns), "{ns} was removed: {listing}");
        }
    }
}
