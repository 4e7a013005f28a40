//! Process metrics with the names every Prometheus client uses (`process_*`), read from
//! `/proc/self` at each scrape on Linux (elsewhere: not registered). The cost is a few small file
//! reads and one directory listing per scrape, independent of the ledger's history.

use crate::Registry;

/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`: 100 on every Linux
/// architecture wfl builds for).
const TICKS: f64 = 100.0;

pub(crate) fn register(registry: &Registry) {
    if !cfg!(target_os = "linux") {
        return;
    }
    let rss = registry.gauge(
        "process_resident_memory_bytes",
        "Resident memory size in bytes.",
    );
    let vsz = registry.gauge(
        "process_virtual_memory_bytes",
        "Virtual memory size in bytes.",
    );
    // A gauge: the `metrics` counters hold integers, and CPU time comes in 1/100 s.
    let cpu = registry.gauge(
        "process_cpu_seconds_total",
        "Total user and system CPU time spent in seconds.",
    );
    let fds = registry.gauge("process_open_fds", "Number of open file descriptors.");
    let max_fds = registry.gauge(
        "process_max_fds",
        "Maximum number of open file descriptors.",
    );
    let start = registry.gauge(
        "process_start_time_seconds",
        "Start time of the process since the Unix epoch in seconds.",
    );
    let threads = registry.gauge("process_threads", "Number of OS threads in the process.");
    registry.on_scrape(move |_| {
        let Some(s) = read() else { return };
        rss.set(s.rss_bytes as f64);
        vsz.set(s.vsz_bytes as f64);
        cpu.set(s.cpu_ticks as f64 / TICKS);
        fds.set(s.open_fds as f64);
        if let Some(m) = s.max_fds {
            max_fds.set(m as f64);
        }
        if let Some(t) = s.start_time {
            start.set(t);
        }
        threads.set(s.threads as f64);
    });
}

struct Sample {
    rss_bytes: u64,
    vsz_bytes: u64,
    cpu_ticks: u64,
    open_fds: u64,
    max_fds: Option<u64>,
    start_time: Option<f64>,
    threads: u64,
}

fn read() -> Option<Sample> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let after = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // Field numbers of proc(5) minus 3 (pid, comm and state come first; state is f[0]).
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    let utime = num(11)?;
    let stime = num(12)?;
    let threads = num(17)?;
    let starttime = num(19)?;
    let vsz_bytes = num(20)?;
    let rss_bytes = std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .ok()?
        * 1024;
    let open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
    let max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse().ok())
        });
    let start_time = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        let btime: f64 = s
            .lines()
            .find_map(|l| l.strip_prefix("btime "))?
            .trim()
            .parse()
            .ok()?;
        Some(btime + starttime as f64 / TICKS)
    });
    Some(Sample {
        rss_bytes,
        vsz_bytes,
        cpu_ticks: utime + stime,
        open_fds,
        max_fds,
        start_time,
        threads,
    })
}
