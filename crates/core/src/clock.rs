//! Time, in one place. The code that runs inside the PAM host reads the
//! clocks only through this module (clippy's `disallowed-methods` enforces
//! it, see clippy.toml), for two reasons: the login flow takes its time
//! from an injected [`Clock`] so tests can put it anywhere (the TOTP
//! window, lockouts, grace periods), and every wait has an explicit
//! [`Deadline`] on the monotonic clock, never on wall time that an admin
//! or NTP may step.

// The one place allowed to read the clocks (clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where a login gets its time.
pub trait Clock {
    /// Wall time, Unix seconds (codes, lockouts, log rows).
    fn unix_now(&self) -> i64;
}

/// The system's clocks.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn unix_now(&self) -> i64 {
        unix_now()
    }
}

/// A clock that starts at a chosen Unix time and then runs with the
/// monotonic clock: what the flow tests use, and what a login uses when
/// the caller fixed its start (`now` arguments), so time spent waiting for
/// a push or a text still counts.
#[derive(Debug, Clone, Copy)]
pub struct StartedAt {
    at: i64,
    since: Stopwatch,
}

impl StartedAt {
    pub fn new(unix: i64) -> StartedAt {
        StartedAt {
            at: unix,
            since: Stopwatch::start(),
        }
    }
}

impl Clock for StartedAt {
    fn unix_now(&self) -> i64 {
        let secs = self.since.elapsed().as_secs().min(i64::MAX as u64) as i64;
        self.at.saturating_add(secs)
    }
}

/// A calendar date and time in UTC: (year, month 1..=12, day 1..=31,
/// seconds into the day), proleptic Gregorian (Howard Hinnant's
/// `civil_from_days`); no time-zone database needed.
pub fn civil(unix: i64) -> (i64, i64, i64, i64) {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d, secs)
}

/// `2026-11-24 12:06 UTC`: how people are shown a time.
pub fn utc_minutes(unix: i64) -> String {
    let (y, m, d, secs) = civil(unix);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60
    )
}

/// Wall-clock time in Unix seconds (0 if the clock is before 1970).
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs().min(i64::MAX as u64) as i64)
        .unwrap_or(0)
}

/// A point on the monotonic clock by which something must be done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(Instant);

impl Deadline {
    /// `d` from now.
    pub fn after(d: Duration) -> Deadline {
        let now = Instant::now();
        Deadline(
            now.checked_add(d)
                .unwrap_or(now + Duration::from_secs(86_400 * 365)),
        )
    }

    /// Time left; zero once passed.
    pub fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    pub fn passed(&self) -> bool {
        Instant::now() >= self.0
    }

    /// The earlier of two deadlines.
    pub fn min(self, other: Deadline) -> Deadline {
        std::cmp::min(self, other)
    }
}

/// Measures elapsed time on the monotonic clock.
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch(Instant);

impl Stopwatch {
    pub fn start() -> Stopwatch {
        Stopwatch(Instant::now())
    }

    pub fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }
}

/// Blocks the calling thread for `d` (polling loops with a deadline).
pub fn sleep(d: Duration) {
    std::thread::sleep(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_count_down_and_pass() {
        let d = Deadline::after(Duration::from_millis(30));
        assert!(!d.passed());
        assert!(d.remaining() <= Duration::from_millis(30));
        sleep(Duration::from_millis(40));
        assert!(d.passed());
        assert_eq!(d.remaining(), Duration::ZERO);
        let far = Deadline::after(Duration::MAX);
        assert!(
            !far.passed(),
            "an unbounded wait saturates instead of panicking"
        );
        assert_eq!(far.min(d), d);
    }

    #[test]
    fn started_at_runs_from_the_given_time() {
        let c = StartedAt::new(1_000);
        assert!((1_000..1_002).contains(&c.unix_now()));
        assert!(SystemClock.unix_now() > 1_700_000_000);
    }
}
