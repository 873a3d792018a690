//! `scripts/install` stages the module, CLI, example config and pam.d files
//! under DESTDIR without touching the live system.

mod common;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

#[test]
fn install_with_destdir_stages_everything() {
    let dest = tempfile::tempdir().unwrap();
    let pam_dir = "/usr/lib/security-test";
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/install"))
        .arg("--no-build")
        .env("DESTDIR", dest.path())
        .env("PREFIX", "/usr")
        .env("PAM_MODULE_DIR", pam_dir)
        .env("BUILD_DIR", common::bin_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let module = dest.path().join("usr/lib/security-test/pam_2fa.so");
    let cli = dest.path().join("usr/bin/2fa-enroll");
    assert_eq!(
        std::fs::read(&module).unwrap(),
        std::fs::read(common::module_path()).unwrap()
    );
    assert_eq!(
        std::fs::metadata(&module).unwrap().permissions().mode() & 0o777,
        0o644
    );
    assert_eq!(
        std::fs::metadata(&cli).unwrap().permissions().mode() & 0o777,
        0o755
    );
    for f in [
        "2fa.conf.example",
        "README.md",
        "examples/pam.d/sshd",
        "examples/pam.d/sudo",
        "examples/pam.d/login",
        "examples/pam.d/common-2fa",
    ] {
        assert!(
            dest.path().join("usr/share/doc/pam-2fa").join(f).is_file(),
            "{f} missing"
        );
    }
    let man = std::fs::read_to_string(dest.path().join("usr/share/man/man8/2fa-enroll.8")).unwrap();
    assert!(man.contains("backup"), "man page lacks the subcommands");
    assert!(
        dest.path()
            .join("usr/share/bash-completion/completions/2fa-enroll")
            .is_file()
    );
    // With DESTDIR nothing live is created.
    assert!(!dest.path().join("etc").exists());
    let daemon = dest.path().join("usr/sbin/2fad");
    assert_eq!(
        std::fs::metadata(&daemon).unwrap().permissions().mode() & 0o7777,
        0o755
    );
    let unit =
        std::fs::read_to_string(dest.path().join("usr/lib/systemd/system/2fad.service")).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/sbin/2fad --config /etc/security/2fa.conf"),
        "{unit}"
    );
    let socket =
        std::fs::read_to_string(dest.path().join("usr/lib/systemd/system/2fad.socket")).unwrap();
    assert!(socket.contains("ListenStream=/run/2fad/socket"), "{socket}");
    // The installed CLI runs.
    let v = Command::new(&cli).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("2fa-enroll "));
}
