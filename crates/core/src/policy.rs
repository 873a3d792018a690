//! Who must use what: exemptions, methods allowed per group, and what
//! happens to a user without a usable factor (deny, allow, grace period).
//!
//! Groups come from the system's group database (`getgrouplist`), so
//! LDAP/SSSD groups work as they do for every other PAM module.

use crate::config::{Config, Unenrolled};
use crate::factor::FactorId;

/// Decision for a user that has no usable second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoFactor {
    /// Let them in; the admin chose `unenrolled = "allow"`.
    Allow,
    /// Deny (the default).
    Deny,
    /// Inside the grace period: let them in, say how many days remain.
    Grace { days_left: i64 },
    /// The grace period is over: deny, and say so.
    GraceOver,
}

/// What to do with a user who has no factor on `service`, given when the
/// module first saw them (`first_seen`, Unix seconds).
pub fn without_factor(cfg: &Config, service: &str, first_seen: i64, now: i64) -> NoFactor {
    match cfg.unenrolled_for(service) {
        Unenrolled::Allow => NoFactor::Allow,
        Unenrolled::Deny => NoFactor::Deny,
        Unenrolled::Grace => {
            let end = first_seen.saturating_add(i64::from(cfg.policy.grace_days) * 86_400);
            if now < end {
                NoFactor::Grace {
                    days_left: (end - now + 86_399) / 86_400,
                }
            } else {
                NoFactor::GraceOver
            }
        }
    }
}

/// Why `user` is exempt from 2FA, if they are.
pub fn exempt(cfg: &Config, user: &str, groups: &[String]) -> Option<String> {
    if cfg.policy.exempt_users.iter().any(|u| u == user) {
        return Some("exempt-user".into());
    }
    cfg.policy
        .exempt_groups
        .iter()
        .find(|g| groups.contains(g))
        .map(|g| format!("exempt-group:{g}"))
}

/// The methods `user` may use: `None` means all. With several matching
/// groups only the methods all of them allow remain (the strictest wins).
pub fn allowed_methods(cfg: &Config, groups: &[String]) -> (Option<Vec<String>>, String) {
    let matching: Vec<(&String, &Vec<String>)> = cfg
        .policy
        .groups
        .iter()
        .filter(|(g, _)| groups.contains(g))
        .map(|(g, p)| (g, &p.methods))
        .collect();
    if matching.is_empty() {
        return if cfg.policy.methods.is_empty() {
            (None, "default policy (all methods)".into())
        } else {
            (Some(cfg.policy.methods.clone()), "policy.methods".into())
        };
    }
    let mut allowed: Vec<String> = matching[0].1.clone();
    for (_, m) in &matching[1..] {
        allowed.retain(|x| m.contains(x));
    }
    let names: Vec<&str> = matching.iter().map(|(g, _)| g.as_str()).collect();
    (Some(allowed), format!("group {}", names.join(" + ")))
}

/// True when `method` is allowed by `allowed` (from [`allowed_methods`]).
pub fn allows(allowed: &Option<Vec<String>>, method: &str) -> bool {
    allowed
        .as_ref()
        .is_none_or(|a| a.iter().any(|m| m == method))
}

/// [`allows`] for a factor, through the method that governs it (`duo`
/// for a Duo push, `webauthn` for a local key).
pub fn allows_factor(allowed: &Option<Vec<String>>, factor: FactorId) -> bool {
    factor.method().is_some_and(|m| allows(allowed, m.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GroupPolicy;

    #[test]
    fn grace_counts_down_then_denies() {
        let mut cfg = Config {
            unenrolled: Unenrolled::Grace,
            ..Config::default()
        };
        cfg.policy.grace_days = 3;
        let t0 = 1_800_000_000;
        assert_eq!(
            without_factor(&cfg, "sshd", t0, t0),
            NoFactor::Grace { days_left: 3 }
        );
        assert_eq!(
            without_factor(&cfg, "sshd", t0, t0 + 86_400 * 2 + 5),
            NoFactor::Grace { days_left: 1 }
        );
        assert_eq!(
            without_factor(&cfg, "sshd", t0, t0 + 86_400 * 3),
            NoFactor::GraceOver
        );
        cfg.policy.services.insert(
            "sudo".into(),
            crate::config::ServicePolicy {
                unenrolled: Some(Unenrolled::Deny),
                ..Default::default()
            },
        );
        assert_eq!(without_factor(&cfg, "sudo", t0, t0), NoFactor::Deny);
    }

    #[test]
    fn groups_and_exemptions() {
        let mut cfg = Config::default();
        cfg.policy.exempt_users = vec!["breakglass".into()];
        cfg.policy.exempt_groups = vec!["robots".into()];
        let g = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            exempt(&cfg, "breakglass", &[]).as_deref(),
            Some("exempt-user")
        );
        assert_eq!(
            exempt(&cfg, "r2", &g(&["robots"])).as_deref(),
            Some("exempt-group:robots")
        );
        assert_eq!(exempt(&cfg, "alice", &g(&["staff"])), None);

        assert_eq!(allowed_methods(&cfg, &g(&["staff"])).0, None);
        cfg.policy.methods = g(&["totp", "backup", "sms"]);
        cfg.policy.groups.insert(
            "admins".into(),
            GroupPolicy {
                methods: g(&["webauthn", "totp", "backup"]),
            },
        );
        cfg.policy.groups.insert(
            "ops".into(),
            GroupPolicy {
                methods: g(&["totp", "duo"]),
            },
        );
        let (a, why) = allowed_methods(&cfg, &g(&["staff"]));
        assert_eq!(a, Some(g(&["totp", "backup", "sms"])));
        assert_eq!(why, "policy.methods");
        let (a, why) = allowed_methods(&cfg, &g(&["admins", "ops"]));
        assert_eq!(a, Some(g(&["totp"])), "strictest wins");
        assert_eq!(why, "group admins + ops");
        assert!(allows(&a, "totp") && !allows(&a, "sms"));
    }
}
