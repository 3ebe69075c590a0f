//! Sockets per client address: one address may hold at most `WDS_MAX_SESSIONS_PER_ADDRESS`
//! sockets, and fewer (`WDS_MAX_UNAUTHENTICATED_PER_ADDRESS`) that have not authenticated
//! yet, so one client cannot take a node's session cap for itself with handshakes it never
//! completes.
//!
//! A socket is admitted at the handshake, before its session starts, by taking an
//! [`AddressSlot`]; the session holds the slot and gives it back by dropping it, whichever
//! way it ends, so the counts cannot leak.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The per-address counts of one node.
pub struct AddressBook {
    max_per_address: u32,
    max_unauthenticated: u32,
    counts: Mutex<HashMap<IpAddr, Counts>>,
}

#[derive(Default)]
struct Counts {
    open: u32,
    unauthenticated: u32,
}

/// Why a socket was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// The address holds its most sockets.
    Sockets,
    /// The address holds its most sockets that have not authenticated.
    Unauthenticated,
}

impl AddressBook {
    pub fn new(max_per_address: usize, max_unauthenticated: usize) -> Arc<Self> {
        let cap = |n: usize| u32::try_from(n.max(1)).unwrap_or(u32::MAX);
        Arc::new(AddressBook {
            max_per_address: cap(max_per_address),
            max_unauthenticated: cap(max_unauthenticated),
            counts: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Counts>> {
        // Counts only: a panic elsewhere cannot leave them half changed.
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a socket from `ip`, authenticated already (a token in the handshake) or not.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, authenticated: bool) -> Result<AddressSlot, Full> {
        let mut counts = self.lock();
        let c = counts.entry(ip).or_default();
        if c.open >= self.max_per_address {
            return Err(Full::Sockets);
        }
        if !authenticated && c.unauthenticated >= self.max_unauthenticated {
            return Err(Full::Unauthenticated);
        }
        c.open += 1;
        if !authenticated {
            c.unauthenticated += 1;
        }
        Ok(AddressSlot {
            book: self.clone(),
            ip,
            authenticated,
        })
    }

    /// Sockets `ip` holds now: (all, not yet authenticated).
    pub fn held(&self, ip: IpAddr) -> (u32, u32) {
        self.lock()
            .get(&ip)
            .map_or((0, 0), |c| (c.open, c.unauthenticated))
    }
}

/// One admitted socket's place in its address's counts; dropping it gives the place back.
pub struct AddressSlot {
    book: Arc<AddressBook>,
    ip: IpAddr,
    authenticated: bool,
}

impl AddressSlot {
    /// The socket authenticated in band: it no longer counts as unauthenticated.
    pub fn authenticated(&mut self) {
        if !self.authenticated {
            self.authenticated = true;
            if let Some(c) = self.book.lock().get_mut(&self.ip) {
                c.unauthenticated = c.unauthenticated.saturating_sub(1);
            }
        }
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut counts = self.book.lock();
        if let Some(c) = counts.get_mut(&self.ip) {
            c.open = c.open.saturating_sub(1);
            if !self.authenticated {
                c.unauthenticated = c.unauthenticated.saturating_sub(1);
            }
            if c.open == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_share_and_gives_it_back() {
        let book = AddressBook::new(3, 2);
        let (a, b) = ("127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap());
        let mut s1 = book.admit(a, false).unwrap();
        let _s2 = book.admit(a, false).unwrap();
        assert_eq!(book.admit(a, false).err(), Some(Full::Unauthenticated));
        // Another address is untouched; an authenticated socket still fits.
        assert!(book.admit(b, false).is_ok());
        let s3 = book.admit(a, true).unwrap();
        assert_eq!(book.admit(a, true).err(), Some(Full::Sockets));
        assert_eq!(book.held(a), (3, 2));
        s1.authenticated();
        assert_eq!(book.held(a), (3, 1));
        drop(s3);
        drop(s1);
        assert_eq!(book.held(a), (1, 1));
        assert!(
            book.admit(a, false).is_ok(),
            "a place given back is free again"
        );
    }
}
