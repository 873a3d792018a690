//! The attacker's view: every way in without a second factor, or way to
//! switch 2FA off, that the security review of main (d714378) found, each
//! reproduced through the real interface (libpam loading the built module,
//! real sudo, the 2fad socket and web server, a real browser) and kept as a
//! regression test. Each module is one area of the review (issue 11); the
//! test names say what an attacker tries and the assertions what must hold.

#[path = "../common/mod.rs"]
mod common;

mod daemon;
mod duo;
mod files;
mod inputs;
mod net;
mod web;
