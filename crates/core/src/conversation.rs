//! The prompts and messages of one login, as a trait: the PAM module
//! adapts PAM's conversation function to it, the login flow speaks
//! through it, and tests script it (`p2fa_testkit::conversation`).

use zeroize::Zeroizing;

/// The prompts and messages of one login, however they reach the user.
pub trait Conversation {
    /// Asks a question; `echo` shows the answer as it is typed.
    fn ask(&mut self, prompt: &str, echo: bool) -> Result<Zeroizing<Vec<u8>>, String>;
    fn info(&mut self, msg: &str);
    fn error(&mut self, msg: &str);

    /// What an earlier module on the PAM stack got from the user
    /// (`PAM_AUTHTOK`: the password, or a password followed by a code),
    /// for `use_first_pass` / `try_first_pass`. `None` when unset.
    fn first_pass(&mut self) -> Option<Zeroizing<Vec<u8>>> {
        None
    }

    /// Hands `password` on to the modules after this one (`PAM_AUTHTOK`),
    /// for a following `pam_unix.so use_first_pass`. The PAM module sets
    /// it when the login has ended (the conversation borrows the PAM
    /// handle until then).
    fn forward_pass(&mut self, _password: &[u8]) -> Result<(), String> {
        Err("this conversation cannot hand a password on".into())
    }
}
