//! `dropline bench http`: tracking lookups against a running HTTP edge.
//!
//! What it measures: K keep-alive HTTP/1.1 connections, each with one
//! request in flight (closed loop), asking for shipments with the ETag they
//! already hold (`If-None-Match`), so almost every answer is a 304 — the
//! steady state of tracking pages and storefront widgets polling during a
//! drop. The client is a minimal raw-TCP HTTP/1.1 client (no pooling or
//! parsing layers to measure), in the same process as the server, sharing
//! the machine. Latency is per request (send to last byte), in an HDR
//! histogram; being closed-loop, it is service latency, not latency under
//! an open arrival schedule.
//!
//! The SSE probe: one stream open on one parcel; for each probe a view
//! change is appended to `shipment-views` (durably, as the engine does) and
//! the time until the event arrives on the stream is recorded.
//!
//! Setup: a fresh log with N shipment views appended in batches (the
//! engine's output; no orders needed for public lookups), the server with
//! the rate limit off.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dropline_adapters::http::{ContactSealer, HttpConfig, HttpState, serve_http};
use dropline_log::{AppendRequest, Durability, Log, LogConfig, LogError, Record};
use dropline_operators::model::{Carrier, Status, SubStatus, partition_for};
use dropline_operators::ops::text::InlineStr;
use dropline_operators::ops::{
    LastEvent, LocationSummary, ShipmentView, TrackingNumber, ViewChange,
};
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::report::{Report, latency_histogram_us, max_rss_mb};

/// Arguments of the HTTP benchmark.
#[derive(Debug, Clone)]
pub struct HttpBenchArgs {
    /// Shipments in the view store.
    pub shipments: u32,
    /// Concurrent keep-alive connections.
    pub connections: u32,
    /// Seconds of load.
    pub seconds: u64,
    /// SSE latency probes.
    pub sse_probes: u32,
    /// Partitions of the topics.
    pub partitions: u32,
    /// Server runtime threads.
    pub server_threads: usize,
    /// Client runtime threads.
    pub client_threads: usize,
    /// Directory of the log (created; removed first if it exists).
    pub dir: std::path::PathBuf,
}

impl Default for HttpBenchArgs {
    fn default() -> Self {
        HttpBenchArgs {
            shipments: 100_000,
            connections: 64,
            seconds: 10,
            sse_probes: 200,
            partitions: 4,
            server_threads: 2,
            client_threads: 2,
            dir: "target/bench-http".into(),
        }
    }
}

/// Why the benchmark failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpBenchError {
    /// The log failed.
    #[error("log: {0}")]
    Log(#[from] LogError),
    /// The engine's topic setup failed.
    #[error("topics: {0}")]
    Topics(String),
    /// Socket I/O failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The server did not start.
    #[error("server: {0}")]
    Server(String),
    /// An answer was not what the protocol says.
    #[error("unexpected response: {0}")]
    Protocol(String),
}

/// Largest response head accepted by the client, bytes.
const RESPONSE_HEAD_BYTES_MAX: usize = 16 * 1024;
/// Views appended per batch during setup.
const SETUP_BATCH_RECORDS: usize = 5_000;

fn tracking_number(i: u32) -> String {
    format!("1ZBENCH{i:011}")
}

fn view(tn: &str, i: u64) -> ShipmentView {
    let t = 1_732_000_000_000 + i64::try_from(i).unwrap_or(0) * 1000;
    ShipmentView {
        tracking_number: TrackingNumber::truncated(tn),
        change: ViewChange::Scan,
        updated_log_ms: u64::try_from(t).unwrap_or(0),
        carrier: Some(Carrier::Ups),
        status: Some(Status::InTransit),
        sub_status: SubStatus::ArrivalScan,
        last_event: Some(LastEvent {
            offset: i,
            occurred_at_ms: t,
            location: Some(LocationSummary {
                city: InlineStr::truncated("Memphis"),
                region: InlineStr::truncated("TN"),
                postal_code: InlineStr::truncated("38118"),
                country: InlineStr::truncated("US"),
            }),
        }),
        promised_from_ms: Some(t),
        promised_to_ms: Some(t + 3 * 86_400_000),
        estimate_ms: Some(t + 2 * 86_400_000),
        late: false,
        stale: false,
        open_exception: None,
    }
}

fn setup(log: &Log, args: &HttpBenchArgs) -> Result<(), HttpBenchError> {
    dropline_engine::ensure_topics(log, args.partitions)
        .map_err(|e| HttpBenchError::Topics(e.to_string()))?;
    let mut per_partition: Vec<Vec<(String, Vec<u8>)>> = vec![Vec::new(); args.partitions as usize];
    for i in 0..args.shipments {
        let tn = tracking_number(i);
        let mut value = Vec::with_capacity(128);
        view(&tn, u64::from(i)).encode(&mut value);
        per_partition[partition_for(tn.as_bytes(), args.partitions) as usize].push((tn, value));
    }
    for (p, items) in per_partition.iter().enumerate() {
        let part = log.partition("shipment-views", p as u32)?;
        for chunk in items.chunks(SETUP_BATCH_RECORDS) {
            let records: Vec<Record<'_>> = chunk
                .iter()
                .map(|(k, v)| Record {
                    key: k.as_bytes(),
                    value: v,
                })
                .collect();
            part.append(&AppendRequest {
                records: &records,
                producer: None,
            })?;
        }
    }
    Ok(())
}

/// A keep-alive HTTP/1.1 connection.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// Status, ETag and body length of one response.
struct Answer {
    status: u16,
    etag: Option<String>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Result<Conn, HttpBenchError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(4096),
        })
    }

    async fn get(
        &mut self,
        path: &str,
        etag: Option<&str>,
        req: &mut Vec<u8>,
    ) -> Result<Answer, HttpBenchError> {
        req.clear();
        req.extend_from_slice(b"GET ");
        req.extend_from_slice(path.as_bytes());
        req.extend_from_slice(b" HTTP/1.1\r\nHost: bench\r\n");
        if let Some(e) = etag {
            req.extend_from_slice(b"If-None-Match: ");
            req.extend_from_slice(e.as_bytes());
            req.extend_from_slice(b"\r\n");
        }
        req.extend_from_slice(b"\r\n");
        self.stream.write_all(req).await?;
        // Read the head.
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if self.buf.len() > RESPONSE_HEAD_BYTES_MAX {
                return Err(HttpBenchError::Protocol("response head too large".into()));
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(HttpBenchError::Protocol("connection closed".into()));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        };
        let head = std::str::from_utf8(&self.buf[..head_end])
            .map_err(|_| HttpBenchError::Protocol("non-UTF-8 head".into()))?;
        let status: u16 = head
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| HttpBenchError::Protocol(format!("bad status line: {head:?}")))?;
        let mut length = 0usize;
        let mut etag = None;
        for line in head.lines().skip(1) {
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                } else if k.eq_ignore_ascii_case("etag") {
                    etag = Some(v.trim().to_string());
                }
            }
        }
        while self.buf.len() < head_end + length {
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(HttpBenchError::Protocol("connection closed in body".into()));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        self.buf.drain(..head_end + length);
        Ok(Answer { status, etag })
    }
}

struct LoadResult {
    requests: u64,
    not_modified: u64,
    latency_us: Histogram<u64>,
    elapsed: Duration,
}

async fn load(
    addr: SocketAddr,
    args: &HttpBenchArgs,
    etags: Arc<Vec<String>>,
) -> Result<LoadResult, HttpBenchError> {
    let stop = Arc::new(AtomicBool::new(false));
    let not_modified = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let start = Instant::now();
    for c in 0..args.connections {
        let (stop, etags, nm) = (stop.clone(), etags.clone(), not_modified.clone());
        let shipments = args.shipments.max(1);
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await?;
            let mut h =
                latency_histogram_us().map_err(|e| HttpBenchError::Protocol(e.to_string()))?;
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ u64::from(c);
            let mut req = Vec::with_capacity(128);
            let mut path = String::with_capacity(64);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x % u64::from(shipments)) as u32;
                path.clear();
                path.push_str("/v1/shipments/ups/");
                path.push_str(&tracking_number(i));
                let t0 = Instant::now();
                let a = conn
                    .get(&path, etags.get(i as usize).map(String::as_str), &mut req)
                    .await?;
                h.record(
                    u64::try_from(t0.elapsed().as_micros())
                        .unwrap_or(u64::MAX)
                        .max(1),
                )
                .map_err(|e| HttpBenchError::Protocol(e.to_string()))?;
                if a.status == 304 {
                    nm.fetch_add(1, Ordering::Relaxed);
                } else if a.status != 200 {
                    return Err(HttpBenchError::Protocol(format!("status {}", a.status)));
                }
                n += 1;
            }
            Ok::<(u64, Histogram<u64>), HttpBenchError>((n, h))
        }));
    }
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latency_us =
        latency_histogram_us().map_err(|e| HttpBenchError::Protocol(e.to_string()))?;
    let mut requests = 0;
    for t in tasks {
        let (n, h) = t
            .await
            .map_err(|e| HttpBenchError::Protocol(e.to_string()))??;
        requests += n;
        latency_us
            .add(&h)
            .map_err(|e| HttpBenchError::Protocol(e.to_string()))?;
    }
    Ok(LoadResult {
        requests,
        not_modified: not_modified.load(Ordering::Relaxed),
        latency_us,
        elapsed: start.elapsed(),
    })
}

/// Reads SSE events from a raw stream: returns after one `shipment` event.
async fn next_sse_event(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(), HttpBenchError> {
    loop {
        if let Some(i) = buf.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = buf.drain(..i + 2).collect();
            if block.windows(15).any(|w| w == b"event: shipment") {
                return Ok(());
            }
            continue;
        }
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(HttpBenchError::Protocol("SSE stream closed".into()));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn sse_probe(
    addr: SocketAddr,
    log: Arc<Log>,
    args: &HttpBenchArgs,
) -> Result<Histogram<u64>, HttpBenchError> {
    let mut h = latency_histogram_us().map_err(|e| HttpBenchError::Protocol(e.to_string()))?;
    if args.sse_probes == 0 || args.shipments == 0 {
        return Ok(h);
    }
    let tn = tracking_number(0);
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let req = format!(
        "GET /v1/shipments/ups/{tn}/events HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n"
    );
    stream.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    next_sse_event(&mut stream, &mut buf).await?;
    let part = log.partition(
        "shipment-views",
        partition_for(tn.as_bytes(), args.partitions),
    )?;
    for k in 0..args.sse_probes {
        let mut value = Vec::with_capacity(128);
        view(&tn, u64::from(args.shipments) + u64::from(k)).encode(&mut value);
        let t0 = Instant::now();
        let p = part.clone();
        let key = tn.clone();
        tokio::task::spawn_blocking(move || {
            p.append(&AppendRequest {
                records: &[Record {
                    key: key.as_bytes(),
                    value: &value,
                }],
                producer: None,
            })
        })
        .await
        .map_err(|e| HttpBenchError::Protocol(e.to_string()))??;
        next_sse_event(&mut stream, &mut buf).await?;
        h.record(
            u64::try_from(t0.elapsed().as_micros())
                .unwrap_or(u64::MAX)
                .max(1),
        )
        .map_err(|e| HttpBenchError::Protocol(e.to_string()))?;
    }
    Ok(h)
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Runs the benchmark and returns its report.
pub fn run(args: &HttpBenchArgs) -> Result<Report, HttpBenchError> {
    if args.dir.exists() {
        std::fs::remove_dir_all(&args.dir)?;
    }
    let mut config = LogConfig::new(args.dir.join("log"));
    config.durability = Durability::Fsync;
    let log = Arc::new(Log::open(config)?);
    let t_setup = Instant::now();
    setup(&log, args)?;
    let setup_s = t_setup.elapsed().as_secs_f64();

    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.server_threads.max(1))
        .thread_name("http-server")
        .enable_all()
        .build()?;
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads.max(1))
        .thread_name("http-client")
        .enable_all()
        .build()?;
    let sealer = ContactSealer::from_key(&[0x42; 32]);
    let mut http = HttpConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
    http.rate_limit = None;
    http.connections_max = (args.connections as usize + 16).max(http.connections_max);
    let state = HttpState::new(log.clone(), sealer);
    let handle = server_rt
        .block_on(async {
            let h = serve_http(http, state).await?;
            h.ready().await;
            Ok::<_, dropline_adapters::http::HttpError>(h)
        })
        .map_err(|e| HttpBenchError::Server(e.to_string()))?;
    let addr = handle.local_addr();
    let shipments_loaded = handle.views().len();

    let (etags, result, sse) = client_rt.block_on(async {
        // Learn every ETag once (the clients' caches).
        let mut conn = Conn::open(addr).await?;
        let mut req = Vec::new();
        let mut etags = Vec::with_capacity(args.shipments as usize);
        for i in 0..args.shipments {
            let a = conn
                .get(
                    &format!("/v1/shipments/ups/{}", tracking_number(i)),
                    None,
                    &mut req,
                )
                .await?;
            if a.status != 200 {
                return Err(HttpBenchError::Protocol(format!(
                    "warm-up status {}",
                    a.status
                )));
            }
            etags.push(a.etag.unwrap_or_default());
        }
        let etags = Arc::new(etags);
        let result = load(addr, args, etags.clone()).await?;
        let sse = sse_probe(addr, log.clone(), args).await?;
        Ok::<_, HttpBenchError>((etags, result, sse))
    })?;
    drop(etags);
    let _ = server_rt.block_on(handle.shutdown());

    let secs = result.elapsed.as_secs_f64().max(1e-9);
    let mut r = Report::new("http");
    r.set("shipments", args.shipments)
        .set("shipments_loaded", shipments_loaded as u64)
        .set("connections", args.connections)
        .set("server_threads", args.server_threads as u64)
        .set("client_threads", args.client_threads as u64)
        .set_f64("setup_s", setup_s, 2)
        .set("requests", result.requests)
        .set_f64("seconds", secs, 2)
        .set_f64("requests_per_s", result.requests as f64 / secs, 0)
        .set_f64(
            "latency_ms_p50",
            ms(result.latency_us.value_at_quantile(0.50)),
            3,
        )
        .set_f64(
            "latency_ms_p99",
            ms(result.latency_us.value_at_quantile(0.99)),
            3,
        )
        .set_f64(
            "latency_ms_p999",
            ms(result.latency_us.value_at_quantile(0.999)),
            3,
        )
        .set_f64("latency_ms_max", ms(result.latency_us.max()), 3)
        .set_f64(
            "status_304_ratio",
            result.not_modified as f64 / (result.requests.max(1) as f64),
            4,
        )
        .set("sse_probes", sse.len())
        .set_f64("sse_latency_ms_p50", ms(sse.value_at_quantile(0.50)), 3)
        .set_f64("sse_latency_ms_p99", ms(sse.value_at_quantile(0.99)), 3);
    if let Some(rss) = max_rss_mb() {
        r.set_f64("max_rss_mb", rss, 1);
    }
    r.note(
        "closed loop: one request in flight per connection; client and server share the machine",
    );
    r.note("SSE latency: durable append (fsync) to shipment-views -> event read on the stream");
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_run_reports_the_json_fields() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let args = HttpBenchArgs {
            shipments: 200,
            connections: 4,
            seconds: 1,
            sse_probes: 3,
            dir: dir.path().join("b"),
            ..HttpBenchArgs::default()
        };
        let r = run(&args).unwrap_or_else(|e| panic!("{e}"));
        let text = r.render();
        let json: serde_json::Value = serde_json::from_str(text.lines().last().unwrap_or(""))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(json["bench"], "http");
        assert!(json["requests"].as_u64().unwrap_or(0) > 0);
        assert_eq!(json["status_304_ratio"], 1.0);
        assert_eq!(json["sse_probes"], 3);
        for k in [
            "requests_per_s",
            "latency_ms_p50",
            "latency_ms_p99",
            "sse_latency_ms_p50",
            "sse_latency_ms_p99",
        ] {
            assert!(json[k].is_number(), "{k} missing");
        }
    }
}
