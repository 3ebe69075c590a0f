//! The hub's one Redis pub/sub connection, as a task the hub commands.
//!
//! The task owns the connection and the set of channels and patterns the hub wants, so after
//! a reconnect it resubscribes everything itself before telling the hub it is back. Each
//! (P)SUBSCRIBE is acknowledged to the hub only once Redis confirmed it: from then on every
//! publish on it reaches the hub, which is what lets the hub take a snapshot that joins the
//! stream without a gap.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use actix::{Message, Recipient};
use bytes::Bytes;
use deadpool_redis::redis;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::backoff::Backoff;

/// What the hub asks of the connection.
#[derive(Debug, Clone)]
pub enum UpCmd {
    Subscribe(String),
    Unsubscribe(String),
    PSubscribe(String),
    PUnsubscribe(String),
}

/// What the connection tells the hub.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub enum UpEvent {
    /// Connected and subscribed to everything wanted so far.
    Connected,
    Disconnected(String),
    /// Redis confirmed this (P)SUBSCRIBE.
    Acked {
        feed: String,
        pattern: bool,
    },
    Message {
        channel: Arc<str>,
        /// The pattern it matched, for a PSUBSCRIBE delivery.
        pattern: Option<Arc<str>>,
        payload: Bytes,
    },
}

/// Starts the connection task; the returned sender commands it (dropping it ends the task).
pub fn spawn(url: String, hub: Recipient<UpEvent>) -> mpsc::UnboundedSender<UpCmd> {
    let (tx, rx) = mpsc::unbounded_channel();
    actix::spawn(run(url, hub, rx));
    tx
}

async fn run(url: String, hub: Recipient<UpEvent>, mut rx: mpsc::UnboundedReceiver<UpCmd>) {
    let mut channels = BTreeSet::new();
    let mut patterns = BTreeSet::new();
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        match connect(&url, &channels, &patterns).await {
            Ok(pubsub) => {
                backoff.reset();
                hub.do_send(UpEvent::Connected);
                let reason = serve(pubsub, &hub, &mut rx, &mut channels, &mut patterns).await;
                match reason {
                    None => return, // the hub is gone
                    Some(r) => hub.do_send(UpEvent::Disconnected(r)),
                }
            }
            Err(e) => hub.do_send(UpEvent::Disconnected(e.to_string())),
        }
        // Commands that arrive while away only change what is wanted.
        let sleep = tokio::time::sleep(backoff.next_delay());
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => break,
                cmd = rx.recv() => match cmd {
                    Some(c) => { want(&c, &mut channels, &mut patterns); }
                    None => return,
                },
            }
        }
    }
}

/// Applies `c` to the wanted sets; false when it changes nothing.
fn want(c: &UpCmd, channels: &mut BTreeSet<String>, patterns: &mut BTreeSet<String>) -> bool {
    match c {
        UpCmd::Subscribe(f) => channels.insert(f.clone()),
        UpCmd::Unsubscribe(f) => channels.remove(f),
        UpCmd::PSubscribe(f) => patterns.insert(f.clone()),
        UpCmd::PUnsubscribe(f) => patterns.remove(f),
    }
}

async fn connect(
    url: &str,
    channels: &BTreeSet<String>,
    patterns: &BTreeSet<String>,
) -> redis::RedisResult<redis::aio::PubSub> {
    let client = redis::Client::open(url)?;
    let mut pubsub = tokio::time::timeout(Duration::from_secs(3), client.get_async_pubsub())
        .await
        .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "connect timed out")))??;
    for c in channels {
        pubsub.subscribe(c).await?;
    }
    for p in patterns {
        pubsub.psubscribe(p).await?;
    }
    Ok(pubsub)
}

/// Runs one connection until it fails (`Some(reason)`) or the hub goes away (`None`).
async fn serve(
    pubsub: redis::aio::PubSub,
    hub: &Recipient<UpEvent>,
    rx: &mut mpsc::UnboundedReceiver<UpCmd>,
    channels: &mut BTreeSet<String>,
    patterns: &mut BTreeSet<String>,
) -> Option<String> {
    let (mut sink, mut stream) = pubsub.split();
    loop {
        tokio::select! {
            msg = stream.next() => {
                let Some(msg) = msg else {
                    return Some("pub/sub connection closed".into());
                };
                let pattern: Option<String> = msg.get_pattern().ok().flatten();
                hub.do_send(UpEvent::Message {
                    channel: Arc::from(msg.get_channel_name()),
                    pattern: pattern.map(Arc::from),
                    payload: Bytes::copy_from_slice(msg.get_payload_bytes()),
                });
            }
            cmd = rx.recv() => {
                let cmd = cmd?;
                if !want(&cmd, channels, patterns) {
                    // Already (un)subscribed: still confirm, the hub may be waiting.
                    if let UpCmd::Subscribe(f) | UpCmd::PSubscribe(f) = &cmd {
                        let pattern = matches!(cmd, UpCmd::PSubscribe(_));
                        hub.do_send(UpEvent::Acked { feed: f.clone(), pattern });
                    }
                    continue;
                }
                let r = match &cmd {
                    UpCmd::Subscribe(f) => sink.subscribe(f).await,
                    UpCmd::Unsubscribe(f) => sink.unsubscribe(f).await,
                    UpCmd::PSubscribe(f) => sink.psubscribe(f).await,
                    UpCmd::PUnsubscribe(f) => sink.punsubscribe(f).await,
                };
                if let Err(e) = r {
                    return Some(e.to_string());
                }
                match cmd {
                    UpCmd::Subscribe(feed) => hub.do_send(UpEvent::Acked { feed, pattern: false }),
                    UpCmd::PSubscribe(feed) => hub.do_send(UpEvent::Acked { feed, pattern: true }),
                    _ => {}
                }
            }
        }
    }
}
