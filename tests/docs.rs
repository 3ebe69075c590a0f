//! The docs and the deploy files agree with the code: every setting the binaries read is in
//! docs/configuration.md, every metric the nodes register is in docs/operations.md, and every
//! metric the Prometheus alert rules and the Grafana dashboard use is one the nodes register.
//! These lists drift silently otherwise: a new flag or counter is easy to forget in the docs,
//! and an alert on a renamed metric never fires.

use std::collections::BTreeSet;
use std::path::PathBuf;

#[path = "common/sources.rs"]
mod sources;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Library and binary sources, each without its test module (by convention the tail of the
/// file from `#[cfg(test)]`), so names that only tests make up are not counted.
fn sources() -> Vec<(PathBuf, String)> {
    let out: Vec<(PathBuf, String)> = sources::rust_files(&root().join("src"))
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            let code = match text.find("#[cfg(test)]") {
                Some(i) => text[..i].to_string(),
                None => text,
            };
            (path, code)
        })
        .collect();
    assert!(!out.is_empty(), "no sources found under src/");
    out
}

fn is_word(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'
}

/// The run of `[a-z0-9_]` that `text` starts with.
fn word_at(text: &str) -> &str {
    let end = text.find(|c: char| !is_word(c)).unwrap_or(text.len());
    &text[..end]
}

/// Every whole word of `text` that starts with `start`.
fn words_from<'a>(text: &'a str, start: &str) -> Vec<&'a str> {
    text.match_indices(start)
        .filter(|(i, _)| !text[..*i].ends_with(is_word))
        .map(|(i, _)| word_at(&text[i..]))
        .collect()
}

/// Metric names the code registers: the whole string literals that start with `tickwire_`.
fn registered_metrics() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (_, code) in sources() {
        for (i, _) in code.match_indices("\"tickwire_") {
            let rest = &code[i + 1..];
            let name = word_at(rest);
            if rest[name.len()..].starts_with('"') {
                names.insert(name.to_string());
            }
        }
    }
    names
}

/// Metric names docs/operations.md documents. Its tables abbreviate: after a full name, a
/// `_suffix` in the same line stands for the full name with its tail replaced, as in
/// `tickwire_processor_events_total{shard}`, `_decode_errors_total`. Every such reading is
/// accepted, since the check is that a name is there, not which abbreviation was meant.
fn documented_metrics(doc: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in doc.lines() {
        let mut full: Vec<String> = Vec::new();
        for (i, quoted) in line.split('`').enumerate() {
            if i % 2 == 0 {
                continue; // outside backticks
            }
            let name = quoted.split('{').next().unwrap_or_default();
            if name.is_empty() || word_at(name) != name {
                continue;
            }
            if name.starts_with("tickwire_") {
                names.insert(name.to_string());
                full.push(name.to_string());
            } else if name.starts_with('_') {
                for f in &full {
                    let parts: Vec<&str> = f.split('_').collect();
                    for k in 2..=parts.len() {
                        names.insert(format!("{}{name}", parts[..k].join("_")));
                    }
                }
            }
        }
    }
    names
}

#[test]
fn every_setting_is_documented() {
    let doc = read("docs/configuration.md");
    let mut settings = BTreeSet::new();
    for (_, code) in sources() {
        for (i, _) in code.match_indices("env = \"") {
            let rest = &code[i + "env = \"".len()..];
            if let Some(end) = rest.find('"') {
                settings.insert(rest[..end].to_string());
            }
        }
    }
    assert!(
        settings.len() > 50,
        "found only {} settings: has the clap `env = \"...\"` form changed?",
        settings.len()
    );
    let missing: Vec<_> = settings
        .iter()
        .filter(|v| !doc.contains(&format!("`{v}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "environment variables the binaries read but docs/configuration.md does not list: {missing:?}"
    );
}

#[test]
fn every_metric_is_documented() {
    let registered = registered_metrics();
    assert!(
        registered.len() > 100,
        "found only {} metric names: has the registry's naming changed?",
        registered.len()
    );
    let documented = documented_metrics(&read("docs/operations.md"));
    let missing: Vec<_> = registered.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "metrics the nodes register but docs/operations.md does not list: {missing:?}"
    );
}

/// The metrics a deploy file names (comment lines aside), histogram series by their base name.
fn metrics_used_in(rel: &str) -> BTreeSet<String> {
    let text = read(rel);
    let mut used = BTreeSet::new();
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        for name in words_from(line, "tickwire_") {
            // Histograms are exported as `_bucket`, `_count` and `_sum` series.
            let base = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            used.insert(base.to_string());
        }
    }
    assert!(
        used.len() > 20,
        "found only {} metrics in {rel}",
        used.len()
    );
    used
}

/// An alert on a metric no node registers never fires; a panel on one stays empty.
#[test]
fn the_alert_rules_and_the_dashboard_use_only_registered_metrics() {
    let registered = registered_metrics();
    for file in [
        "deploy/prometheus/alerts.yml",
        "deploy/grafana/dashboards/tickwire.json",
    ] {
        let used = metrics_used_in(file);
        let unknown: Vec<_> = used.difference(&registered).collect();
        assert!(
            unknown.is_empty(),
            "{file} uses metrics no node registers: {unknown:?}"
        );
    }
}

/// The loss catalogue (`tickwire::metrics::LOSSES`) names counters a node really registers
/// (a second literal besides the catalogue's own), and the dashboard's "Data lost" panel sums
/// every one of them: a new loss path shows up on the operations page by itself, and this
/// keeps the dashboard in step.
#[test]
fn every_loss_path_is_a_registered_counter_on_the_dashboard() {
    let all: String = sources().into_iter().map(|(_, code)| code).collect();
    let dashboard = metrics_used_in("deploy/grafana/dashboards/tickwire.json");
    let documented = documented_metrics(&read("docs/operations.md"));
    for loss in tickwire::metrics::LOSSES {
        let literal = format!("\"{}\"", loss.metric);
        assert!(
            all.matches(&literal).count() >= 2,
            "{} is in LOSSES but no node registers it",
            loss.metric
        );
        assert!(
            dashboard.contains(loss.metric),
            "{} is not on the dashboard",
            loss.metric
        );
        assert!(
            documented.contains(loss.metric),
            "{} is not in docs/operations.md",
            loss.metric
        );
    }
}

#[test]
fn the_abbreviations_in_the_metric_tables_are_read() {
    let doc = "| `tickwire_processor_events_total{shard}`, `_decode_errors_total` | counter |\n\
               | `tickwire_actor_messages_in_total{actor}` / `_out_total` | counter |";
    let names = documented_metrics(doc);
    assert!(names.contains("tickwire_processor_events_total"));
    assert!(names.contains("tickwire_processor_decode_errors_total"));
    assert!(names.contains("tickwire_actor_messages_out_total"));
    assert!(!names.contains("tickwire_wds_sessions"));
}
