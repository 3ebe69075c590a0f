//! NewsProcessor actor: files each article in the news lists ([`crate::analyzers::news`])
//! and sends the writes to the results store, which caches and publishes them.
//!
//! Before its first article it reads the latest-news list back from the store, so that a
//! story repeated after a restart (or after another node had the news queue) still replaces
//! its listed copy. An article that cannot be filed (not an object, no link, no title) is
//! counted by reason and logged, never written.

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, WrapFuture};

use super::metrics::NewsFigures;
use crate::analyzers::news::{NewsConfig, NewsDesk, NewsError, FEED_KEY};
use crate::queue::NewsArticle;
use crate::store::{Store, Stored, Write, ALL};

pub struct NewsProcessor {
    desk: NewsDesk,
    store: Store,
    figures: NewsFigures,
}

impl NewsProcessor {
    pub fn new(cfg: NewsConfig, store: Store, figures: NewsFigures) -> Self {
        NewsProcessor {
            desk: NewsDesk::new(cfg),
            store,
            figures,
        }
    }
}

impl Actor for NewsProcessor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let key = format!("{}{FEED_KEY}", self.desk.config().results_prefix);
        let store = self.store.clone();
        let read = async move { store.read(&key, ALL).await };
        // `wait`: no article is filed before the listed ones are known.
        ctx.wait(read.into_actor(self).map(|res, act, _| match res {
            Ok(Some(Stored::List(items))) => {
                // Newest first in the list; remembered oldest first, so the newest stay.
                for item in items.into_iter().rev() {
                    act.desk.remember(item);
                }
                act.figures.remembered.set(act.desk.remembered() as i64);
            }
            Ok(_) => {}
            Err(e) => act.figures.rehydrate_failed(&e.to_string()),
        }));
    }
}

impl Handler<NewsArticle> for NewsProcessor {
    type Result = ();

    fn handle(&mut self, msg: NewsArticle, _: &mut Context<Self>) {
        self.figures.actor.received();
        let mut out = Vec::new();
        match self.desk.file(msg.article, msg.received_at_ms, &mut out) {
            Ok(filed) => {
                self.figures.filed(filed.replaced, filed.tickers);
                self.store.write.do_send(Write(out));
            }
            Err(e) => self.figures.skipped(
                match e {
                    NewsError::Malformed(_) => "malformed",
                    NewsError::NoLink => "no_link",
                    NewsError::NoTitle => "no_title",
                },
                &e.to_string(),
            ),
        }
        self.figures.remembered.set(self.desk.remembered() as i64);
    }
}
