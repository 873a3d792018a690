//! Proving an existing factor before a change made through 2fad. Once a
//! user has any factor, 2fad changes nothing (add, replace, remove, new
//! backup codes, keys) without a current proof of one they hold: a
//! TOTP/HOTP or backup code, an approval with one of their security keys
//! in a 2fad ceremony bound to exactly this change, or (when they have
//! only a phone number or address) a code 2fad sends there. Users whose
//! factors 2fad cannot check (Duo, questions, a console key) are told by
//! 2fad which `sudo` command to ask an administrator for.

use super::output::read_line;
use super::{CliError, CliResult};
use p2fa_core::clock::{self, Deadline};
use p2fa_core::display::qr;
use p2fa_proto::client::call;
use p2fa_proto::protocol::{self, ErrorCode, Op, Proof, Request, Response};
use std::path::Path;
use std::time::Duration;

fn ask(socket: &Path, op: Op) -> Result<Response, CliError> {
    call(socket, &Request::new(op))
        .map_err(|e| CliError(format!("talking to 2fad at {}: {e}", socket.display())))
}

fn fail(r: Response) -> CliError {
    match r {
        Response::Error { message, .. } => CliError(message),
        other => CliError(format!("unexpected answer from 2fad: {other:?}")),
    }
}

/// The proof the caller gives for the change `op` makes; `None` when
/// 2fad needs none from them (no factor yet) or cannot check any they
/// have (it then says what to do).
pub fn for_op(socket: &Path, op: &Op) -> Result<Option<Proof>, CliError> {
    match protocol::purpose(op) {
        Some(purpose) => obtain(socket, &purpose),
        None => Ok(None),
    }
}

fn obtain(socket: &Path, purpose: &str) -> Result<Option<Proof>, CliError> {
    let status: p2fa_core::store::UserStatus = match ask(socket, Op::Status)? {
        Response::Status { status } => serde_json::from_value(status)?,
        r => return Err(fail(r)),
    };
    let code = status.otp.is_some() || status.backup_codes_remaining > 0;
    let key = status.webauthn > 0;
    match (code, key) {
        (true, true) => {
            let typed = line(
                "This change needs a current code (TOTP or backup code), \
                 or press Enter to approve it with your security key instead: ",
            )?;
            if typed.trim().is_empty() {
                security_key(socket, purpose).map(Some)
            } else {
                Ok(Some(Proof::Code(typed)))
            }
        }
        (true, false) => {
            let typed = line(
                "This change needs a current code of your existing second factor (TOTP or backup code): ",
            )?;
            if typed.trim().is_empty() {
                return Err(CliError("no code given; nothing changed".into()));
            }
            Ok(Some(Proof::Code(typed)))
        }
        (false, true) => security_key(socket, purpose).map(Some),
        (false, false) => sent_code(socket, &status),
    }
}

/// A code 2fad sends to the user's phone or e-mail, when that is all
/// they have; `None` when 2fad cannot send one (it then says whom to ask).
fn sent_code(
    socket: &Path,
    status: &p2fa_core::store::UserStatus,
) -> Result<Option<Proof>, CliError> {
    for (channel, has) in [
        ("sms", status.sms.is_some()),
        ("email", status.email.is_some()),
    ] {
        if !has {
            continue;
        }
        let channel = channel.to_string();
        if let Response::Done { message } = ask(
            socket,
            Op::ProofSend {
                channel: channel.clone(),
            },
        )? {
            println!("{message}");
            let code = line("This change needs the code we sent: ")?;
            return Ok(Some(Proof::Sent { channel, code }));
        }
    }
    Ok(None)
}

fn line(prompt: &str) -> Result<String, CliError> {
    read_line(prompt)?.ok_or_else(|| CliError("input ended; nothing changed".into()))
}

/// Runs a 2fad ceremony in which the user approves `purpose` with one of
/// their keys; returns its token, which 2fad accepts once, for this change.
fn security_key(socket: &Path, purpose: &str) -> Result<Proof, CliError> {
    let (url, token, code) = match ask(
        socket,
        Op::WebauthnProve {
            purpose: purpose.to_string(),
        },
    )? {
        Response::Link { url, token, code } => (url, token, code),
        r => return Err(fail(r)),
    };
    println!(
        "Confirm this change with your security key: open this link in a browser \
         (matching code {code}; the page must show the same code):"
    );
    println!("  {url}");
    if let Some(q) = qr(&url) {
        println!("{q}");
    }
    let outcome = wait(socket, &token);
    if outcome.is_err() {
        let _ = ask(
            socket,
            Op::WebauthnCancel {
                token: token.clone(),
            },
        );
    }
    outcome.map(|()| Proof::Webauthn(token))
}

fn wait(socket: &Path, token: &str) -> CliResult {
    for _ in 0..3 {
        if read_line("When the browser says it is approved, press Enter: ")?.is_none() {
            return Err(CliError("input ended; nothing changed".into()));
        }
        // Give a just-finished ceremony a moment to land.
        let deadline = Deadline::after(Duration::from_secs(5));
        loop {
            match ask(
                socket,
                Op::WebauthnResult {
                    token: token.to_string(),
                },
            )? {
                Response::Done { .. } => return Ok(()),
                Response::Error { code, .. }
                    if code == ErrorCode::Pending && !deadline.passed() =>
                {
                    clock::sleep(Duration::from_millis(250));
                }
                Response::Error {
                    code: ErrorCode::Pending,
                    ..
                } => {
                    println!("Not approved yet.");
                    break;
                }
                r => return Err(fail(r)),
            }
        }
    }
    Err(CliError("not approved; nothing changed".into()))
}
