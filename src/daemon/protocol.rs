//! The 2fad socket protocol: one JSON value per frame, each frame a 4-byte
//! big-endian length and at most [`MAX_FRAME`] bytes. Requests carry the
//! protocol version; who is asking is never taken from the request but
//! from the socket (SO_PEERCRED), so `user` in a request is only a wish
//! that the daemon grants to root.

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
    #[serde(flatten)]
    pub op: Op,
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
    /// Confirms the pending secret with a code from the app. `current` is a
    /// code of an existing factor, required when one is being replaced.
    TotpFinish {
        code: String,
        #[serde(default)]
        current: Option<String>,
    },
    /// New backup codes (replacing old ones needs `current`).
    Backup {
        #[serde(default)]
        current: Option<String>,
    },
    /// Removes `totp` or `backup` (needs `current`).
    Remove {
        method: String,
        current: String,
    },
    /// Registers a security key or platform authenticator: returns a link.
    WebauthnRegister {
        name: String,
    },
    /// Starts a login ceremony for `user` (root only: the PAM module).
    WebauthnLogin,
    /// Where a link's ceremony stands; a finished one is forgotten.
    WebauthnResult {
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
    /// Removing a key needs a current code (TOTP/backup) unless root acts.
    WebauthnRemove {
        name: String,
        #[serde(default)]
        current: Option<String>,
    },
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
    },
    Keys {
        keys: Vec<KeyInfo>,
    },
    Devices {
        devices: Vec<crate::store::Remembered>,
    },
    /// Refused: the message is for the user; `code` is machine-readable
    /// (`denied`, `bad_request`, `needs_current`, `wrong_code`, `locked`,
    /// `unavailable`, `version`, `pending`, `failed`).
    Error {
        code: String,
        message: String,
    },
}

impl Response {
    pub fn error(code: &str, message: impl Into<String>) -> Response {
        Response::Error {
            code: code.into(),
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
    fn frames_round_trip_and_limits_hold() {
        let req = Request {
            version: VERSION,
            user: None,
            op: Op::TotpFinish {
                code: "123456".into(),
                current: None,
            },
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
    }
}
