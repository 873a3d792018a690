//! Logging to syslog (facility authpriv) with sanitised fields.
//!
//! A logger is opened per PAM call and dropped before the call returns: no
//! global state and no background thread in the host process (sshd forks).
//! User-supplied text (user name, rhost) is cleaned so nobody can forge log
//! lines with newlines or escape sequences. Codes are never logged.

use std::path::Path;
use std::time::Duration;
use syslog::{Facility, Formatter3164, Logger, LoggerBackend};

/// Longest a log line may block the caller before it is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(1);

pub struct Audit {
    logger: Option<Logger<LoggerBackend, Formatter3164>>,
    /// Also echo to stderr (the CLI does; the PAM module must not).
    echo_stderr: bool,
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
        let logger = syslog::unix_custom(formatter, socket).ok();
        // A full or stuck log socket must not hang the login: a datagram
        // socket blocks once the reader's queue is full (only 10 datagrams
        // by default, net.unix.max_dgram_qlen), so give up on a line rather
        // than wait for ever.
        if let Some(l) = &logger {
            let _ = match &l.backend {
                LoggerBackend::Unix(s) => s.set_write_timeout(Some(SEND_TIMEOUT)),
                LoggerBackend::UnixStream(s) => s.get_ref().set_write_timeout(Some(SEND_TIMEOUT)),
                _ => Ok(()),
            };
        }
        Audit {
            logger,
            echo_stderr,
        }
    }

    /// A logger that drops everything (tests, or before config is known).
    pub fn null() -> Audit {
        Audit {
            logger: None,
            echo_stderr: false,
        }
    }

    pub fn info(&mut self, msg: &str) {
        if let Some(l) = self.logger.as_mut() {
            let _ = l.info(msg);
        }
    }

    pub fn notice(&mut self, msg: &str) {
        if let Some(l) = self.logger.as_mut() {
            let _ = l.notice(msg);
        }
        if self.echo_stderr {
            eprintln!("{msg}");
        }
    }

    pub fn warning(&mut self, msg: &str) {
        if let Some(l) = self.logger.as_mut() {
            let _ = l.warning(msg);
        }
        if self.echo_stderr {
            eprintln!("warning: {msg}");
        }
    }

    pub fn err(&mut self, msg: &str) {
        if let Some(l) = self.logger.as_mut() {
            let _ = l.err(msg);
        }
        if self.echo_stderr {
            eprintln!("error: {msg}");
        }
    }
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
    use super::{DETAIL_MAX, clean, detail, printable};

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
