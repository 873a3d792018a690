//! Logging to syslog (facility authpriv) with sanitised fields.
//!
//! A logger is opened per PAM call and dropped before the call returns: no
//! global state and no background thread in the host process (sshd forks).
//! User-supplied text (user name, rhost) is cleaned so nobody can forge log
//! lines with newlines or escape sequences. Codes are never logged.
//!
//! Logging must never hold up a login: all of one PAM call's logging
//! (connecting and every line) may block for at most [`LOG_BUDGET`]. The
//! log socket is usually a datagram socket, whose sends block once the
//! reader's queue is full (only 10 datagrams by default,
//! `net.unix.max_dgram_qlen`); some syslog daemons listen on a stream
//! socket instead, where even `connect()` blocks while the listener's
//! backlog is full. So the socket is made here rather than by the syslog
//! crate (which connects a stream without a deadline): a stream connect
//! waits at most the budget (`SO_SNDTIMEO`, which Linux applies to a unix
//! stream connect), every send is non-blocking with `poll` for the rest
//! of the budget, and `MSG_NOSIGNAL` keeps a closed reader from raising
//! SIGPIPE in the host. A line that does not fit in the budget is dropped;
//! once it is spent, lines are still sent when that needs no waiting.
//! Lines are RFC 3164 (`<pri>Mmm dd hh:mm:ss ident[pid]: msg`, the syslog
//! crate's formatter), NUL-terminated on a stream as glibc's syslog() does.
//!
//! The PAM module's lines ([`Audit::pam`]) have the form libpam's
//! `pam_syslog()` gives every module's lines, so the rules admins already
//! have for pam_unix (fail2ban, logwatch, a SIEM) find them:
//! `sshd[1234]: pam_2fa(sshd:auth): auth failed user=...`, with the host
//! program's name and pid as ident ([`host_program`]), then
//! `pam_2fa(SERVICE:HOOK): `. The CLI and the daemon log under their own
//! idents, `2fa-enroll` and `2fad`.

use crate::clock::{Deadline, Stopwatch};
use nix::sys::socket::{self, MsgFlags};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::Path;
use std::time::Duration;
use syslog::{Facility, Formatter3164, LogFormat, Severity};

/// The longest all logging of one PAM call may block it, in total.
pub const LOG_BUDGET: Duration = Duration::from_millis(100);

enum Sink {
    Datagram(UnixDatagram),
    Stream(UnixStream),
}

pub struct Audit {
    sink: Option<Sink>,
    formatter: Formatter3164,
    /// Time spent blocked in logging so far (connect and sends).
    spent: Duration,
    /// Also echo to stderr (the CLI does; the PAM module must not).
    echo_stderr: bool,
    /// Put before every message: `pam_2fa(SERVICE:HOOK): ` in the PAM
    /// module, empty elsewhere.
    prefix: String,
    /// Whether [`Audit::debug`] lines are written (the `debug` setting).
    debug: bool,
}

impl Audit {
    /// Connects to the syslog socket; if there is none, logging is a no-op
    /// rather than a reason to fail a login or an enrollment.
    pub fn new(socket: &Path, process: &str, echo_stderr: bool) -> Audit {
        let formatter = Formatter3164 {
            facility: Facility::LOG_AUTHPRIV,
            hostname: None,
            process: process.into(),
            pid: std::process::id(),
        };
        let started = Stopwatch::start();
        let sink = connect(socket, LOG_BUDGET);
        Audit {
            sink,
            formatter,
            spent: started.elapsed(),
            echo_stderr,
            prefix: String::new(),
            debug: false,
        }
    }

    /// The PAM module's logger: lines in `pam_syslog()`'s form,
    /// `IDENT[PID]: pam_2fa(SERVICE:HOOK): message`, where IDENT and PID
    /// are the host program's ([`host_program`]: `sshd`, `sudo`, `login`)
    /// and HOOK is libpam's name for the call (`auth`, `setcred`,
    /// `account`). The service is the PAM_SERVICE item, cleaned like any
    /// text an application hands over.
    pub fn pam(socket: &Path, service: &str, hook: &str) -> Audit {
        let mut audit = Audit::new(socket, &host_program(), false);
        audit.prefix = format!("pam_2fa({}:{hook}): ", clean(service));
        audit
    }

    /// A logger that drops everything (tests, or before config is known).
    pub fn null() -> Audit {
        Audit {
            sink: None,
            formatter: Formatter3164::default(),
            spent: LOG_BUDGET,
            echo_stderr: false,
            prefix: String::new(),
            debug: false,
        }
    }

    /// Turns [`Audit::debug`] lines on or off (the `debug` setting).
    pub fn set_debug(&mut self, on: bool) {
        self.debug = on;
    }

    /// Whether debug lines are written.
    pub fn debugging(&self) -> bool {
        self.debug
    }

    /// A `debug` line (severity debug), written only when the `debug`
    /// setting is on; `msg` is not even formatted otherwise. Debug lines
    /// say more about a login (the config and store paths, what the user
    /// has and may use, why a factor is unusable, how long steps took),
    /// never a secret: no code, answer, password or key material.
    pub fn debug(&mut self, msg: impl FnOnce() -> String) {
        if self.debug {
            self.send(Severity::LOG_DEBUG, &msg());
        }
    }

    pub fn info(&mut self, msg: &str) {
        self.send(Severity::LOG_INFO, msg);
    }

    pub fn notice(&mut self, msg: &str) {
        self.send(Severity::LOG_NOTICE, msg);
        if self.echo_stderr {
            eprintln!("{msg}");
        }
    }

    pub fn warning(&mut self, msg: &str) {
        self.send(Severity::LOG_WARNING, msg);
        if self.echo_stderr {
            eprintln!("warning: {msg}");
        }
    }

    /// Severity alert: something an admin must act on now (the fleet
    /// store's break-glass was used).
    pub fn alert(&mut self, msg: &str) {
        self.send(Severity::LOG_ALERT, msg);
        if self.echo_stderr {
            eprintln!("alert: {msg}");
        }
    }

    pub fn err(&mut self, msg: &str) {
        self.send(Severity::LOG_ERR, msg);
        if self.echo_stderr {
            eprintln!("error: {msg}");
        }
    }

    fn send(&mut self, severity: Severity, msg: &str) {
        let Some(sink) = &self.sink else {
            return;
        };
        let mut line = Vec::with_capacity(msg.len() + self.prefix.len() + 64);
        let formatted = if self.prefix.is_empty() {
            self.formatter.format(&mut line, severity, msg)
        } else {
            self.formatter
                .format(&mut line, severity, format_args!("{}{msg}", self.prefix))
        };
        if formatted.is_err() {
            return;
        }
        let started = Stopwatch::start();
        let deadline = Deadline::after(LOG_BUDGET.saturating_sub(self.spent));
        let sent = match sink {
            Sink::Datagram(s) => send_datagram(s, &line, deadline),
            Sink::Stream(s) => {
                line.push(0);
                send_stream(s, &line, deadline)
            }
        };
        self.spent += started.elapsed();
        // A stream cut off inside a line has lost its framing: stop there.
        if !sent && matches!(self.sink, Some(Sink::Stream(_))) {
            self.sink = None;
        }
    }
}

/// The name the host program logs under, as libpam's `pam_syslog()`
/// shows it (glibc's `syslog()` without `openlog()`: the program's short
/// name): the kernel's name for the process (`/proc/self/comm`: `sshd`,
/// `sshd-session`, `sudo`, `login`), completed from the executable's name
/// when the kernel cut it at 15 characters. Characters that would break
/// the `IDENT[PID]:` header become `_`; `pam_2fa` if /proc says nothing.
pub fn host_program() -> String {
    let comm = std::fs::read_to_string("/proc/self/comm").unwrap_or_default();
    let mut name = comm.trim_end_matches('\n').to_string();
    if name.len() == 15
        && let Some(exe) = std::fs::read_link("/proc/self/exe")
            .ok()
            .and_then(|p| p.file_name()?.to_str().map(str::to_string))
        && exe.starts_with(&name)
    {
        name = exe;
    }
    let name: String = name
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.+@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        "pam_2fa".into()
    } else {
        name
    }
}

/// Connects to the log socket: a datagram socket (connecting one never
/// blocks) or, when the socket is a stream (`EPROTOTYPE`), a stream
/// connect that waits at most `budget`.
fn connect(path: &Path, budget: Duration) -> Option<Sink> {
    let dgram = UnixDatagram::unbound().ok()?;
    match dgram.connect(path) {
        Ok(()) => {
            dgram.set_nonblocking(true).ok()?;
            return Some(Sink::Datagram(dgram));
        }
        Err(e) if e.raw_os_error() == Some(libc::EPROTOTYPE) => {}
        Err(_) => return None,
    }
    let fd = socket::socket(
        socket::AddressFamily::Unix,
        socket::SockType::Stream,
        socket::SockFlag::SOCK_CLOEXEC,
        None,
    )
    .ok()?;
    // Linux bounds a blocking unix stream connect by SO_SNDTIMEO; 0 would
    // mean "no limit", so never less than a millisecond.
    let wait = budget.max(Duration::from_millis(1));
    let tv =
        nix::sys::time::TimeVal::new(wait.as_secs().try_into().ok()?, wait.subsec_micros().into());
    socket::setsockopt(&fd, socket::sockopt::SendTimeout, &tv).ok()?;
    let addr = socket::UnixAddr::new(path).ok()?;
    socket::connect(fd.as_raw_fd(), &addr).ok()?;
    let stream = UnixStream::from(fd);
    stream.set_nonblocking(true).ok()?;
    Some(Sink::Stream(stream))
}

/// Waits until `fd` is writable or `deadline` passes; false on timeout.
fn writable_by(fd: &impl AsFd, deadline: Deadline) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let left = deadline.remaining();
    let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
    if ms == 0 {
        return false;
    }
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLOUT)];
    matches!(poll(&mut fds, PollTimeout::from(ms)), Ok(n) if n > 0)
}

fn send_datagram(s: &UnixDatagram, line: &[u8], deadline: Deadline) -> bool {
    loop {
        match socket::send(
            s.as_raw_fd(),
            line,
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
        ) {
            Ok(_) => return true,
            Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => {
                if !writable_by(s, deadline) {
                    return false;
                }
            }
            Err(_) => return false,
        }
    }
}

fn send_stream(s: &UnixStream, mut line: &[u8], deadline: Deadline) -> bool {
    while !line.is_empty() {
        match socket::send(
            s.as_raw_fd(),
            line,
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
        ) {
            Ok(n) => line = &line[n..],
            Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => {
                if !writable_by(s, deadline) {
                    return false;
                }
            }
            Err(_) => return false,
        }
    }
    true
}

/// Makes untrusted text safe for one log line: control and non-ASCII
/// characters become `?`, spaces `_`, and it is cut to 64 characters.
pub fn clean(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(64)
        .map(|c| match c {
            ' ' => '_',
            c if c.is_ascii_graphic() => c,
            _ => '?',
        })
        .collect();
    if s.chars().count() > 64 {
        out.push_str("...");
    }
    if out.is_empty() {
        out.push('-');
    }
    out
}

/// Longest error detail kept in a log line: long enough for a TLS
/// failure's whole cause chain ("invalid peer certificate: ... NotValidForName
/// ..."), short enough that one line stays one line.
pub const DETAIL_MAX: usize = 400;

/// An error detail (our own message wrapping remote or system text) made
/// safe for one log line: control and non-ASCII characters become `?`, the
/// text is cut at [`DETAIL_MAX`] characters. Unlike [`clean`], spaces stay
/// (details are prose) and the cut is long enough to name the cause.
pub fn detail(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(DETAIL_MAX)
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect();
    if s.chars().count() > DETAIL_MAX {
        out.push_str("...");
    }
    if out.is_empty() {
        out.push('-');
    }
    out
}

/// Remote text (Duo messages, device names) made safe for a terminal:
/// printable ASCII and spaces only, at most `max` characters.
pub fn printable(s: &str, max: usize) -> String {
    s.chars()
        .take(max)
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{Audit, DETAIL_MAX, LOG_BUDGET, clean, detail, printable};
    use crate::clock::Stopwatch;
    use std::io::Read;
    use std::os::unix::net::{UnixDatagram, UnixListener};
    use std::time::Duration;

    /// Scheduling slack on a busy machine; the point is "bounded", and
    /// twenty lines at the old one second each would take 20 s.
    const SLACK: Duration = Duration::from_millis(400);

    #[test]
    fn stalled_stream_socket_costs_at_most_the_budget() {
        use nix::sys::socket::*;
        use std::os::fd::AsRawFd;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let listener = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::empty(),
            None,
        )
        .unwrap();
        let addr = UnixAddr::new(&path).unwrap();
        bind(listener.as_raw_fd(), &addr).unwrap();
        listen(&listener, Backlog::new(0).unwrap()).unwrap();
        // Fill the backlog: the next connect would wait for an accept()
        // that never comes.
        let mut queued = Vec::new();
        loop {
            let c = socket(
                AddressFamily::Unix,
                SockType::Stream,
                SockFlag::SOCK_NONBLOCK,
                None,
            )
            .unwrap();
            if connect(c.as_raw_fd(), &addr).is_err() {
                break;
            }
            queued.push(c);
        }
        let t = Stopwatch::start();
        let mut a = Audit::new(&path, "test", false);
        for _ in 0..20 {
            a.err("a line nobody reads");
        }
        assert!(t.elapsed() < LOG_BUDGET + SLACK, "{:?}", t.elapsed());
    }

    #[test]
    fn full_datagram_queue_costs_at_most_the_budget_in_total() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let reader = UnixDatagram::bind(&path).unwrap();
        let filler = UnixDatagram::unbound().unwrap();
        filler.connect(&path).unwrap();
        filler.set_nonblocking(true).unwrap();
        while filler.send(b"filler").is_ok() {}
        let t = Stopwatch::start();
        let mut a = Audit::new(&path, "test", false);
        for _ in 0..20 {
            a.warning("a line that does not fit");
        }
        assert!(t.elapsed() < LOG_BUDGET + SLACK, "{:?}", t.elapsed());
        // With room again, lines go through without waiting.
        let mut buf = [0u8; 512];
        reader.set_nonblocking(true).unwrap();
        while reader.recv(&mut buf).is_ok() {}
        a.notice("after the queue drained");
        let n = reader.recv(&mut buf).unwrap();
        let line = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(line.starts_with("<85>"), "{line}");
        assert!(line.ends_with("]: after the queue drained"), "{line}");
    }

    /// The module's lines have pam_syslog()'s form: the host program's
    /// name and pid, then `pam_2fa(SERVICE:HOOK): `.
    #[test]
    fn pam_lines_have_the_pam_syslog_form() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let reader = UnixDatagram::bind(&path).unwrap();
        reader.set_nonblocking(true).unwrap();
        let mut a = Audit::pam(&path, "ssh d\n", "auth");
        a.warning("auth failed user=x");
        let mut buf = [0u8; 512];
        let n = reader.recv(&mut buf).unwrap();
        let line = String::from_utf8_lossy(&buf[..n]).into_owned();
        let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
        let ident = super::host_program();
        assert!(ident.starts_with(comm.trim_end()), "{ident} {comm}");
        assert!(line.starts_with("<84>"), "{line}");
        assert!(
            line.ends_with(&format!(
                " {ident}[{}]: pam_2fa(ssh_d?:auth): auth failed user=x",
                std::process::id()
            )),
            "{line}"
        );
    }

    /// Debug lines are written only with `debug` on, at severity debug,
    /// and their text is not even made otherwise.
    #[test]
    fn debug_lines_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let reader = UnixDatagram::bind(&path).unwrap();
        reader.set_nonblocking(true).unwrap();
        let mut a = Audit::new(&path, "test", false);
        a.debug(|| unreachable!("formatted with debug off"));
        let mut buf = [0u8; 512];
        assert!(reader.recv(&mut buf).is_err());
        a.set_debug(true);
        assert!(a.debugging());
        a.debug(|| "details".into());
        let n = reader.recv(&mut buf).unwrap();
        let line = String::from_utf8_lossy(&buf[..n]).into_owned();
        // <87> = authpriv (10) * 8 + debug (7).
        assert!(
            line.starts_with("<87>") && line.ends_with("]: details"),
            "{line}"
        );
    }

    #[test]
    fn stream_lines_are_nul_terminated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let listener = UnixListener::bind(&path).unwrap();
        let mut a = Audit::new(&path, "test", false);
        let (mut conn, _) = listener.accept().unwrap();
        a.info("one");
        a.err("two");
        drop(a);
        let mut got = Vec::new();
        conn.read_to_end(&mut got).unwrap();
        let text = String::from_utf8(got).unwrap();
        let lines: Vec<&str> = text.split_terminator('\0').collect();
        assert_eq!(lines.len(), 2, "{text:?}");
        assert!(lines[0].starts_with("<86>") && lines[0].ends_with("]: one"));
        assert!(lines[1].starts_with("<83>") && lines[1].ends_with("]: two"));
    }

    #[test]
    fn details_keep_the_cause() {
        let tls = "Duo unreachable: error sending request: client error (Connect): invalid peer certificate: certificate not valid for name \"api-x.duosecurity.com\"; certificate is only valid for DnsName(\"evil.example\")";
        assert_eq!(detail(tls), tls, "a whole TLS cause chain fits");
        assert!(tls.len() > 64, "longer than the old cut");
        assert_eq!(detail("a\nforged line\x1b[2J"), "a?forged line?[2J");
        assert_eq!(detail(&"x".repeat(1000)).len(), DETAIL_MAX + 3);
        assert_eq!(detail(""), "-");
    }

    #[test]
    fn printable_keeps_spaces_and_drops_escapes() {
        assert_eq!(printable("iPhone (XXX-1234)", 100), "iPhone (XXX-1234)");
        assert_eq!(printable("a\x1b[2Jb\u{202e}c", 100), "a?[2Jb?c");
        assert_eq!(printable("abcdef", 3), "abc");
    }

    #[test]
    fn cleans_untrusted_text() {
        assert_eq!(clean("alice"), "alice");
        assert_eq!(clean("a\nb=c d"), "a?b=c_d");
        assert_eq!(clean("\x1b[31mx"), "?[31mx");
        assert_eq!(clean(""), "-");
        assert_eq!(clean(&"x".repeat(100)).len(), 67);
    }
}
