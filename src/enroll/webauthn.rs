//! `2fa-enroll webauthn add|list|remove`: security keys and platform
//! authenticators. The browser ceremony runs against 2fad, so these
//! commands always talk to 2fad, for root as for ordinary users.

use super::output::{qr, read_line, utc};
use super::{CliError, CliResult};
use crate::daemon::protocol::{Op, Request, Response, VERSION};
use crate::daemon::server::call;
use clap::{Args, Subcommand};
use std::path::Path;
use std::time::{Duration, Instant};

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
    },
    /// List registered keys.
    List,
    /// Remove a key by name (asks for a current code).
    Remove { name: String },
}

fn ask(socket: &Path, user: &Option<String>, op: Op) -> Result<Response, CliError> {
    let req = Request {
        version: VERSION,
        user: user.clone(),
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

pub fn run(socket: &Path, is_root: bool, a: WebauthnArgs) -> CliResult {
    let user = a.user.clone();
    match a.what {
        WebauthnCmd::Add { name } => {
            let (url, token) =
                match ask(socket, &user, Op::WebauthnRegister { name: name.clone() })? {
                    Response::Link { url, token } => (url, token),
                    r => return Err(fail(r)),
                };
            println!("Open this link in a browser on the device with your key (it works once):");
            println!("  {url}");
            if let Some(q) = qr(&url) {
                println!("{q}");
            }
            loop {
                if read_line("When the browser says the key is registered, press Enter: ")?
                    .is_none()
                {
                    return Err(CliError("input ended; the key was not registered".into()));
                }
                // Give a just-finished ceremony a moment to land.
                let deadline = Instant::now() + Duration::from_secs(5);
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
                            if code == "pending" && Instant::now() < deadline =>
                        {
                            std::thread::sleep(Duration::from_millis(250));
                        }
                        Response::Error { code, .. } if code == "pending" => {
                            println!("Not finished yet.");
                            break;
                        }
                        r => return Err(fail(r)),
                    }
                }
            }
        }
        WebauthnCmd::List => match ask(socket, &user, Op::WebauthnList)? {
            Response::Keys { keys } => {
                if keys.is_empty() {
                    println!("No security keys registered.");
                }
                for k in keys {
                    println!(
                        "  {:<24} added {}  last used {}",
                        crate::audit::printable(&k.name, 24),
                        utc(k.created_at),
                        k.last_used_at.map(utc).unwrap_or_else(|| "never".into())
                    );
                }
                Ok(())
            }
            r => Err(fail(r)),
        },
        WebauthnCmd::Remove { name } => {
            let current = if is_root && user.is_some() {
                None
            } else {
                read_line("Removing a key needs a current code (TOTP or backup code): ")?
            };
            match ask(socket, &user, Op::WebauthnRemove { name, current })? {
                Response::Done { message } => {
                    println!("{message}");
                    Ok(())
                }
                r => Err(fail(r)),
            }
        }
    }
}
