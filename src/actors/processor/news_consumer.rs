//! NewsConsumer actor: reads RabbitMQ's `news` queue and hands each article to the news
//! processor, acking once it is filed (its writes are with the results store).
//!
//! The queue has a single active consumer: every processor node consumes it and RabbitMQ
//! delivers to one at a time, promoting another when that one goes, so the news is filed
//! once and in order. On broker loss the consumption is rebuilt with backoff.

use std::time::Duration;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, WrapFuture};
use bytes::Bytes;
use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties};

use super::metrics::NewsFigures;
use crate::backoff::Backoff;
use crate::queue::topology::{declare_news_queue, news_queue_name, RECEIVED_AT_HEADER};
use crate::queue::NewsArticle;
use crate::recipient::CountedRecipient;

#[derive(Debug, Clone)]
pub struct NewsConsumerConfig {
    pub url: String,
    pub queue_prefix: String,
    pub message_ttl_ms: u32,
    pub prefetch: u16,
}

pub struct NewsConsumer {
    cfg: NewsConsumerConfig,
    to: CountedRecipient<NewsArticle>,
    backoff: Backoff,
    figures: NewsFigures,
}

impl NewsConsumer {
    pub fn new(
        cfg: NewsConsumerConfig,
        to: CountedRecipient<NewsArticle>,
        figures: NewsFigures,
    ) -> Self {
        NewsConsumer {
            cfg,
            to,
            backoff: Backoff::new(Duration::from_millis(200), Duration::from_secs(10))
                .with_stable_after(Duration::from_secs(30)),
            figures,
        }
    }

    fn consume(&mut self, ctx: &mut Context<Self>) {
        let (cfg, to, figures) = (self.cfg.clone(), self.to.clone(), self.figures.clone());
        let started = std::time::Instant::now();
        ctx.spawn(
            consume(cfg, to, figures)
                .into_actor(self)
                .map(move |res, act, ctx| {
                    act.backoff.connection_ended(started.elapsed());
                    let delay = act.backoff.next_delay();
                    let why = res.err().unwrap_or_else(|| "consumer cancelled".into());
                    act.figures.consumer_down(&why, delay);
                    ctx.run_later(delay, |act, ctx| act.consume(ctx));
                }),
        );
    }
}

/// The receive time an article carries, or 0.
fn received_at(headers: Option<&FieldTable>) -> i64 {
    match headers.and_then(|h| h.inner().get(RECEIVED_AT_HEADER)) {
        Some(AMQPValue::LongLongInt(v)) => *v,
        Some(AMQPValue::LongInt(v)) => i64::from(*v),
        Some(AMQPValue::Timestamp(v)) => i64::try_from(*v).unwrap_or(0),
        _ => 0,
    }
}

/// Consumes until the connection or the consumer ends.
async fn consume(
    cfg: NewsConsumerConfig,
    to: CountedRecipient<NewsArticle>,
    figures: NewsFigures,
) -> Result<(), String> {
    let e = |e: lapin::Error| e.to_string();
    let conn = Connection::connect(&cfg.url, ConnectionProperties::default())
        .await
        .map_err(e)?;
    let channel = conn.create_channel().await.map_err(e)?;
    declare_news_queue(&channel, &cfg.queue_prefix, cfg.message_ttl_ms)
        .await
        .map_err(e)?;
    channel
        .basic_qos(cfg.prefetch.max(1), BasicQosOptions::default())
        .await
        .map_err(e)?;
    let queue = news_queue_name(&cfg.queue_prefix);
    let mut deliveries = channel
        .basic_consume(
            queue.as_str().into(),
            "tickwire-news".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(e)?;
    figures.connects.inc();
    figures.consuming.set(1);
    while let Some(d) = deliveries.next().await {
        let d = d.map_err(e)?;
        let article = NewsArticle {
            received_at_ms: received_at(d.properties.headers().as_ref()),
            article: Bytes::from(d.data),
        };
        // Filed (or counted as skipped) before the ack: a crash redelivers it.
        to.send(article).await.map_err(|e| e.to_string())?;
        d.acker.ack(BasicAckOptions::default()).await.map_err(e)?;
        figures.consumed.inc();
    }
    Ok(())
}

impl Actor for NewsConsumer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.consume(ctx);
    }
}
