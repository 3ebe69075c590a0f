//! NewsPublisher actor (lapin): puts each article on RabbitMQ's `news` queue without ever
//! holding up the news listener.
//!
//! News is slow (about an article a second) and each article matters, so unlike the market
//! data publisher this one uses publisher confirms: an article the broker did not confirm goes
//! back to the front of the buffer and is sent again after reconnecting (a duplicate at worst,
//! which the news processor replaces rather than repeats). Articles wait in a bounded buffer
//! while RabbitMQ is down; past it the oldest is dropped and counted. The body is the article
//! itself, its receive time in the `received_at` header ([`crate::queue::NewsArticle`]);
//! messages are non-persistent with the queue's 15-minute TTL.

use std::collections::VecDeque;
use std::time::Duration;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, WrapFuture};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

use super::metrics::NewsPublisherFigures;
use crate::backoff::Backoff;
use crate::queue::topology::{declare_news_queue, news_queue_name, RECEIVED_AT_HEADER};
use crate::queue::NewsArticle;

/// News publisher settings.
#[derive(Debug, Clone)]
pub struct NewsPublisherConfig {
    pub url: String,
    pub queue_prefix: String,
    pub message_ttl_ms: u32,
    /// Articles held while RabbitMQ is down; past it the oldest is dropped.
    pub buffer: usize,
}

enum Link {
    Down,
    Connecting,
    Up(Box<(Connection, Channel)>),
}

pub struct NewsPublisher {
    cfg: NewsPublisherConfig,
    link: Link,
    buffer: VecDeque<NewsArticle>,
    /// One publish at a time keeps the order and makes a retry simple.
    in_flight: bool,
    backoff: Backoff,
    figures: NewsPublisherFigures,
}

async fn open(cfg: NewsPublisherConfig) -> Result<(Connection, Channel), lapin::Error> {
    let conn = Connection::connect(&cfg.url, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    declare_news_queue(&channel, &cfg.queue_prefix, cfg.message_ttl_ms).await?;
    Ok((conn, channel))
}

impl NewsPublisher {
    pub fn new(cfg: NewsPublisherConfig, figures: NewsPublisherFigures) -> Self {
        NewsPublisher {
            cfg,
            link: Link::Down,
            buffer: VecDeque::new(),
            in_flight: false,
            backoff: Backoff::new(Duration::from_millis(200), Duration::from_secs(10)),
            figures,
        }
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        if !matches!(self.link, Link::Down) {
            return;
        }
        self.link = Link::Connecting;
        ctx.spawn(
            open(self.cfg.clone())
                .into_actor(self)
                .map(|res, act, ctx| match res {
                    Ok((conn, channel)) => {
                        log::info!("news publisher connected to RabbitMQ");
                        act.figures.connected.set(1);
                        act.backoff.reset();
                        act.link = Link::Up(Box::new((conn, channel)));
                        act.pump(ctx);
                    }
                    Err(e) => {
                        let delay = act.backoff.next_delay();
                        act.figures.connect_failed(&e.to_string(), delay);
                        act.link = Link::Down;
                        ctx.run_later(delay, |act, ctx| act.connect(ctx));
                    }
                }),
        );
    }

    fn pump(&mut self, ctx: &mut Context<Self>) {
        self.figures.buffered.set(self.buffer.len() as i64);
        if self.in_flight {
            return;
        }
        let Link::Up(open) = &self.link else {
            return;
        };
        let channel = &open.1;
        let Some(article) = self.buffer.pop_front() else {
            return;
        };
        self.in_flight = true;
        let channel = channel.clone();
        let name = news_queue_name(&self.cfg.queue_prefix);
        let mut headers = FieldTable::default();
        headers.insert(
            RECEIVED_AT_HEADER.into(),
            AMQPValue::LongLongInt(article.received_at_ms),
        );
        let props = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(1)
            .with_headers(headers);
        let body = article.article.clone();
        let fut = async move {
            let confirm = channel
                .basic_publish(
                    "".into(),
                    name.as_str().into(),
                    BasicPublishOptions::default(),
                    &body,
                    props,
                )
                .await
                .map_err(|e| e.to_string())?
                .await
                .map_err(|e| e.to_string())?;
            if confirm.is_nack() {
                return Err("nacked by the broker".to_string());
            }
            Ok::<(), String>(())
        };
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            act.in_flight = false;
            match res {
                Ok(()) => {
                    act.figures.published.inc();
                    act.pump(ctx);
                }
                Err(e) => {
                    // Sent again after reconnecting: a duplicate at worst, never a loss.
                    act.figures.publish_failed(&e);
                    act.buffer.push_front(article);
                    act.mark_down(ctx);
                }
            }
        }));
    }

    fn mark_down(&mut self, ctx: &mut Context<Self>) {
        if matches!(self.link, Link::Up(..)) {
            self.link = Link::Down;
            self.figures.connected.set(0);
            let delay = self.backoff.next_delay();
            ctx.run_later(delay, |act, ctx| act.connect(ctx));
        }
    }

    fn check_link(&mut self, ctx: &mut Context<Self>) {
        if let Link::Up(open) = &self.link {
            if !open.0.status().connected() {
                self.mark_down(ctx);
            }
        }
    }
}

impl Actor for NewsPublisher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.connect(ctx);
        ctx.run_interval(Duration::from_millis(500), |act, ctx| act.check_link(ctx));
    }
}

impl Handler<NewsArticle> for NewsPublisher {
    type Result = ();

    fn handle(&mut self, msg: NewsArticle, ctx: &mut Context<Self>) {
        self.figures.actor.received();
        if self.buffer.len() >= self.cfg.buffer.max(1) {
            self.buffer.pop_front();
            self.figures.dropped_oldest(self.cfg.buffer);
        }
        self.buffer.push_back(msg);
        self.pump(ctx);
    }
}
