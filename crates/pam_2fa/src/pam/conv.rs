//! Adapts the PAM conversation function to [`p2fa_auth::flow::Conversation`].

use p2fa_auth::flow::Conversation;
use pam::constants::{PAM_ERROR_MSG, PAM_PROMPT_ECHO_OFF, PAM_PROMPT_ECHO_ON, PAM_TEXT_INFO};
use pam::conv::Conv;
use pam::module::PamHandle;
use zeroize::Zeroizing;

pub struct PamConversation<'a> {
    conv: Conv<'a>,
    /// PAM_SILENT: informational messages are suppressed.
    silent: bool,
    /// PAM_AUTHTOK as it was when the module was called (read only when
    /// a module argument asks for it).
    first_pass: Option<Zeroizing<Vec<u8>>>,
    /// The password to set as PAM_AUTHTOK once the login is over.
    pub forwarded: Option<Zeroizing<Vec<u8>>>,
}

impl<'a> PamConversation<'a> {
    pub fn new(
        pamh: &'a PamHandle,
        silent: bool,
        first_pass: Option<Zeroizing<Vec<u8>>>,
    ) -> Result<Self, String> {
        match pamh.get_item::<Conv>() {
            Ok(Some(conv)) => Ok(PamConversation {
                conv,
                silent,
                first_pass,
                forwarded: None,
            }),
            Ok(None) => Err("the application set no conversation function".into()),
            Err(code) => Err(format!("{code:?}")),
        }
    }
}

impl Conversation for PamConversation<'_> {
    fn ask(&mut self, prompt: &str, echo: bool) -> Result<Zeroizing<Vec<u8>>, String> {
        let style = if echo {
            PAM_PROMPT_ECHO_ON
        } else {
            PAM_PROMPT_ECHO_OFF
        };
        match self.conv.send(style, prompt) {
            Ok(Some(answer)) => Ok(Zeroizing::new(answer.as_bytes().to_vec())),
            Ok(None) => Err("the application returned no answer".into()),
            Err(code) => Err(format!("{code:?}")),
        }
    }

    fn info(&mut self, msg: &str) {
        if !self.silent {
            let _ = self.conv.send(PAM_TEXT_INFO, msg);
        }
    }

    fn error(&mut self, msg: &str) {
        if !self.silent {
            let _ = self.conv.send(PAM_ERROR_MSG, msg);
        }
    }

    fn first_pass(&mut self) -> Option<Zeroizing<Vec<u8>>> {
        self.first_pass.take()
    }

    fn forward_pass(&mut self, password: &[u8]) -> Result<(), String> {
        self.forwarded = Some(Zeroizing::new(password.to_vec()));
        Ok(())
    }
}
