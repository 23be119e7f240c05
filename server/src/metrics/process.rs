//! The `process_*` metrics that Prometheus client libraries export (resident memory, CPU time,
//! file descriptors, start time), read from `/proc` at each scrape; absent where there is no
//! `/proc`.
//!
//! A few lines of file reading rather than a crate: prometheus-client has no process collector,
//! and `procfs` is a large API (with its own dependencies) for five numbers. Without `unsafe`
//! (the workspace forbids it) there is no `sysconf`, and none is needed: CPU and start times are
//! in USER_HZ ticks, which Linux fixes at 100 for userspace (Prometheus's own procfs library
//! assumes the same), and resident memory is read in kB from `/proc/self/status`, so the page
//! size does not matter.

use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// Clock ticks per second in `/proc/*/stat` (USER_HZ).
const TICKS_PER_SECOND: f64 = 100.0;

/// One reading of this process.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Process {
    resident_bytes: u64,
    cpu_seconds: f64,
    start_time_seconds: f64,
    open_fds: u64,
    /// `None` when unlimited.
    max_fds: Option<u64>,
}

/// Reads this process now; `None` without `/proc` (not Linux) or if a file is not as expected.
pub(super) fn read() -> Option<Process> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let boot = std::fs::read_to_string("/proc/stat").ok()?;
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    // This count includes the descriptor reading the directory, as other clients' counts do.
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    parse(&stat, &status, &boot, &limits, open_fds)
}

fn parse(stat: &str, status: &str, boot: &str, limits: &str, open_fds: u64) -> Option<Process> {
    // The command name (field 2) is in parentheses and may hold spaces or ')': the fields
    // counted from 3 start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    let (utime, stime, start_ticks) = (field(14)?, field(15)?, field(22)?);
    let boot_time: u64 = boot
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let max_fds = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok());
    Some(Process {
        resident_bytes: rss_kb * 1024,
        cpu_seconds: (utime + stime) as f64 / TICKS_PER_SECOND,
        start_time_seconds: boot_time as f64 + start_ticks as f64 / TICKS_PER_SECOND,
        open_fds,
        max_fds,
    })
}

impl Process {
    /// The reading as the usual `process_*` series (no prefix).
    pub(super) fn registry(&self) -> Registry {
        let mut r = Registry::default();
        r.register(
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            ConstGauge::new(self.resident_bytes as f64),
        );
        r.register(
            "process_cpu_seconds",
            "User and system CPU time spent in seconds",
            ConstCounter::new(self.cpu_seconds),
        );
        r.register(
            "process_start_time_seconds",
            "Start time of the process since the epoch in seconds",
            ConstGauge::new(self.start_time_seconds),
        );
        r.register(
            "process_open_fds",
            "Number of open file descriptors",
            ConstGauge::new(self.open_fds as f64),
        );
        if let Some(max) = self.max_fds {
            r.register(
                "process_max_fds",
                "Maximum number of open file descriptors",
                ConstGauge::new(max as f64),
            );
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tdropfix-server\nVmPeak:\t  900000 kB\nVmRSS:\t   51200 kB\n";
    const BOOT: &str = "cpu  1 2 3\nintr 5\nbtime 1700000000\nprocesses 9\n";
    const LIMITS: &str = "Limit            Soft Limit   Hard Limit   Units\n\
                          Max open files   65536        524288       files\n";

    fn stat(comm: &str) -> String {
        // Fields 1..=24: utime 250, stime 50 ticks, started 12345 ticks after boot.
        format!(
            "4242 ({comm}) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 9 0 12345 \
             1073741824 12800 18446744073709551615"
        )
    }

    #[test]
    fn a_reading_of_proc_self() {
        let p = parse(&stat("dropfix-server"), STATUS, BOOT, LIMITS, 17).unwrap();
        assert_eq!(p.resident_bytes, 51200 * 1024);
        assert_eq!(p.cpu_seconds, 3.0);
        assert!((p.start_time_seconds - 1_700_000_123.45).abs() < 1e-3);
        assert_eq!((p.open_fds, p.max_fds), (17, Some(65536)));
    }

    #[test]
    fn a_command_name_with_spaces_and_parentheses_does_not_shift_the_fields() {
        let p = parse(&stat("a) b (c"), STATUS, BOOT, LIMITS, 3).unwrap();
        assert_eq!(p.cpu_seconds, 3.0);
        assert!((p.start_time_seconds - 1_700_000_123.45).abs() < 1e-3);
    }

    #[test]
    fn unlimited_descriptors_leave_the_maximum_out() {
        let limits = "Max open files            unlimited            unlimited            files\n";
        let p = parse(&stat("x"), STATUS, BOOT, limits, 3).unwrap();
        assert_eq!(p.max_fds, None);
        let text = {
            let mut out = String::new();
            prometheus_client::encoding::text::encode(&mut out, &p.registry()).unwrap();
            out
        };
        assert!(!text.contains("process_max_fds"), "{text}");
        assert!(text.contains("process_cpu_seconds_total 3.0"), "{text}");
    }

    #[test]
    fn files_not_as_expected_give_no_reading() {
        assert_eq!(parse("garbage", STATUS, BOOT, LIMITS, 1), None);
        assert_eq!(parse(&stat("x"), "Name: x\n", BOOT, LIMITS, 1), None);
        assert_eq!(parse(&stat("x"), STATUS, "cpu 1\n", LIMITS, 1), None);
    }

    /// On Linux (where the server runs and the tests run) the real files parse.
    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_reads() {
        let p = read().expect("/proc/self parses");
        assert!(p.resident_bytes > 0 && p.open_fds > 0 && p.start_time_seconds > 1e9);
    }
}
