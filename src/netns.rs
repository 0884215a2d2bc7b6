//! Three machines on one host: the hub, node1 and node2 each in a network namespace of its
//! own, joined by veth links to a bridge that also carries an address in the host's namespace
//! (so the host's benchmark, its clients and admin tools reach every machine). Cutting a
//! machine's link is a real partition: its process runs on, heard by nobody. Needs root and
//! `ip netns`; everything made is removed on drop. A machine can be put at a second site
//! behind an emulated WAN circuit ([`Lab::shape`]).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Command;

use crate::wan_link::WanLink;

/// The machines, in the order of their namespaces and addresses.
pub const MACHINES: [&str; 3] = ["hub", "node1", "node2"];

pub struct Lab {
    tag: u16,
    /// Emulated WAN circuits this lab forwards (see [`Lab::shape`]).
    circuits: Vec<WanLink>,
}

/// Runs a command to completion: its stdout, or an error with its stderr.
pub fn sh(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Why namespaces cannot be used here, if they cannot.
pub fn unavailable() -> Option<String> {
    if !sh(&["id", "-u"]).is_ok_and(|s| s.trim() == "0") {
        return Some("network namespaces need root".into());
    }
    sh(&["ip", "netns", "list"]).err()
}

impl Lab {
    /// Builds the namespaces, links and bridge under a tag no running lab uses; a lab left
    /// over from an earlier run (no process in any of its namespaces) is removed and its tag
    /// reused.
    pub fn build() -> Result<Lab, String> {
        // Candidates are plain tags: a `Lab` value removes its namespaces when dropped, and
        // one in use by another process must survive being looked at.
        let free = |tag: u16| {
            let (bridge, ns) = (Lab::bridge_of(tag), |m: &str| Lab::ns_of(tag, m));
            if sh(&["ip", "link", "show", &bridge]).is_err() {
                return true;
            }
            MACHINES
                .iter()
                .all(|m| sh(&["ip", "netns", "pids", &ns(m)]).map_or(true, |p| p.trim().is_empty()))
        };
        let first = (std::process::id() % 250) as u16;
        let tag = (0..250)
            .map(|i| (first + i) % 250)
            .find(|&tag| free(tag))
            .ok_or("every network-namespace lab tag is in use")?;
        let lab = Lab {
            tag,
            circuits: Vec::new(),
        };
        // Whatever a crashed run left under this tag goes first.
        lab.remove();
        sh(&["ip", "link", "add", &lab.bridge(), "type", "bridge"])?;
        let host = format!("{}/24", lab.host_ip());
        sh(&["ip", "addr", "add", &host, "dev", &lab.bridge()])?;
        sh(&["ip", "link", "set", &lab.bridge(), "up"])?;
        for (i, name) in MACHINES.into_iter().enumerate() {
            let ns = lab.ns(name);
            sh(&["ip", "netns", "add", &ns])?;
            let outside = lab.link(name);
            sh(&[
                "ip", "link", "add", &outside, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ])?;
            sh(&["ip", "link", "set", &outside, "master", &lab.bridge()])?;
            sh(&["ip", "link", "set", &outside, "up"])?;
            let addr = format!("{}/24", lab.ip(i));
            sh(&["ip", "-n", &ns, "addr", "add", &addr, "dev", "eth0"])?;
            sh(&["ip", "-n", &ns, "link", "set", "eth0", "up"])?;
            sh(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(lab)
    }

    /// The namespace of `machine` (one of [`MACHINES`]).
    pub fn ns(&self, machine: &str) -> String {
        Lab::ns_of(self.tag, machine)
    }

    fn ns_of(tag: u16, machine: &str) -> String {
        format!("ccr{tag}-{machine}")
    }

    fn bridge(&self) -> String {
        Lab::bridge_of(self.tag)
    }

    fn bridge_of(tag: u16) -> String {
        format!("ccrbr{tag}")
    }

    /// The host's end of `machine`'s link: down is a partition of that machine.
    fn link(&self, machine: &str) -> String {
        let short = match machine {
            "hub" => "h",
            "node1" => "a",
            _ => "b",
        };
        format!("ccr{}{short}", self.tag)
    }

    /// The address of the `i`th machine of [`MACHINES`].
    pub fn ip(&self, i: usize) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 78, self.tag as u8, i as u8 + 1))
    }

    fn host_ip(&self) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 78, self.tag as u8, 254))
    }

    pub fn addr(&self, machine: &str, port: u16) -> SocketAddr {
        let i = MACHINES
            .iter()
            .position(|m| *m == machine)
            .expect("one of the machines");
        SocketAddr::new(self.ip(i), port)
    }

    /// A command that runs `program` inside `machine`'s namespace (`ip netns exec` replaces
    /// itself with the program, so the child's pid is the program's).
    pub fn command(&self, machine: &str, program: &std::path::Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns(machine)]).arg(program);
        c
    }

    /// Takes `machine`'s link down: nobody hears it, it hears nobody.
    pub fn cut(&self, machine: &str) -> Result<(), String> {
        sh(&["ip", "link", "set", &self.link(machine), "down"]).map(drop)
    }

    /// Puts `machine` at a second site: its link becomes an emulated WAN circuit (see
    /// [`WanLink`]) of `mbit` Mbit/s with `delay_ms` each way, in both directions, for every
    /// machine it talks to. Done before the machine's process starts (its address moves to a
    /// new device).
    pub fn shape(&mut self, machine: &str, mbit: u32, delay_ms: u32) -> Result<(), String> {
        let (outside, ns) = (self.link(machine), self.ns(machine));
        let inside = format!("{outside}w");
        let i = MACHINES
            .iter()
            .position(|m| *m == machine)
            .ok_or_else(|| format!("no machine {machine}"))?;
        // The veth pair goes (its end inside the namespace with it); TAP devices replace it.
        sh(&["ip", "link", "del", &outside])?;
        let link = WanLink::start(
            &outside,
            &inside,
            mbit,
            std::time::Duration::from_millis(delay_ms.into()),
        )?;
        self.circuits.push(link);
        sh(&["ip", "link", "set", &inside, "netns", &ns])?;
        sh(&["ip", "-n", &ns, "link", "set", &inside, "name", "eth0"])?;
        let addr = format!("{}/24", self.ip(i));
        sh(&["ip", "-n", &ns, "addr", "add", &addr, "dev", "eth0"])?;
        sh(&["ip", "-n", &ns, "link", "set", "eth0", "up"])?;
        sh(&["ip", "link", "set", &outside, "master", &self.bridge()])?;
        sh(&["ip", "link", "set", &outside, "up"]).map(drop)
    }

    /// Brings `machine`'s link back up.
    pub fn heal(&self, machine: &str) -> Result<(), String> {
        sh(&["ip", "link", "set", &self.link(machine), "up"]).map(drop)
    }

    fn remove(&self) {
        for name in MACHINES {
            let _ = sh(&["ip", "netns", "del", &self.ns(name)]);
            let _ = sh(&["ip", "link", "del", &self.link(name)]);
        }
        let _ = sh(&["ip", "link", "del", &self.bridge()]);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.remove();
    }
}
