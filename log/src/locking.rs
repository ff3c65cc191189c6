//! Lock acquisition that tolerates poisoning.
//!
//! Why: a panic while holding one of the log's mutexes leaves data that is
//! still structurally valid (every critical section updates plain values
//! after its I/O succeeded), and failing every later call would turn one bug
//! into an outage. Write failures are handled by the partition's own
//! poisoned state, not by mutex poisoning.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn read<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn write<T>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(PoisonError::into_inner)
}
