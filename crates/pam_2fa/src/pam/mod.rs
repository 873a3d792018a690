//! The PAM entry points. The only place that speaks PAM; everything it does
//! is delegated to [`p2fa_auth::flow`].
//!
//! `pam-bindings`' `pam_hooks!` generates the `extern "C"` functions and
//! already turns a panic into `PAM_ABORT`; each hook here additionally runs
//! inside [`guard`], so a panic in our code returns `PAM_SERVICE_ERR` —
//! never success — as the design requires.

mod conv;

use p2fa_auth::flow::{self, Login, Verdict};
use p2fa_core::audit::Audit;
use p2fa_core::config::Config;
use p2fa_core::secure_fs::Trust;
use pam::constants::{PAM_SILENT, PamFlag, PamResultCode};
use pam::items::{RHost, Service, Tty};
use pam::module::{PamHandle, PamHooks};
use pam::pam_hooks;
use std::ffi::CStr;
use std::panic::{AssertUnwindSafe, catch_unwind};

struct Pam2fa;
pam_hooks!(Pam2fa);

/// Runs `f`, turning a panic into `PAM_SERVICE_ERR`.
pub fn guard(f: impl FnOnce() -> PamResultCode) -> PamResultCode {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(PamResultCode::PAM_SERVICE_ERR)
}

impl PamHooks for Pam2fa {
    fn sm_authenticate(pamh: &mut PamHandle, args: Vec<&CStr>, flags: PamFlag) -> PamResultCode {
        guard(|| authenticate(pamh, &args, flags))
    }

    /// There are no credentials to establish; succeed so stacks that call
    /// setcred on every auth module keep working.
    fn sm_setcred(_pamh: &mut PamHandle, _args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        guard(|| PamResultCode::PAM_SUCCESS)
    }

    /// The second factor says nothing about account validity: ignore, so
    /// an `account` line naming this module neither grants nor blocks.
    fn acct_mgmt(_pamh: &mut PamHandle, _args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        guard(|| PamResultCode::PAM_IGNORE)
    }
}

fn authenticate(pamh: &mut PamHandle, args: &[&CStr], flags: PamFlag) -> PamResultCode {
    let utf8: Result<Vec<&str>, _> = args.iter().map(|a| a.to_str()).collect();
    let cfg = match utf8
        .map_err(|_| "module arguments are not UTF-8".to_string())
        .and_then(|a| Config::from_module_args(&a, Trust::ROOT).map_err(|e| e.0))
    {
        Ok(c) => c,
        Err(e) => {
            // The config is unusable, so log to the socket the module
            // line names (`log_socket=`, root's own file) or the default.
            let socket = args
                .iter()
                .filter_map(|a| a.to_str().ok()?.strip_prefix("log_socket="))
                .rfind(|p| p.starts_with('/'))
                .unwrap_or("/dev/log");
            let mut audit = Audit::new(std::path::Path::new(socket), "pam_2fa", false);
            audit.err(&format!("configuration error, denying: {e}"));
            // Fail closed, but tell the user why nothing was asked.
            if let Ok(mut c) = conv::PamConversation::new(pamh, flags & PAM_SILENT != 0) {
                use flow::Conversation;
                c.error(flow::MSG_UNAVAILABLE);
            }
            return PamResultCode::PAM_SERVICE_ERR;
        }
    };
    let mut audit = Audit::new(&cfg.log_socket, "pam_2fa", false);
    let user = match pamh.get_user(None) {
        Ok(u) => u,
        Err(code) => {
            audit.err(&format!(
                "cannot get the user name from PAM ({code:?}), denying"
            ));
            return PamResultCode::PAM_USER_UNKNOWN;
        }
    };
    let service = item_string::<Service>(pamh);
    let rhost = item_string::<RHost>(pamh);
    let tty = item_string::<Tty>(pamh);
    let mut conversation = match conv::PamConversation::new(pamh, flags & PAM_SILENT != 0) {
        Ok(c) => c,
        Err(e) => {
            let name = p2fa_core::users::canonical(&user).unwrap_or(user);
            audit.err(&format!(
                "no PAM conversation available ({e}), denying user={}",
                p2fa_core::audit::clean(&name)
            ));
            return PamResultCode::PAM_CONV_ERR;
        }
    };
    let login = Login {
        user: &user,
        service: &service,
        rhost: &rhost,
        tty: &tty,
        caller_uid: p2fa_core::users::real_uid(),
    };
    // Only root's files are believed: config, key, store, secrets, CAs.
    let verdict = flow::authenticate(
        &cfg,
        Trust::ROOT,
        login,
        p2fa_core::clock::unix_now(),
        &mut conversation,
        &mut audit,
    );
    to_pam(verdict)
}

fn to_pam(v: Verdict) -> PamResultCode {
    match v {
        Verdict::Success => PamResultCode::PAM_SUCCESS,
        Verdict::Ignore => PamResultCode::PAM_IGNORE,
        Verdict::Denied => PamResultCode::PAM_AUTH_ERR,
        Verdict::Locked => PamResultCode::PAM_MAXTRIES,
        Verdict::Unavailable => PamResultCode::PAM_AUTHINFO_UNAVAIL,
        Verdict::UnknownUser => PamResultCode::PAM_USER_UNKNOWN,
        Verdict::ConversationFailed => PamResultCode::PAM_CONV_ERR,
    }
}

/// A PAM string item as owned text ("" when unset; lossy for non-UTF-8,
/// which only ever reaches the sanitised log).
fn item_string<'a, T>(pamh: &'a PamHandle) -> String
where
    T: pam::items::Item<'a> + std::ops::Deref<Target = &'a CStr>,
{
    match pamh.get_item::<T>() {
        Ok(Some(v)) => v.to_string_lossy().into_owned(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_is_service_error_never_success() {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let code = guard(|| panic!("boom"));
        std::panic::set_hook(prev);
        assert_eq!(code, PamResultCode::PAM_SERVICE_ERR);
        assert_eq!(
            guard(|| PamResultCode::PAM_SUCCESS),
            PamResultCode::PAM_SUCCESS
        );
    }

    #[test]
    fn verdict_mapping_fails_closed() {
        for v in [
            Verdict::Denied,
            Verdict::Locked,
            Verdict::Unavailable,
            Verdict::UnknownUser,
            Verdict::ConversationFailed,
        ] {
            assert_ne!(to_pam(v), PamResultCode::PAM_SUCCESS, "{v:?}");
            assert_ne!(to_pam(v), PamResultCode::PAM_IGNORE, "{v:?}");
        }
        assert_eq!(to_pam(Verdict::Success), PamResultCode::PAM_SUCCESS);
        // Let through by policy without a factor: the stack decides.
        assert_eq!(to_pam(Verdict::Ignore), PamResultCode::PAM_IGNORE);
    }
}
