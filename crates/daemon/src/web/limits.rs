//! How many connections the web server holds at once: [`MAX_CONNECTIONS`]
//! in all and [`MAX_PER_ADDRESS`] from one client address, so one
//! address cannot take every slot. A connection over either limit is not
//! left hanging: it gets a short-lived slot of its own that only answers
//! `503 Service Unavailable` (with tight deadlines), and when even those
//! ([`MAX_REFUSALS`]) are used up it is closed at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Connections served at once, all addresses together.
pub const MAX_CONNECTIONS: usize = 512;
/// Connections served at once from one client address. A browser opens
/// a handful; a login needs two or three requests.
pub const MAX_PER_ADDRESS: usize = 64;
/// Connections being told 503 at once.
pub const MAX_REFUSALS: usize = 64;

#[derive(Default)]
struct Counts {
    total: usize,
    refusals: usize,
    per_address: HashMap<IpAddr, usize>,
}

#[derive(Default)]
pub struct Slots {
    counts: Arc<Mutex<Counts>>,
}

/// One admitted connection; its place is given back on drop.
pub struct Slot {
    counts: Arc<Mutex<Counts>>,
    /// `None`: a refusal slot (over a limit, answers 503 only).
    address: Option<IpAddr>,
}

impl Slots {
    /// A slot for a connection from `ip`: a serving one if both limits
    /// allow, else a refusal one, else `None` (close without a word).
    pub fn admit(&self, ip: IpAddr) -> Option<Slot> {
        // An IPv4 client on a dual-stack socket is one address, however
        // it is written.
        let ip = ip.to_canonical();
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let mine = c.per_address.get(&ip).copied().unwrap_or(0);
        let address = if c.total < MAX_CONNECTIONS && mine < MAX_PER_ADDRESS {
            c.total += 1;
            c.per_address.insert(ip, mine + 1);
            Some(ip)
        } else if c.refusals < MAX_REFUSALS {
            c.refusals += 1;
            None
        } else {
            return None;
        };
        Some(Slot {
            counts: self.counts.clone(),
            address,
        })
    }
}

impl Slot {
    /// Over a limit: this connection only gets the 503 answer.
    pub fn refused(&self) -> bool {
        self.address.is_none()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        match self.address {
            None => c.refusals -= 1,
            Some(ip) => {
                c.total -= 1;
                match c.per_address.get_mut(&ip) {
                    Some(n) if *n > 1 => *n -= 1,
                    _ => {
                        c.per_address.remove(&ip);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_cannot_take_every_slot() {
        let s = Slots::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let held: Vec<Slot> = (0..MAX_PER_ADDRESS).map(|_| s.admit(a).unwrap()).collect();
        assert!(held.iter().all(|s| !s.refused()));
        let over = s.admit(a).unwrap();
        assert!(over.refused(), "over the per-address limit");
        // The same address written as IPv4-mapped IPv6 is the same client.
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert!(s.admit(mapped).unwrap().refused());
        assert!(!s.admit(b).unwrap().refused(), "others are served");
        drop(held);
        assert!(!s.admit(a).unwrap().refused(), "slots come back");
    }

    #[test]
    fn refusals_are_bounded_too_and_counts_return_to_zero() {
        let s = Slots::default();
        let mut held = Vec::new();
        for i in 0..MAX_CONNECTIONS {
            let ip = IpAddr::from([10, 0, (i / 256) as u8, (i % 256) as u8]);
            held.push(s.admit(ip).unwrap());
        }
        let ip: IpAddr = "10.9.9.9".parse().unwrap();
        let refusals: Vec<Slot> = (0..MAX_REFUSALS).map(|_| s.admit(ip).unwrap()).collect();
        assert!(refusals.iter().all(Slot::refused));
        assert!(s.admit(ip).is_none(), "beyond the refusals: closed");
        drop(held);
        drop(refusals);
        let c = s.counts.lock().unwrap();
        assert_eq!((c.total, c.refusals, c.per_address.len()), (0, 0, 0));
    }
}
