//! Implements the store interface ([`crate::store::api`]) for a backend
//! whose connection and transaction types have inherent methods of the
//! same names and signatures as the traits' (each trait method calls the
//! inherent one), so the list of operations is written once for every
//! backend: `p2fa_core::store_backend!(SqliteStore, SqliteTx)`.
//!
//! A backend must have every inherent method: where one is missing,
//! `Type::name(self)` resolves to the trait method itself and recurses
//! forever, and rustc's recursion lint is silent inside another crate's
//! macro. The contract suite (`store::suite`) on each backend calls every
//! operation, so such a gap overflows the stack in the tests.

/// `store_backend!(Store, Tx)`: `impl Backend for Store` and
/// `impl TxOps for Tx<'_>`, forwarding to the inherent methods (plus
/// `kind`, `write` returning the backend's transaction, and
/// `commit(self)`).
#[macro_export]
macro_rules! store_backend {
    ($store:ident, $tx:ident) => {
        const _: () = {
            use $crate::config::RateLimitConfig;
            use $crate::factor::FactorId;
            use $crate::store::api::{Kind, Tx};
            use $crate::store::{
                BackupRow, GenCount, KeyWarning, LocalKey, OldGenItems, OtpRecord, ProfileOpen,
                ProfileQuota, Purpose, Remembered, Result, SealedSecret, SentCheck, SentScope,
                StoredCeremony, StoredCredential, StoredProfileLink, StoredProfileSession,
                StoredQuestion, UserState, UserStatus,
            };

            impl $crate::store::api::Backend for $store {
                fn kind(&self) -> Kind {
                    $store::kind(self)
                }
                fn local_keys(&self, user: &str) -> Result<Vec<LocalKey>> {
                    $store::local_keys(self, user)
                }
                fn key_names(&self, user: &str) -> Result<Vec<String>> {
                    $store::key_names(self, user)
                }
                fn local_key_owner(
                    &self,
                    credential_id: &[u8],
                ) -> Result<Option<(String, String)>> {
                    $store::local_key_owner(self, credential_id)
                }
                fn meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
                    $store::meta(self, name)
                }
                fn sealed_secrets(&self) -> Result<Vec<SealedSecret>> {
                    $store::sealed_secrets(self)
                }
                fn has_keyed_items(&self) -> Result<bool> {
                    $store::has_keyed_items(self)
                }
                fn write(&mut self) -> Result<Tx<'_>> {
                    Ok(Tx::new(Box::new($store::write(self)?)))
                }
                fn schema_version(&self) -> Result<i64> {
                    $store::schema_version(self)
                }
                fn quick_check(&self) -> Result<String> {
                    $store::quick_check(self)
                }
                fn integrity_check(&self) -> Result<String> {
                    $store::integrity_check(self)
                }
                fn used_backup_hashes(&self, user: &str) -> Result<Vec<Vec<u8>>> {
                    $store::used_backup_hashes(self, user)
                }
                fn key_gen_counts(&self) -> Result<Vec<GenCount>> {
                    $store::key_gen_counts(self)
                }
                fn old_gen_items(&self, below: i64) -> Result<Vec<OldGenItems>> {
                    $store::old_gen_items(self, below)
                }
                fn wrapped_items(&self, below: i64) -> Result<Vec<OldGenItems>> {
                    $store::wrapped_items(self, below)
                }
                fn fleet_hosts(&self) -> Result<Vec<(String, i64)>> {
                    $store::fleet_hosts(self)
                }
                fn user_state(&mut self, user: &str) -> Result<UserState> {
                    $store::user_state(self, user)
                }
                fn status(&mut self, user: &str) -> Result<UserStatus> {
                    $store::status(self, user)
                }
                fn users(&self) -> Result<Vec<String>> {
                    $store::users(self)
                }
                fn remembered(
                    &self,
                    user: &str,
                    service: &str,
                    source_hash: &[u8; 32],
                    now: i64,
                ) -> Result<Option<Remembered>> {
                    $store::remembered(self, user, service, source_hash, now)
                }
                fn remembered_list(&self, user: Option<&str>, now: i64) -> Result<Vec<Remembered>> {
                    $store::remembered_list(self, user, now)
                }
                fn questions(&self, user: &str) -> Result<(Vec<StoredQuestion>, Option<i64>)> {
                    $store::questions(self, user)
                }
                fn webauthn_credentials(&self, user: &str) -> Result<Vec<StoredCredential>> {
                    $store::webauthn_credentials(self, user)
                }
            }

            impl $crate::store::api::TxOps for $tx<'_> {
                fn key_names(&self, user: &str) -> Result<Vec<String>> {
                    $tx::key_names(self, user)
                }
                fn local_key_owner(
                    &self,
                    credential_id: &[u8],
                ) -> Result<Option<(String, String)>> {
                    $tx::local_key_owner(self, credential_id)
                }
                fn add_local_key(&self, user: &str, key: &LocalKey, now: i64) -> Result<bool> {
                    $tx::add_local_key(self, user, key, now)
                }
                fn local_key(&self, user: &str, credential_id: &[u8]) -> Result<Option<LocalKey>> {
                    $tx::local_key(self, user, credential_id)
                }
                fn use_local_key(
                    &self,
                    user: &str,
                    credential_id: &[u8],
                    counter: u32,
                    now: i64,
                ) -> Result<()> {
                    $tx::use_local_key(self, user, credential_id, counter, now)
                }
                fn remove_local_key(&self, user: &str, name: &str) -> Result<bool> {
                    $tx::remove_local_key(self, user, name)
                }
                fn meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
                    $tx::meta(self, name)
                }
                fn set_meta(&self, name: &str, value: &[u8]) -> Result<()> {
                    $tx::set_meta(self, name, value)
                }
                fn sealed_secrets(&self) -> Result<Vec<SealedSecret>> {
                    $tx::sealed_secrets(self)
                }
                fn oldest_hashed_item(&self) -> Result<Option<i64>> {
                    $tx::oldest_hashed_item(self)
                }
                fn set_contact(
                    &self,
                    user: &str,
                    ch: FactorId,
                    address: &str,
                    now: i64,
                ) -> Result<()> {
                    $tx::set_contact(self, user, ch, address, now)
                }
                fn remove_contact(&self, user: &str, ch: FactorId) -> Result<bool> {
                    $tx::remove_contact(self, user, ch)
                }
                fn set_duo(&self, user: &str, now: i64) -> Result<()> {
                    $tx::set_duo(self, user, now)
                }
                fn remove_duo(&self, user: &str) -> Result<bool> {
                    $tx::remove_duo(self, user)
                }
                fn set_default_factor(
                    &self,
                    user: &str,
                    factor: Option<&str>,
                    now: i64,
                ) -> Result<()> {
                    $tx::set_default_factor(self, user, factor, now)
                }
                fn sends_last_hour(&self, user: &str, ch: FactorId, now: i64) -> Result<u32> {
                    $tx::sends_last_hour(self, user, ch, now)
                }
                fn live_code_sent_at(
                    &self,
                    user: &str,
                    ch: FactorId,
                    purpose: Purpose,
                    now: i64,
                    max_attempts: u32,
                ) -> Result<Option<i64>> {
                    $tx::live_code_sent_at(self, user, ch, purpose, now, max_attempts)
                }
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
                ) -> Result<i64> {
                    $tx::insert_sent_code(self, user, ch, purpose, address, hash, now, ttl, scope)
                }
                fn delete_sent_code(&self, id: i64) -> Result<()> {
                    $tx::delete_sent_code(self, id)
                }
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
                ) -> Result<SentCheck> {
                    $tx::check_sent_code(
                        self,
                        user,
                        ch,
                        purpose,
                        address,
                        hash,
                        now,
                        max_attempts,
                        scope,
                    )
                }
                fn newest_sent_code(
                    &self,
                    user: &str,
                    purpose: Purpose,
                    scope: &SentScope,
                    now: i64,
                ) -> Result<Option<(FactorId, String)>> {
                    $tx::newest_sent_code(self, user, purpose, scope, now)
                }
                fn user_state(&self, user: &str) -> Result<UserState> {
                    $tx::user_state(self, user)
                }
                fn ensure_user(&self, user: &str, now: i64) -> Result<()> {
                    $tx::ensure_user(self, user, now)
                }
                fn record_failure(
                    &self,
                    user: &str,
                    now: i64,
                    rl: &RateLimitConfig,
                ) -> Result<(u32, i64)> {
                    $tx::record_failure(self, user, now, rl)
                }
                fn record_success(
                    &self,
                    user: &str,
                    now: i64,
                    service: &str,
                    rhost: &str,
                    factor: &str,
                ) -> Result<()> {
                    $tx::record_success(self, user, now, service, rhost, factor)
                }
                fn set_last_step(&self, user: &str, step: i64) -> Result<bool> {
                    $tx::set_last_step(self, user, step)
                }
                fn set_counter(&self, user: &str, counter: i64) -> Result<bool> {
                    $tx::set_counter(self, user, counter)
                }
                fn mark_backup_used(&self, id: i64, now: i64, service: &str) -> Result<bool> {
                    $tx::mark_backup_used(self, id, now, service)
                }
                fn put_otp(&self, user: &str, rec: &OtpRecord, now: i64) -> Result<()> {
                    $tx::put_otp(self, user, rec, now)
                }
                fn replace_backup_codes(
                    &self,
                    user: &str,
                    hashes: &[[u8; 32]],
                    now: i64,
                    key_gen: i64,
                ) -> Result<()> {
                    $tx::replace_backup_codes(self, user, hashes, now, key_gen)
                }
                fn used_backup_hashes(&self, user: &str) -> Result<Vec<Vec<u8>>> {
                    $tx::used_backup_hashes(self, user)
                }
                fn replace_unused_backup_codes(
                    &self,
                    user: &str,
                    hashes: &[[u8; 32]],
                    now: i64,
                    key_gen: i64,
                ) -> Result<()> {
                    $tx::replace_unused_backup_codes(self, user, hashes, now, key_gen)
                }
                fn remove_otp(&self, user: &str) -> Result<bool> {
                    $tx::remove_otp(self, user)
                }
                fn remove_backup_codes(&self, user: &str) -> Result<usize> {
                    $tx::remove_backup_codes(self, user)
                }
                fn reset_user(&self, user: &str) -> Result<bool> {
                    $tx::reset_user(self, user)
                }
                fn unlock(&self, user: &str) -> Result<bool> {
                    $tx::unlock(self, user)
                }
                fn first_seen(&self, user: &str, now: i64) -> Result<i64> {
                    $tx::first_seen(self, user, now)
                }
                fn merge_counters(
                    &self,
                    user: &str,
                    failures: u32,
                    locked_until: i64,
                    first_seen: Option<i64>,
                    now: i64,
                ) -> Result<()> {
                    $tx::merge_counters(self, user, failures, locked_until, first_seen, now)
                }
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
                ) -> Result<()> {
                    $tx::remember(self, user, service, source_hash, source, factor, now, until)
                }
                fn revoke(&self, user: &str, id: Option<i64>) -> Result<usize> {
                    $tx::revoke(self, user, id)
                }
                fn set_questions(
                    &self,
                    user: &str,
                    qs: &[(String, String)],
                    now: i64,
                    key_gen: i64,
                ) -> Result<()> {
                    $tx::set_questions(self, user, qs, now, key_gen)
                }
                fn reseal_otp(&self, user: &str, sealed: &[u8], key_gen: i64) -> Result<bool> {
                    $tx::reseal_otp(self, user, sealed, key_gen)
                }
                fn backup_rows(&self, user: &str) -> Result<Vec<BackupRow>> {
                    $tx::backup_rows(self, user)
                }
                fn question_rows(&self, user: &str) -> Result<Vec<StoredQuestion>> {
                    $tx::question_rows(self, user)
                }
                fn wrap_backup_code(
                    &self,
                    user: &str,
                    id: i64,
                    inner: i64,
                    hash: &[u8],
                    key_gen: i64,
                ) -> Result<bool> {
                    $tx::wrap_backup_code(self, user, id, inner, hash, key_gen)
                }
                fn wrap_answer(
                    &self,
                    user: &str,
                    idx: i64,
                    inner: i64,
                    answer_hash: &str,
                    key_gen: i64,
                ) -> Result<bool> {
                    $tx::wrap_answer(self, user, idx, inner, answer_hash, key_gen)
                }
                fn rehash_answer(
                    &self,
                    user: &str,
                    idx: i64,
                    wrapped: &str,
                    answer_hash: &str,
                    key_gen: i64,
                ) -> Result<bool> {
                    $tx::rehash_answer(self, user, idx, wrapped, answer_hash, key_gen)
                }
                fn drop_old_gen(&self, user: &str, below: i64, now: i64) -> Result<(usize, usize)> {
                    $tx::drop_old_gen(self, user, below, now)
                }
                fn clear_sent_codes(&self) -> Result<usize> {
                    $tx::clear_sent_codes(self)
                }
                fn lock_rekey(&self) -> Result<()> {
                    $tx::lock_rekey(self)
                }
                fn remove_questions(&self, user: &str) -> Result<bool> {
                    $tx::remove_questions(self, user)
                }
                fn set_last_failed_question(&self, user: &str, idx: Option<i64>) -> Result<()> {
                    $tx::set_last_failed_question(self, user, idx)
                }
                fn webauthn_credentials(&self, user: &str) -> Result<Vec<StoredCredential>> {
                    $tx::webauthn_credentials(self, user)
                }
                fn add_key_warning(&self, user: &str, w: &KeyWarning) -> Result<()> {
                    $tx::add_key_warning(self, user, w)
                }
                fn add_webauthn(
                    &self,
                    user: &str,
                    name: &str,
                    credential: &str,
                    now: i64,
                ) -> Result<bool> {
                    $tx::add_webauthn(self, user, name, credential, now)
                }
                fn update_webauthn(
                    &self,
                    user: &str,
                    name: &str,
                    credential: &str,
                    now: i64,
                ) -> Result<()> {
                    $tx::update_webauthn(self, user, name, credential, now)
                }
                fn remove_webauthn(&self, user: &str, name: &str) -> Result<bool> {
                    $tx::remove_webauthn(self, user, name)
                }
                fn commit(self: Box<Self>) -> Result<()> {
                    $tx::commit(*self)
                }

                // WebAuthn ceremonies in the shared store.
                fn insert_ceremony(
                    &self,
                    token_hash: &[u8; 32],
                    c: &StoredCeremony,
                    max_open: u32,
                    now: i64,
                ) -> Result<bool> {
                    $tx::insert_ceremony(self, token_hash, c, max_open, now)
                }
                fn ceremony(&self, token_hash: &[u8; 32]) -> Result<Option<StoredCeremony>> {
                    $tx::ceremony(self, token_hash)
                }
                fn claim_ceremony(
                    &self,
                    token_hash: &[u8; 32],
                    now: i64,
                ) -> Result<Option<StoredCeremony>> {
                    $tx::claim_ceremony(self, token_hash, now)
                }
                fn finish_ceremony(
                    &self,
                    token_hash: &[u8; 32],
                    approved: bool,
                    result: &str,
                    now: i64,
                ) -> Result<bool> {
                    $tx::finish_ceremony(self, token_hash, approved, result, now)
                }
                fn delete_ceremony(&self, token_hash: &[u8; 32]) -> Result<bool> {
                    $tx::delete_ceremony(self, token_hash)
                }

                // Profile-page links and sessions in the shared store.
                fn insert_profile_link(
                    &self,
                    link_hash: &[u8; 32],
                    user: &str,
                    by_uid: u32,
                    expires_at: i64,
                    per_user: u32,
                    max_all: u32,
                    now: i64,
                ) -> Result<ProfileQuota> {
                    $tx::insert_profile_link(
                        self, link_hash, user, by_uid, expires_at, per_user, max_all, now,
                    )
                }
                fn profile_link(&self, link_hash: &[u8; 32]) -> Result<Option<StoredProfileLink>> {
                    $tx::profile_link(self, link_hash)
                }
                fn open_profile_link(
                    &self,
                    link_hash: &[u8; 32],
                    session_hash: &[u8; 32],
                    now: i64,
                    until: i64,
                ) -> Result<ProfileOpen> {
                    $tx::open_profile_link(self, link_hash, session_hash, now, until)
                }
                fn insert_profile_session(
                    &self,
                    session_hash: &[u8; 32],
                    s: &StoredProfileSession,
                ) -> Result<()> {
                    $tx::insert_profile_session(self, session_hash, s)
                }
                fn lock_profile_session(
                    &self,
                    session_hash: &[u8; 32],
                ) -> Result<Option<StoredProfileSession>> {
                    $tx::lock_profile_session(self, session_hash)
                }
                fn update_profile_session(
                    &self,
                    session_hash: &[u8; 32],
                    state: &[u8],
                ) -> Result<bool> {
                    $tx::update_profile_session(self, session_hash, state)
                }
                fn end_profile_session(
                    &self,
                    session_hash: &[u8; 32],
                    ended: bool,
                    now: i64,
                ) -> Result<bool> {
                    $tx::end_profile_session(self, session_hash, ended, now)
                }
            }
        };
    };
}
