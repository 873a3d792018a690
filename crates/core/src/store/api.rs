//! The store interface: what the login flow, the factors, 2fad and
//! 2fa-enroll may ask of a store, as two object-safe traits.
//!
//! [`Backend`] is a connection (reads outside a write transaction, and
//! [`Backend::write`] to start one); [`TxOps`] is one write transaction,
//! in which every check-then-update runs. Callers hold the thin wrappers
//! [`Store`] and [`Tx`], which deref to the trait objects, so a second
//! backend (docs/fleet.md: PostgreSQL) plugs in by implementing both
//! traits and handing a `Box` to [`Store::from_backend`]; nothing above
//! the store changes. The SQLite backend ([`super::sqlite`]) is today's
//! only one, and documents each operation's contract.

use super::{
    BackupRow, GenCount, KeyWarning, LocalKey, OldGenItems, OtpRecord, ProfileOpen, ProfileQuota,
    Purpose, Remembered, Result, SealedSecret, SentCheck, SentScope, StoredCeremony,
    StoredCredential, StoredProfileLink, StoredProfileSession, StoredQuestion, UserState,
    UserStatus,
};
use crate::config::RateLimitConfig;
use crate::factor::FactorId;
use std::ops::{Deref, DerefMut};

/// Which backend a [`Store`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    /// The fleet database (crate p2fa-pg).
    Postgres,
}

/// A store connection: one method per read, plus [`Backend::write`].
pub trait Backend: Send {
    fn kind(&self) -> Kind;
    fn local_keys(&self, user: &str) -> Result<Vec<LocalKey>>;
    fn key_names(&self, user: &str) -> Result<Vec<String>>;
    fn local_key_owner(&self, credential_id: &[u8]) -> Result<Option<(String, String)>>;
    fn meta(&self, name: &str) -> Result<Option<Vec<u8>>>;
    fn sealed_secrets(&self) -> Result<Vec<SealedSecret>>;
    fn has_keyed_items(&self) -> Result<bool>;
    /// Starts a write transaction that holds the write lock up front, so
    /// check-then-update sequences cannot interleave.
    fn write(&mut self) -> Result<Tx<'_>>;
    fn schema_version(&self) -> Result<i64>;
    fn quick_check(&self) -> Result<String>;
    fn integrity_check(&self) -> Result<String>;
    fn used_backup_hashes(&self, user: &str) -> Result<Vec<Vec<u8>>>;
    fn user_state(&mut self, user: &str) -> Result<UserState>;
    fn status(&mut self, user: &str) -> Result<UserStatus>;
    fn users(&self) -> Result<Vec<String>>;
    fn remembered(
        &self,
        user: &str,
        service: &str,
        source_hash: &[u8; 32],
        now: i64,
    ) -> Result<Option<Remembered>>;
    fn remembered_list(&self, user: Option<&str>, now: i64) -> Result<Vec<Remembered>>;
    fn questions(&self, user: &str) -> Result<(Vec<StoredQuestion>, Option<i64>)>;
    fn webauthn_credentials(&self, user: &str) -> Result<Vec<StoredCredential>>;
    /// Rows per host-key generation: sealed OTP secrets, unused backup
    /// codes, security answers (`rekey status`).
    fn key_gen_counts(&self) -> Result<Vec<GenCount>>;
    /// Users with rows of a generation below `below` (OTP secrets,
    /// unused backup codes, answers), by name.
    fn old_gen_items(&self, below: i64) -> Result<Vec<OldGenItems>>;
    /// Users with wrapped rows whose inner generation is below `below`
    /// (unused backup codes, security answers; `otp` is 0): they still
    /// need that generation's key to verify.
    fn wrapped_items(&self, below: i64) -> Result<Vec<OldGenItems>>;
    /// The hosts registered in a shared store (`2fa-enroll init` on each),
    /// with when each was last seen, by name; none for a host-local one.
    fn fleet_hosts(&self) -> Result<Vec<(String, i64)>>;
}

/// One write transaction: every operation sees and changes the state
/// under the lock [`Backend::write`] took; nothing is kept unless
/// [`Tx::commit`] succeeds.
pub trait TxOps {
    fn key_names(&self, user: &str) -> Result<Vec<String>>;
    fn local_key_owner(&self, credential_id: &[u8]) -> Result<Option<(String, String)>>;
    fn add_local_key(&self, user: &str, key: &LocalKey, now: i64) -> Result<bool>;
    fn local_key(&self, user: &str, credential_id: &[u8]) -> Result<Option<LocalKey>>;
    fn use_local_key(&self, user: &str, credential_id: &[u8], counter: u32, now: i64)
    -> Result<()>;
    fn remove_local_key(&self, user: &str, name: &str) -> Result<bool>;
    fn meta(&self, name: &str) -> Result<Option<Vec<u8>>>;
    fn set_meta(&self, name: &str, value: &[u8]) -> Result<()>;
    fn sealed_secrets(&self) -> Result<Vec<SealedSecret>>;
    fn oldest_hashed_item(&self) -> Result<Option<i64>>;
    fn set_contact(&self, user: &str, ch: FactorId, address: &str, now: i64) -> Result<()>;
    fn remove_contact(&self, user: &str, ch: FactorId) -> Result<bool>;
    fn set_duo(&self, user: &str, now: i64) -> Result<()>;
    fn remove_duo(&self, user: &str) -> Result<bool>;
    fn set_default_factor(&self, user: &str, factor: Option<&str>, now: i64) -> Result<()>;
    fn sends_last_hour(&self, user: &str, ch: FactorId, now: i64) -> Result<u32>;
    fn live_code_sent_at(
        &self,
        user: &str,
        ch: FactorId,
        purpose: Purpose,
        now: i64,
        max_attempts: u32,
    ) -> Result<Option<i64>>;
    #[allow(clippy::too_many_arguments)]
    fn insert_sent_code(
        &self,
        user: &str,
        ch: FactorId,
        purpose: Purpose,
        address: &str,
        hash: &[u8; 32],
        now: i64,
        ttl: i64,
        scope: &SentScope,
    ) -> Result<i64>;
    fn delete_sent_code(&self, id: i64) -> Result<()>;
    #[allow(clippy::too_many_arguments)]
    fn check_sent_code(
        &self,
        user: &str,
        ch: FactorId,
        purpose: Purpose,
        address: Option<&str>,
        hash: &[u8; 32],
        now: i64,
        max_attempts: u32,
        scope: &SentScope,
    ) -> Result<SentCheck>;
    /// The channel and address of the newest code of `purpose` sent to
    /// `user` in `scope`, if it is neither used nor expired (it may have
    /// run out of attempts): the number or address waiting for its code.
    fn newest_sent_code(
        &self,
        user: &str,
        purpose: Purpose,
        scope: &SentScope,
        now: i64,
    ) -> Result<Option<(FactorId, String)>>;
    fn user_state(&self, user: &str) -> Result<UserState>;
    fn ensure_user(&self, user: &str, now: i64) -> Result<()>;
    fn record_failure(&self, user: &str, now: i64, rl: &RateLimitConfig) -> Result<(u32, i64)>;
    fn record_success(
        &self,
        user: &str,
        now: i64,
        service: &str,
        rhost: &str,
        factor: &str,
    ) -> Result<()>;
    /// Moves the TOTP step forward; false (nothing written) if the
    /// stored step is not older.
    fn set_last_step(&self, user: &str, step: i64) -> Result<bool>;
    /// Moves the HOTP counter forward; false (nothing written) if the
    /// stored counter is not smaller.
    fn set_counter(&self, user: &str, counter: i64) -> Result<bool>;
    /// Marks a backup code used; false if it already was.
    fn mark_backup_used(&self, id: i64, now: i64, service: &str) -> Result<bool>;
    fn put_otp(&self, user: &str, rec: &OtpRecord, now: i64) -> Result<()>;
    /// `key_gen`: the host-key generation the hashes were made with.
    fn replace_backup_codes(
        &self,
        user: &str,
        hashes: &[[u8; 32]],
        now: i64,
        key_gen: i64,
    ) -> Result<()>;
    fn used_backup_hashes(&self, user: &str) -> Result<Vec<Vec<u8>>>;
    fn replace_unused_backup_codes(
        &self,
        user: &str,
        hashes: &[[u8; 32]],
        now: i64,
        key_gen: i64,
    ) -> Result<()>;
    fn remove_otp(&self, user: &str) -> Result<bool>;
    fn remove_backup_codes(&self, user: &str) -> Result<usize>;
    fn reset_user(&self, user: &str) -> Result<bool>;
    fn unlock(&self, user: &str) -> Result<bool>;
    fn first_seen(&self, user: &str, now: i64) -> Result<i64>;
    /// Merges another store's counters into `user`'s (creating the user):
    /// failures and locked_until are raised to at least these, first_seen
    /// lowered to at most this one. Never loosens a lock nor lengthens a
    /// grace period (`2fa-enroll migrate --to postgres`).
    fn merge_counters(
        &self,
        user: &str,
        failures: u32,
        locked_until: i64,
        first_seen: Option<i64>,
        now: i64,
    ) -> Result<()>;
    #[allow(clippy::too_many_arguments)]
    fn remember(
        &self,
        user: &str,
        service: &str,
        source_hash: &[u8; 32],
        source: &str,
        factor: &str,
        now: i64,
        until: i64,
    ) -> Result<()>;
    fn revoke(&self, user: &str, id: Option<i64>) -> Result<usize>;
    /// `key_gen`: the generation whose pepper the answer hashes used.
    fn set_questions(
        &self,
        user: &str,
        qs: &[(String, String)],
        now: i64,
        key_gen: i64,
    ) -> Result<()>;
    fn remove_questions(&self, user: &str) -> Result<bool>;
    fn set_last_failed_question(&self, user: &str, idx: Option<i64>) -> Result<()>;
    fn webauthn_credentials(&self, user: &str) -> Result<Vec<StoredCredential>>;
    fn add_key_warning(&self, user: &str, w: &KeyWarning) -> Result<()>;
    fn add_webauthn(&self, user: &str, name: &str, credential: &str, now: i64) -> Result<bool>;
    fn update_webauthn(&self, user: &str, name: &str, credential: &str, now: i64) -> Result<()>;
    fn remove_webauthn(&self, user: &str, name: &str) -> Result<bool>;
    /// Replaces the sealed OTP secret of `user` (re-sealed under
    /// generation `key_gen`), keeping everything else; false if the user
    /// has none.
    fn reseal_otp(&self, user: &str, sealed: &[u8], key_gen: i64) -> Result<bool>;
    /// Every backup code of `user`, used or not (`rekey convert`).
    fn backup_rows(&self, user: &str) -> Result<Vec<BackupRow>>;
    /// Every security question of `user` (`rekey convert`).
    fn question_rows(&self, user: &str) -> Result<Vec<StoredQuestion>>;
    /// Replaces the hash of backup code `id` of `user`, a plain hash of
    /// generation `inner`, by its wrap under generation `key_gen`
    /// (`inner_gen = inner`). False if the row is not (or no longer) a
    /// plain hash of generation `inner`.
    fn wrap_backup_code(
        &self,
        user: &str,
        id: i64,
        inner: i64,
        hash: &[u8],
        key_gen: i64,
    ) -> Result<bool>;
    /// The same for the answer hash of question `idx`.
    fn wrap_answer(
        &self,
        user: &str,
        idx: i64,
        inner: i64,
        answer_hash: &str,
        key_gen: i64,
    ) -> Result<bool>;
    /// A login answered the wrapped answer hash `wrapped` of question
    /// `idx` correctly (docs/rekey.md): replaces it by `answer_hash`, a
    /// plain hash of generation `key_gen` (`inner_gen` cleared), so it no
    /// longer needs the inner generation's key. False (nothing written)
    /// if the row is not (or no longer) that wrapped hash, for example
    /// the user set new answers meanwhile or another login re-hashed it
    /// first, or if its generation is above `key_gen`.
    fn rehash_answer(
        &self,
        user: &str,
        idx: i64,
        wrapped: &str,
        answer_hash: &str,
        key_gen: i64,
    ) -> Result<bool>;
    /// `rekey finish --drop` for one user: marks the unused backup codes
    /// that need a generation below `below` (as their generation or as
    /// the inner one of a wrap) used (so the user stays enrolled and the
    /// codes never verify) and deletes such security answers.
    /// Returns (codes, questions) dropped.
    fn drop_old_gen(&self, user: &str, below: i64, now: i64) -> Result<(usize, usize)>;
    /// Deletes every sent code (`rekey switch`: their hashes are keyed
    /// with the old generation; the user asks for a new one).
    fn clear_sent_codes(&self) -> Result<usize>;
    /// Serialises `rekey` steps across every host of the store (on
    /// PostgreSQL a fleet-wide advisory lock; SQLite's write transaction
    /// excludes everyone already). Call first in the transaction.
    fn lock_rekey(&self) -> Result<()>;
    fn commit(self: Box<Self>) -> Result<()>;

    // WebAuthn ceremonies in the shared store (fleet mode, issue 14
    // item 8). `token_hash` is a hash of the link's token. SQLite
    // answers every one with an error: there 2fad keeps its ceremonies
    // in memory.
    /// Adds a ceremony unless `user` already has `max_open` live,
    /// unanswered ones of the same class (logins, or the others); deletes
    /// ceremonies expired a minute ago on the way. False: over the quota.
    fn insert_ceremony(
        &self,
        token_hash: &[u8; 32],
        c: &StoredCeremony,
        max_open: u32,
        now: i64,
    ) -> Result<bool>;
    /// The ceremony, whatever its state (expired ones too, until deleted).
    fn ceremony(&self, token_hash: &[u8; 32]) -> Result<Option<StoredCeremony>>;
    /// Claims a live, unanswered ceremony nobody else is verifying (one
    /// conditional update, so two claims cannot both succeed): it is
    /// busy from then on. None: unknown, expired, answered or busy.
    fn claim_ceremony(&self, token_hash: &[u8; 32], now: i64) -> Result<Option<StoredCeremony>>;
    /// Records the result of a claimed ceremony (busy ends); false if it
    /// was not busy (unclaimed, deleted, or answered already).
    fn finish_ceremony(
        &self,
        token_hash: &[u8; 32],
        approved: bool,
        result: &str,
        now: i64,
    ) -> Result<bool>;
    /// Deletes a ceremony; false if it was not there (so of two callers
    /// taking one result, exactly one gets true).
    fn delete_ceremony(&self, token_hash: &[u8; 32]) -> Result<bool>;

    // Profile-page links and sessions in the shared store (fleet mode).
    // Keys are SHA-256 hashes of the link token and the session id;
    // `state` is sealed by 2fad. SQLite answers every one with an error:
    // there 2fad keeps them in memory.
    /// Adds a link unless `user` has `per_user` live unopened links and
    /// live sessions, or the store `max_all` in all (counted under the
    /// user's lock); sweeps expired links and sessions on the way (a
    /// session's "ended"/"expired" marker stays an hour after its end).
    #[allow(clippy::too_many_arguments)]
    fn insert_profile_link(
        &self,
        link_hash: &[u8; 32],
        user: &str,
        by_uid: u32,
        expires_at: i64,
        per_user: u32,
        max_all: u32,
        now: i64,
    ) -> Result<ProfileQuota>;
    /// The link, whatever its state, changing nothing.
    fn profile_link(&self, link_hash: &[u8; 32]) -> Result<Option<StoredProfileLink>>;
    /// Opens a link: a live unopened one is claimed for `session_hash`
    /// (one conditional update: of two openings one wins) and kept until
    /// `until`; an opened one is deleted and the session it opened ended
    /// (`Reused`); an expired one is deleted.
    fn open_profile_link(
        &self,
        link_hash: &[u8; 32],
        session_hash: &[u8; 32],
        now: i64,
        until: i64,
    ) -> Result<ProfileOpen>;
    fn insert_profile_session(
        &self,
        session_hash: &[u8; 32],
        s: &StoredProfileSession,
    ) -> Result<()>;
    /// The session, locked until the transaction ends (two hosts acting
    /// on one session run one after the other).
    fn lock_profile_session(&self, session_hash: &[u8; 32])
    -> Result<Option<StoredProfileSession>>;
    /// Replaces the sealed state of a live session; false if it is gone
    /// or ended.
    fn update_profile_session(&self, session_hash: &[u8; 32], state: &[u8]) -> Result<bool>;
    /// Ends a session and deletes its link. `ended`: marked so (its state
    /// wiped) until an hour after its natural end; false: forgotten
    /// (logout). False if there was no such session.
    fn end_profile_session(&self, session_hash: &[u8; 32], ended: bool, now: i64) -> Result<bool>;
}

/// A store connection, whatever the backend.
pub struct Store(Box<dyn Backend>);

impl Store {
    pub fn from_backend(backend: Box<dyn Backend>) -> Store {
        Store(backend)
    }
}

impl Deref for Store {
    type Target = dyn Backend;
    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl DerefMut for Store {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut *self.0
    }
}

/// A write transaction, whatever the backend.
pub struct Tx<'a>(Box<dyn TxOps + 'a>);

impl<'a> Tx<'a> {
    pub fn new(tx: Box<dyn TxOps + 'a>) -> Tx<'a> {
        Tx(tx)
    }

    pub fn commit(self) -> Result<()> {
        self.0.commit()
    }
}

impl<'a> Deref for Tx<'a> {
    type Target = dyn TxOps + 'a;
    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}
