//! A counted recipient: how actors hold each other.
//!
//! actix does not expose a mailbox's length, so depth is counted at both ends: the sender
//! increments through [`CountedRecipient`], the receiver's handler decrements
//! ([`ActorMetrics::received`]).

use actix::dev::ToEnvelope;
use actix::{Actor, Addr, Handler, Message, Recipient};

use crate::metrics::ActorMetrics;

/// A typed handle to another actor that counts what it sends: a `Recipient<M>` (so the
/// actor behind it is chosen at wiring time: in-process or RabbitMQ/Redis backed) plus the
/// receiver's [`ActorMetrics`], so that mailbox depth is counted where messages are sent.
pub struct CountedRecipient<M: Message + Send>
where
    M::Result: Send,
{
    recipient: Recipient<M>,
    metrics: ActorMetrics,
}

impl<M: Message + Send> Clone for CountedRecipient<M>
where
    M::Result: Send,
{
    fn clone(&self) -> Self {
        CountedRecipient {
            recipient: self.recipient.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

impl<M: Message + Send + 'static> CountedRecipient<M>
where
    M::Result: Send,
{
    pub fn new(recipient: Recipient<M>, metrics: ActorMetrics) -> Self {
        CountedRecipient { recipient, metrics }
    }

    /// A mailbox for `addr`, counted on `metrics` (the receiver's).
    pub fn of<A>(addr: &Addr<A>, metrics: ActorMetrics) -> Self
    where
        A: Actor + Handler<M>,
        A::Context: ToEnvelope<A, M>,
    {
        CountedRecipient::new(addr.clone().recipient(), metrics)
    }

    /// Fire and forget. The receiver's handler must call [`ActorMetrics::received`]. A
    /// message for a stopped actor is not silently dropped: it is counted
    /// (`tickwire_actor_undelivered_total`) and logged.
    pub fn do_send(&self, msg: M) {
        if self.recipient.connected() {
            self.metrics.enqueued();
            self.recipient.do_send(msg);
        } else {
            self.metrics.undeliverable(std::any::type_name::<M>());
        }
    }

    /// Request/response; counted like [`CountedRecipient::do_send`].
    pub async fn send(&self, msg: M) -> Result<M::Result, actix::MailboxError> {
        self.metrics.enqueued();
        self.recipient.send(msg).await
    }

    pub fn connected(&self) -> bool {
        self.recipient.connected()
    }
}
