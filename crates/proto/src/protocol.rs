//! The 2fad socket protocol: one JSON value per frame, each frame a 4-byte
//! big-endian length and at most [`MAX_FRAME`] bytes. Requests carry the
//! protocol version; who is asking is never taken from the request but
//! from the socket (SO_PEERCRED), so `user` in a request is only a wish
//! that the daemon grants to root.

use p2fa_core::clock::Deadline;
use p2fa_core::factor::FactorId;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};

pub const VERSION: u32 = 1;
/// Largest frame either side accepts.
pub const MAX_FRAME: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub version: u32,
    /// Act for this user (root only); default: the caller.
    #[serde(default)]
    pub user: Option<String>,
    /// Proof of an existing factor, for a request that changes factors
    /// (see [`purpose`]). Root needs none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<Proof>,
    #[serde(flatten)]
    pub op: Op,
}

impl Request {
    /// A request for the caller (no `user`, no proof).
    pub fn new(op: Op) -> Request {
        Request {
            version: VERSION,
            user: None,
            proof: None,
            op,
        }
    }
}

/// How a user proves they hold one of their existing factors before a
/// change: a current code (TOTP/HOTP or backup code), checked and counted
/// like a login, or the token of a WebAuthn ceremony they approved for
/// this very change ([`Op::WebauthnProve`]).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Proof {
    Code(String),
    Webauthn(String),
    /// A code 2fad sent to the user's phone number or e-mail address
    /// ([`Op::ProofSend`]): `channel` is `sms` or `email`.
    Sent {
        channel: String,
        code: String,
    },
}

/// Never print a code or a token.
impl std::fmt::Debug for Proof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Proof::Code(_) => "Proof::Code(..)",
            Proof::Webauthn(_) => "Proof::Webauthn(..)",
            Proof::Sent { .. } => "Proof::Sent(..)",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// The caller's factors (no secrets).
    Status,
    /// Starts a TOTP enrollment: the daemon makes (or takes) a secret and
    /// keeps it, unconfirmed, for `daemon.pending_seconds`.
    TotpBegin {
        #[serde(default)]
        secret: Option<String>,
    },
    /// Confirms the pending secret with a code from the app; saves it
    /// (a change: needs a proof once the user has a factor).
    TotpFinish {
        code: String,
    },
    /// New backup codes (a change).
    Backup,
    /// Removes `totp` or `backup` (a change).
    Remove {
        method: String,
    },
    /// Registers a security key or platform authenticator: returns a link
    /// (a change).
    WebauthnRegister {
        name: String,
    },
    /// Starts a login ceremony for `user` (root only: the PAM module).
    /// `service` and `rhost` are shown on the approval page.
    WebauthnLogin {
        #[serde(default)]
        service: String,
        #[serde(default)]
        rhost: String,
    },
    /// Starts a ceremony in which the caller proves, with one of their
    /// keys, that they may make the change named `purpose` (the
    /// [`purpose`] of the request that will carry the proof).
    WebauthnProve {
        purpose: String,
    },
    /// Where a link's ceremony stands. A finished registration or login is
    /// forgotten once read; login results are for root only.
    WebauthnResult {
        token: String,
    },
    /// Gives up a ceremony (its link dies at once, freeing its quota).
    WebauthnCancel {
        token: String,
    },
    WebauthnList,
    /// Remembered devices of the caller.
    DevicesList,
    /// Forgets one remembered device (`id`) or all (`None`).
    DevicesRevoke {
        #[serde(default)]
        id: Option<i64>,
    },
    /// Removes a key, browser or local (a change).
    WebauthnRemove {
        name: String,
    },
    /// A one-time link to the caller's profile page in the browser (root:
    /// for `user`, acting as root). Changes made there need the same
    /// proof as over this socket, made on the page.
    WebProfile,
    /// Sends a code to a new phone number (`sms`) or e-mail address
    /// (`email`) to confirm it (a change: the proof goes here).
    ContactBegin {
        channel: String,
        address: String,
    },
    /// The code that arrived: saves the number or address begun above.
    ContactFinish {
        code: String,
    },
    /// Sends a code to the caller's own phone number or e-mail address
    /// (`channel`), to be given back as [`Proof::Sent`].
    ProofSend {
        channel: String,
    },
    /// What Duo says about the caller (preauth): enrolled there, needs to
    /// enroll (with Duo's enrollment link), denied, or unreachable.
    DuoStatus,
    /// Log in with Duo from now on (a change; Duo must know the user).
    DuoEnroll,
    /// The security questions the caller may choose from.
    QuestionsChoices,
    /// Sets the caller's security questions (a change).
    QuestionsSet {
        answers: Vec<Answer>,
    },
}

/// A chosen security question and its answer (never logged).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    pub question: String,
    pub answer: String,
}

/// Never print an answer.
impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Answer {{ question: {:?}, answer: .. }}", self.question)
    }
}

/// What a request changes, as the words a proof is bound to; `None` for
/// requests that change no factor. The CLI asks for a proof of exactly
/// this purpose, and 2fad accepts a WebAuthn proof only for it.
pub fn purpose(op: &Op) -> Option<String> {
    Some(match op {
        Op::TotpFinish { .. } => FactorId::Totp.to_string(),
        Op::Backup => FactorId::Backup.to_string(),
        Op::Remove { method } => format!("remove {method}"),
        Op::WebauthnRegister { name } => format!("webauthn add {name}"),
        Op::WebauthnRemove { name } => format!("webauthn remove {name}"),
        Op::ContactBegin { channel, .. } => channel.clone(),
        Op::DuoEnroll => FactorId::Duo.to_string(),
        Op::QuestionsSet { .. } => FactorId::Questions.to_string(),
        _ => return None,
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    /// A local key (console, fido2-tools) rather than a browser one.
    #[serde(default)]
    pub local: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    Status {
        status: serde_json::Value,
    },
    TotpPending {
        uri: String,
        secret: String,
        digits: u32,
        period: u32,
        needs_current: bool,
    },
    Done {
        message: String,
    },
    BackupCodes {
        codes: Vec<String>,
    },
    Link {
        url: String,
        token: String,
        /// The matching code the approval page shows (4 digits).
        #[serde(default)]
        code: String,
    },
    Keys {
        keys: Vec<KeyInfo>,
    },
    /// Duo's word on the user: `state` is `auth` (Duo knows them, with
    /// `devices`), `allow` (bypass), `enroll` (not yet: `portal` is Duo's
    /// enrollment link, if it gave one), `deny`, or `unavailable`.
    Duo {
        state: String,
        message: String,
        #[serde(default)]
        portal: String,
        #[serde(default)]
        devices: Vec<String>,
        /// Enrolled here (`2fa-enroll duo`).
        enrolled: bool,
    },
    /// The questions to choose from, and how many to answer.
    Questions {
        choices: Vec<String>,
        count: u32,
        /// Users may also write their own questions.
        #[serde(default)]
        allow_custom: bool,
        /// The questions the user has now.
        current: Vec<String>,
    },
    Devices {
        devices: Vec<p2fa_core::store::Remembered>,
    },
    /// Refused: the message is for the user; `code` is for programs.
    Error {
        code: ErrorCode,
        message: String,
    },
}

/// Why 2fad refused a request, on the wire as the snake_case name. Clients
/// branch on this, never on the message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not allowed for this caller (policy, or root-only).
    Denied,
    /// Malformed or out-of-range request.
    BadRequest,
    /// The user has a factor: send a proof of it with the request.
    NeedsCurrent,
    /// The user's only factors are ones 2fad cannot check: ask root.
    NeedsRoot,
    /// The code for the factor being set up does not match.
    WrongCode,
    /// The proof of an existing factor was refused (and counted).
    WrongProof,
    /// Too many failures; the account is locked for now.
    Locked,
    /// Store, key or config trouble on the server side.
    Unavailable,
    /// Too many connections or ceremonies at once; try again later.
    Busy,
    /// The client speaks another protocol version.
    Version,
    /// A ceremony has not finished yet: ask again.
    Pending,
    /// A ceremony ended without success.
    Failed,
    /// A code this client does not know (a newer 2fad): treated as a
    /// refusal.
    #[serde(other)]
    Unknown,
}

impl Response {
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Response {
        Response::Error {
            code,
            message: message.into(),
        }
    }
}

/// Reads one frame; `None` at a clean end of stream.
pub fn read_frame(r: &mut impl Read) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "truncated frame length",
                ));
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let n = u32::from_be_bytes(len) as usize;
    if n > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {n} bytes is over the {MAX_FRAME}-byte limit"),
        ));
    }
    let mut buf = vec![0u8; n];
    r.read_exact(&mut buf)?;
    Ok(Some(buf))
}

/// Reads one frame that must arrive whole before `deadline`, however the
/// client splits it up: a per-read timeout alone lets a client keep a
/// connection (and its slot) for ever by sending a byte now and then.
/// `None` at a clean end of stream, or when the deadline passes before
/// the frame's first byte (an idle client); a frame begun but not
/// finished in time is a `TimedOut` error.
pub fn read_frame_by(
    s: &std::os::unix::net::UnixStream,
    deadline: Deadline,
) -> std::io::Result<Option<Vec<u8>>> {
    struct ByDeadline<'a> {
        s: &'a std::os::unix::net::UnixStream,
        deadline: Deadline,
        got: usize,
    }
    impl Read for ByDeadline<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let left = self.deadline.remaining();
            if left.is_zero() {
                return Err(std::io::ErrorKind::TimedOut.into());
            }
            self.s.set_read_timeout(Some(left))?;
            match (&mut &*self.s).read(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    Err(std::io::ErrorKind::TimedOut.into())
                }
                Ok(n) => {
                    self.got += n;
                    Ok(n)
                }
                r => r,
            }
        }
    }
    let mut r = ByDeadline {
        s,
        deadline,
        got: 0,
    };
    match read_frame(&mut r) {
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut && r.got == 0 => Ok(None),
        other => other,
    }
}

pub fn write_frame(w: &mut impl Write, data: &[u8]) -> std::io::Result<()> {
    if data.len() > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "frame too large",
        ));
    }
    w.write_all(&(data.len() as u32).to_be_bytes())?;
    w.write_all(data)?;
    w.flush()
}

pub fn send<T: Serialize>(w: &mut impl Write, v: &T) -> std::io::Result<()> {
    let data = serde_json::to_vec(v).map_err(std::io::Error::other)?;
    write_frame(w, &data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_keep_their_wire_names_and_unknown_ones_are_refusals() {
        let wire = serde_json::to_string(&Response::error(ErrorCode::NeedsCurrent, "m")).unwrap();
        assert!(wire.contains(r#""code":"needs_current""#), "{wire}");
        let back: Response =
            serde_json::from_str(r#"{"result":"error","code":"pending","message":""}"#).unwrap();
        assert_eq!(back, Response::error(ErrorCode::Pending, ""));
        let newer: Response =
            serde_json::from_str(r#"{"result":"error","code":"from_the_future","message":"x"}"#)
                .unwrap();
        assert_eq!(newer, Response::error(ErrorCode::Unknown, "x"));
    }

    #[test]
    fn frames_round_trip_and_limits_hold() {
        let req = Request {
            proof: Some(Proof::Code("123456".into())),
            ..Request::new(Op::TotpFinish {
                code: "654321".into(),
            })
        };
        let mut buf = Vec::new();
        send(&mut buf, &req).unwrap();
        let frame = read_frame(&mut buf.as_slice()).unwrap().unwrap();
        let back: Request = serde_json::from_slice(&frame).unwrap();
        assert_eq!(back, req);
        let mut big = (MAX_FRAME as u32 + 1).to_be_bytes().to_vec();
        big.extend([0u8; 16]);
        assert!(read_frame(&mut big.as_slice()).is_err());
        assert!(
            read_frame(&mut [0u8, 0].as_slice()).is_err(),
            "truncated length"
        );
        assert_eq!(read_frame(&mut [].as_slice()).unwrap(), None);
        assert!(serde_json::from_str::<Request>(r#"{"version":1,"op":"nope"}"#).is_err());
        assert!(
            serde_json::from_str::<Request>(r#"{"version":1,"op":"status","extra":1}"#).is_ok(),
            "unknown top-level fields are ignored"
        );
        // The PAM module of an older build asks for a login without context.
        let old: Request =
            serde_json::from_str(r#"{"version":1,"user":"a","op":"webauthn_login"}"#).unwrap();
        assert_eq!(
            old.op,
            Op::WebauthnLogin {
                service: String::new(),
                rhost: String::new()
            }
        );
        let with: Request =
            serde_json::from_str(r#"{"version":1,"op":"backup","proof":{"webauthn":"tok"}}"#)
                .unwrap();
        assert_eq!(with.proof, Some(Proof::Webauthn("tok".into())));
        assert_eq!(format!("{:?}", with.proof), "Some(Proof::Webauthn(..))");
        assert!(
            serde_json::from_str::<Request>(
                r#"{"version":1,"op":"backup","proof":{"password":"x"}}"#
            )
            .is_err()
        );
        assert_eq!(purpose(&with.op).as_deref(), Some("backup"));
        assert_eq!(purpose(&Op::Status), None);
    }
}
