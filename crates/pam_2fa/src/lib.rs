//! pam_2fa: the PAM module, `libpam_2fa.so` (installed as `pam_2fa.so`).
//! Only the FFI edge; the login itself is `p2fa_auth`. Map:

/// PAM entry points and conversation (the only PAM FFI).
mod pam;
