//! The process's own metrics under the names every Prometheus client library uses
//! (`process_cpu_seconds_total`, `process_resident_memory_bytes`, ...), read from the kernel at
//! each scrape.
//!
//! The `prometheus` crate has a collector for these, but it exports the CPU time in whole
//! seconds: a server using a tenth of a core shows a rate that jumps between 0 and 1 from one
//! scrape to the next. This one takes it from `getrusage`, in microseconds (through
//! [`crate::process`], home of the crate's calls into libc).

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Counter, IntGauge, Opts};

/// The process's CPU time, memory, file descriptors, threads and start time.
pub struct ProcessCollector {
    cpu_seconds: Counter,
    open_fds: IntGauge,
    max_fds: IntGauge,
    virtual_memory: IntGauge,
    resident_memory: IntGauge,
    start_time: IntGauge,
    threads: IntGauge,
    descs: Vec<Desc>,
}

impl ProcessCollector {
    pub fn new() -> ProcessCollector {
        let gauge = |name: &str, help: &str| {
            IntGauge::with_opts(Opts::new(name, help)).expect("a valid gauge")
        };
        let cpu_seconds = Counter::with_opts(Opts::new(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
        ))
        .expect("a valid counter");
        let collector = ProcessCollector {
            cpu_seconds,
            open_fds: gauge("process_open_fds", "Number of open file descriptors."),
            max_fds: gauge(
                "process_max_fds",
                "Maximum number of open file descriptors.",
            ),
            virtual_memory: gauge(
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
            ),
            resident_memory: gauge(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
            ),
            start_time: gauge(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
            ),
            threads: gauge("process_threads", "Number of OS threads in the process."),
            descs: Vec::new(),
        };
        if let Some(started) = start_time_seconds() {
            collector.start_time.set(started);
        }
        let descs = collector
            .parts()
            .iter()
            .flat_map(|part| part.desc().into_iter().cloned())
            .collect();
        ProcessCollector { descs, ..collector }
    }

    fn parts(&self) -> [&dyn Collector; 7] {
        [
            &self.cpu_seconds,
            &self.open_fds,
            &self.max_fds,
            &self.virtual_memory,
            &self.resident_memory,
            &self.start_time,
            &self.threads,
        ]
    }

    /// Reads the kernel's figures into the metrics; a figure it cannot read keeps its last value.
    fn read(&self) {
        if let Some(seconds) = crate::process::cpu_time().map(|t| t.as_secs_f64()) {
            // A counter only goes up: two scrapes at once may both add, never subtract.
            let past = self.cpu_seconds.get();
            if seconds > past {
                self.cpu_seconds.inc_by(seconds - past);
            }
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            // The directory's own descriptor, open while it is read, is not counted.
            self.open_fds.set(fds.count() as i64 - 1);
        }
        if let Ok(limit) = crate::process::open_files_limit() {
            self.max_fds.set(i64::try_from(limit).unwrap_or(i64::MAX));
        }
        if let Ok(statm) = std::fs::read_to_string("/proc/self/statm") {
            let mut pages = statm.split_whitespace().map(str::parse::<i64>);
            let page = crate::process::page_size();
            if let (Some(Ok(size)), Some(Ok(resident))) = (pages.next(), pages.next()) {
                self.virtual_memory.set(size * page);
                self.resident_memory.set(resident * page);
            }
        }
        if let Some(threads) = stat_field(THREADS_FIELD) {
            self.threads.set(threads);
        }
    }
}

impl Default for ProcessCollector {
    fn default() -> Self {
        ProcessCollector::new()
    }
}

impl Collector for ProcessCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.read();
        self.parts()
            .iter()
            .flat_map(|part| part.collect())
            .collect()
    }
}

/// `/proc/self/stat`'s fields counted from 1 as proc(5) numbers them.
const THREADS_FIELD: usize = 20;
const START_TIME_FIELD: usize = 22;

/// A numeric field of `/proc/self/stat`. The second field (the command's name, in parentheses)
/// may hold spaces and parentheses itself, so fields are counted after its last `)`.
fn stat_field(field: usize) -> Option<i64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(field - 3)?.parse().ok()
}

/// When the process started, in seconds since the epoch: its start in clock ticks after boot,
/// plus the boot time.
fn start_time_seconds() -> Option<i64> {
    let ticks = stat_field(START_TIME_FIELD)?;
    let per_second = crate::process::clock_ticks_per_second();
    let boot = std::fs::read_to_string("/proc/stat").ok()?;
    let boot: i64 = boot
        .lines()
        .find_map(|line| line.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    (per_second > 0).then(|| boot + ticks / per_second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_exported_in_fractions_of_a_second() {
        let collector = ProcessCollector::new();
        let started = std::time::Instant::now();
        // Burn a little CPU: far less than a second, more than the clock's resolution.
        let mut x = 0u64;
        while started.elapsed() < std::time::Duration::from_millis(30) {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let registry = prometheus::Registry::new();
        registry.register(Box::new(collector)).unwrap();
        let mut text = Vec::new();
        prometheus::Encoder::encode(
            &prometheus::TextEncoder::new(),
            &registry.gather(),
            &mut text,
        )
        .unwrap();
        let text = String::from_utf8(text).unwrap();
        let value = |name: &str| -> f64 {
            let line = text
                .lines()
                .find(|l| l.starts_with(&format!("{name} ")))
                .unwrap_or_else(|| panic!("no {name} in {text}"));
            line.rsplit_once(' ').unwrap().1.parse().unwrap()
        };
        let cpu = value("process_cpu_seconds_total");
        assert!(cpu > 0.0, "{cpu}");
        assert!(cpu.fract() != 0.0, "whole seconds only: {cpu}");
        assert!(value("process_resident_memory_bytes") > 1e6);
        assert!(value("process_threads") >= 1.0);
        assert!(value("process_open_fds") >= 3.0);
        assert!(value("process_max_fds") >= value("process_open_fds"));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as f64;
        let started = value("process_start_time_seconds");
        assert!(started <= now && started > now - 24.0 * 3600.0, "{started}");
    }
}
