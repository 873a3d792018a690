//! `2fa-enroll webauthn add|list|remove`: security keys and platform
//! authenticators. The browser ceremony runs against 2fad, so adding a
//! browser key always talks to 2fad, for root as for ordinary users.
//! `add --local` registers a key plugged into this machine (root, see
//! `localkey`); root lists and removes from the store directly, ordinary
//! users through 2fad, proving a factor they hold first (`proof`).

use super::output::{read_line, utc};
use super::{CliError, CliResult};
use clap::{Args, Subcommand};
use p2fa_core::clock::{self, Deadline};
use p2fa_core::display::qr;
use p2fa_proto::client::call;
use p2fa_proto::protocol::{ErrorCode, Op, Proof, Request, Response, VERSION};
use std::path::Path;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct WebauthnArgs {
    #[command(subcommand)]
    pub what: WebauthnCmd,
    /// Act for this user (root).
    #[arg(long, global = true)]
    pub user: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum WebauthnCmd {
    /// Register a key: prints a link to open in a browser.
    Add {
        /// A name to tell your keys apart ("YubiKey 5", "laptop").
        #[arg(long)]
        name: String,
        /// A key plugged into this machine, used at its console through
        /// libfido2 (fido2-tools) instead of a browser (root).
        #[arg(long)]
        local: bool,
        /// With --local: the device (as `fido2-token -L` lists it);
        /// default: the first one.
        #[arg(long, value_name = "PATH", requires = "local")]
        device: Option<String>,
    },
    /// List registered keys.
    List,
    /// Remove a key by name (asks for a current code).
    Remove { name: String },
}

fn ask(socket: &Path, user: &Option<String>, op: Op) -> Result<Response, CliError> {
    ask_with(socket, user, op, None)
}

fn ask_with(
    socket: &Path,
    user: &Option<String>,
    op: Op,
    proof: Option<Proof>,
) -> Result<Response, CliError> {
    let req = Request {
        version: VERSION,
        user: user.clone(),
        proof,
        op,
    };
    call(socket, &req).map_err(|e| {
        CliError(format!(
            "security keys are registered through 2fad, which is not reachable at {} ({e}); start it (systemctl start 2fad.socket)",
            socket.display()
        ))
    })
}

fn fail(r: Response) -> CliError {
    match r {
        Response::Error { message, .. } => CliError(message),
        other => CliError(format!("unexpected answer from 2fad: {other:?}")),
    }
}

/// `root`: root's context when the config loaded (local keys, direct
/// store access); `None` for ordinary users.
pub fn run(
    socket: &Path,
    is_root: bool,
    root: Option<&mut super::Ctx>,
    a: WebauthnArgs,
) -> CliResult {
    let user = a.user.clone();
    match (a.what, root) {
        (
            WebauthnCmd::Add {
                name,
                local: true,
                device,
            },
            Some(ctx),
        ) => super::localkey::add(ctx, user.as_deref(), &name, device.as_deref()),
        (
            WebauthnCmd::Add {
                name, local: true, ..
            },
            None,
        ) => Err(CliError(if is_root {
            "cannot load the configuration (see above)".into()
        } else {
            format!(
                "local security keys are registered by root, with the key plugged into this machine \
                 (the store is root-only and this program is not setuid).\n\
                 Ask an administrator to run:  sudo 2fa-enroll webauthn add --local --name {:?} --user {}",
                name,
                p2fa_core::users::current().unwrap_or_else(|| "YOU".into())
            )
        })),
        (WebauthnCmd::List, Some(ctx)) => super::localkey::list(ctx, user.as_deref()),
        (WebauthnCmd::Remove { name }, Some(ctx)) => {
            if super::localkey::remove(ctx, user.as_deref(), &name)? {
                return Ok(());
            }
            remove_via_daemon(socket, is_root, &user, name)
        }
        (WebauthnCmd::Add { name, .. }, _) => {
            let op = Op::WebauthnRegister { name: name.clone() };
            let proof = if is_root {
                None
            } else {
                super::proof::for_op(socket, &op)?
            };
            let (url, token, code) = match ask_with(socket, &user, op, proof)? {
                Response::Link { url, token, code } => (url, token, code),
                r => return Err(fail(r)),
            };
            println!(
                "Open this link in a browser on the device with your key (it works once; \
                 the page shows the matching code {code}):"
            );
            println!("  {url}");
            if let Some(q) = qr(&url) {
                println!("{q}");
            }
            loop {
                if read_line("When the browser says the key is registered, press Enter: ")?
                    .is_none()
                {
                    let _ = ask(socket, &user, Op::WebauthnCancel { token });
                    return Err(CliError("input ended; the key was not registered".into()));
                }
                // Give a just-finished ceremony a moment to land.
                let deadline = Deadline::after(Duration::from_secs(5));
                loop {
                    match ask(
                        socket,
                        &user,
                        Op::WebauthnResult {
                            token: token.clone(),
                        },
                    )? {
                        Response::Done { message } => {
                            println!("Registered the key {message:?}.");
                            return Ok(());
                        }
                        Response::Error { code, .. }
                            if code == ErrorCode::Pending && !deadline.passed() =>
                        {
                            clock::sleep(Duration::from_millis(250));
                        }
                        Response::Error {
                            code: ErrorCode::Pending,
                            ..
                        } => {
                            println!("Not finished yet.");
                            break;
                        }
                        r => return Err(fail(r)),
                    }
                }
            }
        }
        (WebauthnCmd::List, None) => match ask(socket, &user, Op::WebauthnList)? {
            Response::Keys { keys } => {
                if keys.is_empty() {
                    println!("No security keys registered.");
                }
                for k in keys {
                    println!(
                        "  {:<24} added {}  last used {}{}",
                        p2fa_core::audit::printable(&k.name, 24),
                        utc(k.created_at),
                        k.last_used_at.map(utc).unwrap_or_else(|| "never".into()),
                        if k.local { "  (local)" } else { "" }
                    );
                }
                Ok(())
            }
            r => Err(fail(r)),
        },
        (WebauthnCmd::Remove { name }, None) => remove_via_daemon(socket, is_root, &user, name),
    }
}

/// A browser key (or, for an ordinary user, any key) is removed by 2fad.
fn remove_via_daemon(
    socket: &Path,
    is_root: bool,
    user: &Option<String>,
    name: String,
) -> CliResult {
    let op = Op::WebauthnRemove { name };
    let proof = if is_root {
        None
    } else {
        super::proof::for_op(socket, &op)?
    };
    match ask_with(socket, user, op, proof)? {
        Response::Done { message } => {
            println!("{message}");
            Ok(())
        }
        r => Err(fail(r)),
    }
}
