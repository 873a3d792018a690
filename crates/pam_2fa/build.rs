//! Link the module with packed relative relocations (DT_RELR) where the
//! C library can load them.
//!
//! Nearly all of libpam_2fa.so's relocations are R_X86_64_RELATIVE (about
//! 6500: vtables, string tables, function pointers). As plain RELA entries
//! they take 24 bytes each, about 150 KiB that the dynamic loader reads,
//! page by page, every time a PAM handle loads the module; DT_RELR packs
//! them into a bitmap of a few KiB. glibc loads DT_RELR from 2.36 on, and
//! the linker then marks the module as needing GLIBC_ABI_DT_RELR, so on an
//! older glibc it fails to load with a clear error instead of misbehaving.
//! Only when building for the machine we build on (the usual case for a
//! PAM module), and only if its glibc is 2.36 or newer; elsewhere the
//! module is linked as before. P2FA_NO_RELR=1 turns it off.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=P2FA_NO_RELR");
    let target = std::env::var("TARGET").unwrap_or_default();
    let host = std::env::var("HOST").unwrap_or_default();
    if std::env::var_os("P2FA_NO_RELR").is_some()
        || target != host
        || !target.ends_with("-linux-gnu")
        || !glibc_at_least(2, 36)
    {
        return;
    }
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,pack-relative-relocs");
}

/// The build machine's glibc, from `getconf GNU_LIBC_VERSION` ("glibc 2.36").
fn glibc_at_least(major: u32, minor: u32) -> bool {
    let Ok(out) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut v = text
        .trim()
        .strip_prefix("glibc ")
        .unwrap_or("")
        .split('.')
        .map(|n| n.parse::<u32>().ok());
    match (v.next().flatten(), v.next().flatten()) {
        (Some(a), Some(b)) => (a, b) >= (major, minor),
        _ => false,
    }
}
