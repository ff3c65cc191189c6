#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Crash test: a child process appends with durable acks and reports every
//! acknowledged offset on stdout; the parent SIGKILLs it after a random
//! number of acks, reopens the directory and checks that every acknowledged
//! record is present and intact. The child is this same binary, started
//! with `DROPLINE_CRASH_CHILD` set.
//!
//! Run: `cargo test -p dropline-log --test crash` (rounds and seed can be
//! set with `DROPLINE_CRASH_ROUNDS` and `DROPLINE_CRASH_SEED`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use dropline_log::{AppendRequest, Log, LogConfig, ProducerSeq, Record, TopicConfig, verify};

const CHILD_ENV: &str = "DROPLINE_CRASH_CHILD";
const CHILD_THREADS: u64 = 3;
const ROUNDS_DEFAULT: u64 = 60;
/// Upper bound on acks before the kill, per round.
const ACKS_BEFORE_KILL_MAX: u64 = 120;

const SEGMENT_BYTES: u64 = 64 * 1024;

/// Odd rounds preallocate their segments (zero-filled ahead of the data),
/// even rounds grow them, over the same directory: kills land inside
/// preallocated segments, around spare renames and seal cuts, and each
/// kind of log is reopened by the other configuration.
fn log_config(dir: &Path, round: u64) -> LogConfig {
    let mut c = LogConfig::new(dir);
    // Small segments so that kills also land around rolls and seals.
    c.segment_bytes_max = SEGMENT_BYTES;
    c.preallocate_segments = round % 2 == 1;
    c
}

/// Segment files still holding their preallocated zeros (full length).
fn preallocated_segments(dir: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            n += preallocated_segments(&e.path());
        } else if e.path().extension().is_some_and(|x| x == "log")
            && e.metadata().unwrap().len() == SEGMENT_BYTES
        {
            n += 1;
        }
    }
    n
}

/// The value stored under a key: derived from it, so the parent can check it.
fn value_for(key: &str, i: u64) -> Vec<u8> {
    key.bytes()
        .cycle()
        .take((i * 37 % 600 + 1) as usize)
        .collect()
}

fn child(dir: &Path, round: u64) {
    let log = Arc::new(Log::open(log_config(dir, round)).unwrap());
    log.create_topic("crash", TopicConfig::new(2)).unwrap();
    let out = Arc::new(std::sync::Mutex::new(std::io::stdout()));
    let threads: Vec<_> = (0..CHILD_THREADS)
        .map(|t| {
            let (log, out) = (log.clone(), out.clone());
            std::thread::spawn(move || {
                let p = log.partition("crash", (t % 2) as u32).unwrap();
                for i in 0.. {
                    let keys: Vec<String> = (0..(i % 4 + 1))
                        .map(|j| format!("r{round}-t{t}-i{i}-j{j}"))
                        .collect();
                    let values: Vec<Vec<u8>> = keys.iter().map(|k| value_for(k, i)).collect();
                    let records: Vec<Record<'_>> = keys
                        .iter()
                        .zip(&values)
                        .map(|(k, v)| Record {
                            key: k.as_bytes(),
                            value: v,
                        })
                        .collect();
                    let producer = Some(ProducerSeq {
                        producer_id: round * 100 + t,
                        sequence: i,
                    });
                    let ack = p
                        .append(&AppendRequest {
                            records: &records,
                            producer,
                        })
                        .unwrap();
                    let mut o = out.lock().unwrap();
                    for (n, k) in keys.iter().enumerate() {
                        writeln!(
                            o,
                            "ACK {} {} {} {}",
                            p.id(),
                            ack.base_offset + n as u64,
                            i,
                            k
                        )
                        .unwrap();
                    }
                    o.flush().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

struct Acked {
    partition: u32,
    offset: u64,
    i: u64,
    key: String,
}

fn parse(line: &str) -> Option<Acked> {
    let mut it = line.strip_prefix("ACK ")?.split(' ');
    Some(Acked {
        partition: it.next()?.parse().ok()?,
        offset: it.next()?.parse().ok()?,
        i: it.next()?.parse().ok()?,
        key: it.next()?.to_string(),
    })
}

fn parent() -> Result<u64, String> {
    let seed: u64 = std::env::var("DROPLINE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_d20b);
    let rounds: u64 = std::env::var("DROPLINE_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(ROUNDS_DEFAULT);
    println!("crash test: seed {seed}, {rounds} rounds (DROPLINE_CRASH_SEED to replay)");
    let mut rng = Rng(seed | 1);
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut acked: Vec<Acked> = Vec::new();
    let mut truncations = 0;
    let mut preallocated_seen = 0;
    for round in 0..rounds {
        let kill_after = 1 + rng.next() % ACKS_BEFORE_KILL_MAX;
        let mut child = Command::new(&exe)
            .env(CHILD_ENV, format!("{} {round}", dir.path().display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = 0;
        while seen < kill_after {
            match lines.next() {
                Some(Ok(l)) => {
                    acked.extend(parse(&l));
                    seen += 1;
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "round {round}: child exited before {kill_after} acks"
                    ));
                }
            }
        }
        child.kill().unwrap(); // SIGKILL
        // Acks already in the pipe were acknowledged before the kill.
        for l in lines.map_while(Result::ok) {
            acked.extend(parse(&l));
        }
        child.wait().unwrap();
        preallocated_seen += preallocated_segments(dir.path());

        let log = Log::open(log_config(dir.path(), round))
            .map_err(|e| format!("round {round}: reopen failed: {e}"))?;
        truncations += log.recovery_report().truncations().count();
        let mut stored: BTreeMap<(u32, u64), (Vec<u8>, Vec<u8>)> = BTreeMap::new();
        for part in 0..2 {
            let p = log.partition("crash", part).unwrap();
            let mut next = 0;
            while next < p.durable_offset() {
                for b in p
                    .read(next, 1 << 20)
                    .map_err(|e| format!("round {round}: read failed: {e}"))?
                {
                    for r in b.records() {
                        stored.insert((part, r.offset), (r.key.to_vec(), r.value.to_vec()));
                    }
                    next = b.last_offset() + 1;
                }
            }
        }
        for a in &acked {
            match stored.get(&(a.partition, a.offset)) {
                Some((k, v)) if *k == a.key.as_bytes() && *v == value_for(&a.key, a.i) => {}
                Some(_) => {
                    return Err(format!(
                        "round {round}: acked {}/{} ({}) has different contents",
                        a.partition, a.offset, a.key
                    ));
                }
                None => {
                    return Err(format!(
                        "round {round}: acked {}/{} ({}) is missing",
                        a.partition, a.offset, a.key
                    ));
                }
            }
        }
        log.close().unwrap();
        let report = verify(dir.path()).unwrap();
        if !report.is_clean() {
            return Err(format!(
                "round {round}: verify after recovery: {:?}",
                report.problems
            ));
        }
    }
    println!(
        "crash test: {} acked records checked, {truncations} torn tails truncated, \
         {preallocated_seen} preallocated segments found after kills",
        acked.len()
    );
    if rounds >= 2 && preallocated_seen == 0 {
        return Err("no kill left a preallocated segment: the test did not exercise them".into());
    }
    Ok(rounds)
}

fn main() {
    if let Ok(arg) = std::env::var(CHILD_ENV) {
        let (dir, round) = arg.rsplit_once(' ').unwrap();
        child(Path::new(dir), round.parse().unwrap());
        return;
    }
    match parent() {
        Ok(_) => println!("crash: 1 passed, 0 failed"),
        Err(e) => {
            println!("crash test failed: {e}");
            println!("crash: 0 passed, 1 failed");
            std::process::exit(1);
        }
    }
}
