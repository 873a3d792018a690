//! `2fa-enroll web`: a one-time link to the profile page in the browser,
//! from 2fad (which knows the caller from the socket), printed with a QR
//! code for a phone. Root may open the page for another user
//! (`--user U`): 2fad then acts as root for them, and logs it.

use super::{CliError, CliResult};
use clap::Args;
use p2fa_core::display::qr;
use p2fa_proto::client::call;
use p2fa_proto::protocol::{Op, Request, Response};
use std::path::Path;

#[derive(Args, Debug, Default)]
pub struct WebArgs {
    /// Open the page for this user, acting as root (root only).
    #[arg(long)]
    pub user: Option<String>,
    /// Print only the link (for scripts), no QR code.
    #[arg(long)]
    pub quiet: bool,
}

/// Asks 2fad at `socket` for the link and prints it.
pub fn run(socket: &Path, a: &WebArgs) -> CliResult {
    let req = Request {
        user: a.user.clone(),
        ..Request::new(Op::WebProfile)
    };
    let answer = call(socket, &req).map_err(|e| {
        CliError(format!(
            "talking to 2fad at {}: {e} (is 2fad running?)",
            socket.display()
        ))
    })?;
    match answer {
        Response::Link { url, .. } => {
            if a.quiet {
                println!("{url}");
                return Ok(());
            }
            println!("Open your two-factor profile page in a browser (the link works once):\n");
            println!("  {url}\n");
            if let Some(q) = qr(&url) {
                println!("{q}");
            }
            println!(
                "Or scan the code with your phone. The page works for a few minutes; \
                 run `2fa-enroll web` again for a new link."
            );
            Ok(())
        }
        Response::Error { message, .. } => Err(CliError(message)),
        other => Err(CliError(format!("unexpected answer from 2fad: {other:?}"))),
    }
}
