//! The results writer's own Redis connection: MULTI/EXEC pipelines encoded straight into one
//! buffer, and their replies checked without being built into values.
//!
//! Why not redis-rs here, when it serves every other Redis call: redis-rs builds a `Cmd` per
//! command, copies every value and parses a `Value` for each of the 2 × N replies, while a
//! results pipeline needs nothing back but "did each command succeed". Writing RESP (the
//! Redis protocol) directly and walking the replies in place takes less than half the
//! client CPU per write (`tickwire-bench redis-pipeline`, docs/benchmarks.md). It also
//! reports a command that failed inside EXEC as one failed command; redis-rs failed the
//! whole pipeline.
//!
//! The connection speaks RESP2 and sends nothing but what the writer asks for (plus `AUTH`
//! and `SELECT` from the URL), so the only replies it can meet are RESP2's five kinds.

use std::path::PathBuf;

use bytes::{Buf, BytesMut};
use deadpool_redis::redis::{ConnectionAddr, IntoConnectionInfo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

#[derive(Debug, thiserror::Error)]
pub enum RespError {
    #[error("Redis URL {url:?} cannot be used by the results writer: {reason}")]
    Url { url: String, reason: String },
    #[error("Redis I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("Redis closed the connection")]
    Closed,
    #[error("Redis protocol: {0}")]
    Protocol(String),
    #[error("Redis refused: {0}")]
    Refused(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Addr {
    Tcp(String, u16),
    Unix(PathBuf),
}

/// Where and how to connect, read from the same `redis://` (or `redis+unix://`) URL that
/// redis-rs takes, so both clients of a store agree.
#[derive(Debug, Clone)]
pub struct Endpoint {
    addr: Addr,
    username: Option<String>,
    password: Option<String>,
    db: i64,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Self, RespError> {
        let bad = |reason: String| RespError::Url {
            url: url.to_string(),
            reason,
        };
        let info = url.into_connection_info().map_err(|e| bad(e.to_string()))?;
        let addr = match info.addr() {
            ConnectionAddr::Tcp(host, port) => Addr::Tcp(host.clone(), *port),
            ConnectionAddr::Unix(path) => Addr::Unix(path.clone()),
            _ => return Err(bad("only plain TCP and Unix sockets are supported".into())),
        };
        let r = info.redis_settings();
        Ok(Endpoint {
            addr,
            username: r.username().map(String::from),
            password: r.password().map(String::from),
            db: r.db(),
        })
    }
}

/// Appends one command, as RESP's array of bulk strings, to `out`.
pub fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    let mut n = itoa::Buffer::new();
    out.push(b'*');
    out.extend_from_slice(n.format(args.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in args {
        out.push(b'$');
        out.extend_from_slice(n.format(a.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// A MULTI/EXEC pipeline being built.
pub struct Transaction {
    out: Vec<u8>,
    commands: usize,
}

impl Transaction {
    pub fn new() -> Self {
        let mut out = Vec::with_capacity(64 * 1024);
        encode(&mut out, &[b"MULTI"]);
        Transaction { out, commands: 0 }
    }

    pub fn command(&mut self, args: &[&[u8]]) {
        encode(&mut self.out, args);
        self.commands += 1;
    }
}

/// What Redis made of a transaction that ran.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxReport {
    /// Commands that ran and failed (say `WRONGTYPE`); the others in the transaction still
    /// took effect, as Redis does not roll back.
    pub failed: usize,
    pub first_error: Option<String>,
}

/// One reply, or the header of an array whose elements follow as further replies.
#[derive(Debug, PartialEq, Eq)]
enum Reply<'a> {
    Status(&'a [u8]),
    Error(&'a [u8]),
    Integer,
    Bulk,
    Nil,
    Array(usize),
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn number(line: &[u8]) -> Result<i64, RespError> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| RespError::Protocol(format!("bad length {:?}", text(line))))
}

const MAX_BULK: i64 = 512 * 1024 * 1024;

/// Reads the reply at the front of `buf`: `None` until it is complete, else the reply and
/// the bytes it took.
fn parse(buf: &[u8]) -> Result<Option<(Reply<'_>, usize)>, RespError> {
    let Some(nl) = memchr::memchr(b'\n', buf) else {
        return Ok(None);
    };
    if nl < 2 || buf[nl - 1] != b'\r' {
        return Err(RespError::Protocol(format!(
            "reply line not ended by CRLF: {:?}",
            text(&buf[..nl.min(64)])
        )));
    }
    let line = &buf[1..nl - 1];
    let after = nl + 1;
    let reply = match buf[0] {
        b'+' => Reply::Status(line),
        b'-' => Reply::Error(line),
        b':' => {
            number(line)?;
            Reply::Integer
        }
        b'$' => match number(line)? {
            -1 => Reply::Nil,
            // Redis's own ceiling (`proto-max-bulk-len`, 512 MB): a longer length is corrupt
            // input, not a reason to wait for more bytes.
            len @ 0..=MAX_BULK => {
                let end = after + len as usize + 2;
                if buf.len() < end {
                    return Ok(None);
                }
                if &buf[end - 2..end] != b"\r\n" {
                    return Err(RespError::Protocol("bulk string not ended by CRLF".into()));
                }
                return Ok(Some((Reply::Bulk, end)));
            }
            len => return Err(RespError::Protocol(format!("bulk length {len}"))),
        },
        b'*' => match number(line)? {
            -1 => Reply::Nil,
            len if len >= 0 => Reply::Array(len as usize),
            len => return Err(RespError::Protocol(format!("array length {len}"))),
        },
        other => {
            return Err(RespError::Protocol(format!(
                "unexpected reply type {:?}",
                other as char
            )))
        }
    };
    Ok(Some((reply, after)))
}

/// Where the replies to a transaction have got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Multi,
    Queued(usize),
    Exec,
    /// Inside EXEC's array: replies still to come, nested arrays' elements included.
    Results(usize),
    Done,
}

/// Follows the replies to a transaction of `commands` commands as they arrive:
/// `+OK` to MULTI, one `+QUEUED` per command, then EXEC's array of the commands' replies.
struct TxReplies {
    commands: usize,
    stage: Stage,
    /// A command Redis refused to queue (bad arity, unknown command): EXEC will then abort
    /// the whole transaction, and this says why.
    queue_error: Option<String>,
    report: TxReport,
}

impl TxReplies {
    fn new(commands: usize) -> Self {
        TxReplies {
            commands,
            stage: Stage::Multi,
            queue_error: None,
            report: TxReport::default(),
        }
    }

    /// Takes the complete replies at the front of `buf`; returns the bytes taken.
    fn feed(&mut self, buf: &[u8]) -> Result<usize, RespError> {
        let mut used = 0;
        while self.stage != Stage::Done {
            let Some((reply, n)) = parse(&buf[used..])? else {
                break;
            };
            used += n;
            self.stage = match (self.stage, reply) {
                (Stage::Multi, Reply::Status(_)) => self.after_queued(self.commands),
                (Stage::Multi, Reply::Error(e)) => return Err(RespError::Refused(text(e))),
                (Stage::Queued(left), Reply::Status(_)) => self.after_queued(left - 1),
                (Stage::Queued(left), Reply::Error(e)) => {
                    self.queue_error.get_or_insert_with(|| text(e));
                    self.after_queued(left - 1)
                }
                (Stage::Exec, Reply::Array(0)) => Stage::Done,
                (Stage::Exec, Reply::Array(n)) => Stage::Results(n),
                (Stage::Exec, Reply::Error(e)) => {
                    let why = match self.queue_error.take() {
                        Some(q) => format!("{} ({q})", text(e)),
                        None => text(e),
                    };
                    return Err(RespError::Refused(why));
                }
                (Stage::Results(left), reply) => {
                    let more = match reply {
                        Reply::Array(k) => k,
                        Reply::Error(e) => {
                            self.report.failed += 1;
                            self.report.first_error.get_or_insert_with(|| text(e));
                            0
                        }
                        _ => 0,
                    };
                    // Array lengths come off the wire: a corrupt one must not overflow.
                    match (left - 1).checked_add(more) {
                        Some(0) => Stage::Done,
                        Some(rest) => Stage::Results(rest),
                        None => return Err(RespError::Protocol(format!("array length {more}"))),
                    }
                }
                (stage, reply) => {
                    return Err(RespError::Protocol(format!(
                        "unexpected reply {reply:?} at {stage:?}"
                    )))
                }
            };
        }
        Ok(used)
    }

    fn after_queued(&self, left: usize) -> Stage {
        if left == 0 {
            Stage::Exec
        } else {
            Stage::Queued(left)
        }
    }

    fn done(&self) -> bool {
        self.stage == Stage::Done
    }
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// One connection, used by one pipeline at a time.
pub struct Connection {
    io: Box<dyn Io>,
    buf: BytesMut,
}

impl Connection {
    /// Connects, then authenticates and selects the database the URL names.
    pub async fn connect(ep: &Endpoint) -> Result<Self, RespError> {
        let io: Box<dyn Io> = match &ep.addr {
            Addr::Tcp(host, port) => {
                let s = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                // Pipelines are written whole; waiting to fill a segment only adds latency.
                s.set_nodelay(true)?;
                Box::new(s)
            }
            Addr::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
        };
        let mut conn = Connection {
            io,
            buf: BytesMut::with_capacity(64 * 1024),
        };
        let mut out = Vec::new();
        if let Some(password) = &ep.password {
            match &ep.username {
                Some(user) => encode(&mut out, &[b"AUTH", user.as_bytes(), password.as_bytes()]),
                None => encode(&mut out, &[b"AUTH", password.as_bytes()]),
            }
            conn.call(&out).await?;
            out.clear();
        }
        if ep.db != 0 {
            encode(
                &mut out,
                &[b"SELECT", itoa::Buffer::new().format(ep.db).as_bytes()],
            );
            conn.call(&out).await?;
        }
        Ok(conn)
    }

    /// Sends one encoded command whose reply is a status, and checks it is not an error.
    async fn call(&mut self, command: &[u8]) -> Result<(), RespError> {
        self.io.write_all(command).await?;
        loop {
            if let Some((reply, n)) = parse(&self.buf)? {
                let refused = match reply {
                    Reply::Error(e) => Some(text(e)),
                    _ => None,
                };
                self.buf.advance(n);
                return refused.map_or(Ok(()), |e| Err(RespError::Refused(e)));
            }
            self.fill().await?;
        }
    }

    async fn fill(&mut self) -> Result<(), RespError> {
        self.buf.reserve(64 * 1024);
        if self.io.read_buf(&mut self.buf).await? == 0 {
            return Err(RespError::Closed);
        }
        Ok(())
    }

    /// Runs a transaction: an error means it did not run (or its outcome is unknown); a
    /// report counts the commands that ran and failed.
    pub async fn exec(&mut self, mut tx: Transaction) -> Result<TxReport, RespError> {
        encode(&mut tx.out, &[b"EXEC"]);
        self.io.write_all(&tx.out).await?;
        let mut replies = TxReplies::new(tx.commands);
        loop {
            let used = replies.feed(&self.buf)?;
            self.buf.advance(used);
            if replies.done() {
                return Ok(replies.report);
            }
            self.fill().await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<u8> {
        let words: Vec<&[u8]> = s.split(' ').map(str::as_bytes).collect();
        let mut out = Vec::new();
        encode(&mut out, &words);
        out
    }

    #[test]
    fn encodes_commands_as_arrays_of_bulk_strings() {
        assert_eq!(args("PING"), b"*1\r\n$4\r\nPING\r\n");
        assert_eq!(
            args("SETEX quote:AAPL 600 {}"),
            b"*4\r\n$5\r\nSETEX\r\n$10\r\nquote:AAPL\r\n$3\r\n600\r\n$2\r\n{}\r\n"
        );
        let mut out = Vec::new();
        encode(&mut out, &[b"SET", b"k", b"a\r\nb"]);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\na\r\nb\r\n");
    }

    #[test]
    fn parses_each_reply_kind_and_waits_for_the_rest() {
        assert_eq!(parse(b"+OK\r\n").unwrap(), Some((Reply::Status(b"OK"), 5)));
        assert_eq!(
            parse(b"-ERR x\r\n").unwrap(),
            Some((Reply::Error(b"ERR x"), 8))
        );
        assert_eq!(parse(b":12\r\n+OK").unwrap(), Some((Reply::Integer, 5)));
        assert_eq!(parse(b"$3\r\nabc\r\n").unwrap(), Some((Reply::Bulk, 9)));
        assert_eq!(parse(b"$-1\r\n").unwrap(), Some((Reply::Nil, 5)));
        assert_eq!(parse(b"*2\r\n").unwrap(), Some((Reply::Array(2), 4)));
        for partial in [&b""[..], b"+OK", b"+OK\r", b"$3\r\nab", b"$3\r\nabc\r"] {
            assert_eq!(parse(partial).unwrap(), None, "{partial:?}");
        }
        for bad in [
            &b"+OK\n"[..],
            b"?x\r\n",
            b"$x\r\n",
            b"$3\r\nabcde",
            b"*-2\r\n",
            b"$9223372036854775807\r\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    /// Feeds `wire` one byte at a time, as the slowest socket would deliver it.
    fn run(commands: usize, wire: &[u8]) -> Result<TxReport, RespError> {
        let mut tx = TxReplies::new(commands);
        let mut buf = Vec::new();
        for &b in wire {
            buf.push(b);
            let used = tx.feed(&buf)?;
            buf.drain(..used);
        }
        assert!(tx.done(), "transaction not finished");
        assert!(buf.is_empty(), "bytes left over: {buf:?}");
        Ok(tx.report)
    }

    #[test]
    fn a_transaction_that_ran_reports_its_failed_commands() {
        let ok = b"+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*3\r\n+OK\r\n:1\r\n:0\r\n";
        assert_eq!(run(3, ok).unwrap(), TxReport::default());

        let wrongtype = b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n-WRONGTYPE Operation\r\n:1\r\n";
        assert_eq!(
            run(2, wrongtype).unwrap(),
            TxReport {
                failed: 1,
                first_error: Some("WRONGTYPE Operation".into())
            }
        );

        // Nested arrays and bulk strings inside EXEC's reply are walked, not misread.
        let nested = b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n*2\r\n$1\r\na\r\n$-1\r\n$2\r\nhi\r\n";
        assert_eq!(run(2, nested).unwrap(), TxReport::default());

        // An empty transaction.
        assert_eq!(run(0, b"+OK\r\n*0\r\n").unwrap(), TxReport::default());
    }

    #[test]
    fn a_refused_transaction_is_an_error_with_the_reason() {
        let aborted = b"+OK\r\n-ERR wrong number of arguments\r\n+QUEUED\r\n-EXECABORT Transaction discarded\r\n";
        let mut tx = TxReplies::new(2);
        let e = tx.feed(aborted).unwrap_err().to_string();
        assert!(e.contains("EXECABORT") && e.contains("wrong number"), "{e}");

        let mut tx = TxReplies::new(1);
        let e = tx.feed(b"-NOAUTH Authentication required\r\n").unwrap_err();
        assert!(e.to_string().contains("NOAUTH"), "{e}");

        let mut tx = TxReplies::new(1);
        assert!(
            tx.feed(b"+OK\r\n:1\r\n").is_err(),
            "an integer is not QUEUED"
        );
    }

    #[test]
    fn urls_name_the_address_credentials_and_database() {
        let ep = Endpoint::parse("redis://user:secret@10.0.0.1:6380/3").unwrap();
        assert_eq!(ep.addr, Addr::Tcp("10.0.0.1".into(), 6380));
        assert_eq!(ep.username.as_deref(), Some("user"));
        assert_eq!(ep.password.as_deref(), Some("secret"));
        assert_eq!(ep.db, 3);
        let ep = Endpoint::parse("redis://127.0.0.1").unwrap();
        assert_eq!(
            (ep.addr, ep.password, ep.db),
            (Addr::Tcp("127.0.0.1".into(), 6379), None, 0)
        );
        let ep = Endpoint::parse("redis+unix:///run/redis.sock?db=2").unwrap();
        assert_eq!((ep.addr, ep.db), (Addr::Unix("/run/redis.sock".into()), 2));
        assert!(Endpoint::parse("http://x").is_err());
        // No TLS client is built in: refused at start, not at the first write.
        assert!(Endpoint::parse("rediss://127.0.0.1").is_err());
    }

    #[test]
    fn a_corrupt_nested_array_length_is_refused_not_overflowed() {
        // The case the property test below found: arrays inside EXEC's reply whose lengths
        // add up past usize.
        let huge =
            b"+OK\r\n*9223372036854775807\r\n*9223372036854775807\r\n*9223372036854775807\r\n";
        let e = TxReplies::new(0).feed(huge).unwrap_err();
        assert!(e.to_string().contains("array length"), "{e}");
    }

    /// Pieces of replies, whole and broken, so that random sequences reach every stage.
    const PIECES: &[&[u8]] = &[
        b"+OK\r\n",
        b"+QUEUED\r\n",
        b"-ERR x\r\n",
        b":1\r\n",
        b"$3\r\nabc\r\n",
        b"$-1\r\n",
        b"*0\r\n",
        b"*2\r\n",
        b"*-1\r\n",
        b"*9223372036854775807\r\n",
        b"$536870912\r\n",
        b"$5\r\nab",
        b"\r\n",
        b"\n",
        b"x",
    ];

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 3000, ..Default::default() })]

        /// Whatever arrives, in whatever chunks, the reply walker answers or refuses; it never
        /// panics, never takes more bytes than it was given, and stops at the first error.
        #[test]
        fn any_reply_bytes_are_walked_or_refused_never_a_panic(
            commands in 0usize..6,
            queued in proptest::bool::ANY,
            picks in proptest::collection::vec(0usize..PIECES.len(), 0..40),
            chunk in 1usize..24,
        ) {
            // Half the cases start with a well-formed MULTI and QUEUED replies, so that the
            // random part lands inside EXEC's reply.
            let mut wire = Vec::new();
            if queued {
                wire.extend_from_slice(b"+OK\r\n");
                for _ in 0..commands {
                    wire.extend_from_slice(b"+QUEUED\r\n");
                }
            }
            wire.extend(picks.iter().flat_map(|&i| PIECES[i].iter().copied()));
            let mut tx = TxReplies::new(commands);
            let mut buf = Vec::new();
            for piece in wire.chunks(chunk) {
                buf.extend_from_slice(piece);
                match tx.feed(&buf) {
                    Ok(used) => {
                        proptest::prop_assert!(used <= buf.len());
                        buf.drain(..used);
                    }
                    Err(_) => break,
                }
                if tx.done() {
                    break;
                }
            }
        }
    }
}
