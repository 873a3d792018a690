//! 2fad's small web server for the browser side of WebAuthn: the page
//! (`/l/TOKEN` to log in, `/r/TOKEN` to register), its script, and two JSON
//! endpoints. HTTPS with the configured certificate (TLS by rustls with the
//! *ring* provider; no OpenSSL), or plain HTTP for a localhost `public_url`
//! or behind a reverse proxy (see config validation).
//!
//! Everyone's WebAuthn approval goes through this one listener, so no
//! client may hold it up for others. HTTP/1.1 by hyper on a small tokio
//! runtime of its own (two worker threads, in 2fad only: the PAM module
//! never reaches this code); every connection is its own task, and each
//! step of it has a deadline:
//!
//! | what | limit | then |
//! |---|---|---|
//! | TLS handshake | 10 s ([`HANDSHAKE`]) | connection closed |
//! | request line and headers (from the first byte wait) | 10 s ([`HEADERS`]) | connection closed |
//! | keep-alive idle between requests | 10 s (the header deadline) | connection closed |
//! | whole request body | 10 s ([`BODY`]), 64 KiB ([`MAX_BODY`]) | 408 / 413, closed |
//! | request headers size | 16 KiB ([`MAX_HEADER_BYTES`]) | 431, closed |
//! | one connection's life | 120 s ([`LIFETIME`]) | closed after the request in flight |
//! | open connections | 512 in all, 64 per client address ([`limits`]) | `503 Service Unavailable` at once |
//!
//! A silent or trickling client therefore costs one task for at most 10 s
//! and never delays anyone else's request. Behind a reverse proxy every
//! client has the proxy's address: the per-address limit is then the proxy's
//! (it should apply its own per-client limits).
//!
//! The certificate and key are reread on SIGHUP and when either file
//! changes (checked every 2 s); a pair that fails to load or does not match
//! is logged and the last good pair stays in service ([`tls`]).

mod limits;
mod tls;

use super::webauthn::Ceremonies;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use p2fa_core::config::Config;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

const PAGE: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/app.js");
/// The WebAuthn ceremony in the browser, for both pages.
const CREDENTIAL: &str = include_str!("page/credential.js");
/// Largest body accepted from a browser.
const MAX_BODY: usize = 64 * 1024;
/// Largest request line plus headers (hyper's read buffer).
const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Deadline for the TLS handshake, from the TCP accept.
pub const HANDSHAKE: Duration = Duration::from_secs(10);
/// Deadline for a request's line and headers, from when the server starts
/// waiting for them; it is also the keep-alive idle timeout.
pub const HEADERS: Duration = Duration::from_secs(10);
/// Deadline for a whole request body, from the end of its headers.
pub const BODY: Duration = Duration::from_secs(10);
/// A connection's whole life; then it is closed once the request in
/// flight (if any) is answered, within [`GRACE`].
pub const LIFETIME: Duration = Duration::from_secs(120);
const GRACE: Duration = Duration::from_secs(10);
/// Deadlines for a connection that only gets the 503 answer.
const REFUSAL: Duration = Duration::from_secs(3);
const WORKERS: usize = 2;

/// What every request handler needs.
struct App {
    cfg: Arc<Config>,
    ceremonies: Arc<Ceremonies>,
    profile: Arc<crate::profile::Site>,
}

/// Binds the listener, loads the certificate (if any) and starts serving on
/// a thread of its own; returns once it listens, or why it cannot.
pub fn start(
    cfg: Arc<Config>,
    ceremonies: Arc<Ceremonies>,
    profile: Arc<crate::profile::Site>,
) -> Result<(), String> {
    let w = &cfg.webauthn;
    let tls = if w.cert_file.is_empty() {
        None
    } else {
        Some(Arc::new(tls::Tls::load(&w.cert_file, &w.key_file)?))
    };
    let listener = std::net::TcpListener::bind(&w.listen)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| format!("webauthn.listen {}: {e}", w.listen))?;
    // Before the runtime's threads exist, so that they inherit the block.
    on_hangup(tls.clone())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .max_blocking_threads(16)
        .thread_name("2fad-web")
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| format!("web server runtime: {e}"))?;
    let app = Arc::new(App {
        cfg,
        ceremonies,
        profile,
    });
    // Inside the runtime: the tokio listener and the file watch need it.
    let listener = rt
        .block_on(async {
            if let Some(t) = &tls {
                t.clone().watch_files();
            }
            tokio::net::TcpListener::from_std(listener)
        })
        .map_err(|e| format!("webauthn.listen: {e}"))?;
    std::thread::Builder::new()
        .name("2fad-web".into())
        .spawn(move || rt.block_on(accept_loop(listener, tls, app)))
        .map_err(|e| format!("web server thread: {e}"))?;
    Ok(())
}

/// SIGHUP rereads the certificate (`systemctl kill -s HUP 2fad`). No
/// signal handler: SIGHUP is blocked in the calling thread, which is 2fad's
/// main thread before it starts any other (they all inherit the block), and
/// one thread takes it with sigwait. (tokio's signal support is not used:
/// its feature would make every tokio runtime open a process-wide socket
/// pair.) In plain-HTTP mode there is
/// nothing to reread, but 2fad stays up.
fn on_hangup(tls: Option<Arc<tls::Tls>>) -> Result<(), String> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGHUP);
    set.thread_block()
        .map_err(|e| format!("blocking SIGHUP: {e}"))?;
    std::thread::Builder::new()
        .name("2fad-hup".into())
        .spawn(move || {
            while set.wait().is_ok() {
                match &tls {
                    Some(t) => t.reload("SIGHUP"),
                    None => eprintln!("2fad: web: SIGHUP: plain HTTP, no certificate to reload"),
                }
            }
        })
        .map_err(|e| format!("SIGHUP thread: {e}"))?;
    Ok(())
}

async fn accept_loop(listener: tokio::net::TcpListener, tls: Option<Arc<tls::Tls>>, app: Arc<App>) {
    let slots = Arc::new(limits::Slots::default());
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: wait, do not spin.
                eprintln!("2fad: web: accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = slots.admit(peer.ip()) else {
            continue; // even the refusals are at their limit: just close
        };
        let _ = tcp.set_nodelay(true);
        let (tls, app) = (tls.clone(), app.clone());
        tokio::spawn(async move {
            let handshake = if slot.refused() { REFUSAL } else { HANDSHAKE };
            match tls {
                None => serve(TokioIo::new(tcp), slot, app, peer.ip()).await,
                Some(t) => {
                    // Too slow, or not TLS: nothing to say to it.
                    let hs = tokio::time::timeout(handshake, t.acceptor().accept(tcp)).await;
                    if let Ok(Ok(s)) = hs {
                        serve(TokioIo::new(s), slot, app, peer.ip()).await;
                    }
                }
            }
        });
    }
}

/// HTTP/1.1 on one connection, until the client leaves, a deadline passes
/// or the connection's life is over. The slot is freed when this returns.
async fn serve<I>(io: I, slot: limits::Slot, app: Arc<App>, peer: std::net::IpAddr)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let refused = slot.refused();
    let svc = service_fn(move |req| {
        let app = app.clone();
        async move { Ok::<_, Infallible>(route(&app, refused, peer, req).await) }
    });
    let mut b = http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(if refused { REFUSAL } else { HEADERS })
        .max_buf_size(MAX_HEADER_BYTES)
        .keep_alive(!refused);
    let conn = b.serve_connection(io, svc);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = tokio::time::sleep(LIFETIME) => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(GRACE, conn).await;
        }
    }
    drop(slot);
}

type Reply = Response<Full<Bytes>>;

/// A response with the headers every answer carries: no caching, no
/// sniffing, no referrer, and a strict Content-Security-Policy.
fn reply(code: StatusCode, ctype: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = code;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    r
}

/// [`reply`] after which the connection is closed (the request was not
/// read to its end, or the client is to go away).
fn reply_close(code: StatusCode, body: &'static str) -> Reply {
    let mut r = reply(code, "text/plain", body);
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

async fn route(
    app: &Arc<App>,
    refused: bool,
    peer: std::net::IpAddr,
    req: Request<Incoming>,
) -> Reply {
    if refused {
        let mut r = reply_close(
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many connections; try again in a moment.",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return r;
    }
    let path = req.uri().path().to_string();
    if crate::profile::owns(&path) {
        return profile(app, peer, path, req).await;
    }
    match (req.method(), path.as_str()) {
        (&Method::GET, "/static/app.js") => {
            reply(StatusCode::OK, "text/javascript; charset=utf-8", SCRIPT)
        }
        (&Method::GET, "/static/credential.js") => {
            reply(StatusCode::OK, "text/javascript; charset=utf-8", CREDENTIAL)
        }
        (&Method::GET, p) if p.starts_with("/l/") || p.starts_with("/r/") => {
            reply(StatusCode::OK, "text/html; charset=utf-8", PAGE)
        }
        (&Method::GET, p) if p.starts_with("/api/options/") => {
            let tok = p["/api/options/".len()..].to_string();
            let c = app.ceremonies.clone();
            // The ceremonies' lock can be held across a store write.
            match blocking(move || c.options(&tok)).await {
                Ok(Some((options, register))) => reply(
                    StatusCode::OK,
                    "application/json",
                    format!(r#"{{"register":{register},"options":{options}}}"#),
                ),
                Ok(None) => reply(
                    StatusCode::NOT_FOUND,
                    "text/plain",
                    "This link has expired or was already used.",
                ),
                Err(r) => r,
            }
        }
        (&Method::POST, p) if p.starts_with("/api/finish/") => {
            let tok = p["/api/finish/".len()..].to_string();
            let body = match read_body(req).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            let (cfg, c) = (app.cfg.clone(), app.ceremonies.clone());
            match blocking(move || c.finish(&cfg, &tok, &body)).await {
                Ok(Ok(())) => reply(StatusCode::OK, "application/json", r#"{"ok":true}"#),
                Ok(Err(e)) => reply(
                    StatusCode::BAD_REQUEST,
                    "text/plain",
                    p2fa_core::audit::printable(&e, 300),
                ),
                Err(r) => r,
            }
        }
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "Not found."),
    }
}

/// A profile page request ([`crate::profile`]), answered off the async
/// workers, with the page's own stricter CSP.
async fn profile(
    app: &Arc<App>,
    peer: std::net::IpAddr,
    path: String,
    req: Request<Incoming>,
) -> Reply {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (method, cookie, origin, fetch_site, csrf) = (
        req.method().as_str().to_string(),
        header("cookie"),
        header("origin"),
        header("sec-fetch-site"),
        header("x-csrf-token"),
    );
    let body = if method == "POST" {
        match read_body(req).await {
            Ok(b) => b,
            Err(r) => return r,
        }
    } else {
        Bytes::new()
    };
    let site = app.profile.clone();
    let answer = blocking(move || {
        crate::profile::handle(
            &site,
            &crate::profile::Req {
                method: &method,
                path: &path,
                cookie: cookie.as_deref(),
                origin: origin.as_deref(),
                fetch_site: fetch_site.as_deref(),
                csrf_header: csrf.as_deref(),
                body: &body,
                peer,
            },
        )
    })
    .await;
    let a = match answer {
        Ok(a) => a,
        Err(r) => return r,
    };
    let mut r = reply(
        StatusCode::from_u16(a.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        a.ctype,
        a.body,
    );
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(crate::profile::CSP),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    // Browsers send `Origin: null` on form posts under no-referrer, and
    // the page refuses posts without its own origin; same-origin still
    // tells no other site anything.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if let Some(c) = a.set_cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        h.insert(header::SET_COOKIE, c);
    }
    if let Some(l) = a.location {
        h.insert(header::LOCATION, HeaderValue::from_static(l));
    }
    if let Some(d) = a.disposition {
        h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static(d));
    }
    r
}

/// The whole body, at most [`MAX_BODY`] bytes, within [`BODY`].
async fn read_body(req: Request<Incoming>) -> Result<Bytes, Reply> {
    let too_large = || reply_close(StatusCode::PAYLOAD_TOO_LARGE, "Request too large.");
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    let body = Limited::new(req.into_body(), MAX_BODY);
    match tokio::time::timeout(BODY, body.collect()).await {
        Ok(Ok(b)) => Ok(b.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(_)) => Err(reply_close(StatusCode::BAD_REQUEST, "Bad request body.")),
        Err(_) => Err(reply_close(
            StatusCode::REQUEST_TIMEOUT,
            "The request body did not arrive in time.",
        )),
    }
}

/// Runs ceremony code (locks, store writes) off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Reply> {
    tokio::task::spawn_blocking(f).await.map_err(|_| {
        reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            "Internal error.",
        )
    })
}
