//! Recorder actor: writes every raw frame the listener reads to a capture file, in the
//! simulator's replay format (`{"t":<ms>,"market":"stocks","frame":[...]}` per line), so a
//! live session can be replayed with `tickwire-sim --replay FILE`.
//!
//! A frame that is not valid JSON cannot be embedded in a capture line; it is counted and
//! skipped rather than corrupting the file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Duration;

use actix::{Actor, AsyncContext, Context, Handler};
use serde_json::value::RawValue;

use super::router::RawFrame;
use crate::metrics::{ActorMetrics, Counter, Registry};

pub struct Recorder {
    out: BufWriter<File>,
    metrics: ActorMetrics,
    written: Counter,
    skipped: Counter,
}

impl Recorder {
    pub const NAME: &'static str = "recorder";

    pub fn create(path: &Path, registry: &Registry) -> std::io::Result<Self> {
        Ok(Recorder {
            out: BufWriter::with_capacity(1 << 20, File::create(path)?),
            metrics: ActorMetrics::new(registry, Self::NAME),
            written: registry.counter(
                "tickwire_recorder_frames_total",
                "Frames written to the capture file",
                &[],
            ),
            skipped: registry.counter(
                "tickwire_recorder_skipped_total",
                "Frames not recorded (not valid JSON)",
                &[],
            ),
        })
    }

    pub fn metrics(&self) -> ActorMetrics {
        self.metrics.clone()
    }
}

impl Actor for Recorder {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(Duration::from_secs(1), |act, _| {
            if let Err(e) = act.out.flush() {
                act.metrics.errors.inc();
                log::warn!("capture flush failed: {e}");
            }
        });
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        let _ = self.out.flush();
    }
}

impl Handler<RawFrame> for Recorder {
    type Result = ();

    fn handle(&mut self, msg: RawFrame, _: &mut Context<Self>) {
        self.metrics.received();
        if serde_json::from_slice::<&RawValue>(&msg.bytes).is_err() {
            self.skipped.inc();
            return;
        }
        let r = write!(
            self.out,
            "{{\"t\":{},\"market\":\"{}\",\"frame\":",
            msg.received_at_ms,
            msg.market.path()
        )
        .and_then(|_| self.out.write_all(&msg.bytes))
        .and_then(|_| self.out.write_all(b"}\n"));
        match r {
            Ok(()) => self.written.inc(),
            Err(e) => {
                self.metrics.errors.inc();
                log::warn!("capture write failed: {e}");
            }
        }
    }
}
