//! Benchmark helper for scripts/bench: WebAuthn ceremonies per second in
//! 2fad's verifier (start a login challenge, answer it with a software
//! authenticator, verify, store the counter, read the result), against a
//! throw-away store. Prints one JSON line.
//!
//!     webauthn_verify [N] [CLIENTS] [PER_CLIENT]
//!
//! First one stream: N ceremonies one after the other (`verify_*`: the
//! verification alone, incl. its durable counter commit). Then CLIENTS
//! (16) concurrent clients, each a user with their own key, each sending
//! PER_CLIENT (N/4) answers one after the other: the answers are made
//! before the clock starts, so `concurrent_per_s` counts only what 2fad
//! does (verification and the group commit of the counters; every answer
//! is approved only after its batch is durable). 16 is what 2fad's web
//! server runs at once (its blocking threads).
//!
//! `concurrent_cpu_ms_each` is this process's CPU time (user + system,
//! all threads: the verifying clients and the committer; the answers
//! were signed before) over the concurrent part, per verification, and
//! `concurrent_per_cpu_s` its inverse: verifications per CPU-second of
//! the verifier alone. N dedicated cores would do at most N times that
//! (a derived figure, not a measurement: the clients here share the
//! host's CPUs with whatever else runs on it).

// A benchmark: it times with the clocks directly.
#![allow(clippy::disallowed_methods)]

use p2fa_core::config::Config;
use p2fa_core::secure_fs::Trust;
use p2fa_core::store::Store;
use p2fa_daemon::webauthn::{Ceremonies, Outcome};
use p2fa_testkit::softkey::SoftKey;
use std::sync::Barrier;
use std::sync::atomic::Ordering;
use std::time::Instant;

const ORIGIN: &str = "http://localhost:8443";

fn arg(i: usize) -> Option<usize> {
    std::env::args().nth(i).and_then(|a| a.parse().ok())
}

fn main() {
    let n = arg(1).unwrap_or(500);
    let clients = arg(2).unwrap_or(16).max(1);
    let per_client = arg(3).unwrap_or((n / 4).max(1));
    let dir = tempfile_dir();
    let mut cfg = Config {
        db: dir.join("state/state.db"),
        key_file: dir.join("key"),
        ..Config::default()
    };
    cfg.webauthn.enabled = true;
    cfg.webauthn.public_url = ORIGIN.into();
    cfg.webauthn.max_pending_per_user = (per_client + 1) as u32;
    let (key, _) =
        p2fa_core::crypto::HostKey::load_or_create(&cfg.key_file, Trust::test_runner()).unwrap();
    let store = Store::open_or_create(&cfg.db, 1000, Trust::test_runner()).unwrap();
    let c = Ceremonies::new(&cfg, Trust::test_runner()).unwrap();
    let register = |user: &str| {
        let tok = c
            .begin_register(&cfg, &store, &key, user, "bench", 0)
            .unwrap()
            .token;
        let mut sk = SoftKey::new();
        let opts = serde_json::from_str(&c.options(&tok).unwrap().0).unwrap();
        c.finish(
            &cfg,
            &tok,
            sk.register(&opts, ORIGIN).to_string().as_bytes(),
        )
        .unwrap();
        sk
    };
    let mut sk = register("root");
    let mut verify_ns = Vec::with_capacity(n);
    let start = Instant::now();
    for _ in 0..n {
        let tok = c
            .begin_login(&cfg, &store, "root", "bench", "")
            .unwrap()
            .token;
        let opts = serde_json::from_str(&c.options(&tok).unwrap().0).unwrap();
        let body = sk.assert(&opts, ORIGIN).to_string();
        let t = Instant::now();
        c.finish(&cfg, &tok, body.as_bytes()).unwrap();
        verify_ns.push(t.elapsed().as_nanos() as u64);
        assert!(matches!(
            c.result(&tok, "root", true),
            Ok(Outcome::Approved(_))
        ));
    }
    let total = start.elapsed().as_secs_f64();
    verify_ns.sort_unstable();

    // Concurrent clients.
    let keys: Vec<(String, SoftKey)> = (0..clients)
        .map(|i| {
            let u = format!("bench{i}");
            let sk = register(&u);
            (u, sk)
        })
        .collect();
    let stats = c.commit_stats();
    let (batches0, jobs0) = (
        stats.batches.load(Ordering::SeqCst),
        stats.committed.load(Ordering::SeqCst),
    );
    let ready = Barrier::new(clients + 1);
    let mut cpu = 0.0;
    let (wall, mut lat_ns) = std::thread::scope(|s| {
        let handles: Vec<_> = keys
            .into_iter()
            .map(|(user, mut sk)| {
                let (c, cfg, ready) = (&c, &cfg, &ready);
                s.spawn(move || {
                    let store = Store::open_existing(&cfg.db, 1000, Trust::test_runner()).unwrap();
                    let answers: Vec<(String, String)> = (0..per_client)
                        .map(|_| {
                            let tok = c
                                .begin_login(cfg, &store, &user, "bench", "")
                                .unwrap()
                                .token;
                            let opts = serde_json::from_str(&c.options(&tok).unwrap().0).unwrap();
                            (tok, sk.assert(&opts, ORIGIN).to_string())
                        })
                        .collect();
                    drop(store);
                    ready.wait();
                    let mut lat = Vec::with_capacity(per_client);
                    for (tok, body) in answers {
                        let t = Instant::now();
                        c.finish(cfg, &tok, body.as_bytes()).unwrap();
                        lat.push(t.elapsed().as_nanos() as u64);
                        assert!(matches!(
                            c.result(&tok, &user, true),
                            Ok(Outcome::Approved(_))
                        ));
                    }
                    lat
                })
            })
            .collect();
        ready.wait();
        let t = Instant::now();
        let cpu0 = p2fa_testkit::cpu::seconds("self");
        let lat: Vec<u64> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        cpu = p2fa_testkit::cpu::seconds("self") - cpu0;
        (t.elapsed().as_secs_f64(), lat)
    });
    lat_ns.sort_unstable();
    let m = lat_ns.len();
    let batches = stats.batches.load(Ordering::SeqCst) - batches0;
    let jobs = stats.committed.load(Ordering::SeqCst) - jobs0;
    println!(
        "{{\"ceremonies\":{n},\"ceremonies_per_s\":{:.1},\"verify_median_ms\":{:.3},\"verify_per_s\":{:.1},\
         \"clients\":{clients},\"concurrent_verifications\":{m},\"concurrent_per_s\":{:.1},\
         \"concurrent_median_ms\":{:.3},\"concurrent_p95_ms\":{:.3},\"commits\":{batches},\
         \"mean_batch\":{:.2},\"concurrent_cpu_ms_each\":{:.3},\"concurrent_per_cpu_s\":{:.1}}}",
        n as f64 / total,
        verify_ns[n / 2] as f64 / 1e6,
        1e9 / verify_ns[n / 2] as f64,
        m as f64 / wall,
        lat_ns[m / 2] as f64 / 1e6,
        lat_ns[m * 95 / 100] as f64 / 1e6,
        jobs as f64 / batches.max(1) as f64,
        cpu * 1e3 / m as f64,
        m as f64 / cpu.max(0.01),
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("p2fa-wa-bench-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
    d
}
