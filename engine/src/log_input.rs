//! The log's zero-copy batch views as partition-task input.
//!
//! Why a separate module: the merge and the task know only the
//! [`InputBatch`] trait; this is the one place that ties it to the log's
//! mapped segments.

use crate::input::{BatchMeta, InputBatch, InputRecord};

impl InputBatch for dropline_log::BatchView {
    fn meta(&self) -> BatchMeta {
        BatchMeta {
            base_offset: self.base_offset(),
            last_offset: self.last_offset(),
            first_time_ms: self.first_time_ms(),
            last_time_ms: self.last_time_ms(),
            control: self.is_control(),
        }
    }

    fn for_each_record<'a>(&'a self, f: &mut dyn FnMut(InputRecord<'a>)) {
        for r in self.records() {
            f(InputRecord {
                offset: r.offset,
                log_time_ms: r.log_time_ms,
                key: r.key,
                value: r.value,
            });
        }
    }
}
