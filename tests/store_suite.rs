//! The store interface's contract suite (`p2fa_core::store::suite`) on
//! the PostgreSQL backend, against a real server: every case gets a
//! fresh database with the fleet schema, as SQLite's run gets a fresh
//! file. The same cases run on SQLite in p2fa-core's unit tests.

mod common;
use common::pg::{PgServer, SUPERUSER_PASSWORD};
use p2fa_core::secure_fs::Trust;
use p2fa_core::store::Store;
use p2fa_pg::store::{Limits, PgStore};
use p2fa_pg::wire::{Conn, ConnectConfig, Tls};

/// A store on a fresh, migrated database of `pg`, writing as `host`.
pub fn fresh_store(pg: &PgServer, host: &str) -> Store {
    let db = pg.create_db();
    let url = pg
        .url("postgres", &db)
        .replace("postgres@", &format!("postgres:{SUPERUSER_PASSWORD}@"));
    let mut cc = ConnectConfig::from_url(&url, Trust::test_runner()).unwrap();
    cc.tls = Tls::VerifyFull {
        ca_file: Some(pg.ca_file()),
        client_cert: None,
    };
    let mut conn = Conn::connect(&cc).unwrap();
    p2fa_pg::schema::migrate(&mut conn, p2fa_pg::schema::MIGRATIONS, "test", host, 1).unwrap();
    let store = PgStore::new(
        conn,
        host.to_string(),
        Limits {
            statement_timeout_ms: 5000,
            lock_timeout_ms: 5000,
        },
    );
    store.check_schema().unwrap();
    Store::from_backend(Box::new(store))
}

#[test]
fn the_contract_suite_holds_on_postgres() {
    let pg = PgServer::start();
    p2fa_core::store::suite::run_all(&mut || fresh_store(&pg, "host-a"));
}

#[test]
fn migrate_runs_once_and_records_the_version() {
    let pg = PgServer::start();
    let store = fresh_store(&pg, "host-a");
    assert_eq!(store.schema_version().unwrap(), p2fa_pg::schema::current_version());
    assert_eq!(store.kind(), p2fa_core::store::Kind::Postgres);
}
