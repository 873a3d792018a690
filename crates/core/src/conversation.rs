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
}
