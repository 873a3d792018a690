//! [`SqliteStore`] and [`SqliteTx`] behind the store interface
//! ([`crate::store::api`]): each trait method is the inherent method of
//! the same name ([`crate::store_backend`]).

use super::{SqliteStore, SqliteTx};

crate::store_backend!(SqliteStore, SqliteTx);
