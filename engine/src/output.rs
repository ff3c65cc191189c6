//! Output topics, the per-step output sink and output sequencing.
//!
//! Why outputs are cut at input-batch boundaries: processing is
//! deterministic, so a replay of the same input batch from the same state
//! yields byte-identical outputs. If each processed input batch becomes at
//! most a fixed, content-determined set of output batches, each tagged with
//! (producer id, next sequence) of its output partition, then a replay after
//! a crash regenerates the very same batches with the very same sequences,
//! and the log's idempotent producer refuses the ones it already holds.
//! Sequences live in the checkpoint next to the input offsets they match.

use dropline_log::{ProducerSeq, Record};
use dropline_operators::model::{Channel, Priority, key_hash, notify_topic};

/// An output topic of the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OutputTopic {
    /// `shipment-views[p]`: the current view of a shipment after a change.
    ShipmentViews,
    /// `decisions[p]`: why the chain did (or did not) notify.
    Decisions,
    /// `escalations[p]`: SLA breaches and exceptions for support.
    Escalations,
    /// `dead-letters` (one partition): rejected input with its reason.
    DeadLetters,
    /// `notify-<channel>-<priority>[p]`: notification intents.
    Notify(Channel, Priority),
}

/// Number of output topics.
pub const OUTPUT_TOPIC_COUNT: usize = 4 + Channel::ALL.len() * Priority::ALL.len();

/// Largest output batch, in bytes of records (key, value and record
/// header), below the log's `BATCH_BYTES_MAX`.
///
/// Part of the exactly-once contract, like the processing itself: a replay
/// must cut a step's outputs into the same batches as the first run did, so
/// changing this (or [`OUTPUT_BATCH_RECORDS_MAX`]) is a format change that
/// needs every partition checkpointed at its input's end first.
pub const OUTPUT_BATCH_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Most records per output batch, below the log's `BATCH_RECORDS_MAX`; see
/// [`OUTPUT_BATCH_BYTES_MAX`].
pub const OUTPUT_BATCH_RECORDS_MAX: usize = 50_000;

const _: () = assert!(OUTPUT_BATCH_BYTES_MAX + 1024 < dropline_log::BATCH_BYTES_MAX);
const _: () = assert!(OUTPUT_BATCH_RECORDS_MAX <= dropline_log::BATCH_RECORDS_MAX);

/// The dead-letter topic.
pub const DEAD_LETTERS_TOPIC: &str = "dead-letters";

impl OutputTopic {
    /// Stable index (also the topic's id in checkpoints).
    pub fn index(self) -> usize {
        match self {
            OutputTopic::ShipmentViews => 0,
            OutputTopic::Decisions => 1,
            OutputTopic::Escalations => 2,
            OutputTopic::DeadLetters => 3,
            OutputTopic::Notify(c, p) => {
                4 + (c as usize - 1) * Priority::ALL.len() + (p as usize - 1)
            }
        }
    }

    /// The topic with this index.
    pub fn from_index(i: usize) -> Option<OutputTopic> {
        Some(match i {
            0 => OutputTopic::ShipmentViews,
            1 => OutputTopic::Decisions,
            2 => OutputTopic::Escalations,
            3 => OutputTopic::DeadLetters,
            _ => {
                let n = i.checked_sub(4)?;
                let c = *Channel::ALL.get(n / Priority::ALL.len())?;
                let p = Priority::ALL[n % Priority::ALL.len()];
                OutputTopic::Notify(c, p)
            }
        })
    }

    /// Every output topic, by index.
    pub fn all() -> impl Iterator<Item = OutputTopic> {
        (0..OUTPUT_TOPIC_COUNT).filter_map(OutputTopic::from_index)
    }

    /// The topic's name in the log.
    pub fn name(self) -> String {
        match self {
            OutputTopic::ShipmentViews => "shipment-views".into(),
            OutputTopic::Decisions => "decisions".into(),
            OutputTopic::Escalations => "escalations".into(),
            OutputTopic::DeadLetters => DEAD_LETTERS_TOPIC.into(),
            OutputTopic::Notify(c, p) => notify_topic(c, p),
        }
    }

    /// Whether the topic has one partition per input partition (all but
    /// dead letters, which has one).
    pub fn partitioned(self) -> bool {
        self != OutputTopic::DeadLetters
    }

    /// The output partition written by input partition `owner`.
    pub fn partition_for_owner(self, owner: u32) -> u32 {
        if self.partitioned() { owner } else { 0 }
    }
}

/// The producer id under which input partition `owner` writes to `topic`:
/// a stable hash of the names, so that a replay on any node, after any
/// rescale, uses the same id.
pub fn producer_id(topic: OutputTopic, owner: u32) -> u64 {
    let name = format!(
        "dropline-engine/{}/{}/{owner}",
        topic.name(),
        topic.partition_for_owner(owner)
    );
    key_hash(name.as_bytes())
}

/// Where one output record's key and value sit in a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    start: u32,
    key_len: u32,
    value_len: u32,
}

/// Records gathered for one output topic during one step.
#[derive(Debug, Default, Clone)]
struct TopicBuffer {
    data: Vec<u8>,
    spans: Vec<Span>,
}

/// Where operators put their outputs while one input batch is processed.
/// One flat byte buffer per topic: no allocation per record once warm.
#[derive(Debug, Clone)]
pub struct OutputSink {
    topics: Vec<TopicBuffer>,
}

impl Default for OutputSink {
    fn default() -> Self {
        OutputSink {
            topics: vec![TopicBuffer::default(); OUTPUT_TOPIC_COUNT],
        }
    }
}

impl OutputSink {
    /// Adds a record whose value `encode` appends to the buffer it is given.
    pub fn push_with(&mut self, topic: OutputTopic, key: &[u8], encode: impl FnOnce(&mut Vec<u8>)) {
        let t = &mut self.topics[topic.index()];
        let start = t.data.len();
        t.data.extend_from_slice(key);
        let value_start = t.data.len();
        encode(&mut t.data);
        // A single step's buffer stays far below 4 GiB: input batches are at
        // most 8 MiB and each record's outputs are bounded by the operators.
        t.spans.push(Span {
            start: start as u32,
            key_len: (value_start - start) as u32,
            value_len: (t.data.len() - value_start) as u32,
        });
    }

    /// Adds a record.
    pub fn push(&mut self, topic: OutputTopic, key: &[u8], value: &[u8]) {
        self.push_with(topic, key, |out| out.extend_from_slice(value));
    }

    /// Records gathered for `topic` so far.
    pub fn len(&self, topic: OutputTopic) -> usize {
        self.topics[topic.index()].spans.len()
    }

    /// Whether nothing was gathered.
    pub fn is_empty(&self) -> bool {
        self.topics.iter().all(|t| t.spans.is_empty())
    }

    /// Cuts everything gathered into output batches of at most
    /// `batch_bytes_max` bytes and `batch_records_max` records, tagging each
    /// with the next sequence of its output partition, and empties the sink.
    pub fn cut(
        &mut self,
        owner: u32,
        sequences: &mut OutputSequences,
        batch_bytes_max: usize,
        batch_records_max: usize,
        out: &mut Vec<OutputBatch>,
    ) {
        for (i, t) in self.topics.iter_mut().enumerate() {
            if t.spans.is_empty() {
                continue;
            }
            let Some(topic) = OutputTopic::from_index(i) else {
                continue;
            };
            let mut from = 0;
            while from < t.spans.len() {
                // Greedy split: whole records, at least one per batch.
                let mut to = from;
                let mut bytes = 0usize;
                while to < t.spans.len() && to - from < batch_records_max.max(1) {
                    let s = t.spans[to];
                    let rec =
                        (s.key_len + s.value_len) as usize + dropline_log::RECORD_HEADER_BYTES;
                    if to > from && bytes + rec > batch_bytes_max {
                        break;
                    }
                    bytes += rec;
                    to += 1;
                }
                let producer = ProducerSeq {
                    producer_id: producer_id(topic, owner),
                    sequence: sequences.take(topic),
                };
                let batch = if from == 0 && to == t.spans.len() {
                    OutputBatch {
                        topic,
                        partition: topic.partition_for_owner(owner),
                        producer,
                        data: std::mem::take(&mut t.data),
                        spans: std::mem::take(&mut t.spans),
                    }
                } else {
                    let first = t.spans[from].start as usize;
                    let last = t.spans[to - 1];
                    let end = (last.start + last.key_len + last.value_len) as usize;
                    OutputBatch {
                        topic,
                        partition: topic.partition_for_owner(owner),
                        producer,
                        data: t.data[first..end].to_vec(),
                        spans: t.spans[from..to]
                            .iter()
                            .map(|s| Span {
                                start: s.start - first as u32,
                                ..*s
                            })
                            .collect(),
                    }
                };
                out.push(batch);
                from = to;
            }
            t.data.clear();
            t.spans.clear();
        }
    }
}

/// The next sequence of each output partition one partition task writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutputSequences {
    next: [u64; OUTPUT_TOPIC_COUNT],
}

impl OutputSequences {
    /// Sequences starting at the given values (by topic index).
    pub fn from_array(next: [u64; OUTPUT_TOPIC_COUNT]) -> Self {
        OutputSequences { next }
    }

    /// The next sequences (by topic index).
    pub fn as_array(&self) -> [u64; OUTPUT_TOPIC_COUNT] {
        self.next
    }

    /// The sequence the next batch to `topic` gets.
    pub fn next(&self, topic: OutputTopic) -> u64 {
        self.next[topic.index()]
    }

    fn take(&mut self, topic: OutputTopic) -> u64 {
        let s = self.next[topic.index()];
        self.next[topic.index()] = s + 1;
        s
    }
}

/// One batch for one output partition, with its producer id and sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputBatch {
    /// The topic.
    pub topic: OutputTopic,
    /// The partition of the topic.
    pub partition: u32,
    /// Producer id and sequence: what makes a replayed append a no-op.
    pub producer: ProducerSeq,
    data: Vec<u8>,
    spans: Vec<Span>,
}

impl OutputBatch {
    /// Number of records.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether the batch holds no record (never true for a cut batch).
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Bytes of keys and values.
    pub fn data_bytes(&self) -> usize {
        self.data.len()
    }

    /// The records as (key, value).
    pub fn records(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.spans.iter().map(|s| {
            let k = s.start as usize;
            let v = k + s.key_len as usize;
            let end = v + s.value_len as usize;
            (&self.data[k..v], &self.data[v..end])
        })
    }

    /// The records in the log's append form (fills `out`, reusing it).
    pub fn log_records<'a>(&'a self, out: &mut Vec<Record<'a>>) {
        out.clear();
        out.extend(self.records().map(|(key, value)| Record { key, value }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_indexes_round_trip_and_names_are_distinct() {
        let all: Vec<OutputTopic> = OutputTopic::all().collect();
        assert_eq!(all.len(), OUTPUT_TOPIC_COUNT);
        for (i, t) in all.iter().enumerate() {
            assert_eq!(t.index(), i);
        }
        let mut names: Vec<String> = all.iter().map(|t| t.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), OUTPUT_TOPIC_COUNT);
        assert!(names.contains(&"notify-sms-critical".to_string()));
        assert_eq!(OutputTopic::DeadLetters.partition_for_owner(7), 0);
        assert_ne!(
            producer_id(OutputTopic::DeadLetters, 1),
            producer_id(OutputTopic::DeadLetters, 2)
        );
    }

    #[test]
    fn cut_splits_deterministically_and_numbers_batches() {
        let mut sink = OutputSink::default();
        for i in 0..10u8 {
            sink.push(OutputTopic::ShipmentViews, &[i], &[i; 20]);
        }
        sink.push(OutputTopic::DeadLetters, b"k", b"v");
        let mut seqs = OutputSequences::default();
        let mut out = Vec::new();
        // 33 bytes per record: three records per 100-byte batch.
        sink.cut(3, &mut seqs, 100, 1000, &mut out);
        assert!(sink.is_empty());
        let views: Vec<&OutputBatch> = out
            .iter()
            .filter(|b| b.topic == OutputTopic::ShipmentViews)
            .collect();
        assert_eq!(
            views.iter().map(|b| b.len()).collect::<Vec<_>>(),
            [3, 3, 3, 1]
        );
        assert_eq!(
            views
                .iter()
                .map(|b| b.producer.sequence)
                .collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );
        let (k, v) = views[3].records().next().unwrap();
        assert_eq!((k, v), (&[9u8][..], &[9u8; 20][..]));
        assert_eq!(seqs.next(OutputTopic::ShipmentViews), 4);
        let dl = out
            .iter()
            .find(|b| b.topic == OutputTopic::DeadLetters)
            .unwrap();
        assert_eq!((dl.partition, dl.producer.sequence), (0, 0));
        assert_eq!(views[0].partition, 3);
    }
}
