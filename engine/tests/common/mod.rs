//! A small deterministic processor for the engine's tests: per-key counts,
//! a "notification" every third record of a key, debounced digests released
//! by ticks, drop-mode decisions and dead letters for empty values. It
//! exercises every path of the engine (records, ticks, control, snapshots)
//! without depending on the operator chain.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::collections::BTreeMap;

use dropline_engine::{
    ControlRecord, OutputSink, OutputTopic, Processor, ProcessorFactory, SourceRef,
};
use dropline_operators::model::{Channel, Priority};

/// Debounce window of the digest, in log-time ms.
pub const DIGEST_AFTER_MS: u64 = 50;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct KeyState {
    count: u64,
    pending_since_ms: Option<u64>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CountingProcessor {
    partition: u32,
    keys: BTreeMap<Vec<u8>, KeyState>,
    drop_mode: bool,
    opt_outs: u64,
}

impl Processor for CountingProcessor {
    fn on_record(&mut self, src: SourceRef, key: &[u8], value: &[u8], out: &mut OutputSink) {
        if value.is_empty() {
            out.push_with(OutputTopic::DeadLetters, key, |v| {
                v.extend_from_slice(
                    format!("empty value at {}@{}", src.partition, src.offset).as_bytes(),
                )
            });
            return;
        }
        let s = self.keys.entry(key.to_vec()).or_default();
        s.count += 1;
        let count = s.count;
        s.pending_since_ms.get_or_insert(src.log_time_ms);
        out.push_with(OutputTopic::ShipmentViews, key, |v| {
            v.extend_from_slice(
                format!("count={count} last={:?}@{}", src.input, src.offset).as_bytes(),
            )
        });
        if count.is_multiple_of(3) {
            let priority = if self.drop_mode {
                Priority::Low
            } else {
                Priority::Normal
            };
            out.push_with(OutputTopic::Notify(Channel::Sms, priority), key, |v| {
                v.extend_from_slice(
                    format!(
                        "id={}:{}:{}",
                        String::from_utf8_lossy(key),
                        src.partition,
                        src.offset
                    )
                    .as_bytes(),
                )
            });
        }
    }

    fn on_tick(&mut self, log_time_ms: u64, out: &mut OutputSink) {
        for (key, s) in &mut self.keys {
            if let Some(since) = s.pending_since_ms
                && log_time_ms >= since + DIGEST_AFTER_MS
            {
                s.pending_since_ms = None;
                let count = s.count;
                out.push_with(
                    OutputTopic::Notify(Channel::Email, Priority::Low),
                    key,
                    |v| {
                        v.extend_from_slice(
                            format!("digest count={count} at={log_time_ms}").as_bytes(),
                        )
                    },
                );
            }
        }
    }

    fn on_control(&mut self, src: SourceRef, record: &ControlRecord<'_>, out: &mut OutputSink) {
        if let ControlRecord::OptOut { buyer_id, .. } = record {
            self.opt_outs += 1;
            out.push(
                OutputTopic::Decisions,
                buyer_id.as_bytes(),
                format!("opt-out@{}", src.offset).as_bytes(),
            );
        }
    }

    fn set_drop_mode(&mut self, on: bool, log_time_ms: u64, out: &mut OutputSink) {
        self.drop_mode = on;
        out.push(
            OutputTopic::Decisions,
            b"drop-mode",
            format!("{on}@{log_time_ms}").as_bytes(),
        );
    }

    fn snapshot(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.partition.to_le_bytes());
        out.push(u8::from(self.drop_mode));
        out.extend_from_slice(&self.opt_outs.to_le_bytes());
        out.extend_from_slice(&(self.keys.len() as u64).to_le_bytes());
        for (k, s) in &self.keys {
            out.extend_from_slice(&(k.len() as u32).to_le_bytes());
            out.extend_from_slice(k);
            out.extend_from_slice(&s.count.to_le_bytes());
            out.extend_from_slice(&s.pending_since_ms.map_or(u64::MAX, |t| t).to_le_bytes());
        }
    }

    fn state_bytes(&self) -> usize {
        self.keys.keys().map(|k| k.len() + 40).sum::<usize>() + 32
    }
}

#[derive(Debug, thiserror::Error)]
#[error("bad counting snapshot at byte {at}")]
pub struct BadSnapshot {
    at: usize,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct CountingFactory;

impl ProcessorFactory for CountingFactory {
    type Processor = CountingProcessor;
    type RestoreError = BadSnapshot;

    fn create(&self, partition: u32, _partitions: u32) -> CountingProcessor {
        CountingProcessor {
            partition,
            ..CountingProcessor::default()
        }
    }

    fn restore(
        &self,
        partition: u32,
        _partitions: u32,
        b: &[u8],
    ) -> Result<CountingProcessor, BadSnapshot> {
        let mut at = 0usize;
        let mut take = |n: usize| -> Result<&[u8], BadSnapshot> {
            let s = b.get(at..at + n).ok_or(BadSnapshot { at })?;
            at += n;
            Ok(s)
        };
        let u64_of = |s: &[u8]| u64::from_le_bytes(s.try_into().unwrap_or([0; 8]));
        let p = u32::from_le_bytes(take(4)?.try_into().unwrap_or([0; 4]));
        if p != partition {
            return Err(BadSnapshot { at: 0 });
        }
        let drop_mode = take(1)?[0] != 0;
        let opt_outs = u64_of(take(8)?);
        let n = u64_of(take(8)?);
        let mut keys = BTreeMap::new();
        for _ in 0..n {
            let len = u32::from_le_bytes(take(4)?.try_into().unwrap_or([0; 4])) as usize;
            let k = take(len)?.to_vec();
            let count = u64_of(take(8)?);
            let since = u64_of(take(8)?);
            keys.insert(
                k,
                KeyState {
                    count,
                    pending_since_ms: (since != u64::MAX).then_some(since),
                },
            );
        }
        Ok(CountingProcessor {
            partition,
            keys,
            drop_mode,
            opt_outs,
        })
    }
}

/// A tiny seeded PRNG (SplitMix64) so the tests need no extra crate.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `p_per_mille / 1000`.
    pub fn chance(&mut self, p_per_mille: u64) -> bool {
        self.below(1000) < p_per_mille
    }
}

pub mod logs {
    //! Filling a real log with a small workload and reading the engine's
    //! outputs back.

    use std::collections::BTreeMap;
    use std::path::Path;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use dropline_engine::{InputKind, OutputTopic, TICK_VALUE, ensure_topics};
    use dropline_log::{AppendRequest, Clock, Log, LogConfig, Record};
    use dropline_operators::model::partition_for;

    use super::Rng;

    /// Output records per (topic, partition, producer) as strings.
    pub type Outputs = BTreeMap<(String, u32, u64), Vec<String>>;

    /// A log clock that advances one millisecond per reading, so every
    /// batch has its own log time and tests never depend on the wall clock.
    #[derive(Debug)]
    pub struct StepClock(pub AtomicU64);

    impl Clock for StepClock {
        fn now_ms(&self) -> u64 {
            self.0.fetch_add(1, Ordering::Relaxed)
        }
    }

    /// Opens a log whose clock continues after the newest log time in it.
    pub fn open(dir: &Path) -> Log {
        open_with(dir, |_| {})
    }

    /// As [`open`], with `customize` applied to the configuration (a fault
    /// injector, say).
    pub fn open_with(dir: &Path, customize: impl FnOnce(&mut LogConfig)) -> Log {
        let probe = Log::open(LogConfig::new(dir)).unwrap();
        let mut newest = 1_700_000_000_000u64;
        for t in probe.topics() {
            for p in 0..t.config.partitions {
                let part = probe.partition(&t.name, p).unwrap();
                let next = part.next_offset();
                if next > 0 {
                    let from = next - 1;
                    if let Some(b) = part.read(from, 1).unwrap().last() {
                        newest = newest.max(b.last_time_ms());
                    }
                }
            }
        }
        drop(probe);
        let mut config = LogConfig::new(dir);
        config.clock = Arc::new(StepClock(AtomicU64::new(newest + 1)));
        customize(&mut config);
        Log::open(config).unwrap()
    }

    /// Copies a directory tree (without lock files).
    pub fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let target = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy_dir(&e.path(), &target);
            } else if e.file_name() != "LOCK" && !e.file_name().to_string_lossy().ends_with(".lock")
            {
                std::fs::copy(e.path(), target).unwrap();
            }
        }
    }

    /// A copy of the log in `data` with only the input topics, in
    /// `tmp/inputs-only` (outputs are regenerated from it).
    pub fn inputs_only(data: &Path, tmp: &Path) -> std::path::PathBuf {
        let dir = tmp.join("inputs-only");
        for input in InputKind::ALL {
            copy_dir(
                &data.join("topics").join(input.topic()),
                &dir.join("topics").join(input.topic()),
            );
        }
        dir
    }

    /// Appends `batches` input batches of up to `batch_records` records over
    /// `keys` keys (orders and carrier events, partitioned by key), some
    /// with empty values (dead letters).
    pub fn fill(
        log: &Log,
        partitions: u32,
        seed: u64,
        batches: u64,
        batch_records: u64,
        keys: u64,
    ) -> u64 {
        ensure_topics(log, partitions).unwrap();
        let mut rng = Rng(seed);
        let mut total = 0;
        for _ in 0..batches {
            let input = if rng.chance(200) {
                InputKind::Orders
            } else {
                InputKind::CarrierEvents
            };
            let p = rng.below(u64::from(partitions)) as u32;
            let mut owned = Vec::new();
            while (owned.len() as u64) < batch_records {
                let key = format!("TN{:06}", rng.below(keys));
                if partition_for(key.as_bytes(), partitions) != p {
                    continue;
                }
                let value = if rng.chance(10) {
                    Vec::new()
                } else {
                    format!("v{}", rng.below(1000)).into_bytes()
                };
                owned.push((key.into_bytes(), value));
            }
            let records: Vec<Record<'_>> = owned
                .iter()
                .map(|(k, v)| Record { key: k, value: v })
                .collect();
            log.partition(input.topic(), p)
                .unwrap()
                .append(&AppendRequest {
                    records: &records,
                    producer: None,
                })
                .unwrap();
            total += records.len() as u64;
        }
        total
    }

    /// Appends a tick to every input partition, so everything before it can
    /// be merged without the engine appending ticks itself.
    pub fn close_inputs(log: &Log, partitions: u32) {
        for input in InputKind::ALL {
            let n = if input == InputKind::Control {
                1
            } else {
                partitions
            };
            for p in 0..n {
                let part = log.partition(input.topic(), p).unwrap();
                let (_, durable) = part
                    .append_control(&[Record {
                        key: b"",
                        value: TICK_VALUE,
                    }])
                    .unwrap();
                durable.wait().unwrap();
            }
        }
    }

    /// The offsets the engine must reach to have processed everything now
    /// in the inputs except each input's last batch (the closing tick, which
    /// cannot be proven next until something follows it).
    pub fn targets(log: &Log, partitions: u32) -> Vec<[u64; 3]> {
        (0..partitions)
            .map(|p| {
                InputKind::ALL.map(|input| {
                    let part = log
                        .partition(input.topic(), input.topic_partition(p))
                        .unwrap();
                    part.next_offset().saturating_sub(1)
                })
            })
            .collect()
    }

    /// Every output record, by (topic, partition, producer).
    pub fn outputs(log: &Log, partitions: u32) -> Outputs {
        let mut m = Outputs::new();
        for t in OutputTopic::all() {
            let n = if t.partitioned() { partitions } else { 1 };
            for p in 0..n {
                let part = log.partition(&t.name(), p).unwrap();
                let mut from = 0;
                loop {
                    let batches = part.read(from, 1 << 20).unwrap();
                    if batches.is_empty() {
                        break;
                    }
                    for b in &batches {
                        let producer = b.producer().map_or(0, |ps| ps.producer_id);
                        let v = m.entry((t.name(), p, producer)).or_default();
                        for r in b.records().filter(|r| r.offset >= from) {
                            v.push(format!(
                                "{}={}",
                                String::from_utf8_lossy(r.key),
                                String::from_utf8_lossy(r.value)
                            ));
                        }
                        from = b.last_offset() + 1;
                    }
                }
            }
        }
        m
    }

    /// Output records in total.
    pub fn count(o: &Outputs) -> usize {
        o.values().map(Vec::len).sum()
    }
}
