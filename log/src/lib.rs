//! Dropline's storage engine: topics, partitions, memory-mapped segments,
//! CRC'd batches, offset/time/key indexes, group-commit fsync, recovery,
//! retention and consumers. It knows nothing of shipments.
