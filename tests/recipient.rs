//! `CountedRecipient`, the handle actors hold of each other: a message for an actor that has
//! stopped is counted (`tickwire_actor_undelivered_total`), never silently dropped.

use actix::{Actor, ActorContext, Context, Handler, Message};
use tickwire::metrics::{ActorMetrics, Registry};
use tickwire::recipient::CountedRecipient;

#[derive(Message)]
#[rtype(result = "()")]
struct Ping;

#[derive(Message)]
#[rtype(result = "()")]
struct Stop;

struct Sink(ActorMetrics);

impl Actor for Sink {
    type Context = Context<Self>;
}

impl Handler<Ping> for Sink {
    type Result = ();
    fn handle(&mut self, _: Ping, _: &mut Context<Self>) {
        self.0.received();
    }
}

impl Handler<Stop> for Sink {
    type Result = ();
    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

#[actix::test]
async fn a_message_for_a_stopped_actor_is_counted_not_silently_dropped() {
    let r = Registry::new();
    let metrics = ActorMetrics::new(&r, "sink");
    let addr = Sink(metrics.clone()).start();
    let to = CountedRecipient::<Ping>::of(&addr, metrics.clone());
    to.send(Ping).await.expect("delivered while running");
    addr.send(Stop).await.expect("stops");
    drop(addr);
    while to.connected() {
        tokio::task::yield_now().await;
    }
    to.do_send(Ping);
    to.do_send(Ping);
    assert_eq!(metrics.undelivered.get(), 2);
    assert_eq!(metrics.messages_in.get(), 1);
    assert_eq!(
        r.value("tickwire_actor_undelivered_total", &[("actor", "sink")]),
        Some(2)
    );
}
