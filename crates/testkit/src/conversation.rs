//! A scripted PAM conversation for unit and flow tests: answers the
//! prompts from a script, in order, and records everything said.
//!
//! It fails the test (panics) when the code asks more than the script
//! answers, and, when dropped, when answers were left over: a script that
//! says more than the login asked hides a prompt that never came (a
//! factor that was skipped, a menu that was not shown).

use p2fa_core::conversation::Conversation;
use std::collections::VecDeque;
use zeroize::Zeroizing;

/// One scripted reply to a prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The bytes the user types (without the newline).
    Answer(Vec<u8>),
    /// The conversation itself fails (the client hung up): `ask` returns
    /// this error.
    Fail(String),
}

impl Reply {
    /// The conversation fails at this prompt with `why`.
    pub fn fail(why: &str) -> Reply {
        Reply::Fail(why.to_string())
    }
}

impl From<&str> for Reply {
    fn from(s: &str) -> Reply {
        Reply::Answer(s.as_bytes().to_vec())
    }
}

impl From<String> for Reply {
    fn from(s: String) -> Reply {
        Reply::Answer(s.into_bytes())
    }
}

impl From<&String> for Reply {
    fn from(s: &String) -> Reply {
        Reply::Answer(s.as_bytes().to_vec())
    }
}

impl From<&[u8]> for Reply {
    fn from(b: &[u8]) -> Reply {
        Reply::Answer(b.to_vec())
    }
}

impl From<Vec<u8>> for Reply {
    fn from(b: Vec<u8>) -> Reply {
        Reply::Answer(b)
    }
}

/// Rewrites an answer just before it is given (for answers only known
/// then, such as a code the test's fake gateway has just sent).
type Rewrite<'a> = Box<dyn FnMut(&[u8]) -> Vec<u8> + 'a>;

/// A conversation that answers from a script; see the module docs.
pub struct Scripted<'a> {
    script: VecDeque<Reply>,
    /// Everything said, in order: `? prompt`, `i info`, `e error`.
    transcript: Vec<String>,
    rewrite: Option<Rewrite<'a>>,
    /// `PAM_AUTHTOK` as an earlier module left it.
    authtok: Option<Vec<u8>>,
    /// What the login handed on with `forward_pass`.
    forwarded: Option<Vec<u8>>,
}

impl<'a> Scripted<'a> {
    /// Answers the prompts with `replies`, in order.
    pub fn new<R: Into<Reply>>(replies: impl IntoIterator<Item = R>) -> Scripted<'a> {
        Scripted {
            script: replies.into_iter().map(Into::into).collect(),
            transcript: Vec::new(),
            rewrite: None,
            authtok: None,
            forwarded: None,
        }
    }

    /// An earlier module left `tok` in `PAM_AUTHTOK`.
    pub fn with_authtok(mut self, tok: &[u8]) -> Scripted<'a> {
        self.authtok = Some(tok.to_vec());
        self
    }

    /// The password the login handed on (`forward_pass`), if it did.
    pub fn forwarded(&self) -> Option<&[u8]> {
        self.forwarded.as_deref()
    }

    /// Passes every answer through `f` before giving it.
    pub fn rewrite(mut self, f: impl FnMut(&[u8]) -> Vec<u8> + 'a) -> Scripted<'a> {
        self.rewrite = Some(Box::new(f));
        self
    }

    /// Everything said so far, in order: `? prompt`, `i info`, `e error`.
    pub fn transcript(&self) -> &[String] {
        &self.transcript
    }

    /// The prompts asked so far.
    pub fn prompts(&self) -> Vec<String> {
        self.lines('?')
    }

    /// The info and error messages so far, as `i text` and `e text`.
    pub fn messages(&self) -> Vec<String> {
        self.transcript
            .iter()
            .filter(|l| !l.starts_with('?'))
            .cloned()
            .collect()
    }

    /// Replies not given yet.
    pub fn left(&self) -> usize {
        self.script.len()
    }

    fn lines(&self, kind: char) -> Vec<String> {
        self.transcript
            .iter()
            .filter_map(|l| l.strip_prefix(kind).map(|t| t.trim_start().to_string()))
            .collect()
    }
}

impl Conversation for Scripted<'_> {
    fn ask(&mut self, prompt: &str, _echo: bool) -> Result<Zeroizing<Vec<u8>>, String> {
        self.transcript.push(format!("? {prompt}"));
        match self.script.pop_front() {
            Some(Reply::Answer(a)) => Ok(Zeroizing::new(match &mut self.rewrite {
                Some(f) => f(&a),
                None => a,
            })),
            Some(Reply::Fail(why)) => Err(why),
            None => panic!(
                "unexpected prompt {prompt:?}: the script has no answer left\ntranscript:\n{}",
                self.transcript.join("\n")
            ),
        }
    }

    fn info(&mut self, msg: &str) {
        self.transcript.push(format!("i {msg}"));
    }

    fn error(&mut self, msg: &str) {
        self.transcript.push(format!("e {msg}"));
    }

    fn first_pass(&mut self) -> Option<Zeroizing<Vec<u8>>> {
        self.authtok.clone().map(Zeroizing::new)
    }

    fn forward_pass(&mut self, password: &[u8]) -> Result<(), String> {
        self.transcript.push("> forwarded".into());
        self.forwarded = Some(password.to_vec());
        Ok(())
    }
}

impl Drop for Scripted<'_> {
    fn drop(&mut self) {
        if !self.script.is_empty() && !std::thread::panicking() {
            let left: Vec<String> = self
                .script
                .iter()
                .map(|r| match r {
                    Reply::Answer(a) => format!("{:?}", String::from_utf8_lossy(a)),
                    Reply::Fail(why) => format!("(fail: {why})"),
                })
                .collect();
            panic!(
                "{} scripted answer(s) never asked for: {}\ntranscript:\n{}",
                left.len(),
                left.join(", "),
                self.transcript.join("\n")
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panics(f: impl FnOnce()) -> String {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        std::panic::set_hook(prev);
        match r {
            Ok(()) => panic!("did not panic"),
            Err(e) => e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default(),
        }
    }

    #[test]
    fn answers_in_order_and_records_everything() {
        let mut c = Scripted::new(["123456", "yes"]);
        c.info("hello");
        assert_eq!(&c.ask("Code: ", false).unwrap()[..], b"123456");
        c.error("bad");
        assert_eq!(&c.ask("Again? ", true).unwrap()[..], b"yes");
        assert_eq!(c.left(), 0);
        assert_eq!(
            c.transcript(),
            ["i hello", "? Code: ", "e bad", "? Again? "]
        );
        assert_eq!(c.prompts(), ["Code: ", "Again? "]);
        assert_eq!(c.messages(), ["i hello", "e bad"]);
    }

    #[test]
    fn a_prompt_beyond_the_script_fails_the_test() {
        let msg = panics(|| {
            let mut c = Scripted::new(["1"]);
            c.ask("first", false).unwrap();
            let _ = c.ask("second", false);
        });
        assert!(msg.contains("unexpected prompt \"second\""), "{msg}");
        assert!(msg.contains("? first"), "{msg}");
    }

    #[test]
    fn answers_left_over_fail_the_test() {
        let msg = panics(|| {
            let mut c = Scripted::new(["1", "2", "3"]);
            c.ask("only one", false).unwrap();
        });
        assert!(
            msg.contains("2 scripted answer(s) never asked for"),
            "{msg}"
        );
        // An empty script that is never asked is fine.
        drop(Scripted::new(Vec::<&str>::new()));
    }

    #[test]
    fn a_failing_reply_is_an_error_and_rewrite_sees_answers() {
        let mut c = Scripted::new([Reply::from("{x}"), Reply::fail("hung up")])
            .rewrite(|a| String::from_utf8_lossy(a).replace("{x}", "42").into_bytes());
        assert_eq!(&c.ask("a", false).unwrap()[..], b"42");
        assert_eq!(c.ask("b", false).unwrap_err(), "hung up");
    }

    #[test]
    fn no_second_panic_while_unwinding() {
        // A test already failing must report its own panic, not abort on
        // a second one from the leftover check.
        let msg = panics(|| {
            let _c = Scripted::new(["never asked"]);
            panic!("the real failure");
        });
        assert_eq!(msg, "the real failure");
    }
}
