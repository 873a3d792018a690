//! Benchmark helper for scripts/bench: WebAuthn ceremonies per second in
//! 2fad's verifier (start a login challenge, answer it with a software
//! authenticator, verify, store the counter, read the result), against a
//! throw-away store. Prints one JSON line.

// A benchmark: it times with the clocks directly.
#![allow(clippy::disallowed_methods)]

use p2fa_core::config::Config;
use p2fa_core::secure_fs::Trust;
use p2fa_core::store::Store;
use p2fa_daemon::webauthn::{Ceremonies, Outcome};
use p2fa_testkit::softkey::SoftKey;
use std::time::Instant;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(500);
    let dir = tempfile_dir();
    let mut cfg = Config {
        db: dir.join("state/state.db"),
        key_file: dir.join("key"),
        ..Config::default()
    };
    cfg.webauthn.enabled = true;
    cfg.webauthn.public_url = "http://localhost:8443".into();
    cfg.webauthn.max_pending_per_user = 20;
    let (key, _) =
        p2fa_core::crypto::HostKey::load_or_create(&cfg.key_file, Trust::test_runner()).unwrap();
    let store = Store::open_or_create(&cfg.db, 1000, Trust::test_runner()).unwrap();
    let c = Ceremonies::new(&cfg, Trust::test_runner()).unwrap();
    let origin = "http://localhost:8443";
    let tok = c
        .begin_register(&cfg, &store, &key, "root", "bench", 0)
        .unwrap()
        .token;
    let mut sk = SoftKey::new();
    let opts = serde_json::from_str(&c.options(&tok).unwrap().0).unwrap();
    c.finish(
        &cfg,
        &tok,
        sk.register(&opts, origin).to_string().as_bytes(),
    )
    .unwrap();
    let mut verify_ns = Vec::with_capacity(n);
    let start = Instant::now();
    for _ in 0..n {
        let tok = c
            .begin_login(&cfg, &store, "root", "bench", "")
            .unwrap()
            .token;
        let opts = serde_json::from_str(&c.options(&tok).unwrap().0).unwrap();
        let body = sk.assert(&opts, origin).to_string();
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
    println!(
        "{{\"ceremonies\":{n},\"ceremonies_per_s\":{:.1},\"verify_median_ms\":{:.3},\"verify_per_s\":{:.1}}}",
        n as f64 / total,
        verify_ns[n / 2] as f64 / 1e6,
        1e9 / verify_ns[n / 2] as f64
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
