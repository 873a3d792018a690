//! Profile links and the browser sessions they open: in 2fad's memory
//! ([`Memory`], `store = "sqlite"`), or in the fleet database
//! ([`super::fleet::Fleet`], `store = "postgres"`) so that any 2fad of a
//! fleet serves every request of a page. [`Profiles`] is the one
//! interface the page uses; the rules below hold for both.
//!
//! A link (`/p/TOKEN`) is made for one account over the socket (its
//! owner's uid from SO_PEERCRED, or root acting for them) and works once,
//! within `webauthn.link_seconds`. Opening it starts a session: a random
//! id in an HttpOnly, SameSite=Strict cookie, a CSRF token for every
//! change, bound to the address that opened it, lasting
//! `webauthn.profile_seconds`. After that first exchange no secret is in
//! a URL.
//!
//! The session dies on logout, expiry, a request from another address,
//! or a second opening of its link (someone else has the link: both
//! browsers are refused and the user asks for a new one). Only SHA-256
//! hashes of link tokens and session ids are kept, so a memory dump (or
//! the fleet database, where a session's secrets are also sealed with the
//! fleet key) holds nothing a browser could present.

use p2fa_core::clock::unix_now;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use zeroize::Zeroizing;

/// Live links and sessions in all, so that a flood of link requests (one
/// per user and per `max_pending_per_user`) cannot grow memory.
pub(super) const MAX_ENTRIES: usize = 1024;

pub(super) type Hash = [u8; 32];

pub(super) fn hash(s: &str) -> Hash {
    Sha256::digest(s.as_bytes()).into()
}

/// 32 random bytes, base64url.
pub(super) fn random_token() -> Option<String> {
    use base64::Engine;
    let b = p2fa_core::crypto::random_array::<32>().ok()?;
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

/// Whose page a link or session is, and who acts on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The account whose factors the page shows and changes.
    pub user: String,
    /// The uid that asked for the link: the user's own, or 0 when root
    /// acts for them (`2fa-enroll web --user U`).
    pub uid: u32,
}

impl Owner {
    pub fn by_root(&self) -> bool {
        self.uid == 0
    }
}

struct Link {
    owner: Owner,
    expires: i64,
    /// The session it opened (its id's hash), once opened.
    opened: Option<Hash>,
}

/// A TOTP secret being set up on the page (shown only until confirmed).
pub struct TotpSetup {
    pub uri: Zeroizing<String>,
    pub secret: Zeroizing<String>,
}

/// A WebAuthn ceremony the page runs: its token stays on the server.
#[derive(Clone, PartialEq, Eq)]
pub enum Ceremony {
    Prove(String),
    Register(String),
}

/// One browser's session.
pub struct Session {
    pub owner: Owner,
    pub csrf: String,
    pub peer: IpAddr,
    pub expires: i64,
    pub(super) link: Hash,
    /// The factor proved on the page, once proved: changes need no
    /// further proof in this session.
    pub elevated: Option<&'static str>,
    /// What the last change said, shown once on the next page.
    pub flash: Option<(bool, String)>,
    pub totp: Option<TotpSetup>,
    /// New backup codes: shown on the next page and downloadable until
    /// the next change or the end of the session; never stored in clear.
    pub codes: Option<Zeroizing<Vec<String>>>,
    /// A code was sent to a new number or address: what the page says.
    pub contact: Option<String>,
    /// The security-question form is open.
    pub questions: bool,
    /// A proof code was sent by this channel (`sms`, `email`).
    pub sent_via: Option<String>,
    pub ceremony: Option<Ceremony>,
}

/// Why a request found no session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoSession {
    /// No cookie, or one we never issued or already forgot.
    Missing,
    /// It ran out of time.
    Expired,
    /// Its link was opened again, or it was used from another address:
    /// ended for safety.
    Ended,
    /// The fleet database could not be asked (fleet mode): no session is
    /// granted until it can.
    Unavailable,
}

/// What opening a link did.
pub enum Opened {
    /// A new session: (cookie value, its owner).
    Session(String, Owner),
    /// Unknown or expired.
    Expired,
    /// Already opened once: the session it opened is ended now.
    Reused,
    /// The fleet database could not be asked: nothing was opened.
    Unavailable,
}

/// What a link is, seen without opening it.
#[derive(Debug, PartialEq, Eq)]
pub enum Peek {
    /// Not opened yet and not expired.
    Fresh,
    /// Opened once already.
    Used,
    /// Unknown or expired.
    Expired,
    /// The fleet database could not be asked.
    Unavailable,
}

impl Session {
    /// A new session's state, before anything happened in it.
    pub(super) fn new(
        owner: Owner,
        csrf: String,
        peer: IpAddr,
        expires: i64,
        link: Hash,
    ) -> Session {
        Session {
            owner,
            csrf,
            peer,
            expires,
            link,
            elevated: None,
            flash: None,
            totp: None,
            codes: None,
            contact: None,
            questions: false,
            sent_via: None,
            ceremony: None,
        }
    }
}

/// Where links and sessions live: this 2fad's memory (SQLite, one host),
/// or the fleet database (`store = "postgres"`, [`super::fleet`]), so
/// that any 2fad of the fleet serves every request of a page. The page's
/// code sees one interface.
pub enum Profiles {
    Memory(Memory),
    Fleet(Box<super::fleet::Fleet>),
}

impl Default for Profiles {
    fn default() -> Profiles {
        Profiles::Memory(Memory::default())
    }
}

impl Profiles {
    /// The configured store's kind decides: SQLite in memory, PostgreSQL
    /// in the fleet database.
    pub fn new(cfg: &p2fa_core::config::Config, trust: p2fa_core::secure_fs::Trust) -> Profiles {
        match cfg.store {
            p2fa_core::config::StoreKind::Sqlite => Profiles::default(),
            p2fa_core::config::StoreKind::Postgres => {
                Profiles::Fleet(Box::new(super::fleet::Fleet::new(cfg, trust)))
            }
        }
    }

    /// A new link for `owner`, valid `ttl` seconds; `Err` says why not.
    pub fn link(&self, owner: Owner, ttl: i64, per_user: usize) -> Result<String, String> {
        match self {
            Profiles::Memory(m) => m.link(owner, ttl, per_user),
            Profiles::Fleet(f) => f.link(owner, ttl, per_user),
        }
    }

    /// What the link `token` is, changing nothing: a GET of the link
    /// (a browser's prefetch, a chat program's link preview) must neither
    /// use it up nor end the session it opened; only the POST of its
    /// landing page opens it ([`Profiles::open`]).
    pub fn peek(&self, token: &str) -> Peek {
        match self {
            Profiles::Memory(m) => m.peek(token),
            Profiles::Fleet(f) => f.peek(token),
        }
    }

    /// Opens the link `token` from `peer`: a session of `ttl` seconds.
    pub fn open(&self, token: &str, peer: IpAddr, ttl: i64) -> Opened {
        match self {
            Profiles::Memory(m) => m.open(token, peer, ttl),
            Profiles::Fleet(f) => f.open(token, peer, ttl),
        }
    }

    /// Runs `f` on the live session `sid` seen from `peer`. A request
    /// from another address ends the session. In the fleet database this
    /// is one transaction that holds the session's row.
    pub fn with<R>(
        &self,
        sid: Option<&str>,
        peer: IpAddr,
        f: impl FnOnce(&mut Session) -> R,
    ) -> Result<R, NoSession> {
        match self {
            Profiles::Memory(m) => m.with(sid, peer, f),
            Profiles::Fleet(fl) => fl.with(sid, peer, f),
        }
    }

    /// Logout: the session and its link are forgotten.
    pub fn logout(&self, sid: &str) {
        match self {
            Profiles::Memory(m) => m.logout(sid),
            Profiles::Fleet(f) => f.logout(sid),
        }
    }
}

/// Links and sessions in this 2fad's memory.
#[derive(Default)]
pub struct Memory {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    links: HashMap<Hash, Link>,
    sessions: HashMap<Hash, Session>,
    /// Sessions ended for safety or by expiry, remembered until their
    /// natural end so that the page can say why (not for logout).
    ended: HashMap<Hash, (NoSession, i64)>,
}

impl Inner {
    fn sweep(&mut self, now: i64) {
        let expired: Vec<Hash> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.expires <= now)
            .map(|(h, _)| *h)
            .collect();
        for h in expired {
            self.sessions.remove(&h);
            // Say "expired" for a while after.
            self.ended.insert(h, (NoSession::Expired, now + 3600));
        }
        self.links.retain(|_, l| l.expires > now);
        self.ended.retain(|_, (_, until)| *until > now);
    }

    fn live_for(&self, user: &str, now: i64) -> usize {
        self.links
            .values()
            .filter(|l| l.owner.user == user && l.opened.is_none() && l.expires > now)
            .count()
            + self
                .sessions
                .values()
                .filter(|s| s.owner.user == user)
                .count()
    }

    fn end(&mut self, sid: &Hash, why: NoSession, now: i64) {
        if let Some(s) = self.sessions.remove(sid) {
            self.ended.insert(*sid, (why, s.expires.max(now) + 3600));
        }
    }
}

impl Memory {
    pub fn link(&self, owner: Owner, ttl: i64, per_user: usize) -> Result<String, String> {
        let now = unix_now();
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.sweep(now);
        if g.live_for(&owner.user, now) >= per_user {
            return Err(format!(
                "{} already has {per_user} open profile links or sessions; use one, or wait for them to expire",
                owner.user
            ));
        }
        if g.links.len() + g.sessions.len() >= MAX_ENTRIES {
            return Err("too many open profile links; try again in a few minutes".into());
        }
        let token = random_token().ok_or("no randomness")?;
        g.links.insert(
            hash(&token),
            Link {
                owner,
                expires: now + ttl,
                opened: None,
            },
        );
        Ok(token)
    }

    pub fn peek(&self, token: &str) -> Peek {
        let now = unix_now();
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.sweep(now);
        match g.links.get(&hash(token)) {
            Some(l) if l.opened.is_some() => Peek::Used,
            Some(l) if l.expires > now => Peek::Fresh,
            _ => Peek::Expired,
        }
    }

    pub fn open(&self, token: &str, peer: IpAddr, ttl: i64) -> Opened {
        let now = unix_now();
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.sweep(now);
        let lh = hash(token);
        let Some(link) = g.links.get_mut(&lh) else {
            return Opened::Expired;
        };
        if let Some(sid) = link.opened {
            g.links.remove(&lh);
            g.end(&sid, NoSession::Ended, now);
            return Opened::Reused;
        }
        if link.expires <= now {
            g.links.remove(&lh);
            return Opened::Expired;
        }
        let (Some(sid), Some(csrf)) = (random_token(), random_token()) else {
            return Opened::Expired;
        };
        let owner = link.owner.clone();
        let sh = hash(&sid);
        link.opened = Some(sh);
        // The link is remembered until its session could have ended, so
        // that a second opening is recognised.
        link.expires = now + ttl;
        g.sessions
            .insert(sh, Session::new(owner.clone(), csrf, peer, now + ttl, lh));
        Opened::Session(sid, owner)
    }

    pub fn with<R>(
        &self,
        sid: Option<&str>,
        peer: IpAddr,
        f: impl FnOnce(&mut Session) -> R,
    ) -> Result<R, NoSession> {
        let now = unix_now();
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.sweep(now);
        let sh = hash(sid.ok_or(NoSession::Missing)?);
        if let Some((why, _)) = g.ended.get(&sh) {
            return Err(*why);
        }
        let Some(s) = g.sessions.get_mut(&sh) else {
            return Err(NoSession::Missing);
        };
        if s.peer != peer {
            let link = s.link;
            g.links.remove(&link);
            g.end(&sh, NoSession::Ended, now);
            return Err(NoSession::Ended);
        }
        Ok(f(s))
    }

    pub fn logout(&self, sid: &str) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = g.sessions.remove(&hash(sid)) {
            g.links.remove(&s.link);
        }
    }
}

/// Constant-time comparison of a presented CSRF token with the session's.
pub fn csrf_ok(session: &Session, presented: &str) -> bool {
    p2fa_core::crypto::ct_eq(&hash(&session.csrf), &hash(presented))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Owner {
        Owner {
            user: "alice".into(),
            uid: 1000,
        }
    }
    const HERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const THERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 9));

    #[test]
    fn a_link_opens_one_session_and_a_second_opening_ends_it() {
        let p = Profiles::default();
        let tok = p.link(alice(), 60, 3).unwrap();
        let Opened::Session(sid, owner) = p.open(&tok, HERE, 600) else {
            panic!("not opened")
        };
        assert_eq!(owner, alice());
        assert!(p.with(Some(&sid), HERE, |s| s.owner.user.clone()).is_ok());
        assert!(matches!(p.open(&tok, THERE, 600), Opened::Reused));
        assert_eq!(p.with(Some(&sid), HERE, |_| ()), Err(NoSession::Ended));
        // And the link is gone for good.
        assert!(matches!(p.open(&tok, HERE, 600), Opened::Expired));
    }

    #[test]
    fn peeking_uses_nothing_up_and_ends_nothing() {
        let p = Profiles::default();
        let tok = p.link(alice(), 60, 3).unwrap();
        assert_eq!(p.peek(&tok), Peek::Fresh);
        assert_eq!(p.peek(&tok), Peek::Fresh);
        let Opened::Session(sid, _) = p.open(&tok, HERE, 600) else {
            panic!("a peeked link did not open")
        };
        assert_eq!(p.peek(&tok), Peek::Used);
        assert!(
            p.with(Some(&sid), HERE, |_| ()).is_ok(),
            "peeking at a used link ended its session"
        );
        assert_eq!(p.peek("nope"), Peek::Expired);
    }

    #[test]
    fn another_address_ends_the_session() {
        let p = Profiles::default();
        let tok = p.link(alice(), 60, 3).unwrap();
        let Opened::Session(sid, _) = p.open(&tok, HERE, 600) else {
            panic!()
        };
        assert_eq!(p.with(Some(&sid), THERE, |_| ()), Err(NoSession::Ended));
        assert_eq!(p.with(Some(&sid), HERE, |_| ()), Err(NoSession::Ended));
    }

    #[test]
    fn unknown_cookies_links_and_quota() {
        let p = Profiles::default();
        assert_eq!(p.with(None, HERE, |_| ()), Err(NoSession::Missing));
        assert_eq!(p.with(Some("x"), HERE, |_| ()), Err(NoSession::Missing));
        assert!(matches!(p.open("nope", HERE, 600), Opened::Expired));
        for _ in 0..3 {
            p.link(alice(), 60, 3).unwrap();
        }
        assert!(
            p.link(alice(), 60, 3)
                .unwrap_err()
                .contains("already has 3")
        );
    }

    #[test]
    fn csrf_compare() {
        let p = Profiles::default();
        let tok = p.link(alice(), 60, 3).unwrap();
        let Opened::Session(sid, _) = p.open(&tok, HERE, 600) else {
            panic!()
        };
        let csrf = p.with(Some(&sid), HERE, |s| s.csrf.clone()).unwrap();
        assert!(p.with(Some(&sid), HERE, |s| csrf_ok(s, &csrf)).unwrap());
        assert!(!p.with(Some(&sid), HERE, |s| csrf_ok(s, "")).unwrap());
        assert!(!p.with(Some(&sid), HERE, |s| csrf_ok(s, &sid)).unwrap());
        p.logout(&sid);
        assert_eq!(p.with(Some(&sid), HERE, |_| ()), Err(NoSession::Missing));
    }
}
