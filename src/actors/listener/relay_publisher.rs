//! RelayPublisher actor (lapin): the relay's frames to the `tickwire.relay` fanout exchange,
//! where every WDS node binds a queue of its own (issue 23; [`crate::relay`]).
//!
//! The relay is a convenience beside the queues, so it is the first thing to give way: a
//! bounded buffer (oldest dropped and counted when RabbitMQ is slow or down), no confirms,
//! non-persistent messages, never awaited by the router. What the listener carries is
//! republished every few seconds so a WDS that starts later learns it.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, WrapFuture};
use lapin::{Channel, Connection, ConnectionProperties};

use super::metrics::RelayPublisherFigures;
use crate::backoff::Backoff;
use crate::massive::Market;
use crate::relay::{declare_exchange, exchange_name, publish, Carried, Relayed, CARRIED_EVERY};

/// Messages held while RabbitMQ is slow or down.
const BUFFER: usize = 2_000;
const MAX_IN_FLIGHT: usize = 64;

async fn open(url: String, exchange: String) -> Result<(Connection, Channel), lapin::Error> {
    let conn = Connection::connect(&url, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    declare_exchange(&channel, &exchange).await?;
    Ok((conn, channel))
}

pub struct RelayPublisher {
    url: String,
    exchange: String,
    link: Option<(Connection, Channel)>,
    connecting: bool,
    buffer: VecDeque<Vec<u8>>,
    in_flight: usize,
    /// The last of each market, republished every [`CARRIED_EVERY`].
    carried: HashMap<Market, Carried>,
    backoff: Backoff,
    figures: RelayPublisherFigures,
}

impl RelayPublisher {
    pub fn new(url: &str, queue_prefix: &str, figures: RelayPublisherFigures) -> Self {
        RelayPublisher {
            url: url.to_string(),
            exchange: exchange_name(queue_prefix),
            link: None,
            connecting: false,
            buffer: VecDeque::new(),
            in_flight: 0,
            carried: HashMap::new(),
            backoff: Backoff::new(Duration::from_millis(200), Duration::from_secs(10)),
            figures,
        }
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        if self.link.is_some() || self.connecting {
            return;
        }
        self.connecting = true;
        let fut = open(self.url.clone(), self.exchange.clone());
        ctx.spawn(fut.into_actor(self).map(|res, act, ctx| {
            act.connecting = false;
            match res {
                Ok(link) => {
                    log::info!("relay: publishing to exchange {}", act.exchange);
                    act.figures.connected.set(1);
                    act.backoff.reset();
                    act.link = Some(link);
                    act.pump(ctx);
                }
                Err(e) => {
                    let delay = act.backoff.next_delay();
                    act.figures.connect_failed(&e.to_string(), delay);
                    ctx.run_later(delay, |act, ctx| act.connect(ctx));
                }
            }
        }));
    }

    fn mark_down(&mut self, ctx: &mut Context<Self>) {
        if self.link.take().is_some() {
            self.figures.connected.set(0);
            let delay = self.backoff.next_delay();
            ctx.run_later(delay, |act, ctx| act.connect(ctx));
        }
    }

    fn enqueue(&mut self, msg: &Relayed, ctx: &mut Context<Self>) {
        let body = match msg.encode() {
            Ok(b) => b,
            Err(e) => return self.figures.encode_failed(&e.to_string()),
        };
        if self.buffer.len() >= BUFFER && self.buffer.pop_front().is_some() {
            self.figures.dropped.inc();
        }
        self.buffer.push_back(body);
        self.pump(ctx);
    }

    fn pump(&mut self, ctx: &mut Context<Self>) {
        let Some((_, channel)) = &self.link else {
            return;
        };
        while self.in_flight < MAX_IN_FLIGHT {
            let Some(body) = self.buffer.pop_front() else {
                break;
            };
            let (channel, exchange) = (channel.clone(), self.exchange.clone());
            self.in_flight += 1;
            let fut = async move { publish(&channel, &exchange, &body).await };
            ctx.spawn(fut.into_actor(self).map(|res, act, ctx| {
                act.in_flight -= 1;
                match res {
                    Ok(()) => act.figures.published.inc(),
                    Err(e) => {
                        act.figures.publish_failed(&e.to_string());
                        act.mark_down(ctx);
                    }
                }
                act.pump(ctx);
            }));
        }
        self.figures.buffered.set(self.buffer.len() as i64);
    }
}

impl Actor for RelayPublisher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.connect(ctx);
        ctx.run_interval(CARRIED_EVERY, |act, ctx| {
            if act
                .link
                .as_ref()
                .is_some_and(|(conn, _)| !conn.status().connected())
            {
                act.mark_down(ctx);
            }
            let carried: Vec<Relayed> = act
                .carried
                .values()
                .cloned()
                .map(Relayed::Carried)
                .collect();
            for c in carried {
                act.enqueue(&c, ctx);
            }
        });
    }
}

impl Handler<Relayed> for RelayPublisher {
    type Result = ();

    fn handle(&mut self, msg: Relayed, ctx: &mut Context<Self>) {
        self.figures.actor.received();
        if let Relayed::Carried(c) = &msg {
            self.carried.insert(c.market, c.clone());
        }
        self.enqueue(&msg, ctx);
    }
}
