//! Scheduling priority of the process (one safe function per call).

use std::io;

/// `setpriority(PRIO_PROCESS, 0, nice)`: the calling thread's nice value; threads it
/// creates afterwards inherit it. Lowering it below 0 needs `CAP_SYS_NICE`.
pub fn set_nice(nice: i32) -> io::Result<()> {
    // SAFETY: plain setpriority(2) on the calling thread; no pointers involved.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `sched_setscheduler(0, SCHED_BATCH)`: the calling thread (and threads it creates
/// afterwards) no longer preempts the running task when it wakes; it runs at its turn,
/// with its nice value's share.
pub fn set_batch() -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler(2) on the calling thread with a valid, initialised
    // sched_param that outlives the call.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
