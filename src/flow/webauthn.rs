//! Security keys and platform authenticators at login, through 2fad: the
//! module asks 2fad for a one-time link, shows it (and a QR code for
//! phones) with a prompt, and on Enter asks 2fad whether the browser's
//! assertion verified against one of this user's credentials.

use super::{Run, Verdict};
use crate::audit::clean;
use crate::daemon::protocol::{Op, Request, Response, VERSION};
use crate::daemon::server::call_root;

/// Enter presses allowed while the ceremony is still open.
const TRIES: usize = 3;

impl Run<'_> {
    fn daemon(&self, op: Op) -> Result<Response, String> {
        let req = Request {
            version: VERSION,
            user: Some(self.login.user.to_string()),
            op,
        };
        call_root(&self.cfg.daemon.socket, &req)
            .map_err(|e| format!("2fad at {}: {e}", self.cfg.daemon.socket.display()))
    }

    pub(super) fn webauthn(&mut self) -> Verdict {
        let (url, token) = match self.daemon(Op::WebauthnLogin) {
            Ok(Response::Link { url, token }) => (url, token),
            Ok(Response::Error { message, .. }) => {
                return self.unavailable(&format!("2fad: {message}"));
            }
            Ok(other) => return self.unavailable(&format!("2fad answered {other:?}")),
            Err(e) => return self.unavailable(&e),
        };
        self.audit
            .info(&format!("webauthn link issued {}", self.who));
        let qr = crate::enroll::output::qr(&url).unwrap_or_default();
        let mut prompt = format!(
            "Approve this login with your security key, fingerprint or phone:\n  {url}\n{qr}Open the link, approve, then press Enter: "
        );
        for _ in 0..TRIES {
            if let Err(e) = self.conv.ask(&prompt, true) {
                return self.conv_failed(&e);
            }
            match self.daemon(Op::WebauthnResult {
                token: token.clone(),
            }) {
                Ok(Response::Done { message }) => {
                    return self.succeed("webauthn", &format!(" key={}", clean(&message)));
                }
                Ok(Response::Error { code, .. }) if code == "pending" => {
                    prompt = "Not approved yet. Finish in the browser, then press Enter: ".into();
                }
                Ok(Response::Error { message, .. }) => {
                    self.audit.warning(&format!(
                        "webauthn refused {}: {}",
                        self.who,
                        clean(&message)
                    ));
                    return self.fail("webauthn", "assertion-refused");
                }
                Ok(other) => return self.unavailable(&format!("2fad answered {other:?}")),
                Err(e) => return self.unavailable(&e),
            }
        }
        self.fail("webauthn", "not-approved-in-time")
    }
}
