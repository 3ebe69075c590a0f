//! A minimal WebSocket client over a plain tokio socket, for load tests and the WDS bench.
//!
//! awc is the right client for an application, but a load generator needs what it hides:
//! the local address (to open more connections than one source address has ports), the
//! socket's receive buffer (a small one makes a deliberately slow reader stall quickly), and
//! a few hundred bytes of state per connection. Frames from the server are unmasked; frames
//! to it are masked, as RFC 6455 requires.

use std::net::SocketAddr;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

pub const OP_TEXT: u8 = 1;
pub const OP_CLOSE: u8 = 8;
pub const OP_PING: u8 = 9;
pub const OP_PONG: u8 = 10;

#[derive(Debug, thiserror::Error)]
pub enum WsClientError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("handshake refused: {0}")]
    Refused(String),
    #[error("connection closed")]
    Closed,
}

/// How to open a connection.
#[derive(Debug, Clone, Default)]
pub struct Connect {
    /// Local address to bind (another 127.x.y.z gives another 28k ports).
    pub local: Option<std::net::IpAddr>,
    /// SO_RCVBUF in bytes (0: the kernel's default, autotuned).
    pub recv_buffer: u32,
}

pub struct WsClient {
    stream: TcpStream,
    buf: BytesMut,
    mask: u32,
}

impl WsClient {
    /// Connects to `addr` and upgrades at `path_and_query`.
    pub async fn connect(
        addr: SocketAddr,
        path_and_query: &str,
        opts: &Connect,
    ) -> Result<WsClient, WsClientError> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Some(ip) = opts.local {
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        if opts.recv_buffer > 0 {
            socket.set_recv_buffer_size(opts.recv_buffer)?;
        }
        let mut stream = socket.connect(addr).await?;
        stream.set_nodelay(true)?;
        let req = format!(
            "GET {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).await?;
        let mut buf = BytesMut::with_capacity(1024);
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                if !head.starts_with("HTTP/1.1 101") {
                    return Err(WsClientError::Refused(
                        head.lines().next().unwrap_or("").to_string(),
                    ));
                }
                buf.advance(end + 4);
                break;
            }
            if stream.read_buf(&mut buf).await? == 0 {
                return Err(WsClientError::Closed);
            }
        }
        Ok(WsClient {
            stream,
            buf,
            mask: 0x9e37_79b9,
        })
    }

    /// Sends one masked text frame.
    pub async fn send_text(&mut self, text: &str) -> Result<(), WsClientError> {
        let payload = text.as_bytes();
        let mut frame = Vec::with_capacity(payload.len() + 14);
        frame.push(0x80 | OP_TEXT);
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= u16::MAX as usize => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        self.mask = self.mask.rotate_left(5) ^ 0x5bd1_e995;
        let key = self.mask.to_be_bytes();
        frame.extend_from_slice(&key);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        self.stream.write_all(&frame).await?;
        Ok(())
    }

    /// The next frame from the server: (opcode, payload). Pings are answered on the way.
    pub async fn next(&mut self) -> Result<(u8, BytesMut), WsClientError> {
        loop {
            if let Some((op, payload)) = self.parse()? {
                if op == OP_PING {
                    self.pong(&payload).await?;
                    continue;
                }
                return Ok((op, payload));
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(WsClientError::Closed);
            }
        }
    }

    /// The next text frame's payload; `Err(Closed)` at a close frame.
    pub async fn next_text(&mut self) -> Result<BytesMut, WsClientError> {
        loop {
            match self.next().await? {
                (OP_TEXT, p) => return Ok(p),
                (OP_CLOSE, _) => return Err(WsClientError::Closed),
                _ => continue,
            }
        }
    }

    async fn pong(&mut self, payload: &[u8]) -> Result<(), WsClientError> {
        // A masked pong with the ping's payload (at most 125 bytes by the protocol).
        let n = payload.len().min(125);
        let mut frame = vec![0x80 | OP_PONG, 0x80 | n as u8, 0, 0, 0, 0];
        frame.extend_from_slice(&payload[..n]);
        self.stream.write_all(&frame).await?;
        Ok(())
    }

    fn parse(&mut self) -> Result<Option<(u8, BytesMut)>, WsClientError> {
        let b = &self.buf;
        if b.len() < 2 {
            return Ok(None);
        }
        let op = b[0] & 0x0f;
        let (len, head) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
            127 if b.len() >= 10 => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&b[2..10]);
                (u64::from_be_bytes(n) as usize, 10)
            }
            126 | 127 => return Ok(None),
            n => (n as usize, 2),
        };
        if b.len() < head + len {
            self.buf.reserve(head + len - b.len());
            return Ok(None);
        }
        self.buf.advance(head);
        Ok(Some((op, self.buf.split_to(len))))
    }
}
