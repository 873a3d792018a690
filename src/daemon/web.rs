//! 2fad's small web server for the browser side of WebAuthn: the page
//! (`/l/TOKEN` to log in, `/r/TOKEN` to register), its script, and two JSON
//! endpoints. HTTPS with the configured certificate, or plain HTTP for a
//! localhost `public_url` (see config validation).

use super::webauthn::Ceremonies;
use crate::config::Config;
use std::io::Read;
use std::sync::Arc;
use tiny_http::{Header, Method, Request, Response, Server};

const PAGE: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/app.js");
/// Largest body accepted from a browser.
const MAX_BODY: u64 = 64 * 1024;
const WORKERS: usize = 4;

fn header(k: &str, v: &str) -> Header {
    Header::from_bytes(k.as_bytes(), v.as_bytes()).expect("static header")
}

fn reply(rq: Request, code: u16, ctype: &str, body: String) {
    let resp = Response::from_string(body)
        .with_status_code(code)
        .with_header(header("Content-Type", ctype))
        .with_header(header("Cache-Control", "no-store"))
        .with_header(header("X-Content-Type-Options", "nosniff"))
        .with_header(header("Referrer-Policy", "no-referrer"))
        .with_header(header(
            "Content-Security-Policy",
            "default-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ));
    let _ = rq.respond(resp);
}

/// Starts the server on worker threads; returns once it listens.
pub fn start(cfg: Arc<Config>, ceremonies: Arc<Ceremonies>) -> Result<(), String> {
    let w = &cfg.webauthn;
    let server = if w.cert_file.is_empty() {
        Server::http(&w.listen)
    } else {
        let certificate =
            std::fs::read(&w.cert_file).map_err(|e| format!("{}: {e}", w.cert_file))?;
        let private_key = std::fs::read(&w.key_file).map_err(|e| format!("{}: {e}", w.key_file))?;
        Server::https(
            &w.listen,
            tiny_http::SslConfig {
                certificate,
                private_key,
            },
        )
    }
    .map_err(|e| format!("webauthn.listen {}: {e}", w.listen))?;
    let server = Arc::new(server);
    for _ in 0..WORKERS {
        let (server, cfg, ceremonies) = (server.clone(), cfg.clone(), ceremonies.clone());
        std::thread::spawn(move || {
            while let Ok(rq) = server.recv() {
                handle(&cfg, &ceremonies, rq);
            }
        });
    }
    Ok(())
}

fn handle(cfg: &Config, c: &Ceremonies, mut rq: Request) {
    let path = rq.url().split('?').next().unwrap_or("").to_string();
    let method = rq.method().clone();
    match (method, path.as_str()) {
        (Method::Get, "/static/app.js") => {
            reply(rq, 200, "text/javascript; charset=utf-8", SCRIPT.into())
        }
        (Method::Get, p) if p.starts_with("/l/") || p.starts_with("/r/") => {
            reply(rq, 200, "text/html; charset=utf-8", PAGE.into())
        }
        (Method::Get, p) if p.starts_with("/api/options/") => {
            match c.options(&p["/api/options/".len()..]) {
                Some((options, register)) => reply(
                    rq,
                    200,
                    "application/json",
                    format!(r#"{{"register":{register},"options":{options}}}"#),
                ),
                None => reply(
                    rq,
                    404,
                    "text/plain",
                    "This link has expired or was already used.".into(),
                ),
            }
        }
        (Method::Post, p) if p.starts_with("/api/finish/") => {
            let tok = p["/api/finish/".len()..].to_string();
            let mut body = Vec::new();
            if rq
                .as_reader()
                .take(MAX_BODY + 1)
                .read_to_end(&mut body)
                .is_err()
                || body.len() as u64 > MAX_BODY
            {
                return reply(rq, 413, "text/plain", "Request too large.".into());
            }
            match c.finish(cfg, &tok, &body) {
                Ok(()) => reply(rq, 200, "application/json", r#"{"ok":true}"#.into()),
                Err(e) => reply(rq, 400, "text/plain", crate::audit::printable(&e, 300)),
            }
        }
        _ => reply(rq, 404, "text/plain", "Not found.".into()),
    }
}
