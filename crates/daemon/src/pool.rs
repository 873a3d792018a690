//! The fleet-store connections 2fad keeps between requests
//! (`daemon.store_pool`, [`p2fa_pg::pool`]): one pool for the process,
//! shared by the broker, the WebAuthn ceremonies, the shared ceremony
//! table and the group commit. SQLite, and `store_pool = 0`, open the
//! store per request as before.

use p2fa_core::config::Config;
use p2fa_core::secure_fs::Trust;
use p2fa_core::store::{Store, StoreError};
use p2fa_pg::pool::Pool;
use std::sync::{Arc, LazyLock};

static POOL: LazyLock<Arc<Pool>> = LazyLock::new(|| Arc::new(Pool::new()));

/// The store for one request (`Mode::Login` rules: an existing store, on
/// PostgreSQL a primary and a schema this build reads).
pub fn open(cfg: &Config, trust: Trust) -> Result<Store, StoreError> {
    POOL.open(cfg, trust)
}
