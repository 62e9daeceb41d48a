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
