//! Pinning a worker thread to one CPU core.
//!
//! Why pin: a worker owns its partitions' state; keeping it on one core
//! keeps that state in the core's caches and stops the scheduler from
//! bouncing two busy workers onto one core. Pinning is best effort: on a
//! machine (or container) that refuses it the worker runs unpinned and the
//! failure is reported, not fatal.

/// The CPUs this process may run on, in ascending order.
pub fn allowed_cpus() -> Vec<usize> {
    let set = current_set();
    (0..libc::CPU_SETSIZE as usize)
        .filter(|&c| is_set(c, &set))
        .collect()
}

#[expect(unsafe_code, reason = "libc's CPU_ISSET is an unsafe fn")]
fn is_set(cpu: usize, set: &libc::cpu_set_t) -> bool {
    debug_assert!(cpu < libc::CPU_SETSIZE as usize);
    // SAFETY: CPU_ISSET reads bit `cpu` of the set; the caller keeps `cpu`
    // below CPU_SETSIZE, the set's size in bits, so the read is in bounds.
    unsafe { libc::CPU_ISSET(cpu, set) }
}

/// The core worker `worker` is pinned to: the worker-th allowed CPU,
/// wrapping around when there are more workers than CPUs.
pub fn core_for_worker(worker: usize, allowed: &[usize]) -> Option<usize> {
    (!allowed.is_empty()).then(|| allowed[worker % allowed.len()])
}

/// Pins the calling thread to `cpu`.
pub fn pin_current_thread(cpu: usize) -> std::io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(std::io::Error::from(std::io::ErrorKind::InvalidInput));
    }
    let mut set = empty_set();
    add(cpu, &mut set);
    set_current(&set)
}

#[expect(unsafe_code, reason = "libc's CPU_SET is an unsafe fn")]
fn add(cpu: usize, set: &mut libc::cpu_set_t) {
    debug_assert!(cpu < libc::CPU_SETSIZE as usize);
    // SAFETY: CPU_SET writes bit `cpu` of the set; the caller checked `cpu`
    // is below CPU_SETSIZE, the set's size in bits.
    unsafe { libc::CPU_SET(cpu, set) }
}

#[expect(unsafe_code, reason = "cpu_set_t has no safe constructor in libc")]
fn empty_set() -> libc::cpu_set_t {
    // SAFETY: cpu_set_t is a plain bit array (an array of unsigned longs);
    // the all-zero value is the valid empty set, exactly what CPU_ZERO
    // produces.
    unsafe { std::mem::zeroed() }
}

#[expect(unsafe_code, reason = "sched_getaffinity is an FFI call")]
fn current_set() -> libc::cpu_set_t {
    let mut set = empty_set();
    // SAFETY: pid 0 means the calling thread; the size passed is the size of
    // the buffer the kernel writes into, which is `set`, a live, exclusively
    // borrowed cpu_set_t. On failure the set is left empty.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return empty_set();
    }
    set
}

#[expect(unsafe_code, reason = "sched_setaffinity is an FFI call")]
fn set_current(set: &libc::cpu_set_t) -> std::io::Result<()> {
    // SAFETY: pid 0 means the calling thread; the kernel only reads
    // `size_of::<cpu_set_t>()` bytes from `set`, a live shared borrow.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_a_thread_to_an_allowed_core() {
        let allowed = allowed_cpus();
        assert!(!allowed.is_empty());
        assert_eq!(core_for_worker(allowed.len(), &allowed), Some(allowed[0]));
        let cpu = *allowed.last().unwrap();
        std::thread::spawn(move || {
            pin_current_thread(cpu).unwrap();
            assert_eq!(allowed_cpus(), vec![cpu]);
        })
        .join()
        .unwrap();
        assert!(pin_current_thread(libc::CPU_SETSIZE as usize).is_err());
    }
}
