//! A TCP proxy for fault tests: `cut` drops every link and refuses new ones until `restore`
//! (a peer that went away); `freeze` keeps the open links but forwards nothing more on them,
//! either way (a peer that went silent: the socket stays up, no byte and no pong arrives),
//! while new links pass as usual.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

struct Link {
    task: JoinHandle<()>,
    frozen: Arc<AtomicBool>,
}

pub struct Proxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<Link>>>,
    accept: JoinHandle<()>,
}

/// Copies `from` to `to` until either ends; while `frozen`, holds what it read.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while frozen.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

impl Proxy {
    /// A proxy to the shared RabbitMQ.
    pub async fn start() -> Proxy {
        Proxy::start_to(super::rabbit::RABBIT).await
    }

    /// A proxy to `target` (`host:port`).
    pub async fn start_to(target: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let up = Arc::new(AtomicBool::new(true));
        let links: Arc<Mutex<Vec<Link>>> = Arc::default();
        let (up2, links2, target) = (up.clone(), links.clone(), target.to_string());
        let accept = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: connection refused in effect
                }
                let frozen = Arc::new(AtomicBool::new(false));
                let (target, f) = (target.clone(), frozen.clone());
                let task = tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let (ir, iw) = inbound.into_split();
                    let (or, ow) = outbound.into_split();
                    tokio::select! {
                        _ = pump(ir, ow, f.clone()) => {}
                        _ = pump(or, iw, f) => {}
                    }
                });
                links2.lock().unwrap().push(Link { task, frozen });
            }
        });
        Proxy {
            port,
            up,
            links,
            accept,
        }
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Drops every link and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for l in self.links.lock().unwrap().drain(..) {
            l.task.abort();
        }
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }

    /// The open links go silent (nothing forwarded, nothing closed); new links pass.
    pub fn freeze(&self) {
        for l in self.links.lock().unwrap().iter() {
            l.frozen.store(true, Ordering::SeqCst);
        }
    }

    /// Links accepted so far (open or ended).
    pub fn links(&self) -> usize {
        self.links.lock().unwrap().len()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}
