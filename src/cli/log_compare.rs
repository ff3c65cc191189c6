//! `dropline log verify --compare A B`: are two replicas of the same
//! partitions byte-identical where they overlap, and how far is each behind?
//!
//! Replicas of a Raft group store the same batches byte for byte (see
//! ARCHITECTURE.md, "Cluster"), so their common prefix must be equal. The
//! comparison reads segment files with plain reads (like `log verify`, so it
//! can run next to a live node) batch by batch, in step on both sides, and
//! keeps one segment per side in memory.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// Where one batch is: its segment file and byte position, and its offsets.
#[derive(Debug, Clone)]
struct BatchAt {
    segment: PathBuf,
    file_offset: u64,
    base_offset: u64,
    last_offset: u64,
    bytes: Vec<u8>,
}

/// Why a replica's batches stop before the end of its files.
#[derive(Debug, Clone)]
struct StoppedAt {
    segment: PathBuf,
    file_offset: u64,
    reason: String,
}

/// Reads one partition directory's batches in offset order.
struct BatchCursor {
    segments: Vec<PathBuf>,
    next_segment: usize,
    current: Option<(PathBuf, Vec<u8>, usize)>,
    stopped: Option<StoppedAt>,
}

impl BatchCursor {
    fn open(dir: &Path) -> anyhow::Result<BatchCursor> {
        let mut segments: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("listing {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_suffix(".log"))
                    .is_some_and(|s| s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit()))
            })
            .collect();
        segments.sort();
        Ok(BatchCursor {
            segments,
            next_segment: 0,
            current: None,
            stopped: None,
        })
    }

    /// The next batch, `None` at the end (or at a batch that does not
    /// decode, which `stopped` then describes).
    fn next_batch(&mut self) -> anyhow::Result<Option<BatchAt>> {
        loop {
            if self.stopped.is_some() {
                return Ok(None);
            }
            if let Some((path, bytes, pos)) = &mut self.current {
                if *pos < bytes.len() {
                    let rest = &bytes[*pos..];
                    match dropline_log::decode_batch(rest) {
                        Ok(b) => {
                            let at = BatchAt {
                                segment: path.clone(),
                                file_offset: *pos as u64,
                                base_offset: b.base_offset(),
                                last_offset: b.last_offset(),
                                bytes: b.as_bytes().to_vec(),
                            };
                            *pos += b.encoded_len();
                            return Ok(Some(at));
                        }
                        // Zeros to the end of the file: a preallocated
                        // segment's free space, not data.
                        Err(_) if rest.iter().all(|&b| b == 0) => {}
                        Err(e) => {
                            self.stopped = Some(StoppedAt {
                                segment: path.clone(),
                                file_offset: *pos as u64,
                                reason: e.to_string(),
                            });
                            return Ok(None);
                        }
                    }
                }
                self.current = None;
            }
            let Some(path) = self.segments.get(self.next_segment).cloned() else {
                return Ok(None);
            };
            self.next_segment += 1;
            let bytes =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            self.current = Some((path, bytes, 0));
        }
    }
}

/// The comparison of one partition present in both replicas.
#[derive(Debug)]
struct PartitionComparison {
    topic: String,
    partition: String,
    /// Batches compared and found identical.
    identical_batches: u64,
    /// Where the two stop agreeing: offset and the batch on each side.
    divergence: Option<(u64, Box<BatchAt>, Box<BatchAt>)>,
    /// Next offset after each replica's last readable batch.
    end_a: u64,
    end_b: u64,
    /// Batches each holds past the other's end (only without divergence).
    extra_batches_a: u64,
    extra_batches_b: u64,
    stopped_a: Option<StoppedAt>,
    stopped_b: Option<StoppedAt>,
}

fn compare_partition(
    topic: &str,
    partition: &str,
    a: &Path,
    b: &Path,
) -> anyhow::Result<PartitionComparison> {
    let mut ca = BatchCursor::open(a)?;
    let mut cb = BatchCursor::open(b)?;
    let mut next_a = ca.next_batch()?;
    let mut next_b = cb.next_batch()?;
    // Retention may have removed a different prefix on each side: start
    // where both have data.
    loop {
        match (&next_a, &next_b) {
            (Some(x), Some(y)) if x.last_offset < y.base_offset => next_a = ca.next_batch()?,
            (Some(x), Some(y)) if y.last_offset < x.base_offset => next_b = cb.next_batch()?,
            _ => break,
        }
    }
    let mut cmp = PartitionComparison {
        topic: topic.to_string(),
        partition: partition.to_string(),
        identical_batches: 0,
        divergence: None,
        end_a: 0,
        end_b: 0,
        extra_batches_a: 0,
        extra_batches_b: 0,
        stopped_a: None,
        stopped_b: None,
    };
    loop {
        match (next_a.take(), next_b.take()) {
            (Some(x), Some(y)) => {
                if x.bytes != y.bytes {
                    cmp.end_a = x.last_offset + 1;
                    cmp.end_b = y.last_offset + 1;
                    let at = x.base_offset.min(y.base_offset);
                    cmp.divergence = Some((at, Box::new(x), Box::new(y)));
                    // Report how far each goes on, for the operator.
                    while let Some(x) = ca.next_batch()? {
                        cmp.end_a = x.last_offset + 1;
                    }
                    while let Some(y) = cb.next_batch()? {
                        cmp.end_b = y.last_offset + 1;
                    }
                    break;
                }
                cmp.identical_batches += 1;
                cmp.end_a = x.last_offset + 1;
                cmp.end_b = y.last_offset + 1;
                next_a = ca.next_batch()?;
                next_b = cb.next_batch()?;
            }
            (Some(x), None) => {
                cmp.extra_batches_a += 1;
                cmp.end_a = x.last_offset + 1;
                next_a = ca.next_batch()?;
            }
            (None, Some(y)) => {
                cmp.extra_batches_b += 1;
                cmp.end_b = y.last_offset + 1;
                next_b = cb.next_batch()?;
            }
            (None, None) => break,
        }
    }
    cmp.stopped_a = ca.stopped;
    cmp.stopped_b = cb.stopped;
    Ok(cmp)
}

/// Accepts a node's data directory (holding `log/`) or a log directory
/// (holding `topics/`).
fn topics_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    for candidate in [dir.join("log").join("topics"), dir.join("topics")] {
        if candidate.is_dir() {
            return Ok(candidate);
        }
    }
    anyhow::bail!(
        "{} holds neither log/topics nor topics: not a data or log directory",
        dir.display()
    )
}

fn sorted_dirs(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    names.sort();
    Ok(names)
}

fn describe(at: &BatchAt) -> String {
    format!(
        "{} at byte {} (offsets {}..={}, {} bytes)",
        at.segment.display(),
        at.file_offset,
        at.base_offset,
        at.last_offset,
        at.bytes.len()
    )
}

/// Runs the comparison and prints one line per partition (or one JSON
/// object per partition with `json`). Fails (exit 1) on any divergence.
pub(crate) fn compare(a: &Path, b: &Path, json: bool) -> anyhow::Result<std::process::ExitCode> {
    let (ta, tb) = (topics_dir(a)?, topics_dir(b)?);
    let topics_a = sorted_dirs(&ta)?;
    let topics_b = sorted_dirs(&tb)?;
    let mut diverged = 0usize;
    let mut compared = 0usize;
    for topic in &topics_a {
        if !topics_b.contains(topic) {
            if !json {
                println!("topic {topic}: only in A");
            }
            continue;
        }
        let parts_a = sorted_dirs(&ta.join(topic))?;
        let parts_b = sorted_dirs(&tb.join(topic))?;
        for part in &parts_a {
            if !parts_b.contains(part) {
                if !json {
                    println!("topic {topic} partition {part}: only in A");
                }
                continue;
            }
            let cmp = compare_partition(
                topic,
                part,
                &ta.join(topic).join(part),
                &tb.join(topic).join(part),
            )?;
            compared += 1;
            if cmp.divergence.is_some() {
                diverged += 1;
            }
            if json {
                print_json(&cmp);
            } else {
                print_text(&cmp);
            }
        }
        if !json {
            for part in parts_b.iter().filter(|p| !parts_a.contains(p)) {
                println!("topic {topic} partition {part}: only in B");
            }
        }
    }
    if !json {
        for topic in topics_b.iter().filter(|t| !topics_a.contains(t)) {
            println!("topic {topic}: only in B");
        }
        println!(
            "compared {compared} partition(s): {}",
            if diverged == 0 {
                "common prefixes identical".to_string()
            } else {
                format!("{diverged} diverge")
            }
        );
    }
    Ok(if diverged == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

fn lag_text(cmp: &PartitionComparison) -> String {
    match cmp.end_a.cmp(&cmp.end_b) {
        std::cmp::Ordering::Equal => format!("both end at offset {}", cmp.end_a),
        std::cmp::Ordering::Less => format!(
            "A is {} offset(s) ({} batch(es)) behind B (A ends at {}, B at {})",
            cmp.end_b - cmp.end_a,
            cmp.extra_batches_b,
            cmp.end_a,
            cmp.end_b
        ),
        std::cmp::Ordering::Greater => format!(
            "B is {} offset(s) ({} batch(es)) behind A (A ends at {}, B at {})",
            cmp.end_a - cmp.end_b,
            cmp.extra_batches_a,
            cmp.end_a,
            cmp.end_b
        ),
    }
}

fn print_text(cmp: &PartitionComparison) {
    let head = format!("topic {} partition {}", cmp.topic, cmp.partition);
    match &cmp.divergence {
        Some((offset, x, y)) => {
            println!(
                "{head}: DIVERGED at offset {offset} after {} identical batch(es): A {} differs from B {}; A ends at {}, B at {}",
                cmp.identical_batches,
                describe(x),
                describe(y),
                cmp.end_a,
                cmp.end_b
            );
        }
        None => println!(
            "{head}: {} identical batch(es); {}",
            cmp.identical_batches,
            lag_text(cmp)
        ),
    }
    for (side, stopped) in [("A", &cmp.stopped_a), ("B", &cmp.stopped_b)] {
        if let Some(s) = stopped {
            println!(
                "{head}: {side} stops at an unreadable batch in {} at byte {}: {} (see log verify)",
                s.segment.display(),
                s.file_offset,
                s.reason
            );
        }
    }
}

fn print_json(cmp: &PartitionComparison) {
    let divergence = cmp.divergence.as_ref().map(|(offset, x, y)| {
        serde_json::json!({
            "offset": offset,
            "a_segment": x.segment.display().to_string(),
            "a_file_offset": x.file_offset,
            "b_segment": y.segment.display().to_string(),
            "b_file_offset": y.file_offset,
        })
    });
    let line = serde_json::json!({
        "topic": cmp.topic,
        "partition": cmp.partition,
        "identical_batches": cmp.identical_batches,
        "diverged": divergence,
        "end_offset_a": cmp.end_a,
        "end_offset_b": cmp.end_b,
        "a_behind_offsets": cmp.end_b.saturating_sub(cmp.end_a),
        "b_behind_offsets": cmp.end_a.saturating_sub(cmp.end_b),
    });
    println!("{line}");
}
