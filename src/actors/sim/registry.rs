//! ConnectionRegistry actor: who is connected with which key to which market.
//!
//! Massive allows a limited number of connections per (API key, market), one by default, and
//! when a new connection authenticates past the limit it evicts the OLDEST one. This actor
//! keeps the connections of each (key, market) in authentication order and tells the oldest
//! to go.

use std::collections::{HashMap, VecDeque};

use actix::{Actor, Context, Handler, Message, Recipient};

use super::metrics::RegistryFigures;
use crate::massive::Market;

/// Sent to a session that must leave: it answers `max_connections` and closes.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Evict;

/// A connection has authenticated.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Register {
    pub id: u64,
    pub key: String,
    pub market: Market,
    pub evict: Recipient<Evict>,
}

/// A connection has ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unregister {
    pub id: u64,
    pub key: String,
    pub market: Market,
}

/// Connections of one (key, market), oldest first.
type Connections = VecDeque<(u64, Recipient<Evict>)>;

pub struct ConnectionRegistry {
    limit: usize,
    conns: HashMap<(String, Market), Connections>,
    figures: RegistryFigures,
}

impl ConnectionRegistry {
    pub fn new(limit: usize, figures: RegistryFigures) -> Self {
        ConnectionRegistry {
            limit: limit.max(1),
            conns: HashMap::new(),
            figures,
        }
    }
}

impl Actor for ConnectionRegistry {
    type Context = Context<Self>;
}

impl Handler<Register> for ConnectionRegistry {
    type Result = ();

    fn handle(&mut self, msg: Register, _: &mut Context<Self>) {
        self.figures.actor.received();
        let list = self.conns.entry((msg.key.clone(), msg.market)).or_default();
        list.push_back((msg.id, msg.evict));
        while list.len() > self.limit {
            if let Some((old, evict)) = list.pop_front() {
                log::info!(
                    "evicting connection {old} ({} on /{}): newer connection {}",
                    msg.key,
                    msg.market,
                    msg.id
                );
                self.figures.evictions.inc();
                self.figures.actor.messages_out.inc();
                evict.do_send(Evict);
            }
        }
    }
}

impl Handler<Unregister> for ConnectionRegistry {
    type Result = ();

    fn handle(&mut self, msg: Unregister, _: &mut Context<Self>) {
        self.figures.actor.received();
        let k = (msg.key, msg.market);
        if let Some(list) = self.conns.get_mut(&k) {
            list.retain(|(id, _)| *id != msg.id);
            if list.is_empty() {
                self.conns.remove(&k);
            }
        }
    }
}
