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
use p2fa_core::config::{Config, FirstPass};
use p2fa_core::secure_fs::Trust;
use pam::constants::{PAM_SILENT, PamFlag, PamResultCode};
use pam::items::{AuthTok, RHost, Service, Tty};
use pam::module::{PamHandle, PamHooks};
use pam::pam_hooks;
use std::ffi::{CStr, CString};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use zeroize::Zeroizing;

struct Pam2fa;
pam_hooks!(Pam2fa);

/// Runs `f`, turning a panic into `PAM_SERVICE_ERR` and an `err` line in
/// the log naming the panic, so an admin sees why the module refused
/// rather than a bare "service error". The process's panic hook is left
/// alone: it belongs to the host program (sshd, sudo), not to us.
/// `service` and `hook` name the call in the line, as `pam_syslog()`
/// would (`pam_2fa(sshd:auth): ...`).
pub fn guard(
    args: &[&CStr],
    service: &str,
    hook: &str,
    f: impl FnOnce() -> PamResultCode,
) -> PamResultCode {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let mut audit = Audit::pam(Path::new(log_socket_arg(args)), service, hook);
        audit.err(&format!(
            "internal error (panic: {}), denying",
            p2fa_core::audit::detail(panic_message(payload.as_ref()))
        ));
        PamResultCode::PAM_SERVICE_ERR
    })
}

/// The text of a panic: `panic!` with a literal gives `&str`, with a
/// format string `String`; anything else is unnamed.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message")
}

/// The log socket named on the module line (`log_socket=`, absolute), else
/// the system's: used when the config cannot be (or was not yet) read.
fn log_socket_arg<'a>(args: &[&'a CStr]) -> &'a str {
    args.iter()
        .filter_map(|a| a.to_str().ok()?.strip_prefix("log_socket="))
        .rfind(|p| p.starts_with('/'))
        .unwrap_or("/dev/log")
}

impl PamHooks for Pam2fa {
    fn sm_authenticate(pamh: &mut PamHandle, args: Vec<&CStr>, flags: PamFlag) -> PamResultCode {
        let service = item_string::<Service>(pamh);
        guard(&args, &service, "auth", || {
            authenticate(pamh, &args, &service, flags)
        })
    }

    /// There are no credentials to establish; succeed so stacks that call
    /// setcred on every auth module keep working.
    fn sm_setcred(pamh: &mut PamHandle, args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        let service = item_string::<Service>(pamh);
        guard(&args, &service, "setcred", || PamResultCode::PAM_SUCCESS)
    }

    /// The second factor says nothing about account validity: ignore, so
    /// an `account` line naming this module neither grants nor blocks.
    fn acct_mgmt(pamh: &mut PamHandle, args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        let service = item_string::<Service>(pamh);
        guard(&args, &service, "account", || PamResultCode::PAM_IGNORE)
    }
}

fn authenticate(
    pamh: &mut PamHandle,
    args: &[&CStr],
    service: &str,
    flags: PamFlag,
) -> PamResultCode {
    let utf8: Result<Vec<&str>, _> = args.iter().map(|a| a.to_str()).collect();
    let cfg = match utf8
        .map_err(|_| "module arguments are not UTF-8".to_string())
        .and_then(|a| Config::from_module_args(&a, Trust::ROOT).map_err(|e| e.0))
    {
        Ok(c) => c,
        Err(e) => {
            // The config is unusable, so log to the socket the module
            // line names (`log_socket=`, root's own file) or the default.
            let mut audit = Audit::pam(Path::new(log_socket_arg(args)), service, "auth");
            audit.err(&format!("configuration error, denying: {e}"));
            // Fail closed, but tell the user why nothing was asked.
            if let Ok(mut c) = conv::PamConversation::new(pamh, flags & PAM_SILENT != 0, None) {
                use flow::Conversation;
                c.error(flow::MSG_UNAVAILABLE);
            }
            return PamResultCode::PAM_SERVICE_ERR;
        }
    };
    let started = p2fa_core::clock::Stopwatch::start();
    let mut audit = Audit::pam(&cfg.log_socket, service, "auth");
    audit.set_debug(cfg.debug);
    audit.debug(|| debug_args(&utf8_args(args), &cfg));
    let user = match pamh.get_user(None) {
        Ok(u) => u,
        Err(code) => {
            audit.err(&format!(
                "cannot get the user name from PAM ({code:?}), denying"
            ));
            return PamResultCode::PAM_USER_UNKNOWN;
        }
    };
    let rhost = item_string::<RHost>(pamh);
    let tty = item_string::<Tty>(pamh);
    // What an earlier module left in PAM_AUTHTOK, only when asked to look.
    let first_pass = match cfg.pass.first_pass {
        FirstPass::Prompt => None,
        _ => match pamh.get_item::<AuthTok>() {
            Ok(Some(tok)) => Some(Zeroizing::new(tok.as_bytes().to_vec())),
            _ => None,
        },
    };
    let mut conversation =
        match conv::PamConversation::new(pamh, flags & PAM_SILENT != 0, first_pass) {
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
        service,
        rhost: &rhost,
        tty: &tty,
        caller_uid: p2fa_core::users::real_uid(),
    };
    // Only root's files are believed: config, key, store, secrets, CAs.
    let verdict = flow::authenticate(
        &cfg,
        Trust::ROOT,
        login,
        &p2fa_core::clock::SystemClock,
        &mut conversation,
        &mut audit,
    );
    let forwarded = conversation.forwarded.take();
    drop(conversation);
    let mut code = to_pam(verdict);
    if let Some(password) = forwarded
        && matches!(verdict, Verdict::Success | Verdict::Ignore)
        && let Err(e) = forward(pamh, &password)
    {
        let name = p2fa_core::users::canonical(&user).unwrap_or(user);
        audit.err(&format!(
            "cannot hand the password on in PAM_AUTHTOK ({e}), denying user={}",
            p2fa_core::audit::clean(&name)
        ));
        code = PamResultCode::PAM_AUTHINFO_UNAVAIL;
    }
    audit.debug(|| {
        format!(
            "debug: {code:?} ({verdict:?}) after {} ms",
            started.elapsed().as_millis()
        )
    });
    code
}

/// Sets PAM_AUTHTOK to `password` for the modules after this one
/// (`forward_pass`, and after a code taken from PAM_AUTHTOK). libpam keeps
/// its own copy; ours is wiped.
fn forward(pamh: &mut PamHandle, password: &[u8]) -> Result<(), String> {
    let c = CString::new(password.to_vec()).map_err(|_| "the password holds a NUL byte")?;
    let set = pamh.set_item_str(AuthTok::new(&c));
    drop(Zeroizing::new(c.into_bytes_with_nul()));
    set.map_err(|code| format!("{code:?}"))
}

/// The module arguments as text (non-UTF-8 ones are refused before this).
fn utf8_args<'a>(args: &[&'a CStr]) -> Vec<&'a str> {
    args.iter().filter_map(|a| a.to_str().ok()).collect()
}

/// The `debug` line about the call: config, store and key paths, and the
/// module arguments' keys (never their values: an argument may carry a
/// secret such as `duo.skey=`).
fn debug_args(args: &[&str], cfg: &Config) -> String {
    let keys: Vec<&str> = args
        .iter()
        .map(|a| a.split_once('=').map_or(*a, |(k, _)| k).trim())
        .collect();
    format!(
        "debug: config={} db={} key_file={} arguments=[{}] pass={:?} forward_pass={} unenrolled={:?}",
        p2fa_core::audit::clean(Config::path_in_module_args(args)),
        p2fa_core::audit::clean(&cfg.db.to_string_lossy()),
        p2fa_core::audit::clean(&cfg.key_file.to_string_lossy()),
        keys.iter()
            .map(|k| p2fa_core::audit::clean(k))
            .collect::<Vec<_>>()
            .join(","),
        cfg.pass.first_pass,
        cfg.pass.forward_pass,
        cfg.unenrolled,
    )
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
    fn panic_is_service_error_never_success_and_is_logged() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("log");
        let reader = std::os::unix::net::UnixDatagram::bind(&sock).unwrap();
        reader.set_nonblocking(true).unwrap();
        let arg = std::ffi::CString::new(format!("log_socket={}", sock.display())).unwrap();
        let args = [arg.as_c_str()];

        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let code = guard(&args, "sshd", "auth", || panic!("boom at step {}", 3));
        std::panic::set_hook(prev);
        assert_eq!(code, PamResultCode::PAM_SERVICE_ERR);
        let mut buf = [0u8; 1024];
        let n = reader.recv(&mut buf).expect("the panic was logged");
        let line = String::from_utf8_lossy(&buf[..n]);
        assert!(
            line.contains("]: pam_2fa(sshd:auth): internal error (panic: boom at step 3), denying"),
            "{line}"
        );

        assert_eq!(
            guard(&args, "sshd", "setcred", || PamResultCode::PAM_SUCCESS),
            PamResultCode::PAM_SUCCESS
        );
        assert!(
            reader.recv(&mut buf).is_err(),
            "nothing logged without a panic"
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
