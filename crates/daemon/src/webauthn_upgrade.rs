//! Keys registered before the move from webauthn-rs 0.5 to 0.6 keep
//! working: a credential as 0.5 serialised it into the store (made by
//! 0.5.5 from the software authenticator's fixed key below, after one
//! login) loads with 0.6, verifies a new assertion and has its counter
//! moved on. If a later upgrade changed the stored format, every user's
//! security key would stop working at once; this test says so first.

use super::webauthn::{Ceremonies, Outcome};
use p2fa_core::config::Config;
use p2fa_core::secure_fs::Trust;
use p2fa_core::store::Store;
use p2fa_testkit::softkey::SoftKey;

/// `serde_json::to_string(&passkey)` from webauthn-rs 0.5.5, for
/// `SoftKey::from_secret(&[0x42; 32], &[0x11; 16])` registered with
/// rp_id "localhost", origin http://localhost:8443, counter 1.
const STORED_BY_0_5: &str = r#"{"cred":{"cred_id":"EREREREREREREREREREREQ","cred":{"type_":"ES256","key":{"EC_EC2":{"curve":"SECP256R1","x":"OtOGGpViE5JRa7WT7wVYPtLlhm9ctiYKMBcjf9ibkK8","y":"0JYcfjcHWmeRo5xh9WKVsCttJlZ7YV5gqkHuHI6DOI0"}}},"counter":1,"transports":null,"user_verified":true,"backup_eligible":false,"backup_state":false,"registration_policy":"required","extensions":{"cred_protect":"Ignored","hmac_create_secret":"NotRequested","appid":"NotRequested","cred_props":"Ignored"},"attestation":{"data":"None","metadata":"None"},"attestation_format":"none"}}"#;

const ORIGIN: &str = "http://localhost:8443";

#[test]
fn a_key_stored_by_webauthn_rs_0_5_still_logs_in() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config {
        db: dir.path().join("state/state.db"),
        key_file: dir.path().join("key"),
        ..Config::default()
    };
    cfg.webauthn.enabled = true;
    cfg.webauthn.public_url = ORIGIN.into();
    let mut store = Store::open_or_create(&cfg.db, 1000, Trust::test_runner()).unwrap();
    let tx = store.write().unwrap();
    assert!(
        tx.add_webauthn("root", "old key", STORED_BY_0_5, 1)
            .unwrap()
    );
    tx.commit().unwrap();

    let c = Ceremonies::new(&cfg, Trust::test_runner()).unwrap();
    let tok = c
        .begin_login(&cfg, &store, "root", "sshd", "")
        .unwrap()
        .token;
    let (opts, register) = c.options(&tok).unwrap();
    assert!(!register);
    let opts: serde_json::Value = serde_json::from_str(&opts).unwrap();
    assert_eq!(
        opts["publicKey"]["allowCredentials"][0]["id"], "EREREREREREREREREREREQ",
        "{opts}"
    );
    let mut sk = SoftKey::from_secret(&[0x42; 32], &[0x11; 16]).unwrap();
    sk.counter = 1;
    let body = sk.assert(&opts, ORIGIN).to_string();
    c.finish(&cfg, &tok, body.as_bytes()).unwrap();
    assert_eq!(
        c.result(&tok, "root", true),
        Ok(Outcome::Approved("old key".into()))
    );
    let stored = store.webauthn_credentials("root").unwrap();
    assert!(
        stored[0].credential.contains("\"counter\":2"),
        "{}",
        stored[0].credential
    );

    // And a signature by another key over the same credential id is not.
    let tok = c
        .begin_login(&cfg, &store, "root", "sshd", "")
        .unwrap()
        .token;
    let opts = serde_json::from_str(&c.options(&tok).unwrap().0).unwrap();
    let mut other = SoftKey::from_secret(&[0x43; 32], &[0x11; 16]).unwrap();
    other.counter = 5;
    let body = other.assert(&opts, ORIGIN).to_string();
    assert!(c.finish(&cfg, &tok, body.as_bytes()).is_err());
}
