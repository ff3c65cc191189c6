//! The network-namespace harness the cluster's network-fault tests stand
//! on: hosts reach each other and the test process, a cut link drops
//! everything until healed, and the loss rule drops about the share asked.
//!
//! No sleeps: absence is shown by ordering. Packets sent while a link is
//! cut are followed, after healing, by a marker sent until it arrives;
//! the path is first-in first-out, so anything that had survived the cut
//! would arrive before the marker.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod netns_support;

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use netns_support::{Net, require};

const DATA_PORT: u16 = 7001;
const MARK_PORT: u16 = 7002;

/// A socket with a large receive buffer (so nothing is dropped for lack of
/// room) and a receive timeout that bounds a hung run.
#[allow(unsafe_code)] // setsockopt: std has no SO_RCVBUFFORCE
fn socket(addr: SocketAddr) -> UdpSocket {
    let s = UdpSocket::bind(addr).unwrap();
    let size: libc::c_int = 16 << 20;
    // SAFETY: a valid socket and a pointer to an int of the right size.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_RCVBUFFORCE: {}", std::io::Error::last_os_error());
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// Receives until `marker` arrives on `mark`, re-sending it from `from`
/// every 50 ms of silence; returns the data payloads that arrived first.
fn drain_until_marker(
    data: &UdpSocket,
    mark: &UdpSocket,
    from: &UdpSocket,
    to_mark: SocketAddr,
    marker: &[u8],
) -> Vec<Vec<u8>> {
    mark.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut buf = [0u8; 256];
    for _ in 0..600 {
        from.send_to(marker, to_mark).unwrap();
        match mark.recv_from(&mut buf) {
            Ok((n, _)) if &buf[..n] == marker => {
                data.set_nonblocking(true).unwrap();
                let mut got = Vec::new();
                while let Ok((n, _)) = data.recv_from(&mut buf) {
                    got.push(buf[..n].to_vec());
                }
                data.set_nonblocking(false).unwrap();
                return got;
            }
            _ => {}
        }
    }
    panic!("the marker never arrived (30 s)");
}

#[test]
fn hosts_reach_each_other_and_the_test_process() {
    let Some(net) = require(2) else { return };
    let to = SocketAddr::new(net.host_ip(0).into(), DATA_PORT);
    let rx = net.in_host(0, || socket(to));
    let tx = net.in_host(1, || socket(SocketAddr::new(net.host_ip(1).into(), 0)));
    tx.send_to(b"from host 1", to).unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = rx.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"from host 1");
    assert_eq!(from.ip(), net.host_ip(1));
    // The test process itself, from its own namespace.
    let me = socket(SocketAddr::new(net.root_ip().into(), 0));
    me.send_to(b"from the test", to).unwrap();
    let (n, from) = rx.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"from the test");
    assert_eq!(from.ip(), net.root_ip());
    // And a child process started inside host 1 sees host 1's address.
    let out = net
        .command(1, "ip")
        .args(["-4", "-o", "addr", "show", "eth0"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&net.host_ip(1).to_string()));
}

#[test]
fn an_isolated_host_receives_nothing_until_healed() {
    let Some(net) = require(2) else { return };
    let data_addr = SocketAddr::new(net.host_ip(0).into(), DATA_PORT);
    let mark_addr = SocketAddr::new(net.host_ip(0).into(), MARK_PORT);
    let (data, mark) = net.in_host(0, || (socket(data_addr), socket(mark_addr)));
    let tx = net.in_host(1, || socket(SocketAddr::new(net.host_ip(1).into(), 0)));
    // Connected first, so neighbour entries are resolved before the cut.
    assert!(drain_until_marker(&data, &mark, &tx, mark_addr, b"ready").is_empty());

    net.isolate(0);
    for i in 0..50u32 {
        tx.send_to(format!("cut-{i}").as_bytes(), data_addr)
            .unwrap();
    }
    net.heal(0);
    let leaked = drain_until_marker(&data, &mark, &tx, mark_addr, b"healed");
    assert!(
        leaked.is_empty(),
        "{} packets crossed a cut link",
        leaked.len()
    );

    // Healed: everything gets through again.
    for i in 0..50u32 {
        tx.send_to(format!("ok-{i}").as_bytes(), data_addr).unwrap();
    }
    let got = drain_until_marker(&data, &mark, &tx, mark_addr, b"done");
    assert_eq!(got.len(), 50);
}

#[test]
fn the_loss_rule_drops_about_the_share_asked_and_is_removed() {
    let Some(net) = require(2) else { return };
    let data_addr = SocketAddr::new(net.host_ip(0).into(), DATA_PORT);
    let mark_addr = SocketAddr::new(net.host_ip(0).into(), MARK_PORT);
    let (data, mark) = net.in_host(0, || (socket(data_addr), socket(mark_addr)));
    let tx = net.in_host(1, || socket(SocketAddr::new(net.host_ip(1).into(), 0)));
    assert!(drain_until_marker(&data, &mark, &tx, mark_addr, b"ready").is_empty());

    // 30 % loss on the data port only (the markers pass untouched).
    net.set_loss(0, 30, Some(DATA_PORT));
    const SENT: usize = 2_000;
    for i in 0..SENT {
        tx.send_to(format!("d-{i}").as_bytes(), data_addr).unwrap();
    }
    let got = drain_until_marker(&data, &mark, &tx, mark_addr, b"lossy").len();
    // Binomial(2000, 0.7): mean 1400, standard deviation 20.5; the bounds
    // are more than ten deviations away.
    assert!(
        (1_150..=1_650).contains(&got),
        "{got} of {SENT} arrived at 30 % loss"
    );

    net.set_loss(0, 0, None);
    for i in 0..SENT {
        tx.send_to(format!("e-{i}").as_bytes(), data_addr).unwrap();
    }
    let got = drain_until_marker(&data, &mark, &tx, mark_addr, b"clean").len();
    assert_eq!(got, SENT, "loss rule still active after removal");
}

#[test]
fn a_rate_limit_is_installed_on_the_hosts_link_and_removed() {
    let Some(net) = require(1) else { return };
    let show = |net: &Net| {
        let out = std::process::Command::new("tc")
            .args(["-n", &net.host_ns(0), "qdisc", "show", "dev", "eth0"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    net.set_rate(0, Some((800, 200)));
    let with = show(&net);
    assert!(with.contains("tbf") && with.contains("800Kbit"), "{with}");
    net.set_rate(0, None);
    assert!(!show(&net).contains("tbf"));
}
