//! Security keys and platform authenticators at login, through 2fad: the
//! module asks 2fad for a one-time link, shows it (and a QR code for
//! phones) with a prompt and the matching code the approval page shows,
//! and on Enter asks 2fad whether the browser's assertion verified against
//! one of this user's credentials. A login that ends any other way
//! (input ends, Enter without approving, a refusal) cancels its link at
//! once, so abandoned logins do not use up the user's link quota.

use super::super::attempt::{At, Check, Factor, Stop, Vouched};
use super::super::error::AuthError;
use super::super::{Run, Verdict};
use p2fa_core::audit::clean;
use p2fa_core::factor::FactorId;
use p2fa_proto::client::call_root;
use p2fa_proto::protocol::{ErrorCode, Op, Request, Response, VERSION};

/// Enter presses allowed while the ceremony is still open.
const TRIES: usize = 3;

impl Run<'_> {
    fn daemon(&self, op: Op) -> Result<Response, String> {
        let req = Request {
            version: VERSION,
            user: Some(self.login.user.to_string()),
            proof: None,
            op,
        };
        call_root(&self.cfg.daemon.socket, &req)
            .map_err(|e| format!("2fad at {}: {e}", self.cfg.daemon.socket.display()))
    }

    pub(in super::super) fn webauthn(&mut self) -> Verdict {
        let mut key = Webauthn {
            token: None,
            found: None,
        };
        let verdict = self.attempt(&mut key);
        if verdict != Verdict::Success
            && let Some(token) = key.token
        {
            // Best effort: if 2fad is gone, the link expires on its own.
            let _ = self.daemon(Op::WebauthnCancel { token });
        }
        verdict
    }
}

/// A WebAuthn ceremony run by 2fad.
struct Webauthn {
    /// The ceremony's token, once 2fad issued a link.
    token: Option<String>,
    found: Option<Vouched>,
}

impl Factor for Webauthn {
    /// Gets a link from 2fad, shows it, and asks 2fad on each Enter
    /// whether the browser's assertion verified.
    fn challenge(&mut self, run: &mut Run<'_>) -> Result<(), Stop> {
        let login = Op::WebauthnLogin {
            service: run.login.service.to_string(),
            rhost: run.login.rhost.to_string(),
        };
        let (url, token, code) = match run.daemon(login) {
            Ok(Response::Link { url, token, code }) => (url, token, code),
            Ok(Response::Error { message, .. }) => {
                return Err(Stop::Done(run.unavailable(&format!("2fad: {message}"))));
            }
            Ok(other) => {
                return Err(Stop::Done(
                    run.unavailable(&format!("2fad answered {other:?}")),
                ));
            }
            Err(e) => return Err(Stop::Done(run.unavailable(&e))),
        };
        run.audit.info(&format!("webauthn link issued {}", run.who));
        self.token = Some(token.clone());
        self.found = Some(wait(run, &url, &token, &code)?);
        Ok(())
    }

    fn verify(&mut self, _: &At<'_>) -> Result<Check, AuthError> {
        Ok(self.found.as_ref().map_or(
            Check::refused(FactorId::Webauthn, "not-approved-in-time"),
            |v| v.check(FactorId::Webauthn),
        ))
    }
}

/// Shows the link and asks 2fad for the result on each Enter.
fn wait(run: &mut Run<'_>, url: &str, token: &str, code: &str) -> Result<Vouched, Stop> {
    let qr = p2fa_core::display::qr(url).unwrap_or_default();
    let mut prompt = format!(
        "Approve this login with your security key, fingerprint or phone (matching code {code}):\n  {url}\n{qr}\
         The page must show the same code {code}. Open the link, approve, then press Enter: "
    );
    for _ in 0..TRIES {
        if let Err(e) = run.conv.ask(&prompt, true) {
            return Err(Stop::Done(run.conv_failed(&e)));
        }
        match run.daemon(Op::WebauthnResult {
            token: token.to_string(),
        }) {
            Ok(Response::Done { message }) => {
                return Ok(Vouched::Yes {
                    note: format!(" key={}", clean(&message)),
                });
            }
            Ok(Response::Error {
                code: ErrorCode::Pending,
                ..
            }) => {
                prompt = "Not approved yet. Finish in the browser, then press Enter: ".into();
            }
            Ok(Response::Error { message, .. }) => {
                run.audit.warning(&format!(
                    "webauthn refused {}: {}",
                    run.who,
                    p2fa_core::audit::detail(&message)
                ));
                return Ok(Vouched::No {
                    reason: "assertion-refused",
                });
            }
            Ok(other) => {
                return Err(Stop::Done(
                    run.unavailable(&format!("2fad answered {other:?}")),
                ));
            }
            Err(e) => return Err(Stop::Done(run.unavailable(&e))),
        }
    }
    Ok(Vouched::No {
        reason: "not-approved-in-time",
    })
}
