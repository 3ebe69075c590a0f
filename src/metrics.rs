//! Counters and gauges for every node: one registry, two views.
//!
//! Each component registers its metrics once, at start, and keeps the returned handles (plain
//! atomics, so counting costs one relaxed add on the hot path). The admin HTTP server renders
//! the same registry as Prometheus text (`/metrics`) and as JSON (`/stats`), so the two views
//! can never disagree. Names follow `tickwire_<component>_<name>[_unit]_total`; labels are
//! bounded (queue, market, reason, actor), never a ticker or a client id.
//!
//! The registry is passed around as `Arc<Registry>` rather than being a global, so that tests
//! can run several nodes in one process and read each node's own numbers.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Map, Value};

/// A monotonically increasing count.
#[derive(Debug, Clone, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down (depths, connection counts, states).
#[derive(Debug, Clone, Default)]
pub struct Gauge(Arc<AtomicI64>);

impl Gauge {
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Clone)]
enum Handle {
    Counter(Counter),
    Gauge(Gauge),
}

impl Handle {
    fn value(&self) -> i64 {
        match self {
            Handle::Counter(c) => i64::try_from(c.get()).unwrap_or(i64::MAX),
            Handle::Gauge(g) => g.get(),
        }
    }
}

#[derive(Debug)]
struct Family {
    help: String,
    kind: &'static str,
    /// Rendered label set (`a="x",b="y"`, or empty) -> handle.
    series: BTreeMap<String, Handle>,
}

/// All metrics of one node.
#[derive(Debug, Default)]
pub struct Registry {
    families: Mutex<BTreeMap<String, Family>>,
}

fn render_labels(labels: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (n, (k, v)) in labels.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        let v = v
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        let _ = write!(out, "{k}=\"{v}\"");
    }
    out
}

impl Registry {
    pub fn new() -> Arc<Self> {
        Arc::new(Registry::default())
    }

    fn handle(
        &self,
        name: &str,
        help: &str,
        kind: &'static str,
        labels: &[(&str, &str)],
    ) -> Handle {
        let mut families = self.families.lock().unwrap_or_else(|p| p.into_inner());
        let family = families.entry(name.to_string()).or_insert_with(|| Family {
            help: help.to_string(),
            kind,
            series: BTreeMap::new(),
        });
        family
            .series
            .entry(render_labels(labels))
            .or_insert_with(|| match kind {
                "counter" => Handle::Counter(Counter::default()),
                _ => Handle::Gauge(Gauge::default()),
            })
            .clone()
    }

    /// Registers (or finds) a counter. Registering the same name and labels twice returns the
    /// same counter, so restarted actors keep counting where they left off.
    pub fn counter(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Counter {
        match self.handle(name, help, "counter", labels) {
            Handle::Counter(c) => c,
            // A name registered as a gauge and asked for as a counter is a programming error;
            // a detached counter keeps the node running and the test suite catches the clash.
            Handle::Gauge(_) => Counter::default(),
        }
    }

    pub fn gauge(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Gauge {
        match self.handle(name, help, "gauge", labels) {
            Handle::Gauge(g) => g,
            Handle::Counter(_) => Gauge::default(),
        }
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render_prometheus(&self) -> String {
        let families = self.families.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        for (name, f) in families.iter() {
            let _ = writeln!(out, "# HELP {name} {}", f.help);
            let _ = writeln!(out, "# TYPE {name} {}", f.kind);
            for (labels, h) in &f.series {
                if labels.is_empty() {
                    let _ = writeln!(out, "{name} {}", h.value());
                } else {
                    let _ = writeln!(out, "{name}{{{labels}}} {}", h.value());
                }
            }
        }
        out
    }

    /// Every series as `{"name{labels}": value}`.
    pub fn snapshot(&self) -> Map<String, Value> {
        let families = self.families.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Map::new();
        for (name, f) in families.iter() {
            for (labels, h) in &f.series {
                let key = if labels.is_empty() {
                    name.clone()
                } else {
                    format!("{name}{{{labels}}}")
                };
                out.insert(key, json!(h.value()));
            }
        }
        out
    }

    /// The value of one series, for tests and readiness checks.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<i64> {
        let families = self.families.lock().unwrap_or_else(|p| p.into_inner());
        families
            .get(name)?
            .series
            .get(&render_labels(labels))
            .map(Handle::value)
    }

    /// Per-actor figures grouped by actor name, for `/stats`.
    pub fn actors(&self) -> Map<String, Value> {
        let families = self.families.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Map<String, Value> = Map::new();
        for (name, field) in ActorMetrics::FIELDS {
            let Some(f) = families.get(name) else {
                continue;
            };
            for (labels, h) in &f.series {
                let actor = labels
                    .strip_prefix("actor=\"")
                    .and_then(|s| s.strip_suffix('"'))
                    .unwrap_or(labels)
                    .to_string();
                let entry = out.entry(actor).or_insert_with(|| json!({}));
                if let Some(obj) = entry.as_object_mut() {
                    obj.insert(field.to_string(), json!(h.value()));
                }
            }
        }
        out
    }
}

/// The standard figures of one actor: mailbox depth, messages in and out, errors.
///
/// actix does not expose a mailbox's length, so depth is counted at both ends: the sender
/// calls [`ActorMetrics::enqueued`] when it hands a message over, the handler calls
/// [`ActorMetrics::received`] when it starts on it.
#[derive(Debug, Clone)]
pub struct ActorMetrics {
    pub mailbox_depth: Gauge,
    pub messages_in: Counter,
    pub messages_out: Counter,
    pub errors: Counter,
}

impl ActorMetrics {
    const FIELDS: [(&'static str, &'static str); 4] = [
        ("tickwire_actor_mailbox_depth", "mailbox_depth"),
        ("tickwire_actor_messages_in_total", "messages_in"),
        ("tickwire_actor_messages_out_total", "messages_out"),
        ("tickwire_actor_errors_total", "errors"),
    ];

    pub fn new(registry: &Registry, actor: &str) -> Self {
        let l = [("actor", actor)];
        ActorMetrics {
            mailbox_depth: registry.gauge(
                Self::FIELDS[0].0,
                "Messages waiting in the actor's mailbox",
                &l,
            ),
            messages_in: registry.counter(Self::FIELDS[1].0, "Messages the actor has handled", &l),
            messages_out: registry.counter(Self::FIELDS[2].0, "Messages the actor has sent on", &l),
            errors: registry.counter(Self::FIELDS[3].0, "Errors the actor has met", &l),
        }
    }

    pub fn enqueued(&self) {
        self.mailbox_depth.inc();
    }

    pub fn received(&self) {
        self.mailbox_depth.dec();
        self.messages_in.inc();
    }

    /// For messages that arrive from a plain `Addr` (control, queries), not through a
    /// [`Mailbox`](crate::actors::Mailbox): counted in, not in the depth.
    pub fn handled(&self) {
        self.messages_in.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_series_is_shared_and_rendered_once() {
        let r = Registry::new();
        let a = r.counter("tickwire_x_total", "x things", &[("queue", "trades")]);
        let b = r.counter("tickwire_x_total", "x things", &[("queue", "trades")]);
        a.inc();
        b.add(2);
        r.gauge("tickwire_depth", "depth", &[]).set(-3);
        let text = r.render_prometheus();
        assert!(text.contains("# TYPE tickwire_x_total counter\n"));
        assert!(text.contains("tickwire_x_total{queue=\"trades\"} 3\n"));
        assert!(text.contains("tickwire_depth -3\n"));
        assert_eq!(r.value("tickwire_x_total", &[("queue", "trades")]), Some(3));
        assert_eq!(r.snapshot()["tickwire_x_total{queue=\"trades\"}"], 3);
    }

    #[test]
    fn actor_metrics_group_by_actor() {
        let r = Registry::new();
        let m = ActorMetrics::new(&r, "feed");
        m.enqueued();
        m.enqueued();
        m.received();
        m.errors.inc();
        let actors = r.actors();
        assert_eq!(actors["feed"]["mailbox_depth"], 1);
        assert_eq!(actors["feed"]["messages_in"], 1);
        assert_eq!(actors["feed"]["errors"], 1);
    }
}
