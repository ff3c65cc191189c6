//! Test hosts in network namespaces: several "machines" on one box, with
//! links that a test can cut, heal and make lossy or slow.
//!
//! Layout: one switch namespace holding a bridge, one namespace per host
//! joined to the bridge by a veth pair, and one veth pair from the test's
//! own (root) namespace to the bridge so the test process can reach every
//! host. Host `i` is `10.S.T.(i + 1)`, the test process is `10.S.T.254`,
//! where `S.T` is unique per harness (process id and a counter), so tests
//! can run in parallel.
//!
//! Faults:
//! - [`Net::isolate`]: the host's port on the switch goes down; everything
//!   it sends or is sent is dropped (a cut cable), until [`Net::heal`].
//! - [`Net::set_loss`]: an nftables rule in the host's namespace drops a
//!   random share of its UDP packets, both directions (`numgen random`).
//! - [`Net::set_rate`]: a token-bucket filter (`tc ... tbf`) on the host's
//!   link: a slow link whose queue adds delay under load.
//!
//! Why not `tc netem` for delay and loss: this kernel is built without
//! `sch_netem` (`CONFIG_NET_SCH_NETEM` is not set; `tc qdisc add ... netem`
//! answers "Specified qdisc kind is unknown"), so loss comes from nftables
//! and delay from a rate-limited queue. Both are the kernel's own packet
//! path, not a user-space proxy.
//!
//! Everything is removed on drop. Creating namespaces needs CAP_NET_ADMIN:
//! [`Net::create`] returns an error saying why when it cannot, and
//! [`require`] turns that into a skip on a developer's machine and a
//! failure under CI (`CI` set), so CI never passes by skipping.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A set of hosts on one switch.
pub struct Net {
    tag: String,
    subnet: [u8; 2],
    hosts: usize,
}

fn run(args: &[&str]) -> Result<Output, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "`{}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn run_stdin(args: &[&str], input: &str) -> Result<(), String> {
    use std::io::Write;
    let mut child = Command::new(args[0])
        .args(&args[1..])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input.as_bytes())
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Creates a harness or says why it cannot: skipped (returns `None`) on a
/// machine without the privileges, a failure under CI.
pub fn require(hosts: usize) -> Option<Net> {
    match Net::create(hosts) {
        Ok(net) => Some(net),
        Err(why) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED: network namespaces are not available here: {why}");
            None
        }
        Err(why) => panic!("network namespaces are required under CI: {why}"),
    }
}

impl Net {
    /// Creates the switch, `hosts` hosts and the test's own port.
    pub fn create(hosts: usize) -> Result<Net, String> {
        assert!((1..=64).contains(&hosts));
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        // Interface names are at most 15 bytes: "dl" + 6 hex + "r".
        let tag = format!("{:04x}{:02x}", pid & 0xffff, n & 0xff);
        let subnet = [
            100 + (pid % 100) as u8,
            ((pid / 100) % 60 * 4 + n % 4) as u8,
        ];
        let mut net = Net {
            tag,
            subnet,
            hosts: 0,
        };
        let sw = net.switch_ns();
        run(&["ip", "netns", "add", &sw])?;
        run(&["ip", "-n", &sw, "link", "add", "br0", "type", "bridge"])?;
        run(&["ip", "-n", &sw, "link", "set", "br0", "up"])?;
        // The test's port: root side `dl<tag>r`, switch side `r`.
        let root_if = format!("dl{}r", net.tag);
        run(&[
            "ip", "link", "add", &root_if, "type", "veth", "peer", "name", "r", "netns", &sw,
        ])?;
        run(&["ip", "-n", &sw, "link", "set", "r", "master", "br0"])?;
        run(&["ip", "-n", &sw, "link", "set", "r", "up"])?;
        let cidr = format!("{}/24", net.root_ip());
        run(&["ip", "addr", "add", &cidr, "dev", &root_if])?;
        run(&["ip", "link", "set", &root_if, "up"])?;
        for i in 0..hosts {
            let ns = net.host_ns(i);
            run(&["ip", "netns", "add", &ns])?;
            net.hosts = i + 1;
            let port = format!("s{i}");
            run(&[
                "ip", "-n", &ns, "link", "add", "eth0", "type", "veth", "peer", "name", &port,
                "netns", &sw,
            ])?;
            run(&["ip", "-n", &sw, "link", "set", &port, "master", "br0"])?;
            run(&["ip", "-n", &sw, "link", "set", &port, "up"])?;
            let cidr = format!("{}/24", net.host_ip(i));
            run(&["ip", "-n", &ns, "addr", "add", &cidr, "dev", "eth0"])?;
            run(&["ip", "-n", &ns, "link", "set", "eth0", "up"])?;
            run(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(net)
    }

    fn switch_ns(&self) -> String {
        format!("dl{}sw", self.tag)
    }

    /// The namespace of host `i`.
    pub fn host_ns(&self, i: usize) -> String {
        format!("dl{}h{i}", self.tag)
    }

    /// Host `i`'s address.
    pub fn host_ip(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, self.subnet[0], self.subnet[1], i as u8 + 1)
    }

    /// The test process's own address on the switch.
    pub fn root_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, self.subnet[0], self.subnet[1], 254)
    }

    /// A command that runs `program` inside host `i`.
    pub fn command(&self, i: usize, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.host_ns(i)]).arg(program);
        c
    }

    /// Runs `f` on a thread that has entered host `i`'s namespace: sockets
    /// it creates live in that host.
    #[allow(unsafe_code)] // setns: std has no namespace calls
    pub fn in_host<T: Send>(&self, i: usize, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.host_ns(i));
        std::thread::scope(|s| {
            s.spawn(|| {
                let file = std::fs::File::open(&path).expect("namespace file");
                // SAFETY: setns on a valid namespace fd changes only this
                // thread's network namespace; the thread ends after `f`.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .expect("thread in namespace")
        })
    }

    /// Cuts host `i` off: its switch port goes down.
    pub fn isolate(&self, i: usize) {
        run(&[
            "ip",
            "-n",
            &self.switch_ns(),
            "link",
            "set",
            &format!("s{i}"),
            "down",
        ])
        .unwrap();
    }

    /// Reconnects host `i`.
    pub fn heal(&self, i: usize) {
        run(&[
            "ip",
            "-n",
            &self.switch_ns(),
            "link",
            "set",
            &format!("s{i}"),
            "up",
        ])
        .unwrap();
    }

    /// Drops `percent` % of host `i`'s UDP packets in both directions (only
    /// those to or from `port` when given); 0 removes the rule.
    pub fn set_loss(&self, i: usize, percent: u32, port: Option<u16>) {
        let ns = self.host_ns(i);
        // Replacing the whole table keeps this idempotent.
        let _ = run(&[
            "ip", "netns", "exec", &ns, "nft", "delete", "table", "inet", "dlfault",
        ]);
        if percent == 0 {
            return;
        }
        let matcher = match port {
            Some(p) => format!("udp dport {p}"),
            None => "meta l4proto udp".to_string(),
        };
        let rules = format!(
            "table inet dlfault {{\n\
             chain in {{ type filter hook input priority 0; {matcher} numgen random mod 100 < {percent} drop; }}\n\
             chain out {{ type filter hook output priority 0; {matcher} numgen random mod 100 < {percent} drop; }}\n\
             }}\n"
        );
        run_stdin(&["ip", "netns", "exec", &ns, "nft", "-f", "-"], &rules).unwrap();
    }

    /// Limits host `i`'s outgoing link to `kbit` kbit/s (a queue of up to
    /// `latency_ms` builds up behind it); `None` removes the limit.
    pub fn set_rate(&self, i: usize, rate: Option<(u32, u32)>) {
        let ns = self.host_ns(i);
        let _ = run(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
        let _ = run(&["tc", "-n", &ns, "qdisc", "del", "dev", "eth0", "root"]);
        if let Some((kbit, latency_ms)) = rate {
            run(&[
                "tc",
                "-n",
                &ns,
                "qdisc",
                "add",
                "dev",
                "eth0",
                "root",
                "tbf",
                "rate",
                &format!("{kbit}kbit"),
                "burst",
                "16kb",
                "latency",
                &format!("{latency_ms}ms"),
            ])
            .unwrap();
        }
    }
}

impl Net {
    /// `tc -s qdisc show` of host `i`'s link: what the rate limit passed,
    /// dropped and held back (`overlimits`).
    pub fn link_stats(&self, i: usize) -> String {
        let out = run(&[
            "tc",
            "-s",
            "-n",
            &self.host_ns(i),
            "qdisc",
            "show",
            "dev",
            "eth0",
        ])
        .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = run(&["ip", "link", "del", &format!("dl{}r", self.tag)]);
        for i in 0..self.hosts {
            let _ = run(&["ip", "netns", "del", &self.host_ns(i)]);
        }
        let _ = run(&["ip", "netns", "del", &self.switch_ns()]);
    }
}
