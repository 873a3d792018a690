//! The libpq URL subset of [`ConnectConfig::from_url`]. Error messages
//! never quote the URL: it may hold a password.

use super::{Addr, ChannelBinding, ConnectConfig, Tls};
use p2fa_core::secure_fs::Trust;
use std::path::PathBuf;
use std::time::Duration;
use zeroize::Zeroizing;

pub const DEFAULT_PORT: u16 = 5432;
pub const DEFAULT_APPLICATION_NAME: &str = "pam-2fa";
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// The default statement timeout (5 s) plus one second (docs/fleet.md §4).
pub const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(6);

fn decode(s: &str, what: &str) -> Result<String, String> {
    let bytes: Vec<u8> = percent_encoding::percent_decode_str(s).collect();
    let text = String::from_utf8(bytes).map_err(|_| format!("the {what} is not UTF-8"))?;
    if text.contains('\0') {
        return Err(format!("the {what} holds a NUL byte"));
    }
    Ok(text)
}

/// Whether a password can be sent as it is: printable ASCII, so that
/// SASLprep (RFC 4013) leaves it unchanged and no normalisation is needed.
pub fn password_ok(p: &str) -> bool {
    !p.is_empty() && p.bytes().all(|b| (0x20..0x7f).contains(&b))
}

fn host_port(item: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(rest) = item.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or("an IPv6 address without its closing ]")?;
        match after {
            "" => (h.to_string(), None),
            p => (
                h.to_string(),
                Some(p.strip_prefix(':').ok_or("junk after an IPv6 address")?),
            ),
        }
    } else {
        match item.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (item.to_string(), None),
        }
    };
    let port = match port {
        None | Some("") => None,
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| format!("bad port {p:?}"))?,
        ),
    };
    Ok((decode(&host, "host")?, port))
}

pub fn parse(url: &str, trust: Trust) -> Result<ConnectConfig, String> {
    let rest = url
        .strip_prefix("postgresql://")
        .or_else(|| url.strip_prefix("postgres://"))
        .ok_or("the URL must start with postgresql://")?;
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, p),
        None => (rest, ""),
    };
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((u, h)) => (u, h),
        None => ("", authority),
    };
    let (user, password) = match userinfo.split_once(':') {
        Some((u, p)) => (u, Some(p)),
        None => (userinfo, None),
    };
    let user = decode(user, "user name")?;
    if user.is_empty() {
        return Err("the URL names no user (postgresql://USER@host/db)".into());
    }
    let password = match password {
        None => None,
        Some(p) => {
            let p = Zeroizing::new(decode(p, "password")?);
            if !password_ok(&p) {
                return Err("the password must be non-empty printable ASCII".into());
            }
            Some(p)
        }
    };
    let dbname = match decode(path, "database name")? {
        d if d.is_empty() => user.clone(),
        d => d,
    };

    let mut cfg = ConnectConfig {
        addrs: Vec::new(),
        user,
        dbname,
        password,
        application_name: DEFAULT_APPLICATION_NAME.into(),
        tls: Tls::VerifyFull {
            ca_file: None,
            client_cert: None,
        },
        channel_binding: ChannelBinding::Prefer,
        connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        io_timeout: DEFAULT_IO_TIMEOUT,
        require_primary: true,
        trust,
    };

    let mut socket_dir = None;
    let mut seen = Vec::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("URL parameter {pair:?} has no value"))?;
        let key = decode(key, "parameter name")?;
        if seen.contains(&key) {
            return Err(format!("URL parameter {key} given twice"));
        }
        seen.push(key.clone());
        let value = decode(value, &key)?;
        match key.as_str() {
            "application_name" => cfg.application_name = value,
            "sslmode" => {
                cfg.tls = match value.as_str() {
                    "verify-full" => cfg.tls,
                    "disable" => Tls::Off,
                    _ => {
                        return Err(format!(
                            "sslmode {value:?} is not supported (verify-full or disable)"
                        ));
                    }
                }
            }
            "channel_binding" => {
                cfg.channel_binding = match value.as_str() {
                    "prefer" => ChannelBinding::Prefer,
                    "require" => ChannelBinding::Require,
                    "disable" => ChannelBinding::Disable,
                    _ => {
                        return Err(format!(
                            "channel_binding {value:?} is not supported (prefer, require or disable)"
                        ));
                    }
                }
            }
            "connect_timeout" => {
                let secs: u64 = value
                    .parse()
                    .ok()
                    .filter(|&s| (1..=3600).contains(&s))
                    .ok_or_else(|| format!("connect_timeout {value:?}: 1 to 3600 seconds"))?;
                cfg.connect_timeout = Duration::from_secs(secs);
            }
            "host" => {
                if !value.starts_with('/') {
                    return Err(
                        "URL parameter host must be a Unix socket directory (an absolute path)"
                            .into(),
                    );
                }
                socket_dir = Some(PathBuf::from(value));
            }
            other => {
                return Err(format!(
                    "unknown URL parameter {other:?} (supported: application_name, sslmode, channel_binding, connect_timeout, host)"
                ));
            }
        }
    }

    let mut tcp = Vec::new();
    for item in hosts.split(',') {
        let (host, port) = host_port(item)?;
        tcp.push((host, port.unwrap_or(DEFAULT_PORT)));
    }
    let named = tcp.iter().any(|(h, _)| !h.is_empty());
    match socket_dir {
        Some(dir) => {
            if named {
                return Err("the URL names both a host and a Unix socket directory".into());
            }
            for (_, port) in tcp {
                cfg.addrs.push(Addr::Unix(dir.clone(), port));
            }
        }
        None => {
            if tcp.iter().any(|(h, _)| h.is_empty()) {
                return Err("the URL has an empty host name".into());
            }
            for (host, port) in tcp {
                cfg.addrs.push(Addr::Tcp(host, port));
            }
        }
    }
    for s in [&cfg.user, &cfg.dbname, &cfg.application_name] {
        if s.contains('\0') {
            return Err("a NUL byte in the URL".into());
        }
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(url: &str) -> Result<ConnectConfig, String> {
        parse(url, Trust::ROOT)
    }

    #[test]
    fn a_full_url() {
        let c = p("postgresql://pam%402fa:s%3Acr%2Fet@db1.example.com:5433,[::1],db2:6000/fleet%20db?application_name=x&channel_binding=require&connect_timeout=7").unwrap();
        assert_eq!(c.user, "pam@2fa");
        assert_eq!(c.password.as_deref().map(String::as_str), Some("s:cr/et"));
        assert_eq!(c.dbname, "fleet db");
        assert_eq!(
            c.addrs,
            vec![
                Addr::Tcp("db1.example.com".into(), 5433),
                Addr::Tcp("::1".into(), 5432),
                Addr::Tcp("db2".into(), 6000),
            ]
        );
        assert_eq!(c.application_name, "x");
        assert_eq!(c.channel_binding, ChannelBinding::Require);
        assert_eq!(c.connect_timeout, Duration::from_secs(7));
        assert!(matches!(c.tls, Tls::VerifyFull { .. }));
        assert!(c.require_primary);
    }

    #[test]
    fn defaults() {
        let c = p("postgres://u@h").unwrap();
        assert_eq!(c.dbname, "u");
        assert_eq!(c.addrs, vec![Addr::Tcp("h".into(), 5432)]);
        assert!(c.password.is_none());
        assert_eq!(c.channel_binding, ChannelBinding::Prefer);
        assert_eq!(c.application_name, "pam-2fa");
    }

    #[test]
    fn unix_socket_and_sslmode() {
        let c = p("postgresql://u@:5999/d?host=%2Fvar%2Frun%2Fpostgresql").unwrap();
        assert_eq!(
            c.addrs,
            vec![Addr::Unix("/var/run/postgresql".into(), 5999)]
        );
        let c = p("postgresql://u@127.0.0.1/d?sslmode=disable").unwrap();
        assert_eq!(c.tls, Tls::Off);
    }

    #[test]
    fn errors_are_clear_and_never_show_the_password() {
        for (url, want) in [
            ("mysql://u@h/d", "postgresql://"),
            ("postgresql://h/d", "no user"),
            ("postgresql://u@h/d?sslmode=require", "sslmode"),
            (
                "postgresql://u@h/d?options=-c",
                "unknown URL parameter \"options\"",
            ),
            ("postgresql://u@h/d?host=relative", "absolute"),
            ("postgresql://u@h/d?host=/x", "both"),
            ("postgresql://u@h:99999/d", "bad port"),
            ("postgresql://u@h,/d", "empty host"),
            ("postgresql://u@h/d?connect_timeout=0", "connect_timeout"),
            (
                "postgresql://u@h/d?sslmode=disable&sslmode=disable",
                "twice",
            ),
            ("postgresql://u:s%C3%A9cret@h/d", "printable ASCII"),
            ("postgresql://u:a%00b@h/d", "NUL"),
        ] {
            let e = p(url).err().unwrap_or_else(|| panic!("{url} accepted"));
            assert!(e.contains(want), "{url}: {e}");
            assert!(!e.contains("cret"), "{e}");
        }
    }
}
