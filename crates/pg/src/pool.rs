//! 2fad's idle fleet-store connections (`daemon.store_pool`,
//! docs/fleet.md §4): 2fad is long-lived and serves many requests, so it
//! keeps up to `store_pool` idle connections instead of paying TCP, TLS
//! and SCRAM for each request. The PAM module and 2fa-enroll never use
//! this: they connect once per login or command ([`crate::open`]).
//!
//! The rules:
//!
//! - **Only healthy, idle connections come back.** A [`PgStore`](crate::store::PgStore) opened
//!   here holds a [`Lease`]; when it is dropped its connection goes back
//!   only if [`Conn::is_reusable`]: never lost (an I/O error, a timeout
//!   or a protocol error kills a connection for good), and the last
//!   ReadyForQuery said 'I' (no open or failed transaction). Anything
//!   else is closed. Every setting the store makes is transaction-local
//!   (`set_config(..., true)`) and every advisory lock a transaction lock,
//!   so an idle connection carries no state of the request that used it.
//! - **Idle connections expire** after [`IDLE_EXPIRY`] (30 s) unused, and
//!   every connection after [`MAX_AGE`] (5 min) from its connect. 30 s is
//!   well below the idle timeouts a connection may meet on the way
//!   (PgBouncer's `client_idle_timeout`, a server's `idle_session_timeout`,
//!   firewalls and NAT that drop quiet flows after minutes), so a pooled
//!   connection is rarely found dead, and a host does not hold server
//!   slots it has not needed for half a minute. The age limit makes
//!   every host reconnect now and then: after a failover or failback it
//!   follows the URL's host order (and DNS) again, and a changed role,
//!   password, `pg_hba.conf` rule or certificate (which do not end the
//!   sessions already open) takes effect within minutes.
//! - **Checked at checkout, retried only when nothing happened.** A
//!   reused connection first runs [`PgStore::check_schema`](crate::store::PgStore::check_schema) (the round
//!   trip a fresh connection runs too), under the connect timeout. It is
//!   a plain read outside any transaction, so if it fails (the server
//!   restarted, failed over, or killed the idle session), nothing of the
//!   request has taken effect: the connection is closed, the whole pool
//!   flushed (its other connections went to the same server), and the
//!   request gets a fresh connection, whose result is final. Nothing
//!   after the check is ever retried, so nothing can be applied twice.
//!   What is left: a connection that dies between the check and the
//!   request's first statement fails that request as "unavailable",
//!   exactly as a fresh connection dying there would.
//! - **The schema is re-checked on every checkout** (one indexed row), so
//!   a `2fa-enroll migrate` on another host is seen by the next request:
//!   a schema this build cannot use is "unavailable"/"too new" at once,
//!   as for a fresh connection.
//! - **Keyed by the settings.** The key is a hash of everything the
//!   connection was made with ([`ConnectConfig`]: addresses, user,
//!   database, password, TLS files, timeouts). The settings are read for
//!   every request (`url_file` and `password_file` are re-read), so a
//!   changed password or URL flushes the connections made with the old
//!   ones instead of reusing them.
//! - **Bounded**: at most the configured number idle (at most
//!   [`MAX_IDLE`]); connections in use are not counted here, the
//!   daemon's request limits (`max_clients`) bound them. One mutex, no
//!   thread of its own; connections are closed outside the lock; a
//!   poisoned lock empties the pool and carries on.

use crate::open::{connect_config, store_on};
use crate::store::store_error;
use crate::wire::{Conn, ConnectConfig};
use p2fa_core::clock::Stopwatch;
use p2fa_core::config::{Config, StoreKind};
use p2fa_core::secure_fs::Trust;
use p2fa_core::store::{Store, StoreError};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// An idle connection unused this long is closed, not reused.
pub const IDLE_EXPIRY: Duration = Duration::from_secs(30);
/// A connection this old (from its connect) is closed, not reused.
pub const MAX_AGE: Duration = Duration::from_secs(300);
/// The most idle connections `daemon.store_pool` may ask for.
pub const MAX_IDLE: usize = 64;

/// What a connection was made with: a hash of its [`ConnectConfig`],
/// password included (so the pool holds no copy of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key([u8; 32]);

impl Key {
    pub fn of(cc: &ConnectConfig) -> Key {
        let mut h = Sha256::new();
        h.update(b"p2fa pool key\0");
        // Debug shows every field but the password (quoted and escaped,
        // so unambiguous); the password follows, length first.
        h.update(format!("{cc:?}").as_bytes());
        match &cc.password {
            Some(p) => {
                h.update([1]);
                h.update((p.len() as u64).to_be_bytes());
                h.update(p.as_bytes());
            }
            None => h.update([0]),
        }
        Key(h.finalize().into())
    }
}

struct Idle<T> {
    key: Key,
    item: T,
    /// Since it was handed back.
    idle: Stopwatch,
    /// Since it was connected.
    born: Stopwatch,
}

/// The bookkeeping, apart from connections (unit-tested with plain
/// values): what is idle, what is expired, what to close.
struct Shelf<T> {
    items: Vec<Idle<T>>,
}

impl<T> Shelf<T> {
    const fn new() -> Shelf<T> {
        Shelf { items: Vec::new() }
    }

    /// Removes every entry of another key or past a limit; returns them
    /// (to be closed).
    fn prune(&mut self, key: Key, idle_expiry: Duration, max_age: Duration) -> Vec<T> {
        let mut gone = Vec::new();
        let mut kept = Vec::with_capacity(self.items.len());
        for e in self.items.drain(..) {
            if e.key != key || e.idle.elapsed() >= idle_expiry || e.born.elapsed() >= max_age {
                gone.push(e.item);
            } else {
                kept.push(e);
            }
        }
        self.items = kept;
        gone
    }

    /// The most recently handed back entry for `key` (and its connect
    /// time), after [`Shelf::prune`]; the pruned ones to close.
    fn take(
        &mut self,
        key: Key,
        idle_expiry: Duration,
        max_age: Duration,
    ) -> (Option<(T, Stopwatch)>, Vec<T>) {
        let gone = self.prune(key, idle_expiry, max_age);
        (self.items.pop().map(|e| (e.item, e.born)), gone)
    }

    /// Keeps `item` (connected at `born`) unless it is too old; at most
    /// `max_idle` are kept, the longest idle going first. Returns what to
    /// close.
    fn put(
        &mut self,
        key: Key,
        item: T,
        born: Stopwatch,
        max_idle: usize,
        idle_expiry: Duration,
        max_age: Duration,
    ) -> Vec<T> {
        let mut gone = self.prune(key, idle_expiry, max_age);
        let max_idle = max_idle.min(MAX_IDLE);
        if max_idle == 0 || born.elapsed() >= max_age {
            gone.push(item);
            return gone;
        }
        while self.items.len() >= max_idle {
            // The front is the longest idle (entries are pushed in order).
            gone.push(self.items.remove(0).item);
        }
        self.items.push(Idle {
            key,
            item,
            idle: Stopwatch::start(),
            born,
        });
        gone
    }

    fn clear(&mut self) -> Vec<T> {
        self.items.drain(..).map(|e| e.item).collect()
    }

    fn len(&self) -> usize {
        self.items.len()
    }
}

/// Counters, for tests and the curious.
#[derive(Debug, Default)]
pub struct Stats {
    /// New connections made.
    pub connects: AtomicU64,
    /// Checkouts served by an idle connection.
    pub reuses: AtomicU64,
    /// Idle connections that failed their checkout check.
    pub stale: AtomicU64,
}

/// The idle connections of one process (2fad has one).
pub struct Pool {
    shelf: Mutex<Shelf<Conn>>,
    idle_expiry: Duration,
    max_age: Duration,
    pub stats: Stats,
}

/// A pooled store's way home: its pool, its key, when it was connected,
/// and how many the pool may keep.
pub(crate) struct Lease {
    pool: Arc<Pool>,
    key: Key,
    born: Stopwatch,
    max_idle: usize,
}

impl Lease {
    /// Back to the pool if reusable, else closed.
    pub(crate) fn give_back(self, conn: Conn) {
        if !conn.is_reusable() {
            return;
        }
        let gone = {
            let mut shelf = self.pool.lock();
            shelf.put(
                self.key,
                conn,
                self.born,
                self.max_idle,
                self.pool.idle_expiry,
                self.pool.max_age,
            )
        };
        // Terminate is sent here, outside the lock.
        drop(gone);
    }
}

impl Default for Pool {
    fn default() -> Pool {
        Pool::new()
    }
}

impl Pool {
    /// A pool with the limits above.
    pub fn new() -> Pool {
        Pool::with_limits(IDLE_EXPIRY, MAX_AGE)
    }

    /// A pool with other expiry limits (tests).
    pub fn with_limits(idle_expiry: Duration, max_age: Duration) -> Pool {
        Pool {
            shelf: Mutex::new(Shelf::new()),
            idle_expiry,
            max_age,
            stats: Stats::default(),
        }
    }

    /// The shelf; a lock poisoned by a panic elsewhere is taken back
    /// with the pool emptied (its connections closed), never unwrapped.
    fn lock(&self) -> MutexGuard<'_, Shelf<Conn>> {
        match self.shelf.lock() {
            Ok(g) => g,
            Err(poisoned) => {
                let mut g = poisoned.into_inner();
                drop(g.clear());
                self.shelf.clear_poison();
                g
            }
        }
    }

    /// Idle connections now.
    pub fn idle(&self) -> usize {
        self.lock().len()
    }

    /// Closes every idle connection.
    pub fn flush(&self) {
        let gone = self.lock().clear();
        drop(gone);
    }

    /// The store for one 2fad request. SQLite, and PostgreSQL with
    /// `daemon.store_pool = 0`, are opened as [`crate::open`] does
    /// (`Mode::Login`); otherwise an idle connection with the same
    /// settings is reused after the checkout check, or a new one is made.
    /// Either way the schema was checked on this call.
    pub fn open(self: &Arc<Self>, cfg: &Config, trust: Trust) -> Result<Store, StoreError> {
        let max_idle = usize::try_from(cfg.daemon.store_pool)
            .unwrap_or(MAX_IDLE)
            .min(MAX_IDLE);
        if cfg.store != StoreKind::Postgres || max_idle == 0 {
            return crate::open(cfg, trust, crate::Mode::Login);
        }
        let cc = connect_config(cfg, trust, false)?;
        let key = Key::of(&cc);
        let (taken, gone) = self.lock().take(key, self.idle_expiry, self.max_age);
        drop(gone);
        if let Some((mut conn, born)) = taken {
            // The check replaces a connect: bounded like one.
            conn.set_io_timeout(cc.connect_timeout.min(cc.io_timeout));
            let mut store = store_on(cfg, conn);
            if store.check_schema().is_ok() {
                store.conn()?.set_io_timeout(cc.io_timeout);
                store.set_lease(self.lease(key, born, max_idle));
                self.stats.reuses.fetch_add(1, Ordering::Relaxed);
                return Ok(Store::from_backend(Box::new(store)));
            }
            // A plain read outside a transaction failed: nothing of this
            // request happened yet. Close it (no lease), and the others
            // too: they went to the same server.
            self.stats.stale.fetch_add(1, Ordering::Relaxed);
            drop(store);
            self.flush();
        }
        let conn = Conn::connect(&cc).map_err(store_error)?;
        self.stats.connects.fetch_add(1, Ordering::Relaxed);
        let mut store = store_on(cfg, conn);
        store.check_schema()?;
        store.set_lease(self.lease(key, Stopwatch::start(), max_idle));
        Ok(Store::from_backend(Box::new(store)))
    }

    fn lease(self: &Arc<Self>, key: Key, born: Stopwatch, max_idle: usize) -> Lease {
        Lease {
            pool: Arc::clone(self),
            key,
            born,
            max_idle,
        }
    }

    /// Hands `conn` to the pool as a store dropped with a lease would
    /// (tests).
    #[cfg(test)]
    pub(crate) fn give_back(self: &Arc<Self>, key: Key, conn: Conn, max_idle: usize) {
        self.lease(key, Stopwatch::start(), max_idle)
            .give_back(conn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(3600);

    fn key(n: u8) -> Key {
        Key([n; 32])
    }

    #[test]
    fn the_most_recent_entry_of_the_key_is_taken() {
        let mut s = Shelf::new();
        assert!(
            s.put(key(1), 1, Stopwatch::start(), 4, LONG, LONG)
                .is_empty()
        );
        assert!(
            s.put(key(1), 2, Stopwatch::start(), 4, LONG, LONG)
                .is_empty()
        );
        let (got, gone) = s.take(key(1), LONG, LONG);
        assert_eq!(got.map(|(v, _)| v), Some(2));
        assert!(gone.is_empty());
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn never_more_than_max_idle_and_the_longest_idle_goes_first() {
        let mut s = Shelf::new();
        for v in 0..4 {
            assert!(s.put(key(1), v, Stopwatch::start(), 3, LONG, LONG).len() <= 1);
        }
        assert_eq!(s.len(), 3);
        let mut left = Vec::new();
        while let (Some((v, _)), _) = s.take(key(1), LONG, LONG) {
            left.push(v);
        }
        assert_eq!(left, vec![3, 2, 1], "0 was closed when 3 came back");
        // 0 keeps nothing; neither does a value above MAX_IDLE exceed it.
        assert_eq!(s.put(key(1), 9, Stopwatch::start(), 0, LONG, LONG), vec![9]);
        for v in 0..(MAX_IDLE + 5) {
            s.put(key(1), v, Stopwatch::start(), usize::MAX, LONG, LONG);
        }
        assert_eq!(s.len(), MAX_IDLE);
    }

    #[test]
    fn expired_entries_are_closed_not_taken() {
        let mut s = Shelf::new();
        s.put(key(1), 1, Stopwatch::start(), 4, LONG, LONG);
        // Idle too long.
        let (got, gone) = s.take(key(1), Duration::ZERO, LONG);
        assert!(got.is_none());
        assert_eq!(gone, vec![1]);
        // Too old (connected long ago), whether idle or handed back.
        s.put(key(1), 2, Stopwatch::start(), 4, LONG, LONG);
        let (got, gone) = s.take(key(1), LONG, Duration::ZERO);
        assert!(got.is_none());
        assert_eq!(gone, vec![2]);
        assert_eq!(
            s.put(key(1), 3, Stopwatch::start(), 4, LONG, Duration::ZERO),
            vec![3]
        );
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn other_settings_flush_the_pool() {
        let mut s = Shelf::new();
        s.put(key(1), 1, Stopwatch::start(), 4, LONG, LONG);
        s.put(key(1), 2, Stopwatch::start(), 4, LONG, LONG);
        // A request with new settings takes nothing and closes the old.
        let (got, mut gone) = s.take(key(2), LONG, LONG);
        assert!(got.is_none());
        gone.sort();
        assert_eq!(gone, vec![1, 2]);
        // So does a connection handed back under new settings.
        s.put(key(1), 3, Stopwatch::start(), 4, LONG, LONG);
        assert_eq!(s.put(key(2), 4, Stopwatch::start(), 4, LONG, LONG), vec![3]);
        assert_eq!(s.take(key(2), LONG, LONG).0.map(|(v, _)| v), Some(4));
    }

    fn config() -> ConnectConfig {
        let mut cc = ConnectConfig::from_url(
            "postgresql://u@127.0.0.1:5432/d",
            p2fa_core::secure_fs::Trust::ROOT,
        )
        .unwrap();
        cc.password = Some(zeroize::Zeroizing::new("one".into()));
        cc
    }

    #[test]
    fn the_key_covers_every_setting_and_the_password() {
        let base = config();
        assert_eq!(Key::of(&base), Key::of(&config()));
        let mut pw = config();
        pw.password = Some(zeroize::Zeroizing::new("two".into()));
        let mut none = config();
        none.password = None;
        let mut user = config();
        user.user = "v".into();
        let mut addr = config();
        addr.addrs = vec![crate::wire::Addr::Tcp("127.0.0.2".into(), 5432)];
        let mut io = config();
        io.io_timeout += Duration::from_millis(1);
        let mut tls = config();
        tls.tls = crate::wire::Tls::Off;
        for other in [pw, none, user, addr, io, tls] {
            assert_ne!(Key::of(&base), Key::of(&other), "{other:?}");
        }
        // The password shows up nowhere.
        assert!(!format!("{:?}", Key::of(&base)).contains("one"));
    }

    #[test]
    fn a_poisoned_lock_empties_the_pool_and_it_carries_on() {
        let pool = Arc::new(Pool::new());
        let p = Arc::clone(&pool);
        let _ = std::thread::spawn(move || {
            let _g = p.shelf.lock();
            panic!("poison");
        })
        .join();
        assert!(pool.shelf.is_poisoned());
        assert_eq!(pool.idle(), 0);
        assert!(!pool.shelf.is_poisoned());
        pool.flush();
    }
}
