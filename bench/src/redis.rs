//! Redis Streams as a same-run reference: start Debian's `redis-server` on
//! loopback with an append-only file, XADD the same 250-byte records from
//! several pipelined connections, and time it.
//!
//! Why Redis Streams: it is the log infra teams reach for when Kafka is too
//! heavy, and with `appendfsync always` it makes the same promise as our
//! durable ack (an acknowledged entry survives a crash); `everysec` is the
//! common production setting that may lose the last second.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::report::latency_histogram_us;

/// Pipeline depth per connection.
pub const PIPELINE_DEPTH: usize = 64;
/// Client connections.
pub const CONNECTIONS: u32 = 16;
/// How long a connection attempt may take.
const CONNECT_TIMEOUT_MS: u64 = 5_000;

/// Redis's `appendfsync` setting for the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendFsync {
    /// fsync before every reply: the same promise as a durable ack.
    Always,
    /// fsync once per second: replies may precede durability.
    Everysec,
}

impl AppendFsync {
    /// The setting as redis.conf spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            AppendFsync::Always => "always",
            AppendFsync::Everysec => "everysec",
        }
    }
}

/// Errors of a Redis reference run.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// `redis-server` could not be started (not installed?).
    #[error("cannot start redis-server ({0}); install Debian's redis-server package")]
    NotInstalled(std::io::Error),
    /// The server exited before printing its readiness line.
    #[error("redis-server exited before it was ready")]
    NotReady,
    /// Socket or file I/O failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A reply was not the stream entry id XADD returns.
    #[error("unexpected reply to XADD: {reply:?}")]
    UnexpectedReply {
        /// The reply line.
        reply: String,
    },
    /// A client thread panicked.
    #[error("redis client thread panicked")]
    ClientPanicked,
    /// A histogram could not be created.
    #[error("histogram: {0}")]
    Histogram(#[from] hdrhistogram::CreationError),
}

/// Writes the key of record `index` of connection `connection`.
pub type KeyWriter = fn(&mut [u8], u32, u64);

/// What one Redis run measured.
#[derive(Debug)]
pub struct RedisRun {
    /// Entries acknowledged.
    pub entries: u64,
    /// Seconds from the first write to the last reply.
    pub seconds: f64,
    /// Per entry: from its pipeline burst being sent to the burst's last
    /// reply, in microseconds.
    pub ack_latency_us: Histogram<u64>,
}

impl RedisRun {
    /// Entries per second.
    pub fn entries_per_s(&self) -> f64 {
        self.entries as f64 / self.seconds.max(f64::MIN_POSITIVE)
    }
}

/// Starts `redis-server` in a fresh directory under `dir`, XADDs `events`
/// entries (`key_bytes`-byte key from `write_key`, then `value`) from
/// [`CONNECTIONS`] connections pipelined [`PIPELINE_DEPTH`] deep, stops the
/// server and removes its files.
pub fn xadd_run(
    dir: &Path,
    fsync: AppendFsync,
    events: u64,
    key_bytes: usize,
    write_key: KeyWriter,
    value: &[u8],
) -> Result<RedisRun, RedisError> {
    let port = free_port()?;
    let data = dir.join(format!("redis-{}-{}", fsync.as_str(), std::process::id()));
    std::fs::create_dir_all(&data)?;
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--appendonly", "yes", "--appendfsync", fsync.as_str()])
        .args(["--save", "", "--dir"])
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&data);
            return Err(RedisError::NotInstalled(e));
        }
    };
    let result = drive(&mut child, port, events, key_bytes, write_key, value);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&data);
    result
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn drive(
    child: &mut Child,
    port: u16,
    events: u64,
    key_bytes: usize,
    write_key: KeyWriter,
    value: &[u8],
) -> Result<RedisRun, RedisError> {
    // Wait for the readiness line instead of sleeping.
    let stdout = child.stdout.take().ok_or(RedisError::NotReady)?;
    let mut lines = BufReader::new(stdout).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.contains("Ready to accept connections") => break,
            Some(Ok(_)) => {}
            _ => return Err(RedisError::NotReady),
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let per_connection = events.div_ceil(u64::from(CONNECTIONS));
    let start = Instant::now();
    let handles: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            let value = value.to_vec();
            let n = per_connection.min(events.saturating_sub(per_connection * u64::from(c)));
            std::thread::spawn(move || client(addr, c, n, key_bytes, write_key, &value))
        })
        .collect();
    let mut entries = 0u64;
    let mut ack_latency_us = latency_histogram_us()?;
    for h in handles {
        let (n, hist) = h.join().map_err(|_| RedisError::ClientPanicked)??;
        entries += n;
        let _ = ack_latency_us.add(&hist);
    }
    Ok(RedisRun {
        entries,
        seconds: start.elapsed().as_secs_f64(),
        ack_latency_us,
    })
}

fn client(
    addr: SocketAddr,
    connection: u32,
    n: u64,
    key_bytes: usize,
    write_key: KeyWriter,
    value: &[u8],
) -> Result<(u64, Histogram<u64>), RedisError> {
    let mut hist = latency_histogram_us()?;
    let stream = TcpStream::connect_timeout(&addr, Duration::from_millis(CONNECT_TIMEOUT_MS))?;
    stream.set_nodelay(true)?;
    let mut writer = std::io::BufWriter::new(stream.try_clone()?);
    let mut reader = BufReader::new(stream);
    let mut key = vec![0u8; key_bytes];
    let mut line = String::new();
    let mut sent = 0u64;
    while sent < n {
        let burst = (n - sent).min(PIPELINE_DEPTH as u64);
        let started = Instant::now();
        for i in sent..sent + burst {
            write_key(&mut key, connection, i);
            // XADD carrier-events * k <key> v <value>
            write!(
                writer,
                "*7\r\n$4\r\nXADD\r\n$14\r\ncarrier-events\r\n$1\r\n*\r\n$1\r\nk\r\n${key_bytes}\r\n"
            )?;
            writer.write_all(&key)?;
            write!(writer, "\r\n$1\r\nv\r\n${}\r\n", value.len())?;
            writer.write_all(value)?;
            writer.write_all(b"\r\n")?;
        }
        writer.flush()?;
        for _ in 0..burst {
            line.clear();
            reader.read_line(&mut line)?;
            if !line.starts_with('$') {
                return Err(RedisError::UnexpectedReply {
                    reply: line.trim_end().to_string(),
                });
            }
            line.clear();
            reader.read_line(&mut line)?;
        }
        let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let _ = hist.record_n(us.max(1), burst);
        sent += burst;
    }
    Ok((sent, hist))
}
