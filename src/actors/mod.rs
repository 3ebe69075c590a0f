//! Every actor of tickwire, one file (or folder) each, with its messages typed beside it.
//!
//! - [`sim`]: the simulator's feed, connection registry and WebSocket session actors.
//!
//! Actors reach each other through [`Mailbox`]es: a `Recipient<M>` (so the concrete actor
//! behind it can be swapped at wiring time) plus the receiver's [`ActorMetrics`], so that
//! mailbox depth is counted where messages are sent.

use actix::dev::ToEnvelope;
use actix::{Actor, Addr, Handler, Message, Recipient};

use crate::metrics::ActorMetrics;

pub mod listener;
pub mod processor;
pub mod registrar;
pub mod sim;
pub mod store;
pub mod wds;

/// A typed, instrumented handle to another actor.
pub struct Mailbox<M: Message + Send>
where
    M::Result: Send,
{
    recipient: Recipient<M>,
    metrics: ActorMetrics,
}

impl<M: Message + Send> Clone for Mailbox<M>
where
    M::Result: Send,
{
    fn clone(&self) -> Self {
        Mailbox {
            recipient: self.recipient.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

impl<M: Message + Send + 'static> Mailbox<M>
where
    M::Result: Send,
{
    pub fn new(recipient: Recipient<M>, metrics: ActorMetrics) -> Self {
        Mailbox { recipient, metrics }
    }

    /// A mailbox for `addr`, counted on `metrics` (the receiver's).
    pub fn of<A>(addr: &Addr<A>, metrics: ActorMetrics) -> Self
    where
        A: Actor + Handler<M>,
        A::Context: ToEnvelope<A, M>,
    {
        Mailbox::new(addr.clone().recipient(), metrics)
    }

    /// Fire and forget. The receiver's handler must call [`ActorMetrics::received`].
    pub fn do_send(&self, msg: M) {
        if self.recipient.connected() {
            self.metrics.enqueued();
            self.recipient.do_send(msg);
        }
    }

    /// Request/response; counted like [`Mailbox::do_send`].
    pub async fn send(&self, msg: M) -> Result<M::Result, actix::MailboxError> {
        self.metrics.enqueued();
        self.recipient.send(msg).await
    }

    pub fn connected(&self) -> bool {
        self.recipient.connected()
    }
}
