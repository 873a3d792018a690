//! `2fa-enroll` for ordinary users: the store is root-only and the binary
//! is never setuid, so `status`, `totp`, `backup` and `remove totp|backup`
//! go through 2fad's socket, which acts for the caller's uid only. Every
//! change asks first for a proof of a factor the user already has
//! (`proof`), which 2fad requires once they have one.

use super::admin::{RemoveArgs, StatusArgs};
use super::backup::BackupArgs;
use super::factor_args::Removable;
use super::otp::TotpArgs;
use super::output::read_line;
use super::policy::{DevicesArgs, DevicesCmd};
use super::{CliError, CliResult, Command};
use p2fa_core::display::qr;
use p2fa_core::factor::FactorId;
use p2fa_proto::client::call;
use p2fa_proto::protocol::{ErrorCode, Op, Proof, Request, Response};
use std::path::Path;

/// `Some(result)` when the command was handled through 2fad; `None` when
/// the command cannot be (root-only) or 2fad is not running.
pub fn run(socket: &Path, user: &str, command: &Command) -> Option<CliResult> {
    if !socket.exists() {
        return None;
    }
    let own = |u: &Option<String>| u.as_deref().is_none_or(|u| u == user);
    Some(match command {
        Command::Status(StatusArgs {
            user: u,
            all: false,
            json,
        }) if own(u) => status(socket, *json),
        Command::Totp(a) if own(&a.user) => totp(socket, a),
        Command::Backup(a) if own(&a.user) => backup(socket, a, user),
        Command::Remove(RemoveArgs { what, user: u }) if own(u) => remove(socket, *what),
        Command::Devices(DevicesArgs {
            what:
                DevicesCmd::List {
                    user: u,
                    all: false,
                },
        }) if own(u) => devices_list(socket),
        Command::Devices(DevicesArgs {
            what: DevicesCmd::Revoke { id, all, user: u },
        }) if own(u) => devices_revoke(socket, if *all { None } else { *id }),
        _ => return None,
    })
}

fn ask(socket: &Path, op: Op) -> Result<Response, CliError> {
    ask_with(socket, op, None)
}

fn ask_with(socket: &Path, op: Op, proof: Option<Proof>) -> Result<Response, CliError> {
    let req = Request {
        proof,
        ..Request::new(op)
    };
    call(socket, &req)
        .map_err(|e| CliError(format!("talking to 2fad at {}: {e}", socket.display())))
}

fn fail(r: Response) -> CliError {
    match r {
        Response::Error { message, .. } => CliError(message),
        other => CliError(format!("unexpected answer from 2fad: {other:?}")),
    }
}

fn line(prompt: &str) -> Result<String, CliError> {
    read_line(prompt)?.ok_or_else(|| CliError("input ended; nothing changed".into()))
}

fn status(socket: &Path, json: bool) -> CliResult {
    match ask(socket, Op::Status)? {
        Response::Status { status } => {
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                let s: p2fa_core::store::UserStatus = serde_json::from_value(status)?;
                // 2fad answers from the store alone: `duo.users` is not
                // in it.
                super::admin::print_status(&s, false);
            }
            Ok(())
        }
        r => Err(fail(r)),
    }
}

fn totp(socket: &Path, a: &TotpArgs) -> CliResult {
    if a.no_verify || a.algorithm.is_some() || a.digits.is_some() || a.period.is_some() {
        return Err(CliError(
            "--no-verify, --algorithm, --digits and --period need root; ask an administrator"
                .into(),
        ));
    }
    let (uri, secret, digits, needs_current) = match ask(
        socket,
        Op::TotpBegin {
            secret: a.secret.clone(),
        },
    )? {
        Response::TotpPending {
            uri,
            secret,
            digits,
            needs_current,
            ..
        } => (uri, secret, digits, needs_current),
        r => return Err(fail(r)),
    };
    if !a.no_qr
        && let Some(q) = qr(&uri)
    {
        println!("Scan this QR code with your authenticator app:\n{q}");
    }
    println!("Secret key: {secret}");
    println!("URI:        {uri}");
    let proof = if needs_current {
        let confirm = Op::TotpFinish {
            code: String::new(),
        };
        super::proof::for_op(socket, &confirm)?
    } else {
        None
    };
    for _ in 0..3 {
        let code = line(&format!(
            "Enter the {digits}-digit code from the new app to confirm: "
        ))?;
        match ask_with(socket, Op::TotpFinish { code }, proof.clone())? {
            Response::Done { message } => {
                println!("{message}");
                return Ok(());
            }
            Response::Error { code, message }
                if code == ErrorCode::WrongCode && message.contains("new secret") =>
            {
                println!(
                    "That code does not match. Check the phone's clock and try the next code."
                );
            }
            r => return Err(fail(r)),
        }
    }
    Err(CliError("no matching code; nothing was saved".into()))
}

fn backup(socket: &Path, a: &BackupArgs, user: &str) -> CliResult {
    if a.count.is_some() {
        return Err(CliError("--count needs root; ask an administrator".into()));
    }
    let proof = super::proof::for_op(socket, &Op::Backup)?;
    let codes = match ask_with(socket, Op::Backup, proof)? {
        Response::BackupCodes { codes } => codes,
        r => return Err(fail(r)),
    };
    let mut text = format!("Backup codes for {user} (each works once):\n");
    for chunk in codes.chunks(3) {
        text.push_str("  ");
        text.push_str(&chunk.join("   "));
        text.push('\n');
    }
    if let Some(p) = &a.output {
        super::backup::write_file(p, &text, user)?;
    }
    print!("{text}");
    println!(
        "Keep them somewhere safe, away from your phone. Any earlier backup codes no longer work."
    );
    Ok(())
}

fn remove(socket: &Path, what: Removable) -> CliResult {
    let method = match what.factor() {
        FactorId::Totp | FactorId::Hotp => FactorId::Totp,
        FactorId::Backup => FactorId::Backup,
        _ => {
            return Err(CliError(
                "only totp and backup can be removed without root".into(),
            ));
        }
    };
    let op = Op::Remove {
        method: method.to_string(),
    };
    let proof = super::proof::for_op(socket, &op)?;
    match ask_with(socket, op, proof)? {
        Response::Done { message } => {
            println!("{message}");
            Ok(())
        }
        r => Err(fail(r)),
    }
}

fn devices_list(socket: &Path) -> CliResult {
    match ask(socket, Op::DevicesList)? {
        Response::Devices { devices } => {
            if devices.is_empty() {
                println!("No remembered devices.");
            }
            for r in devices {
                println!(
                    "{:>5}  {}  {}  since {}  until {}",
                    r.id,
                    p2fa_core::audit::printable(&r.service, 32),
                    p2fa_core::audit::printable(&r.source, 64),
                    super::output::utc(r.created_at),
                    super::output::utc(r.expires_at)
                );
            }
            Ok(())
        }
        r => Err(fail(r)),
    }
}

fn devices_revoke(socket: &Path, id: Option<i64>) -> CliResult {
    match ask(socket, Op::DevicesRevoke { id })? {
        Response::Done { message } => {
            println!("{message}");
            Ok(())
        }
        r => Err(fail(r)),
    }
}
