//! The processor node (`tickwire-processor`): turns queued events into what the widgets
//! show, in the Redis the widget data service reads.
//!
//! An event's path through this folder:
//!
//! 1. [`consumer`]: the `QueueConsumer` reads a message from a shard queue it holds, decodes
//!    the envelope ([`crate::queue::envelope`]) and hands the batch to that shard's processor,
//!    acking once it is handled.
//! 2. [`shard`]: the `ShardProcessor` of that shard runs the analyzers
//!    ([`crate::analyzers`]: quote, daily range and alerts, raw routes, leaderboard
//!    candidates) and sends their results to the results store in one write.
//! 3. The results store ([`crate::actors::store`]) caches and publishes them.
//!
//! News takes its own path: [`news_consumer`] reads the `news` queue (one active consumer
//! among the nodes) and [`news`]'s `NewsProcessor` files each article in the news lists
//! ([`crate::analyzers::news`]) through the same results store; embedded mode's news
//! listener sends to it directly.
//!
//! Beside them: [`pool`] (owns the shard processors; embedded mode's router sends to it),
//! [`enricher`] (REST figures a quote needs), [`market_status`] (the trading calendar),
//! [`board_publisher`] (the elected merge of every shard's candidates into the scanners),
//! [`shard_manager`] (shard leases among nodes), [`expired`] (counts the queue messages that
//! expired before anyone consumed them), [`pipeline`] (the part both modes share),
//! [`status`], [`metrics`] and [`node`] (flags and wiring).

pub mod board_publisher;
pub mod consumer;
pub mod enricher;
pub mod expired;
pub mod market_status;
pub mod metrics;
pub mod news;
pub mod news_consumer;
pub mod node;
pub mod pipeline;
pub mod pool;
pub mod shard;
pub mod shard_manager;
pub mod status;

pub use node::{run, start, ProcessorArgs, ProcessorNode, ProcessorNodeError};
pub use pipeline::{start_pipeline, Pipeline, PipelineArgs};
