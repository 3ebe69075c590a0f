//! Server-side WebSocket I/O for the Massive-protocol servers (the simulator's sessions and
//! the WDS relay's), below the actor layer.
//!
//! They must behave like Massive towards slow readers, which a stock WebSocket actor context
//! cannot: its write buffer is unbounded and unobservable, and it always ends with a close
//! frame. So they drive the HTTP upgrade themselves:
//! - [`outbound`] makes a byte-counted frame queue and the response body stream that drains
//!   it. The HTTP dispatcher only polls the stream while the socket accepts writes, so a client
//!   that stops reading makes the queue grow; the session kills it past its limit.
//!   [`Outbound::abort`] makes the stream fail at once, which drops the TCP connection with
//!   no close frame: Massive's usual way of ending a connection.
//! - [`inbound`] decodes client frames from the request payload.
//! - [`encode_frame`] writes an unmasked server frame (text, close, pong).
//!
//! The handshake check and frame decoder come from actix-http; all of their use is in this
//! file. (actix-web-actors stays with the WDS widget sessions alone.)

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use actix_codec::Decoder;
use actix_http::ws::{self, Codec, HandshakeError};
pub use actix_http::ws::{Frame, ProtocolError};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

/// WebSocket opcodes the simulator sends.
pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PONG: u8 = 0xA;

/// Largest client message accepted (a subscribe of 500 topics is ~6 KB).
pub const MAX_CLIENT_MESSAGE: usize = 1024 * 1024;

/// Appends one unmasked, final server frame.
pub fn encode_frame(opcode: u8, payload: &[u8], out: &mut BytesMut) {
    encode_fragment(opcode, true, payload, out);
}

/// Appends one unmasked server frame, final (`fin`) or not: a message in parts is a text
/// frame without FIN, continuation frames, and the last one with FIN.
pub fn encode_fragment(opcode: u8, fin: bool, payload: &[u8], out: &mut BytesMut) {
    out.reserve(payload.len() + HEADER_MAX);
    put_header(opcode, fin, payload.len(), out);
    out.put_slice(payload);
}

/// The longest server frame header: opcode byte, length byte, 8 length bytes.
const HEADER_MAX: usize = 10;

/// A server frame's header for `len` payload bytes.
fn put_header(opcode: u8, fin: bool, len: usize, out: &mut BytesMut) {
    out.put_u8(if fin { 0x80 } else { 0 } | opcode);
    if len < 126 {
        out.put_u8(len as u8);
    } else if len <= u16::MAX as usize {
        out.put_u8(126);
        out.put_u16(len as u16);
    } else {
        out.put_u8(127);
        out.put_u64(len as u64);
    }
}

/// A text frame whose payload `build` writes, in one buffer: the header's room is reserved
/// in front and filled in place, so the payload is not copied again.
pub fn text_frame_from(build: impl FnOnce(&mut BytesMut)) -> Bytes {
    let mut b = BytesMut::new();
    b.put_bytes(0, HEADER_MAX);
    build(&mut b);
    let mut head = BytesMut::with_capacity(HEADER_MAX);
    put_header(OP_TEXT, true, b.len() - HEADER_MAX, &mut head);
    let start = HEADER_MAX - head.len();
    b[start..HEADER_MAX].copy_from_slice(&head);
    b.split_off(start).freeze()
}

/// A text frame holding `payload`.
pub fn text_frame(payload: &[u8]) -> Bytes {
    let mut b = BytesMut::new();
    encode_frame(OP_TEXT, payload, &mut b);
    b.freeze()
}

/// A close frame with `code` and no reason.
pub fn close_frame(code: u16) -> Bytes {
    let mut b = BytesMut::new();
    encode_frame(OP_CLOSE, &code.to_be_bytes(), &mut b);
    b.freeze()
}

/// Validates the upgrade request and returns the 101 response builder.
pub fn handshake(req: &HttpRequest) -> Result<HttpResponseBuilder, HandshakeError> {
    ws::verify_handshake(req.head())?;
    let key = req
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or(HandshakeError::BadWebsocketKey)?;
    let accept = header::HeaderValue::from_bytes(&ws::hash_key(key.as_bytes()))
        .map_err(|_| HandshakeError::BadWebsocketKey)?;
    let mut res = HttpResponse::build(StatusCode::SWITCHING_PROTOCOLS);
    res.upgrade("websocket")
        .insert_header((header::SEC_WEBSOCKET_ACCEPT, accept));
    Ok(res)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Open,
    /// Send what is queued, then end the stream (the connection closes).
    Finish,
    /// Send what is queued, then fail the stream (dropped without a close frame).
    AbortAfter,
    /// Fail the stream now: the connection is dropped without a close frame.
    Abort,
}

#[derive(Debug)]
struct Inner {
    /// Frames and when each was queued.
    queue: VecDeque<(Instant, Bytes)>,
    queued_bytes: usize,
    mode: Mode,
    waker: Option<Waker>,
    /// AbortAfter: the queue is drained and the dispatcher has had one chance to flush.
    flushed: bool,
}

/// The session's end of the outbound queue.
#[derive(Debug)]
pub struct Outbound {
    inner: Arc<Mutex<Inner>>,
}

/// The response body's end: yields queued frames to the HTTP dispatcher.
pub struct OutboundStream {
    inner: Arc<Mutex<Inner>>,
}

/// Makes a connected outbound queue and body stream.
pub fn outbound() -> (Outbound, OutboundStream) {
    let inner = Arc::new(Mutex::new(Inner {
        queue: VecDeque::new(),
        queued_bytes: 0,
        mode: Mode::Open,
        waker: None,
        flushed: false,
    }));
    (
        Outbound {
            inner: inner.clone(),
        },
        OutboundStream { inner },
    )
}

impl Outbound {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let r = f(&mut g);
        if let Some(w) = g.waker.take() {
            w.wake();
        }
        r
    }

    /// Queues a frame; returns the bytes now waiting. Ignored once closing.
    pub fn push(&self, frame: Bytes) -> usize {
        self.with(|i| {
            if i.mode == Mode::Open {
                i.queued_bytes += frame.len();
                i.queue.push_back((Instant::now(), frame));
            }
            i.queued_bytes
        })
    }

    /// Bytes waiting to be written.
    pub fn queued_bytes(&self) -> usize {
        self.inner.lock().map(|i| i.queued_bytes).unwrap_or(0)
    }

    /// How long the oldest frame still waiting has waited (zero when none waits): how far
    /// behind the reader is.
    pub fn lag(&self) -> Duration {
        self.inner
            .lock()
            .ok()
            .and_then(|i| i.queue.front().map(|(at, _)| at.elapsed()))
            .unwrap_or_default()
    }

    /// Sends `last` after everything queued, then closes.
    pub fn finish_after(&self, last: Vec<Bytes>) {
        self.with(|i| {
            if i.mode == Mode::Open {
                for f in last {
                    i.queued_bytes += f.len();
                    i.queue.push_back((Instant::now(), f));
                }
                i.mode = Mode::Finish;
            }
        });
    }

    /// Drops everything queued, sends `last`, then closes.
    pub fn finish_now(&self, last: Vec<Bytes>) {
        self.with(|i| {
            if i.mode == Mode::Open {
                i.queued_bytes = last.iter().map(Bytes::len).sum();
                let now = Instant::now();
                i.queue = last.into_iter().map(|f| (now, f)).collect();
                i.mode = Mode::Finish;
            }
        });
    }

    /// Sends what is queued, then drops the connection without a close frame.
    pub fn abort_after(&self) {
        self.with(|i| {
            if i.mode == Mode::Open {
                i.mode = Mode::AbortAfter;
            }
        });
    }

    /// Drops the connection without a close frame, discarding what is queued.
    pub fn abort(&self) {
        self.with(|i| {
            if i.mode != Mode::Abort {
                i.queue.clear();
                i.queued_bytes = 0;
                i.mode = Mode::Abort;
            }
        });
    }
}

impl Drop for Outbound {
    /// A session that ends without choosing how still lets its queued frames out.
    fn drop(&mut self) {
        self.with(|i| {
            if i.mode == Mode::Open {
                i.mode = Mode::Finish;
            }
        });
    }
}

impl Stream for OutboundStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut i = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if i.mode == Mode::Abort {
            return Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "connection aborted by the server",
            ))));
        }
        if let Some((_, frame)) = i.queue.pop_front() {
            i.queued_bytes -= frame.len();
            return Poll::Ready(Some(Ok(frame)));
        }
        match i.mode {
            Mode::Finish => return Poll::Ready(None),
            Mode::AbortAfter if i.flushed => {
                return Poll::Ready(Some(Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "connection aborted by the server",
                ))))
            }
            // The dispatcher discards unflushed bytes when the body fails, so pause once:
            // on Pending it writes out what it holds, then polls again and gets the error.
            Mode::AbortAfter => {
                i.flushed = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Mode::Open | Mode::Abort => {}
        }
        i.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// Decodes client frames from the upgrade request's payload. Ends when the client's side
/// ends; a protocol error is yielded once, then the stream ends.
pub fn inbound(payload: web::Payload) -> impl Stream<Item = Result<Frame, ProtocolError>> {
    let codec = Codec::new().max_size(MAX_CLIENT_MESSAGE);
    futures_util::stream::unfold(
        (payload, BytesMut::new(), codec, false),
        |(mut payload, mut buf, mut codec, failed)| async move {
            if failed {
                return None;
            }
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(frame)) => return Some((Ok(frame), (payload, buf, codec, false))),
                    Ok(None) => {}
                    Err(e) => return Some((Err(e), (payload, buf, codec, true))),
                }
                match payload.next().await {
                    Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
                    Some(Err(_)) | None => return None,
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_headers_by_length() {
        let mut b = BytesMut::new();
        encode_frame(OP_TEXT, b"[]", &mut b);
        assert_eq!(&b[..], &[0x81, 2, b'[', b']']);
        let mut b = BytesMut::new();
        encode_frame(OP_TEXT, &[b'x'; 300], &mut b);
        assert_eq!(&b[..4], &[0x81, 126, 1, 44]);
        let mut b = BytesMut::new();
        encode_frame(OP_TEXT, &vec![b'x'; 70_000], &mut b);
        assert_eq!(&b[..2], &[0x81, 127]);
        assert_eq!(b.len(), 70_010);
        assert_eq!(&close_frame(1008)[..], &[0x88, 2, 0x03, 0xF0]);
        for n in [0, 125, 126, 300, 70_000] {
            let payload = vec![b'x'; n];
            let built = text_frame_from(|b| b.extend_from_slice(&payload));
            assert_eq!(built, text_frame(&payload), "{n} bytes");
        }
    }

    #[actix_web::test]
    async fn queue_counts_bytes_and_abort_fails_first() {
        let (out, mut stream) = outbound();
        out.push(Bytes::from_static(b"abc"));
        out.push(Bytes::from_static(b"de"));
        assert_eq!(out.queued_bytes(), 5);
        assert_eq!(
            stream.next().await.unwrap().unwrap(),
            Bytes::from_static(b"abc")
        );
        assert_eq!(out.queued_bytes(), 2);
        out.abort();
        assert!(stream.next().await.unwrap().is_err());

        let (out, mut stream) = outbound();
        out.push(Bytes::from_static(b"status"));
        out.abort_after();
        assert_eq!(
            stream.next().await.unwrap().unwrap(),
            Bytes::from_static(b"status")
        );
        assert!(stream.next().await.unwrap().is_err());

        let (out, mut stream) = outbound();
        out.push(Bytes::from_static(b"x"));
        out.finish_after(vec![close_frame(1000)]);
        assert_eq!(
            stream.next().await.unwrap().unwrap(),
            Bytes::from_static(b"x")
        );
        assert_eq!(stream.next().await.unwrap().unwrap(), close_frame(1000));
        assert!(stream.next().await.is_none());
    }
}
