//! BoardPublisher actor: the one elected publisher of the cluster-wide leaderboards.
//!
//! Every processor node runs one; they compete for the lease `processor:lease:boards` in the
//! state store, and only the holder works. Once a second it reads every shard's candidates,
//! ranks them ([`leaderboard::rank`]) and writes each `scanners:*` board whose bytes changed
//! (SETEX 4 d + PUBLISH). Unchanged boards are not republished, and a board that became empty
//! after a reset is published empty. With top trades on, every 5 s it also merges the shards'
//! statistics into the `tta:*:widget` keys.

use std::collections::BTreeMap;
use std::time::Duration;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, WrapFuture};
use bytes::Bytes;

use super::metrics::BoardFigures;
use super::shard::{board_key, trades_key};
use crate::analyzers::leaderboard::{self, Board, ShardBoard};
use crate::analyzers::shard::VALUE_TTL_SECS;
use crate::analyzers::top_trades::{self, Stats};
use crate::store::{CacheWrite, Store, Write};

#[derive(Debug, Clone)]
pub struct BoardPublisherConfig {
    pub shards: u16,
    pub state_prefix: String,
    pub results_prefix: String,
    /// This node's identity (the lease holder).
    pub holder: String,
    pub every: Duration,
    pub top_trades: bool,
}

pub struct BoardPublisher {
    cfg: BoardPublisherConfig,
    /// Where the boards go (client-facing).
    results_store: Store,
    /// Where the shards' candidates and the publisher lease are.
    state_store: Store,
    last: [Option<Bytes>; 3],
    leader: bool,
    busy: bool,
    ticks: u64,
    figures: BoardFigures,
}

impl BoardPublisher {
    pub fn new(
        cfg: BoardPublisherConfig,
        results_store: Store,
        state_store: Store,
        figures: BoardFigures,
    ) -> Self {
        BoardPublisher {
            results_store,
            state_store,
            last: [None, None, None],
            leader: false,
            busy: false,
            ticks: 0,
            figures,
            cfg,
        }
    }

    fn lease_key(&self) -> String {
        format!("{}processor:lease:boards", self.cfg.state_prefix)
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        self.busy = true;
        self.ticks += 1;
        let trades_due = self.cfg.top_trades && self.ticks.is_multiple_of(5);
        let (store, cfg, lease) = (self.state_store.clone(), self.cfg.clone(), self.lease_key());
        let fut = async move {
            let leader = store.acquire(&lease, &cfg.holder, cfg.every * 3).await?;
            if !leader {
                return Ok((false, Vec::new(), None));
            }
            let keys = (0..cfg.shards)
                .map(|s| board_key(&cfg.state_prefix, s))
                .collect();
            let boards = store.get(keys).await?;
            let trades = if trades_due {
                let keys = (0..cfg.shards)
                    .map(|s| trades_key(&cfg.state_prefix, s))
                    .collect();
                Some(store.get(keys).await?)
            } else {
                None
            };
            Ok::<_, crate::store::StoreError>((true, boards, trades))
        };
        ctx.spawn(fut.into_actor(self).map(|res, act, _| {
            act.busy = false;
            match res {
                Ok((leader, boards, trades)) => {
                    if leader != act.leader {
                        log::info!(
                            "{} the leaderboard publisher",
                            if leader { "now" } else { "no longer" }
                        );
                        act.last = [None, None, None];
                    }
                    act.leader = leader;
                    act.figures.leader.set(i64::from(leader));
                    if leader {
                        act.publish(boards, trades);
                    }
                }
                Err(e) => {
                    act.figures.errors.inc();
                    act.figures.actor.errors.inc();
                    log::warn!("leaderboard publisher: {e}");
                }
            }
        }));
    }

    fn publish(&mut self, boards: Vec<Option<Bytes>>, trades: Option<Vec<Option<Bytes>>>) {
        let shards: Vec<ShardBoard> = boards
            .into_iter()
            .flatten()
            .filter_map(|b| match ShardBoard::decode(&b) {
                Ok(s) => Some(s),
                Err(e) => {
                    self.figures.unreadable.inc();
                    log::warn!("unreadable shard candidates skipped: {e}");
                    None
                }
            })
            .collect();
        let ranked = leaderboard::rank(&shards);
        let mut writes = Vec::new();
        for (i, json) in ranked.into_iter().enumerate() {
            let json = Bytes::from(json);
            if self.last[i].as_ref() == Some(&json) {
                continue;
            }
            if let Some(c) = self.figures.published.at(i) {
                c.inc();
            }
            writes.push(CacheWrite::value(
                format!("{}{}", self.cfg.results_prefix, Board::ALL[i].key()),
                json.clone(),
                VALUE_TTL_SECS,
                0,
            ));
            self.last[i] = Some(json);
        }
        if let Some(trades) = trades {
            let mut all: BTreeMap<String, Stats> = BTreeMap::new();
            for b in trades.into_iter().flatten() {
                match rmp_serde::from_slice::<BTreeMap<String, Stats>>(&b) {
                    Ok(m) => all.extend(m),
                    Err(_) => self.figures.unreadable.inc(),
                }
            }
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            for (key, json) in top_trades::widgets(&all, &now) {
                writes.push(CacheWrite::unpublished(
                    format!("{}{key}", self.cfg.results_prefix),
                    Bytes::from(json),
                    top_trades::TTL_SECS,
                ));
            }
        }
        if !writes.is_empty() {
            self.figures.actor.messages_out.inc();
            self.results_store.write.do_send(Write(writes));
        }
    }
}

/// Stop publishing and hand the lease over (a node's clean shutdown).
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct Stop;

impl actix::Handler<Stop> for BoardPublisher {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        use actix::ActorContext;
        self.figures.actor.handled();
        ctx.stop();
    }
}

impl Actor for BoardPublisher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.cfg.every, |act, ctx| act.tick(ctx));
    }

    fn stopping(&mut self, _: &mut Context<Self>) -> actix::Running {
        self.figures.leader.set(0);
        if self.leader {
            let (store, key, holder) = (
                self.state_store.clone(),
                self.lease_key(),
                self.cfg.holder.clone(),
            );
            actix::spawn(async move {
                let _ = store.release(&key, &holder).await;
            });
        }
        actix::Running::Stop
    }
}
