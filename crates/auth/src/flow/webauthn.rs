//! Security keys and platform authenticators at login, through 2fad: the
//! module asks 2fad for a one-time link, shows it (and a QR code for
//! phones) with a prompt and the matching code the approval page shows,
//! and on Enter asks 2fad whether the browser's assertion verified against
//! one of this user's credentials. A login that ends any other way
//! (input ends, Enter without approving, a refusal) cancels its link at
//! once, so abandoned logins do not use up the user's link quota.

use super::{Run, Verdict};
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

    pub(super) fn webauthn(&mut self) -> Verdict {
        let login = Op::WebauthnLogin {
            service: self.login.service.to_string(),
            rhost: self.login.rhost.to_string(),
        };
        let (url, token, code) = match self.daemon(login) {
            Ok(Response::Link { url, token, code }) => (url, token, code),
            Ok(Response::Error { message, .. }) => {
                return self.unavailable(&format!("2fad: {message}"));
            }
            Ok(other) => return self.unavailable(&format!("2fad answered {other:?}")),
            Err(e) => return self.unavailable(&e),
        };
        self.audit
            .info(&format!("webauthn link issued {}", self.who));
        let verdict = self.webauthn_wait(&url, &token, &code);
        if verdict != Verdict::Success {
            // Best effort: if 2fad is gone, the link expires on its own.
            let _ = self.daemon(Op::WebauthnCancel { token });
        }
        verdict
    }

    fn webauthn_wait(&mut self, url: &str, token: &str, code: &str) -> Verdict {
        let qr = p2fa_core::display::qr(url).unwrap_or_default();
        let mut prompt = format!(
            "Approve this login with your security key, fingerprint or phone (matching code {code}):\n  {url}\n{qr}\
             The page must show the same code {code}. Open the link, approve, then press Enter: "
        );
        for _ in 0..TRIES {
            if let Err(e) = self.conv.ask(&prompt, true) {
                return self.conv_failed(&e);
            }
            match self.daemon(Op::WebauthnResult {
                token: token.to_string(),
            }) {
                Ok(Response::Done { message }) => {
                    return self.succeed(FactorId::Webauthn, &format!(" key={}", clean(&message)));
                }
                Ok(Response::Error {
                    code: ErrorCode::Pending,
                    ..
                }) => {
                    prompt = "Not approved yet. Finish in the browser, then press Enter: ".into();
                }
                Ok(Response::Error { message, .. }) => {
                    self.audit.warning(&format!(
                        "webauthn refused {}: {}",
                        self.who,
                        p2fa_core::audit::detail(&message)
                    ));
                    return self.fail(FactorId::Webauthn, "assertion-refused");
                }
                Ok(other) => return self.unavailable(&format!("2fad answered {other:?}")),
                Err(e) => return self.unavailable(&e),
            }
        }
        self.fail(FactorId::Webauthn, "not-approved-in-time")
    }
}
