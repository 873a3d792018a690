//! CPU time of a process, for the benchmarks' "CPU per operation".

/// User + system CPU seconds of `pid` ("self" for this process), from
/// /proc/PID/stat (fields 14 and 15, in USER_HZ = 100 ticks); 0 if it
/// cannot be read.
pub fn seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) may hold spaces: count after its ')'.
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse::<f64>().ok())
        .sum::<f64>()
        / 100.0
}
