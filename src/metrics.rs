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

/// Observations in fixed buckets (latencies in ms): cheap to record (two relaxed adds),
/// quantiles read as the upper bound of the bucket they fall in.
#[derive(Debug, Clone)]
pub struct Histogram(Arc<HistogramInner>);

#[derive(Debug)]
struct HistogramInner {
    bounds: Vec<f64>,
    /// One per bound, plus +Inf.
    counts: Vec<AtomicU64>,
    /// Sum of observations in thousandths.
    sum_milli: AtomicU64,
}

/// Bucket bounds in ms for hop latencies: fine below 10 ms, coarse above.
pub const LATENCY_BOUNDS_MS: &[f64] = &[
    0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 50.0, 75.0,
    100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
];

impl Histogram {
    pub fn new(bounds: &[f64]) -> Self {
        Histogram(Arc::new(HistogramInner {
            bounds: bounds.to_vec(),
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_milli: AtomicU64::new(0),
        }))
    }

    pub fn observe(&self, v: f64) {
        let v = v.max(0.0);
        let i = self.0.bounds.partition_point(|b| *b < v);
        self.0.counts[i].fetch_add(1, Ordering::Relaxed);
        self.0
            .sum_milli
            .fetch_add((v * 1000.0) as u64, Ordering::Relaxed);
    }

    /// A new histogram holding the observations of all of `parts` (same bounds).
    pub fn merged(bounds: &[f64], parts: &[Histogram]) -> Histogram {
        let h = Histogram::new(bounds);
        for p in parts {
            for (mine, theirs) in h.0.counts.iter().zip(&p.0.counts) {
                mine.fetch_add(theirs.load(Ordering::Relaxed), Ordering::Relaxed);
            }
            h.0.sum_milli
                .fetch_add(p.0.sum_milli.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        h
    }

    pub fn count(&self) -> u64 {
        self.0
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// The bucket bound at or below which a fraction `q` of observations fall (None when
    /// empty; infinity when they fall past the last bound).
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let counts: Vec<u64> = self
            .0
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(self.0.bounds.get(i).copied().unwrap_or(f64::INFINITY));
            }
        }
        Some(f64::INFINITY)
    }
}

#[derive(Debug, Clone)]
enum Handle {
    Counter(Counter),
    Gauge(Gauge),
    Histogram(Histogram),
}

impl Handle {
    fn value(&self) -> i64 {
        match self {
            Handle::Counter(c) => i64::try_from(c.get()).unwrap_or(i64::MAX),
            Handle::Gauge(g) => g.get(),
            Handle::Histogram(h) => i64::try_from(h.count()).unwrap_or(i64::MAX),
        }
    }

    fn json(&self) -> Value {
        match self {
            Handle::Histogram(h) => json!({
                "count": h.count(),
                "p50": h.quantile(0.5),
                "p99": h.quantile(0.99),
            }),
            _ => json!(self.value()),
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

impl Family {
    /// Every series' value, summed over its labels.
    fn sum(&self) -> i64 {
        self.series.values().map(Handle::value).sum()
    }
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

fn render_histogram(out: &mut String, name: &str, labels: &str, h: &Histogram) {
    let sep = if labels.is_empty() { "" } else { "," };
    let mut cumulative = 0;
    for (i, c) in h.0.counts.iter().enumerate() {
        cumulative += c.load(Ordering::Relaxed);
        let le =
            h.0.bounds
                .get(i)
                .map_or("+Inf".to_string(), |b| b.to_string());
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
        );
    }
    let braces = if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    };
    let sum = h.0.sum_milli.load(Ordering::Relaxed) as f64 / 1000.0;
    let _ = writeln!(out, "{name}_sum{braces} {sum}");
    let _ = writeln!(out, "{name}_count{braces} {cumulative}");
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
                "histogram" => Handle::Histogram(Histogram::new(LATENCY_BOUNDS_MS)),
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
            _ => Counter::default(),
        }
    }

    pub fn gauge(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Gauge {
        match self.handle(name, help, "gauge", labels) {
            Handle::Gauge(g) => g,
            _ => Gauge::default(),
        }
    }

    /// A latency histogram in ms ([`LATENCY_BOUNDS_MS`]).
    pub fn histogram(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Histogram {
        match self.handle(name, help, "histogram", labels) {
            Handle::Histogram(h) => h,
            _ => Histogram::new(LATENCY_BOUNDS_MS),
        }
    }

    /// The histogram registered under `name` and `labels`, if any; registers nothing (for
    /// readers such as the benchmarks, which must not restate a metric's help text).
    pub fn find_histogram(&self, name: &str, labels: &[(&str, &str)]) -> Option<Histogram> {
        let families = self.families.lock().unwrap_or_else(|p| p.into_inner());
        match families.get(name)?.series.get(&render_labels(labels))? {
            Handle::Histogram(h) => Some(h.clone()),
            _ => None,
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
                if let Handle::Histogram(hist) = h {
                    render_histogram(&mut out, name, labels, hist);
                } else if labels.is_empty() {
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
                out.insert(key, h.json());
            }
        }
        out
    }

    /// Every [`LOSSES`] counter this node has, summed over its labels, with its unit and
    /// meaning: `/stats` → `lost`.
    pub fn losses(&self) -> Map<String, Value> {
        let families = self.families.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Map::new();
        for loss in LOSSES {
            if let Some(f) = families.get(loss.metric) {
                let total = f.sum();
                out.insert(
                    loss.metric.to_string(),
                    json!({"total": total, "unit": loss.unit, "what": loss.what}),
                );
            }
        }
        out
    }

    /// The sum of every series of `name` (all its labels); 0 when none is registered.
    pub fn total(&self, name: &str) -> i64 {
        let families = self.families.lock().unwrap_or_else(|p| p.into_inner());
        families.get(name).map_or(0, Family::sum)
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

/// One way data can be lost on its way to a browser, and the counter that counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loss {
    pub metric: &'static str,
    /// What one count is (losses are counted where they happen, in that place's unit).
    pub unit: &'static str,
    pub what: &'static str,
}

/// Every loss counter of every node: what `/stats` → `lost` reports, the operations page's
/// "Data lost" panel and the Grafana dashboard's sum over (tests keep all three in step).
pub const LOSSES: &[Loss] = &[
    Loss { metric: "tickwire_router_skipped_frames_total", unit: "frames", what: "frames from Massive that do not parse" },
    Loss { metric: "tickwire_router_skipped_elements_total", unit: "events", what: "elements of a frame that are not events" },
    Loss { metric: "tickwire_listener_binary_frames_total", unit: "frames", what: "binary frames from Massive (not part of the protocol)" },
    Loss { metric: "tickwire_publisher_dropped_batches_total", unit: "batches", what: "oldest batches dropped from the full publish buffer (RabbitMQ slow or away)" },
    Loss { metric: "tickwire_publisher_failed_total", unit: "messages", what: "publishes that failed (the link went down; with confirms: not confirmed)" },
    Loss { metric: "tickwire_publisher_unconfirmed_at_loss_total", unit: "messages", what: "without confirms: handed to the AMQP client just before a link loss (at most this many)" },
    Loss { metric: "tickwire_publisher_stopped_unpublished_total", unit: "frames and batches", what: "still unpublished when a stopping listener's grace ran out" },
    Loss { metric: "tickwire_consumer_expired_events_total", unit: "events", what: "expired in RabbitMQ before any processor took them" },
    Loss { metric: "tickwire_consumer_dead_lettered_other_total", unit: "messages", what: "dead-lettered by RabbitMQ for another reason than expiry" },
    Loss { metric: "tickwire_consumer_expired_news_total", unit: "articles", what: "news articles expired in RabbitMQ before any processor took them" },
    Loss { metric: "tickwire_news_unreadable_messages_total", unit: "messages", what: "messages from Finlight that could not be read" },
    Loss { metric: "tickwire_news_dropped_total", unit: "articles", what: "oldest articles dropped from the full news buffer (RabbitMQ away)" },
    Loss { metric: "tickwire_news_skipped_total", unit: "articles", what: "articles not filed (not an object, no link or no title)" },
    Loss { metric: "tickwire_consumer_rejected_total", unit: "messages", what: "queue messages that are not envelopes" },
    Loss { metric: "tickwire_processor_decode_errors_total", unit: "events", what: "events the processor could not decode" },
    Loss { metric: "tickwire_cache_dropped_total", unit: "writes", what: "results that could not be written to Redis" },
    Loss { metric: "tickwire_wds_dropped_total", unit: "frames", what: "frames a slow client's full outbox dropped" },
    Loss { metric: "tickwire_actor_undelivered_total", unit: "messages", what: "sent to an actor that had stopped" },
];

/// Something a node counts: registered under a name, a help text and labels.
pub trait Figure: Clone {
    fn register(r: &Registry, name: &str, help: &str, labels: &[(&str, &str)]) -> Self;
}

impl Figure for Counter {
    fn register(r: &Registry, name: &str, help: &str, labels: &[(&str, &str)]) -> Self {
        r.counter(name, help, labels)
    }
}

impl Figure for Gauge {
    fn register(r: &Registry, name: &str, help: &str, labels: &[(&str, &str)]) -> Self {
        r.gauge(name, help, labels)
    }
}

impl Figure for Histogram {
    fn register(r: &Registry, name: &str, help: &str, labels: &[(&str, &str)]) -> Self {
        r.histogram(name, help, labels)
    }
}

/// An actor's standard figures, "registered" under the actor's name (its `actor` label).
impl Figure for ActorMetrics {
    fn register(r: &Registry, actor: &str, _: &str, _: &[(&str, &str)]) -> Self {
        ActorMetrics::new(r, actor)
    }
}

/// One metric with one more label, a series per value (`status="auth_failed"`, ...), the
/// values fixed at registration so the label stays bounded.
#[derive(Debug, Clone)]
pub struct Labeled<F> {
    series: Vec<(&'static str, F)>,
}

impl<F: Figure> Labeled<F> {
    #[allow(clippy::too_many_arguments)]
    pub fn register(
        r: &Registry,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        label: &str,
        values: &[&'static str],
    ) -> Self {
        let series = values
            .iter()
            .map(|v| {
                let mut l = labels.to_vec();
                l.push((label, v));
                (*v, F::register(r, name, help, &l))
            })
            .collect();
        Labeled { series }
    }

    /// The series of `value` (None for a value not registered).
    pub fn get(&self, value: &str) -> Option<&F> {
        self.series
            .iter()
            .find(|(v, _)| *v == value)
            .map(|(_, f)| f)
    }

    /// The series of the `i`th value given at registration.
    pub fn at(&self, i: usize) -> Option<&F> {
        self.series.get(i).map(|(_, f)| f)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &F)> {
        self.series.iter().map(|(v, f)| (*v, f))
    }
}

impl Labeled<Counter> {
    /// Counts one for `value`; a value outside the registered ones is not counted.
    pub fn inc(&self, value: &str) {
        if let Some(c) = self.get(value) {
            c.inc();
        }
    }
}

/// Declares a set of figures registered together: a struct of handles whose every field is
/// named once, with its metric name, and explained once, by its doc comment (the help text).
///
/// ```ignore
/// figures! {
///     /// The queue consumer's figures.
///     pub struct ConsumerFigures {
///         /// Queue messages handled and acked
///         pub messages: Counter = "example_messages_total";
///         /// Status messages, by status
///         pub status: Counter = "example_status_total", by "status" in &["ok", "error"];
///     }
/// }
/// let f = ConsumerFigures::register(&registry, &[("market", "stocks")]);
/// ```
///
/// A field with `by LABEL in VALUES` is a [`Labeled`] family; an [`ActorMetrics`] field
/// names the actor instead of a metric.
#[macro_export]
macro_rules! figures {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[doc = $help:literal])+
                $fvis:vis $field:ident : $kind:ty = $metric:literal $(, by $label:literal in $values:expr)? ;
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone)]
        $vis struct $name {
            $(
                $(#[doc = $help])+
                $fvis $field: $crate::figures!(@ty $kind $(, $label)?),
            )*
        }

        impl $name {
            /// Registers every figure of the set, each with `labels`.
            #[allow(dead_code)]
            $vis fn register(r: &$crate::metrics::Registry, labels: &[(&str, &str)]) -> Self {
                $name {
                    $(
                        $field: $crate::figures!(
                            @reg r, labels, $kind, $metric, concat!($($help),+).trim()
                            $(, $label, $values)?
                        ),
                    )*
                }
            }
        }
    };
    (@ty $kind:ty) => { $kind };
    (@ty $kind:ty, $label:literal) => { $crate::metrics::Labeled<$kind> };
    (@reg $r:ident, $labels:ident, $kind:ty, $metric:literal, $help:expr) => {
        <$kind as $crate::metrics::Figure>::register($r, $metric, $help, $labels)
    };
    (@reg $r:ident, $labels:ident, $kind:ty, $metric:literal, $help:expr, $label:literal, $values:expr) => {
        $crate::metrics::Labeled::<$kind>::register($r, $metric, $help, $labels, $label, $values)
    };
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
    /// Messages sent to the actor after it had stopped: lost, so counted.
    pub undelivered: Counter,
}

impl ActorMetrics {
    const FIELDS: [(&'static str, &'static str); 5] = [
        ("tickwire_actor_mailbox_depth", "mailbox_depth"),
        ("tickwire_actor_messages_in_total", "messages_in"),
        ("tickwire_actor_messages_out_total", "messages_out"),
        ("tickwire_actor_errors_total", "errors"),
        ("tickwire_actor_undelivered_total", "undelivered"),
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
            undelivered: registry.counter(
                Self::FIELDS[4].0,
                "Messages sent to the actor after it had stopped (lost)",
                &l,
            ),
        }
    }

    pub fn enqueued(&self) {
        self.mailbox_depth.inc();
    }

    pub fn received(&self) {
        self.mailbox_depth.dec();
        self.messages_in.inc();
    }

    /// A message for an actor that has stopped: dropped by actix, so counted here; the
    /// first and every 1,000th logged.
    pub fn undeliverable(&self, what: &str) {
        let n = self.undelivered.get();
        self.undelivered.inc();
        if n.is_multiple_of(1000) {
            log::warn!("{what} sent to a stopped actor: lost ({} so far)", n + 1);
        }
    }

    /// For messages that arrive from a plain `Addr` (control, queries), not through a
    /// [`CountedRecipient`](crate::recipient::CountedRecipient): counted in, not in the depth.
    pub fn handled(&self) {
        self.messages_in.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losses_sum_each_known_counter_over_its_labels_and_skip_the_rest() {
        let r = Registry::new();
        let by_queue = |q| {
            r.counter(
                "tickwire_publisher_dropped_batches_total",
                "d",
                &[("queue", q)],
            )
        };
        by_queue("trades").add(2);
        by_queue("quotes").add(3);
        r.counter("tickwire_wds_dropped_total", "d", &[]);
        r.counter("tickwire_not_a_loss_total", "x", &[]).inc();
        let lost = r.losses();
        assert_eq!(lost.len(), 2);
        assert_eq!(lost["tickwire_publisher_dropped_batches_total"]["total"], 5);
        assert_eq!(
            lost["tickwire_publisher_dropped_batches_total"]["unit"],
            "batches"
        );
        assert_eq!(lost["tickwire_wds_dropped_total"]["total"], 0);
    }

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
    fn histogram_quantiles_and_rendering() {
        let r = Registry::new();
        let h = r.histogram("tickwire_hop_ms", "hop", &[("stage", "x")]);
        assert_eq!(h.quantile(0.5), None);
        for _ in 0..98 {
            h.observe(0.9);
        }
        h.observe(4.5);
        h.observe(20_000.0);
        assert_eq!(h.quantile(0.5), Some(1.0));
        assert_eq!(h.quantile(0.99), Some(5.0));
        assert_eq!(h.quantile(1.0), Some(f64::INFINITY));
        let text = r.render_prometheus();
        assert!(text.contains("# TYPE tickwire_hop_ms histogram\n"));
        assert!(text.contains("tickwire_hop_ms_bucket{stage=\"x\",le=\"1\"} 98\n"));
        assert!(text.contains("tickwire_hop_ms_bucket{stage=\"x\",le=\"+Inf\"} 100\n"));
        assert!(text.contains("tickwire_hop_ms_count{stage=\"x\"} 100\n"));
        assert_eq!(r.snapshot()["tickwire_hop_ms{stage=\"x\"}"]["p50"], 1.0);
    }

    #[test]
    fn find_histogram_reads_without_registering() {
        let r = Registry::new();
        let h = r.histogram("tickwire_hop_ms", "hop", &[("stage", "x")]);
        let found = r
            .find_histogram("tickwire_hop_ms", &[("stage", "x")])
            .unwrap();
        found.observe(1.0);
        assert_eq!(h.count(), 1, "the same histogram, not a copy");
        assert!(r
            .find_histogram("tickwire_hop_ms", &[("stage", "y")])
            .is_none());
        assert!(r.find_histogram("tickwire_nope_ms", &[]).is_none());
        r.counter("tickwire_count_total", "c", &[]);
        assert!(r.find_histogram("tickwire_count_total", &[]).is_none());
        assert!(
            !r.render_prometheus().contains("stage=\"y\""),
            "nothing registered"
        );
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

    crate::figures! {
        /// A set for the test.
        struct TestFigures {
            /// The test actor's messages
            actor: ActorMetrics = "tester";
            /// Things counted,
            /// over two lines
            things: Counter = "tickwire_test_things_total";
            /// Outcomes, by outcome
            outcomes: Counter = "tickwire_test_outcomes_total", by "outcome" in &["ok", "error"];
        }
    }

    #[test]
    fn a_figure_set_registers_each_figure_once_with_its_doc_as_help() {
        let r = Registry::new();
        let f = TestFigures::register(&r, &[("market", "stocks")]);
        f.things.inc();
        f.outcomes.inc("error");
        f.outcomes.inc("not registered");
        f.actor.errors.inc();
        let text = r.render_prometheus();
        assert!(text.contains("# HELP tickwire_test_things_total Things counted, over two lines\n"));
        assert!(text.contains("tickwire_test_things_total{market=\"stocks\"} 1\n"));
        assert!(
            text.contains("tickwire_test_outcomes_total{market=\"stocks\",outcome=\"error\"} 1\n")
        );
        assert!(text.contains("tickwire_test_outcomes_total{market=\"stocks\",outcome=\"ok\"} 0\n"));
        assert_eq!(r.actors()["tester"]["errors"], 1);
        assert_eq!(f.outcomes.at(1).map(Counter::get), Some(1));
        assert!(f.outcomes.at(2).is_none());
        let again = TestFigures::register(&r, &[("market", "stocks")]);
        assert_eq!(again.things.get(), 1, "the same series, not a second one");
    }
}
