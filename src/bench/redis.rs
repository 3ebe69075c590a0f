//! `tickwire-bench redis-pipeline`: what one results pipeline costs, client and server.
//!
//! Sends MULTI/EXEC pipelines of `writes` published values (SETEX + PUBLISH each, exactly as
//! the cache writer builds them) and reports the best and median wall time per pipeline and
//! per write, next to three costs per write:
//! - Redis's command execution (`INFO commandstats`): the commands alone;
//! - Redis's CPU time (`INFO cpu`): that plus reading and parsing the requests and writing
//!   the replies, which commandstats leaves out and which turns out to be most of it;
//! - this process's CPU time (`/proc/self/stat`): encoding, the socket, reading replies.
//!
//! `--redis-rs` sends the same pipelines through redis-rs instead of the writer's own
//! connection, for the before/after comparison.

use std::time::{Duration, Instant};

use bytes::Bytes;
use deadpool_redis::redis;
use serde::Serialize;

use crate::actors::store::cache_writer::resp::{Connection, Endpoint};
use crate::actors::store::cache_writer::{add_to_pipeline, transaction};
use crate::redis_pool;
use crate::store::CacheWrite;

#[derive(Debug, Serialize)]
pub struct PipelineFigures {
    pub writes: usize,
    pub value_bytes: usize,
    pub rounds: usize,
    pub client: &'static str,
    pub best_ms: f64,
    pub median_ms: f64,
    pub median_us_per_write: f64,
    /// Redis's execution time per write (SETEX + PUBLISH + the MULTI/EXEC share).
    pub server_us_per_write: f64,
    /// Redis's CPU time per write, its I/O and request parsing included.
    pub server_cpu_us_per_write: f64,
    /// This process's CPU time per write (the client's whole share, kernel included).
    pub client_cpu_us_per_write: f64,
}

/// One section of `INFO`.
async fn info(conn: &mut deadpool_redis::Connection, section: &str) -> Result<String, String> {
    redis::cmd("INFO")
        .arg(section)
        .query_async(&mut **conn)
        .await
        .map_err(|e| e.to_string())
}

/// Redis's CPU seconds so far (`used_cpu_user + used_cpu_sys` of `INFO cpu`).
async fn server_cpu(conn: &mut deadpool_redis::Connection) -> Result<f64, String> {
    Ok(info(conn, "cpu")
        .await?
        .lines()
        .filter(|l| l.starts_with("used_cpu_user:") || l.starts_with("used_cpu_sys:"))
        .filter_map(|l| l.split(':').nth(1)?.trim().parse::<f64>().ok())
        .sum())
}

/// This process's CPU seconds so far (utime + stime of `/proc/self/stat`, in the kernel's
/// USER_HZ ticks, 100 a second on Linux); 0 where there is no such file.
fn own_cpu() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // The fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// Total `usec` of the commands in `INFO commandstats`.
async fn server_usec(conn: &mut deadpool_redis::Connection) -> Result<u64, String> {
    Ok(info(conn, "commandstats")
        .await?
        .lines()
        // EXEC's time is the time of the commands it ran, already counted under their names.
        .filter(|l| !l.starts_with("cmdstat_exec:"))
        .filter_map(|l| l.split(",usec=").nth(1))
        .filter_map(|rest| rest.split(',').next()?.parse::<u64>().ok())
        .sum())
}

pub async fn run(
    url: &str,
    writes: usize,
    value_bytes: usize,
    rounds: usize,
    redis_rs: bool,
) -> Result<PipelineFigures, String> {
    let pool = redis_pool::open(url).map_err(|e| e.to_string())?;
    let mut conn = pool.get().await.map_err(|e| e.to_string())?;
    let prefix = format!("bench-pipe-{}:", std::process::id());
    let value = Bytes::from(vec![b'x'; value_bytes]);
    let batch: Vec<CacheWrite> = (0..writes)
        .map(|i| CacheWrite::value(format!("{prefix}quote:SYM{i}"), value.clone(), 600, 1))
        .collect();
    let rounds = rounds.max(1);
    let mut took: Vec<Duration> = Vec::with_capacity(rounds);
    let endpoint = Endpoint::parse(url).map_err(|e| e.to_string())?;
    let mut own = Connection::connect(&endpoint)
        .await
        .map_err(|e| e.to_string())?;
    let before = server_usec(&mut conn).await?;
    let cpu_before = (server_cpu(&mut conn).await?, own_cpu());
    for _ in 0..rounds {
        let t = Instant::now();
        if redis_rs {
            let mut p = redis::pipe();
            p.atomic();
            for w in &batch {
                add_to_pipeline(&mut p, w);
            }
            p.query_async::<()>(&mut *conn)
                .await
                .map_err(|e| e.to_string())?;
        } else {
            let report = own
                .exec(transaction(&batch, None))
                .await
                .map_err(|e| e.to_string())?;
            if report.failed > 0 {
                return Err(format!("commands failed: {:?}", report.first_error));
            }
        }
        took.push(t.elapsed());
    }
    let server = server_usec(&mut conn).await?.saturating_sub(before);
    let server_cpu = server_cpu(&mut conn).await? - cpu_before.0;
    let client_cpu = own_cpu() - cpu_before.1;
    let keys: Vec<String> = batch.iter().map(|w| w.key.clone()).collect();
    for chunk in keys.chunks(500) {
        let _: Result<i64, _> = redis::cmd("DEL").arg(chunk).query_async(&mut *conn).await;
    }
    took.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = took[took.len() / 2];
    let total_writes = (writes * rounds).max(1) as f64;
    Ok(PipelineFigures {
        writes,
        value_bytes,
        rounds,
        client: if redis_rs { "redis-rs" } else { "resp" },
        best_ms: ms(took[0]),
        median_ms: ms(median),
        median_us_per_write: ms(median) * 1000.0 / writes.max(1) as f64,
        server_us_per_write: server as f64 / total_writes,
        server_cpu_us_per_write: server_cpu * 1e6 / total_writes,
        client_cpu_us_per_write: client_cpu * 1e6 / total_writes,
    })
}
