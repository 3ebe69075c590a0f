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

use super::metrics::RecorderFigures;
use super::router::RawFrame;

pub struct Recorder {
    out: BufWriter<File>,
    figures: RecorderFigures,
}

impl Recorder {
    pub fn create(path: &Path, figures: RecorderFigures) -> std::io::Result<Self> {
        Ok(Recorder {
            out: BufWriter::with_capacity(1 << 20, File::create(path)?),
            figures,
        })
    }
}

impl Actor for Recorder {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(Duration::from_secs(1), |act, _| {
            if let Err(e) = act.out.flush() {
                act.figures.actor.errors.inc();
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
        self.figures.actor.received();
        if serde_json::from_slice::<&RawValue>(&msg.bytes).is_err() {
            self.figures.skipped.inc();
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
            Ok(()) => self.figures.written.inc(),
            Err(e) => {
                self.figures.actor.errors.inc();
                log::warn!("capture write failed: {e}");
            }
        }
    }
}
