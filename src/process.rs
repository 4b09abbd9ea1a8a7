//! The process around the server: what must be set before it serves, once, at start. The
//! soft limit of open files goes up to the hard one (connections are bounded by the server's
//! own cap, not by a low default); a write past a file-size limit fails with an error the store
//! reports and retries, instead of SIGXFSZ killing the process; and a bus error (a store file
//! truncated or made unwritable under its memory map) leaves a line in the log before the
//! process dies of it.
//!
//! It also answers what only the kernel knows of the process: its CPU time, its page size and
//! clock tick, and whether a group is one of its own.
//!
//! The only `unsafe` of the crate lives here: calls into libc with fixed arguments.

/// The soft limit of open files in force.
pub fn open_files_limit() -> std::io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct passed by reference.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(limit.rlim_cur)
}

/// Raises the soft limit of open files to the hard limit; returns the limit now in force.
pub fn raise_open_files_limit() -> std::io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed by reference.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    Ok(limit.rlim_cur)
}

/// Writes past the file-size limit fail with EFBIG (which the store turns into an error it
/// retries) instead of killing the process.
pub fn survive_file_size_limit() {
    // SAFETY: installs the "ignore" disposition; no handler code runs.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

const BUS_ERROR: &[u8] = b"servicedesk: fatal bus error (SIGBUS): a file mapped into memory, \
such as the store's desk.db-shm, was truncated or made unwritable underneath the server; \
check the data directory's files, attributes and disk, then start again\n";

extern "C" fn on_bus_error(_: libc::c_int) {
    // SAFETY: write(2) is async-signal-safe; the message is a static buffer. The handler runs
    // once (SA_RESETHAND): when it returns, the fault repeats and the default action ends the
    // process as it would have.
    unsafe {
        libc::write(2, BUS_ERROR.as_ptr().cast(), BUS_ERROR.len());
    }
}

/// A bus error leaves a line on stderr (the log) before the process dies of it.
pub fn log_bus_errors() {
    // SAFETY: sigaction with a zeroed struct, an empty mask and a handler that only calls
    // write(2).
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_bus_error as extern "C" fn(libc::c_int) as libc::sighandler_t;
        action.sa_flags = libc::SA_RESETHAND;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut());
    }
}

/// User and system time of every thread of the process so far.
pub fn cpu_time() -> Option<std::time::Duration> {
    // SAFETY: getrusage only writes the struct passed by reference; all zeroes is a valid one.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return None;
    }
    let time = |t: libc::timeval| {
        std::time::Duration::new(t.tv_sec.max(0) as u64, (t.tv_usec.max(0) as u32) * 1000)
    };
    Some(time(usage.ru_utime) + time(usage.ru_stime))
}

/// The size of a memory page, in bytes.
pub fn page_size() -> i64 {
    // SAFETY: sysconf only reads a configuration value.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) }
}

/// Clock ticks per second, the unit of times in `/proc`.
pub fn clock_ticks_per_second() -> i64 {
    // SAFETY: sysconf only reads a configuration value.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) }
}

/// Whether `gid` is this process's effective group or one of its supplementary groups.
pub fn in_group(gid: u32) -> bool {
    // SAFETY: getegid only reads the process's credentials.
    if unsafe { libc::getegid() } == gid {
        return true;
    }
    // SAFETY: getgroups with a count of 0 only returns how many there are; then it writes at
    // most that many into a buffer of that size.
    let count = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    if count <= 0 {
        return false;
    }
    let mut groups = vec![0 as libc::gid_t; count as usize];
    let count = unsafe { libc::getgroups(count, groups.as_mut_ptr()) };
    count > 0 && groups[..count as usize].contains(&gid)
}
