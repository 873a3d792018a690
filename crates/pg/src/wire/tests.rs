//! The client against fake servers on loopback TCP: what a real
//! PostgreSQL never does (lies, trickles, oversized or cut messages) and
//! the protocol paths that need no real one.

// The fake servers sleep and the tests measure real time.
#![allow(clippy::disallowed_methods)]

use super::*;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::Instant;

const PASSWORD: &str = "pencil";

fn config(ports: &[u16]) -> ConnectConfig {
    ConnectConfig {
        addrs: ports
            .iter()
            .map(|p| Addr::Tcp("127.0.0.1".into(), *p))
            .collect(),
        user: "user".into(),
        dbname: "db".into(),
        password: Some(Zeroizing::new(PASSWORD.into())),
        application_name: "test".into(),
        tls: Tls::Off,
        channel_binding: ChannelBinding::Prefer,
        connect_timeout: Duration::from_secs(5),
        io_timeout: Duration::from_secs(5),
        require_primary: false,
        trust: p2fa_core::secure_fs::Trust::ROOT,
    }
}

/// A fake server for one connection, running `script`.
fn fake(script: impl FnOnce(TcpStream) + Send + 'static) -> (u16, JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        script(s);
    });
    (port, h)
}

fn read_startup(s: &mut TcpStream) -> Vec<u8> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize - 4];
    s.read_exact(&mut body).unwrap();
    body
}

/// One frontend message, or None at EOF.
fn read_msg(s: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut head = [0u8; 5];
    s.read_exact(&mut head).ok()?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let mut body = vec![0u8; len - 4];
    s.read_exact(&mut body).ok()?;
    Some((head[0], body))
}

fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn send(s: &mut TcpStream, tag: u8, body: &[u8]) {
    s.write_all(&frame(tag, body)).unwrap();
}

fn auth(code: i32, more: &[u8]) -> Vec<u8> {
    let mut b = code.to_be_bytes().to_vec();
    b.extend_from_slice(more);
    b
}

fn ready(s: &mut TcpStream) {
    send(s, b'S', b"server_version\x0017.0\x00");
    send(s, b'K', &[0, 0, 0, 1, 0, 0, 0, 2]);
    send(s, b'Z', b"I");
}

/// Startup with AuthenticationOk (no password asked).
fn trusting_startup(s: &mut TcpStream) {
    read_startup(s);
    send(s, b'R', &auth(0, &[]));
    ready(s);
}

/// The server side of SCRAM-SHA-256; `tamper` spoils its final
/// signature.
fn scram_server(s: &mut TcpStream, tamper: bool) {
    let startup = read_startup(s);
    assert!(startup.windows(5).any(|w| w == b"user\0"));
    send(s, b'R', &auth(10, b"SCRAM-SHA-256\0\0"));
    let (tag, body) = read_msg(s).unwrap();
    assert_eq!(tag, b'p');
    let mut r = msg::Reader::new(&body);
    assert_eq!(r.cstr().unwrap(), "SCRAM-SHA-256");
    let n = r.i32().unwrap() as usize;
    let first = String::from_utf8(r.bytes(n).unwrap().to_vec()).unwrap();
    // No TLS: no channel binding.
    let bare = first.strip_prefix("n,,").unwrap();
    let cnonce = bare.strip_prefix("n=,r=").unwrap();
    let salt = b"0123456789abcdef";
    let server_first = format!("r={cnonce}SERVERPART,s={},i=4096", B64.encode(salt));
    send(s, b'R', &auth(11, server_first.as_bytes()));
    let (tag, body) = read_msg(s).unwrap();
    assert_eq!(tag, b'p');
    let last = String::from_utf8(body).unwrap();
    let (without_proof, proof) = last.rsplit_once(",p=").unwrap();
    assert_eq!(without_proof, format!("c=biws,r={cnonce}SERVERPART"));
    let auth_message = format!("{bare},{server_first},{without_proof}");
    let salted = scram::hi(PASSWORD.as_bytes(), salt, 4096);
    let client_key = scram::hmac(&salted[..], b"Client Key");
    let stored = Sha256::digest(client_key);
    let sig = scram::hmac(&stored, auth_message.as_bytes());
    let expect: Vec<u8> = client_key.iter().zip(sig).map(|(a, b)| a ^ b).collect();
    assert_eq!(B64.decode(proof).unwrap(), expect, "client proof");
    let server_key = scram::hmac(&salted[..], b"Server Key");
    let mut server_sig = scram::hmac(&server_key, auth_message.as_bytes());
    if tamper {
        server_sig[0] ^= 1;
    }
    send(
        s,
        b'R',
        &auth(12, format!("v={}", B64.encode(server_sig)).as_bytes()),
    );
    if tamper {
        // The client hangs up here.
        assert!(read_msg(s).is_none());
        return;
    }
    send(s, b'R', &auth(0, &[]));
    ready(s);
}

#[test]
fn scram_login_against_a_fake_server() {
    let (port, h) = fake(|mut s| {
        scram_server(&mut s, false);
        assert_eq!(read_msg(&mut s).map(|m| m.0), Some(b'X'), "Terminate");
    });
    let c = Conn::connect(&config(&[port])).unwrap();
    assert_eq!(c.parameter("server_version"), Some("17.0"));
    assert_eq!(c.status(), TxStatus::Idle);
    drop(c);
    h.join().unwrap();
}

#[test]
fn a_bad_server_signature_is_refused() {
    let (port, h) = fake(|mut s| scram_server(&mut s, true));
    let e = Conn::connect(&config(&[port])).err().unwrap();
    assert!(
        matches!(&e, PgError::Connect(m) if m.contains("signature is wrong") && m.contains("127.0.0.1")),
        "{e:?}"
    );
    assert!(!e.to_string().contains(PASSWORD));
    h.join().unwrap();
}

#[test]
fn a_clear_text_password_over_plain_tcp_is_refused() {
    let (port, h) = fake(|mut s| {
        read_startup(&mut s);
        send(&mut s, b'R', &auth(3, &[]));
        // The client hangs up without sending the password.
        assert!(read_msg(&mut s).is_none());
    });
    let e = Conn::connect(&config(&[port])).err().unwrap();
    assert!(
        matches!(&e, PgError::Connect(m) if m.contains("clear text")),
        "{e:?}"
    );
    h.join().unwrap();
}

#[test]
fn md5_is_refused() {
    let (port, h) = fake(|mut s| {
        read_startup(&mut s);
        send(&mut s, b'R', &auth(5, b"salt"));
        assert!(read_msg(&mut s).is_none());
    });
    let e = Conn::connect(&config(&[port])).err().unwrap();
    assert!(
        matches!(&e, PgError::Connect(m) if m.contains("MD5") && m.contains("scram-sha-256")),
        "{e:?}"
    );
    h.join().unwrap();
}

#[test]
fn a_skipped_scram_final_is_refused() {
    let (port, h) = fake(|mut s| {
        read_startup(&mut s);
        send(&mut s, b'R', &auth(10, b"SCRAM-SHA-256\0\0"));
        read_msg(&mut s).unwrap();
        send(&mut s, b'R', &auth(0, &[]));
        let _ = read_msg(&mut s);
    });
    let e = Conn::connect(&config(&[port])).err().unwrap();
    assert!(
        matches!(&e, PgError::Connect(m) if m.contains("skipped")),
        "{e:?}"
    );
    h.join().unwrap();
}

/// Reads one pipeline (up to Sync); the tags seen.
fn read_batch(s: &mut TcpStream) -> Vec<u8> {
    let mut tags = Vec::new();
    loop {
        let (tag, _) = read_msg(s).unwrap();
        tags.push(tag);
        if tag == b'S' || tag == b'Q' {
            return tags;
        }
    }
}

fn int4_column() -> Vec<u8> {
    let mut b = 1i16.to_be_bytes().to_vec();
    b.extend_from_slice(b"n\0");
    b.extend_from_slice(&0i32.to_be_bytes());
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&23i32.to_be_bytes());
    b.extend_from_slice(&4i16.to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.extend_from_slice(&1i16.to_be_bytes());
    b
}

fn int4_row(v: i32) -> Vec<u8> {
    let mut b = 1i16.to_be_bytes().to_vec();
    b.extend_from_slice(&4i32.to_be_bytes());
    b.extend_from_slice(&v.to_be_bytes());
    b
}

#[test]
fn an_error_mid_pipeline_is_drained_and_the_connection_stays_usable() {
    let (port, h) = fake(|mut s| {
        trusting_startup(&mut s);
        let tags = read_batch(&mut s);
        assert_eq!(tags, b"PBDEPBDEPBDES", "three statements, one Sync");
        for (t, b) in [
            (b'1', vec![]),
            (b'2', vec![]),
            (b'T', int4_column()),
            (b'D', int4_row(7)),
            (b'C', b"SELECT 1\0".to_vec()),
            (b'1', vec![]),
            (b'2', vec![]),
            (b'N', b"SWARNING\0Mnever mind\0\0".to_vec()),
            (b'E', b"SERROR\0C23505\0Mduplicate key\0\0".to_vec()),
            (b'Z', b"E".to_vec()),
        ] {
            send(&mut s, t, &b);
        }
        read_batch(&mut s);
        for (t, b) in [
            (b'1', vec![]),
            (b'2', vec![]),
            (b'T', int4_column()),
            (b'D', int4_row(-5)),
            (b'C', b"SELECT 1\0".to_vec()),
            (b'Z', b"I".to_vec()),
        ] {
            send(&mut s, t, &b);
        }
        let _ = read_msg(&mut s);
    });
    let mut c = Conn::connect(&config(&[port])).unwrap();
    let e = c
        .pipeline(&[
            ("SELECT $1", &[Value::Int4(7)]),
            ("INSERT ...", &[Value::Text("x"), Value::Null]),
            ("SELECT 3", &[]),
        ])
        .err()
        .unwrap();
    assert_eq!(
        e,
        PgError::Server {
            code: "23505".into(),
            message: "duplicate key".into()
        }
    );
    assert_eq!(c.status(), TxStatus::Failed);
    let out = c.query("SELECT -5", &[]).unwrap();
    assert_eq!(out.rows.len(), 1);
    assert_eq!(out.affected, 1);
    assert_eq!(out.rows[0].i64(0).unwrap(), -5);
    // The wrong getter is an error, not a panic.
    assert!(matches!(out.rows[0].text(0), Err(PgError::Lost(_))));
    assert!(matches!(out.rows[0].i64(1), Err(PgError::Lost(_))));
    assert_eq!(c.status(), TxStatus::Idle);
    drop(c);
    h.join().unwrap();
}

/// A query whose answer the server script `answer` writes; the error.
fn lost_after(
    answer: impl FnOnce(&mut TcpStream) + Send + 'static,
    io: Duration,
) -> (PgError, Conn) {
    let (port, h) = fake(move |mut s| {
        trusting_startup(&mut s);
        read_batch(&mut s);
        answer(&mut s);
    });
    let mut cfg = config(&[port]);
    cfg.io_timeout = io;
    let mut c = Conn::connect(&cfg).unwrap();
    let e = c.query("SELECT 1", &[]).err().unwrap();
    h.join().unwrap();
    (e, c)
}

#[test]
fn a_message_over_1_mib_is_refused() {
    let (e, mut c) = lost_after(
        |s| {
            let mut head = vec![b'D'];
            head.extend_from_slice(&(MAX_MESSAGE as u32 + 5).to_be_bytes());
            s.write_all(&head).unwrap();
        },
        Duration::from_secs(5),
    );
    assert!(
        matches!(&e, PgError::Lost(m) if m.contains("bytes")),
        "{e:?}"
    );
    // The connection is dead from now on.
    assert!(!c.is_alive());
    assert!(matches!(c.simple("SELECT 1"), Err(PgError::Lost(_))));
}

#[test]
fn eof_mid_message_is_lost() {
    let (e, _) = lost_after(
        |s| {
            s.write_all(&frame(b'1', &[])).unwrap();
            s.write_all(&frame(b'T', &int4_column())[..9]).unwrap();
        },
        Duration::from_secs(5),
    );
    assert!(
        matches!(&e, PgError::Lost(m) if m.contains("closed")),
        "{e:?}"
    );
}

#[test]
fn a_malformed_message_is_lost() {
    let (e, _) = lost_after(
        |s| {
            send(s, b'D', &[0, 3, 0, 0]);
            std::thread::sleep(Duration::from_millis(200));
        },
        Duration::from_secs(5),
    );
    assert!(matches!(e, PgError::Lost(_)), "{e:?}");
}

#[test]
fn a_trickling_server_cannot_stretch_the_deadline() {
    let started = Instant::now();
    let (e, _) = lost_after(
        |s| {
            // A 100-byte message, one byte every 100 ms (10 s in all).
            let msg = frame(b'N', &[b'x'; 95]);
            for b in msg {
                if s.write_all(&[b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        },
        Duration::from_millis(700),
    );
    let took = started.elapsed();
    assert!(
        matches!(&e, PgError::Lost(m) if m.contains("timed out")),
        "{e:?}"
    );
    assert!(took < Duration::from_millis(700 + 1500), "took {took:?}");
}

#[test]
fn tls_off_is_refused_for_a_remote_address_before_connecting() {
    let mut cfg = config(&[9]);
    cfg.addrs = vec![Addr::Tcp("192.0.2.1".into(), 5432)];
    let started = Instant::now();
    let e = Conn::connect(&cfg).err().unwrap();
    assert!(
        matches!(&e, PgError::Connect(m) if m.contains("loopback")),
        "{e:?}"
    );
    assert!(started.elapsed() < Duration::from_millis(100));
    cfg.addrs = vec![Addr::Tcp("localhost".into(), 5432)];
    assert!(Conn::connect(&cfg).is_err());
}

#[test]
fn a_unix_socket_in_a_world_writable_directory_is_refused() {
    let mut cfg = config(&[9]);
    cfg.addrs = vec![Addr::Unix("/tmp".into(), 5432)];
    let e = Conn::connect(&cfg).err().unwrap();
    assert!(
        matches!(&e, PgError::Connect(m) if m.contains("writable by others")),
        "{e:?}"
    );
}

#[test]
fn a_standby_is_skipped_for_the_next_host() {
    let (standby, h1) = fake(|mut s| {
        read_startup(&mut s);
        send(&mut s, b'R', &auth(0, &[]));
        send(&mut s, b'S', b"in_hot_standby\0on\0");
        send(&mut s, b'Z', b"I");
        let _ = read_msg(&mut s);
    });
    // An older server without in_hot_standby: asked with a query.
    let (primary, h2) = fake(|mut s| {
        trusting_startup(&mut s);
        read_batch(&mut s);
        let mut col = int4_column();
        col[10..14].copy_from_slice(&16i32.to_be_bytes());
        for (t, b) in [
            (b'1', vec![]),
            (b'2', vec![]),
            (b'T', col),
            (b'D', vec![0, 1, 0, 0, 0, 1, 0]),
            (b'C', b"SELECT 1\0".to_vec()),
            (b'Z', b"I".to_vec()),
        ] {
            send(&mut s, t, &b);
        }
        let _ = read_msg(&mut s);
    });
    let mut cfg = config(&[standby, primary]);
    cfg.require_primary = true;
    let c = Conn::connect(&cfg).unwrap();
    assert_eq!(c.parameter("server_version"), Some("17.0"));
    drop(c);
    h1.join().unwrap();
    h2.join().unwrap();
}

#[test]
fn a_flood_of_messages_is_cut_off() {
    let (e, _) = lost_after(
        |s| {
            let notice = frame(b'N', &vec![b'x'; MAX_MESSAGE - 4]);
            for _ in 0..(MAX_CALL_BYTES / MAX_MESSAGE + 2) {
                if s.write_all(&notice).is_err() {
                    return;
                }
            }
        },
        Duration::from_secs(20),
    );
    assert!(
        matches!(&e, PgError::Lost(m) if m.contains("more than")),
        "{e:?}"
    );
}

#[test]
fn the_config_never_shows_the_password() {
    let c = ConnectConfig::from_url(
        "postgresql://u:hunter2@127.0.0.1/d",
        p2fa_core::secure_fs::Trust::ROOT,
    )
    .unwrap();
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("hunter2") && shown.contains("<set>"),
        "{shown}"
    );
}

/// 2fad keeps idle connections in a pool shared by its worker threads.
#[test]
fn connections_and_rows_can_move_between_threads() {
    fn send<T: Send>() {}
    fn sync<T: Sync>() {}
    send::<Conn>();
    send::<Row>();
    sync::<Row>();
    send::<PgError>();
}

/// A connection whose one query ends with ReadyForQuery `status`, handed
/// to a pool: only 'I' is kept; the fake server then sees Terminate when
/// the pool closes it.
fn pooled_after(status: &'static [u8], error: bool) -> usize {
    let (port, h) = fake(move |mut s| {
        trusting_startup(&mut s);
        read_batch(&mut s);
        if error {
            send(&mut s, b'E', b"SERROR\0C23505\0Mduplicate key\0\0");
        } else {
            for (t, b) in [
                (b'1', vec![]),
                (b'2', vec![]),
                (b'n', vec![]),
                (b'C', b"BEGIN\0".to_vec()),
            ] {
                send(&mut s, t, &b);
            }
        }
        send(&mut s, b'Z', status);
        assert_eq!(read_msg(&mut s).map(|m| m.0), Some(b'X'), "Terminate");
    });
    let cfg = config(&[port]);
    let mut c = Conn::connect(&cfg).unwrap();
    let _ = c.query("BEGIN", &[]);
    let pool = std::sync::Arc::new(crate::pool::Pool::new());
    pool.give_back(crate::pool::Key::of(&cfg), c, 4);
    let kept = pool.idle();
    pool.flush();
    h.join().unwrap();
    kept
}

#[test]
fn only_an_idle_connection_goes_back_to_the_pool() {
    assert_eq!(pooled_after(b"I", false), 1, "idle: kept");
    assert_eq!(
        pooled_after(b"I", true),
        1,
        "an error outside a transaction: kept"
    );
    assert_eq!(pooled_after(b"T", false), 0, "a transaction open: closed");
    assert_eq!(pooled_after(b"E", true), 0, "a failed transaction: closed");
}

#[test]
fn a_lost_connection_does_not_go_back_to_the_pool() {
    let (e, c) = lost_after(
        |s| {
            let _ = s.shutdown(std::net::Shutdown::Both);
        },
        Duration::from_secs(5),
    );
    assert!(matches!(e, PgError::Lost(_)), "{e:?}");
    assert!(!c.is_reusable());
    let pool = std::sync::Arc::new(crate::pool::Pool::new());
    pool.give_back(crate::pool::Key::of(&config(&[1])), c, 4);
    assert_eq!(pool.idle(), 0);
}

#[test]
fn a_timed_out_connection_does_not_go_back_to_the_pool() {
    let (e, c) = lost_after(
        |_| std::thread::sleep(Duration::from_millis(600)),
        Duration::from_millis(200),
    );
    assert!(matches!(e, PgError::Lost(_)), "{e:?}");
    assert!(!c.is_reusable());
    let pool = std::sync::Arc::new(crate::pool::Pool::new());
    pool.give_back(crate::pool::Key::of(&config(&[1])), c, 4);
    assert_eq!(pool.idle(), 0);
}

/// Startup as a primary (no `pg_is_in_recovery()` query follows).
fn primary_startup(s: &mut TcpStream) {
    read_startup(s);
    send(s, b'R', &auth(0, &[]));
    send(s, b'S', b"server_version\x0017.0\x00");
    send(s, b'S', b"in_hot_standby\x00off\x00");
    send(s, b'K', &[0, 0, 0, 1, 0, 0, 0, 2]);
    send(s, b'Z', b"I");
}

/// Answers `check_schema()` with this build's schema version.
fn answer_schema_check(s: &mut TcpStream) {
    assert_eq!(read_batch(s), b"PBDES", "one statement");
    let v = i32::try_from(crate::schema::current_version()).unwrap();
    let mut cols = 2i16.to_be_bytes().to_vec();
    for name in [&b"version\0"[..], b"min_reader\0"] {
        cols.extend_from_slice(name);
        cols.extend_from_slice(&0i32.to_be_bytes());
        cols.extend_from_slice(&0i16.to_be_bytes());
        cols.extend_from_slice(&23i32.to_be_bytes());
        cols.extend_from_slice(&4i16.to_be_bytes());
        cols.extend_from_slice(&(-1i32).to_be_bytes());
        cols.extend_from_slice(&1i16.to_be_bytes());
    }
    let mut row = 2i16.to_be_bytes().to_vec();
    for n in [v, v] {
        row.extend_from_slice(&4i32.to_be_bytes());
        row.extend_from_slice(&n.to_be_bytes());
    }
    for (t, b) in [
        (b'1', vec![]),
        (b'2', vec![]),
        (b'T', cols),
        (b'D', row),
        (b'C', b"SELECT 1\0".to_vec()),
        (b'Z', b"I".to_vec()),
    ] {
        send(s, t, &b);
    }
}

/// A fleet config for a fake server on `port` (plain TCP to loopback,
/// no password).
fn fleet_config(port: u16, pool: u32) -> p2fa_core::config::Config {
    let mut cfg = p2fa_core::config::Config {
        store: p2fa_core::config::StoreKind::Postgres,
        host_id: "host-a".into(),
        ..Default::default()
    };
    cfg.postgres.url = format!("postgresql://user@127.0.0.1:{port}/db");
    cfg.postgres.tls = p2fa_core::config::PgTlsMode::Off;
    cfg.daemon.store_pool = pool;
    cfg
}

fn stats(pool: &crate::pool::Pool) -> [u64; 3] {
    use std::sync::atomic::Ordering::Relaxed;
    [
        pool.stats.connects.load(Relaxed),
        pool.stats.reuses.load(Relaxed),
        pool.stats.stale.load(Relaxed),
    ]
}

/// The pool's checkout: a connection the server closed while it was
/// idle fails its check and is replaced by one fresh connection; a
/// healthy one is reused with its check; nothing else is sent.
#[test]
fn a_dead_pooled_connection_is_replaced_by_one_fresh_connection() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (closed_tx, closed) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        primary_startup(&mut s);
        answer_schema_check(&mut s);
        // The server ends the idle session (a restart, a DBA).
        drop(s);
        closed_tx.send(()).unwrap();
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        primary_startup(&mut s);
        answer_schema_check(&mut s);
        // The reuse: its check, then Terminate when the pool is flushed.
        answer_schema_check(&mut s);
        assert_eq!(read_msg(&mut s).map(|m| m.0), Some(b'X'));
        l.set_nonblocking(true).unwrap();
        assert!(l.accept().is_err(), "no third connection");
    });
    let cfg = fleet_config(port, 4);
    let pool = std::sync::Arc::new(crate::pool::Pool::new());
    let trust = p2fa_core::secure_fs::Trust::ROOT;
    drop(pool.open(&cfg, trust).unwrap());
    assert_eq!(pool.idle(), 1);
    assert_eq!(stats(&pool), [1, 0, 0]);
    closed.recv().unwrap();
    drop(pool.open(&cfg, trust).unwrap());
    assert_eq!(stats(&pool), [2, 0, 1], "one stale, one fresh");
    assert_eq!(pool.idle(), 1);
    let store = pool.open(&cfg, trust).unwrap();
    assert_eq!(stats(&pool), [2, 1, 1], "the fresh one reused");
    assert_eq!(pool.idle(), 0, "in use");
    drop(store);
    pool.flush();
    h.join().unwrap();
}

/// A fresh connection's failed check is the answer: not retried, and the
/// connection is closed, not pooled.
#[test]
fn a_fresh_connection_that_fails_its_check_is_not_retried_or_pooled() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        primary_startup(&mut s);
        read_batch(&mut s);
        send(
            &mut s,
            b'E',
            b"SERROR\0C42P01\0Mrelation \"p2fa.schema_version\" does not exist\0\0",
        );
        send(&mut s, b'Z', b"I");
        assert_eq!(read_msg(&mut s).map(|m| m.0), Some(b'X'), "closed");
        l.set_nonblocking(true).unwrap();
        assert!(l.accept().is_err(), "no second connection");
    });
    let cfg = fleet_config(port, 4);
    let pool = std::sync::Arc::new(crate::pool::Pool::new());
    let e = pool
        .open(&cfg, p2fa_core::secure_fs::Trust::ROOT)
        .err()
        .unwrap();
    assert!(e.to_string().contains("fleet schema is missing"), "{e}");
    assert_eq!(stats(&pool), [1, 0, 0]);
    assert_eq!(pool.idle(), 0);
    h.join().unwrap();
}

/// A write transaction in which a statement failed (its error ignored by
/// a caller) is not reported committed: PostgreSQL answers COMMIT there
/// with the tag ROLLBACK and no error, so `commit` must not send it and
/// say Ok. It is rolled back instead, and the connection is idle again.
#[test]
fn a_failed_transaction_is_never_reported_committed() {
    let (port, h) = fake(|mut s| {
        trusting_startup(&mut s);
        // BEGIN and the limits.
        assert_eq!(read_batch(&mut s), b"PBDEPBDES");
        for (t, b) in [
            (b'1', vec![]),
            (b'2', vec![]),
            (b'n', vec![]),
            (b'C', b"BEGIN\0".to_vec()),
            (b'1', vec![]),
            (b'2', vec![]),
            (b'T', int4_column()),
            (b'D', int4_row(0)),
            (b'C', b"SELECT 1\0".to_vec()),
            (b'Z', b"T".to_vec()),
        ] {
            send(&mut s, t, &b);
        }
        // The statement that fails.
        read_batch(&mut s);
        send(&mut s, b'E', b"SERROR\0C22012\0Mdivision by zero\0\0");
        send(&mut s, b'Z', b"E");
        // Whatever ends the transaction: answered as PostgreSQL does in a
        // failed one (COMMIT and ROLLBACK both say ROLLBACK).
        let (tag, body) = read_msg(&mut s).unwrap();
        assert_eq!(tag, b'Q');
        send(&mut s, b'C', b"ROLLBACK\0");
        send(&mut s, b'Z', b"I");
        assert_eq!(body, b"ROLLBACK\0", "a failed transaction was sent COMMIT");
        let _ = read_msg(&mut s);
    });
    let c = Conn::connect(&config(&[port])).unwrap();
    let limits = crate::store::Limits {
        statement_timeout_ms: 1000,
        lock_timeout_ms: 1000,
    };
    let mut store = crate::store::PgStore::new(c, "host-a".into(), limits);
    let tx = store.write().unwrap();
    assert!(tx.db().unwrap().exec("SELECT 1/0", &[]).is_err());
    assert!(
        tx.commit().is_err(),
        "a failed transaction reported committed"
    );
    assert!(store.conn().unwrap().is_reusable());
    drop(store);
    h.join().unwrap();
}
