//! News (reference-system.md §3.8): each article goes to the latest-news list and to one
//! list per US-listed ticker it is about, and is published on the channel of the same name.
//!
//! - `news:feed:latest`: newest first, 10,000 kept, 2 days.
//! - `news:ticker:{T}`: newest first, 100 kept, 7 days.
//!
//! Tickers come from the companies Finlight tagged, where the primary listing is on a US
//! exchange (MIC `XNYS`, `XASE`, `XNAS`); untagged (raw) articles are searched for
//! `NASDAQ: T`, `NYSE: T`, `AMEX: T` in title and summary, as the reference did.
//!
//! The reference pushed an article again each time Finlight sent it; here a repeat of a link
//! already listed (an update, or the same article sent twice) replaces the listed copy
//! ([`WriteOp::Replace`]), so a list never shows one story twice. The links remembered for
//! that are bounded (the feed's cap): an article older than that is pushed as new.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

use crate::finlight::ArticleFields;
use crate::store::{CacheWrite, WriteOp};

/// The latest-news list (and channel).
pub const FEED_KEY: &str = "news:feed:latest";
/// Prefix of the per-ticker lists (and channels): `news:ticker:{T}`.
pub const TICKER_KEY_PREFIX: &str = "news:ticker:";
/// Exchanges (MIC) whose listings count as US tickers.
pub const US_EXCHANGES: [&str; 3] = ["XNYS", "XASE", "XNAS"];

/// Caps and lifetimes of the news lists (the reference's defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewsConfig {
    pub results_prefix: String,
    pub feed_cap: usize,
    pub feed_ttl_secs: u64,
    pub ticker_cap: usize,
    pub ticker_ttl_secs: u64,
}

impl Default for NewsConfig {
    fn default() -> Self {
        NewsConfig {
            results_prefix: String::new(),
            feed_cap: 10_000,
            feed_ttl_secs: 172_800,
            ticker_cap: 100,
            ticker_ttl_secs: 604_800,
        }
    }
}

/// Why an article was skipped (counted by the caller).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NewsError {
    #[error("not an article object: {0}")]
    Malformed(String),
    #[error("article without a link")]
    NoLink,
    #[error("article without a title")]
    NoTitle,
}

/// The US tickers an article is about, upper-cased, de-duplicated, in order.
pub fn tickers(a: &ArticleFields) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |t: &str| {
        let t = t.trim().to_ascii_uppercase();
        if !t.is_empty() && t.len() <= 10 && !out.contains(&t) {
            out.push(t);
        }
    };
    let companies = a.companies.as_deref().unwrap_or_default();
    if companies.is_empty() {
        let text = format!(
            "{} {}",
            a.title.as_deref().unwrap_or(""),
            a.summary.as_deref().unwrap_or("")
        );
        for t in text_tickers(&text) {
            add(&t);
        }
        return out;
    }
    for c in companies {
        let listing = c.primary_listing.as_ref();
        let mic = listing
            .and_then(|l| l.exchange_code.as_deref())
            .or(c.exchange.as_deref());
        if !mic.is_some_and(|m| US_EXCHANGES.contains(&m.to_ascii_uppercase().as_str())) {
            continue;
        }
        if let Some(t) = listing
            .and_then(|l| l.ticker.as_deref())
            .or(c.ticker.as_deref())
        {
            add(t);
        }
    }
    out
}

/// `NASDAQ: AAPL`, `nyse:ibm`, `AMEX : SPY` in free text: the exchange word (any case),
/// optional spaces, a colon, optional spaces, then 1 to 6 letters.
pub fn text_tickers(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let word = ["NASDAQ", "NYSE", "AMEX"].into_iter().find(|w| {
            b.len() - i >= w.len()
                && b[i..i + w.len()].eq_ignore_ascii_case(w.as_bytes())
                && (i == 0 || !b[i - 1].is_ascii_alphanumeric())
        });
        let Some(word) = word else {
            i += 1;
            continue;
        };
        let mut j = i + word.len();
        while j < b.len() && b[j] == b' ' {
            j += 1;
        }
        if j < b.len() && b[j] == b':' {
            j += 1;
            while j < b.len() && b[j] == b' ' {
                j += 1;
            }
            let start = j;
            while j < b.len() && b[j].is_ascii_alphabetic() && j - start < 7 {
                j += 1;
            }
            let len = j - start;
            let ends = j == b.len() || !b[j].is_ascii_alphanumeric();
            if (1..=6).contains(&len) && ends {
                let t = text[start..j].to_ascii_uppercase();
                if !out.contains(&t) {
                    out.push(t);
                }
            }
        }
        i += word.len();
    }
    out
}

/// The news lists' state: which bytes each recent link is listed with, and under which
/// tickers, so that a repeat replaces them.
#[derive(Debug)]
pub struct NewsDesk {
    cfg: NewsConfig,
    listed: HashMap<String, (Bytes, Vec<String>)>,
    order: VecDeque<String>,
}

/// What one article did.
#[derive(Debug, PartialEq, Eq)]
pub struct Filed {
    pub tickers: usize,
    /// It replaced an earlier copy of the same link.
    pub replaced: bool,
}

impl NewsDesk {
    pub fn new(cfg: NewsConfig) -> Self {
        NewsDesk {
            cfg,
            listed: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    pub fn config(&self) -> &NewsConfig {
        &self.cfg
    }

    /// Links remembered for replacing repeats.
    pub fn remembered(&self) -> usize {
        self.listed.len()
    }

    /// Remembers an article already in the feed list (read back at start, newest first
    /// given last-to-first), so a repeat after a restart still replaces it.
    pub fn remember(&mut self, article: Bytes) {
        let Ok(fields) = ArticleFields::parse(&article) else {
            return;
        };
        let Some(link) = fields.link.clone().filter(|l| !l.is_empty()) else {
            return;
        };
        let t = tickers(&fields);
        self.note(link, article, t);
    }

    fn note(
        &mut self,
        link: String,
        article: Bytes,
        tickers: Vec<String>,
    ) -> Option<(Bytes, Vec<String>)> {
        let old = self.listed.insert(link.clone(), (article, tickers));
        if old.is_none() {
            self.order.push_back(link);
            while self.order.len() > self.cfg.feed_cap.max(1) {
                if let Some(gone) = self.order.pop_front() {
                    self.listed.remove(&gone);
                }
            }
        }
        old
    }

    /// The writes for one article (its original bytes), appended to `out`.
    pub fn file(
        &mut self,
        article: Bytes,
        received_at_ms: i64,
        out: &mut Vec<CacheWrite>,
    ) -> Result<Filed, NewsError> {
        let fields =
            ArticleFields::parse(&article).map_err(|e| NewsError::Malformed(e.to_string()))?;
        let link = fields
            .link
            .clone()
            .filter(|l| !l.is_empty())
            .ok_or(NewsError::NoLink)?;
        // The reference's widgets drop items without a title: don't list them.
        if fields.title.as_deref().is_none_or(|t| t.trim().is_empty()) {
            return Err(NewsError::NoTitle);
        }
        let t = tickers(&fields);
        let old = self.note(link, article.clone(), t.clone());
        let p = &self.cfg.results_prefix;
        let write = |key: String, cap: usize, ttl: u64, old: Option<&Bytes>| CacheWrite {
            key,
            value: article.clone(),
            op: match old {
                Some(old) => WriteOp::Replace {
                    old: old.clone(),
                    cap,
                    ttl_secs: ttl,
                },
                None => WriteOp::Push { cap, ttl_secs: ttl },
            },
            publish: true,
            received_at_ms,
        };
        let old_bytes = old.as_ref().map(|(b, _)| b);
        out.push(write(
            format!("{p}{FEED_KEY}"),
            self.cfg.feed_cap,
            self.cfg.feed_ttl_secs,
            old_bytes,
        ));
        for sym in &t {
            // Replace only where the old copy was listed too; a ticker new to the story
            // gets a plain push.
            let was_listed = old.as_ref().is_some_and(|(_, ts)| ts.contains(sym));
            out.push(write(
                format!("{p}{TICKER_KEY_PREFIX}{sym}"),
                self.cfg.ticker_cap,
                self.cfg.ticker_ttl_secs,
                old_bytes.filter(|_| was_listed),
            ));
        }
        Ok(Filed {
            tickers: t.len(),
            replaced: old.is_some(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn article(link: &str, extra: &str) -> Bytes {
        Bytes::from(format!(r#"{{"link":"{link}","title":"Headline"{extra}}}"#))
    }

    fn company(ticker: &str, mic: &str) -> String {
        format!(
            r#"{{"companyId":1,"name":"N","ticker":"{ticker}","primaryListing":{{"ticker":"{ticker}","exchangeCode":"{mic}","exchangeCountry":"US"}}}}"#
        )
    }

    #[test]
    fn tickers_come_from_us_listings_in_order() {
        let a = ArticleFields::parse(&article(
            "l",
            &format!(
                r#","companies":[{},{},{},{}]"#,
                company("aapl", "XNAS"),
                company("SAP", "XETR"),
                company("IBM", "xnys"),
                company("AAPL", "XNAS")
            ),
        ))
        .unwrap();
        assert_eq!(tickers(&a), ["AAPL", "IBM"]);
        // No primary listing: the company's own exchange and ticker.
        let a = ArticleFields::parse(&article(
            "l",
            r#","companies":[{"ticker":"spy","exchange":"XASE"},{"ticker":"X"}]"#,
        ))
        .unwrap();
        assert_eq!(tickers(&a), ["SPY"]);
    }

    #[test]
    fn untagged_articles_are_searched_like_the_reference() {
        assert_eq!(
            text_tickers("Apple (NASDAQ: AAPL) and nyse:ibm beat; AMEX : SPY, NASDAQ: AAPL again"),
            ["AAPL", "IBM", "SPY"]
        );
        for none in [
            "NASDAQ",
            "NASDAQ:",
            "NASDAQ: 123",
            "NASDAQ: TOOLONGX",
            "XNYSE: ABC",
            "NASDAQ AAPL",
        ] {
            assert!(text_tickers(none).is_empty(), "{none}");
        }
        let a = ArticleFields::parse(&Bytes::from_static(
            br#"{"link":"l","title":"Deal (NYSE: GE)","summary":"with NASDAQ: msft","companies":[]}"#,
        ))
        .unwrap();
        assert_eq!(tickers(&a), ["GE", "MSFT"]);
        // Odd bytes never panic.
        assert!(text_tickers("NASDAQ: é AMEX:\u{1F600}").is_empty());
    }

    #[test]
    fn an_article_goes_to_the_feed_and_each_ticker() {
        let mut d = NewsDesk::new(NewsConfig {
            results_prefix: "t:".into(),
            ..NewsConfig::default()
        });
        let a = article(
            "l1",
            &format!(r#","companies":[{}]"#, company("AAPL", "XNAS")),
        );
        let mut out = Vec::new();
        let f = d.file(a.clone(), 7, &mut out).unwrap();
        assert_eq!(
            f,
            Filed {
                tickers: 1,
                replaced: false
            }
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].key, "t:news:feed:latest");
        assert_eq!(
            out[0].op,
            WriteOp::Push {
                cap: 10_000,
                ttl_secs: 172_800
            }
        );
        assert_eq!(out[1].key, "t:news:ticker:AAPL");
        assert_eq!(
            out[1].op,
            WriteOp::Push {
                cap: 100,
                ttl_secs: 604_800
            }
        );
        assert!(out
            .iter()
            .all(|w| w.publish && w.value == a && w.received_at_ms == 7));
    }

    #[test]
    fn a_repeat_replaces_the_listed_copy() {
        let mut d = NewsDesk::new(NewsConfig::default());
        let first = article(
            "l1",
            &format!(r#","companies":[{}]"#, company("AAPL", "XNAS")),
        );
        let update = article(
            "l1",
            &format!(
                r#","isUpdate":true,"companies":[{},{}]"#,
                company("AAPL", "XNAS"),
                company("MSFT", "XNAS")
            ),
        );
        let mut out = Vec::new();
        d.file(first.clone(), 0, &mut out).unwrap();
        out.clear();
        let f = d.file(update.clone(), 0, &mut out).unwrap();
        assert!(f.replaced);
        let replaced =
            |w: &CacheWrite| matches!(&w.op, WriteOp::Replace { old, .. } if *old == first);
        assert!(replaced(&out[0]), "feed: {:?}", out[0].op);
        assert!(replaced(&out[1]), "AAPL was listed");
        assert_eq!(out[2].key, "news:ticker:MSFT");
        assert!(
            matches!(out[2].op, WriteOp::Push { .. }),
            "MSFT is new to the story"
        );
        assert_eq!(d.remembered(), 1);
    }

    #[test]
    fn links_remembered_are_bounded_and_survive_a_restart() {
        let mut d = NewsDesk::new(NewsConfig {
            feed_cap: 2,
            ..NewsConfig::default()
        });
        let mut out = Vec::new();
        for l in ["a", "b", "c"] {
            d.file(article(l, ""), 0, &mut out).unwrap();
        }
        assert_eq!(d.remembered(), 2);
        out.clear();
        d.file(article("a", ""), 0, &mut out).unwrap();
        assert!(matches!(out[0].op, WriteOp::Push { .. }), "a was forgotten");

        let mut fresh = NewsDesk::new(NewsConfig::default());
        fresh.remember(article("b", ""));
        out.clear();
        assert!(fresh.file(article("b", ""), 0, &mut out).unwrap().replaced);
    }

    #[test]
    fn bad_articles_are_refused_with_a_reason() {
        let mut d = NewsDesk::new(NewsConfig::default());
        let mut out = Vec::new();
        let mut file = |b: &'static [u8]| d.file(Bytes::from_static(b), 0, &mut out);
        assert!(matches!(file(b"[1]"), Err(NewsError::Malformed(_))));
        assert!(matches!(file(b"not json"), Err(NewsError::Malformed(_))));
        assert_eq!(file(br#"{"title":"t"}"#), Err(NewsError::NoLink));
        assert_eq!(file(br#"{"link":"","title":"t"}"#), Err(NewsError::NoLink));
        assert_eq!(
            file(br#"{"link":"l","title":" "}"#),
            Err(NewsError::NoTitle)
        );
        assert!(out.is_empty());
    }
}
