//! Market paths (Massive calls them clusters) and the event/channel codes each one carries.
//!
//! Routing must key on (market, `ev`): `T`, `Q`, `A` and `AM` have different shapes in
//! different markets, so nothing here treats an event code as meaningful without its market.

use std::fmt;
use std::str::FromStr;

/// One Massive market path, e.g. `/stocks` or `/futures/cme`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Market {
    Stocks,
    Options,
    Forex,
    Crypto,
    Indices,
    /// `/futures` (all venues) or `/futures/<venue>`.
    Futures(Option<FuturesVenue>),
}

/// The per-venue futures paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FuturesVenue {
    Cme,
    Cbot,
    Nymex,
    Comex,
}

/// A market name that is not one of Massive's paths.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown Massive market {0:?} (expected stocks, options, forex, crypto, indices, futures[/cme|cbot|nymex|comex])")]
pub struct MarketError(pub String);

impl Market {
    /// Every market path the simulator serves.
    pub const ALL: [Market; 10] = [
        Market::Stocks,
        Market::Options,
        Market::Forex,
        Market::Crypto,
        Market::Indices,
        Market::Futures(None),
        Market::Futures(Some(FuturesVenue::Cme)),
        Market::Futures(Some(FuturesVenue::Cbot)),
        Market::Futures(Some(FuturesVenue::Nymex)),
        Market::Futures(Some(FuturesVenue::Comex)),
    ];

    /// The URL path without the leading slash.
    pub fn path(self) -> &'static str {
        match self {
            Market::Stocks => "stocks",
            Market::Options => "options",
            Market::Forex => "forex",
            Market::Crypto => "crypto",
            Market::Indices => "indices",
            Market::Futures(None) => "futures",
            Market::Futures(Some(FuturesVenue::Cme)) => "futures/cme",
            Market::Futures(Some(FuturesVenue::Cbot)) => "futures/cbot",
            Market::Futures(Some(FuturesVenue::Nymex)) => "futures/nymex",
            Market::Futures(Some(FuturesVenue::Comex)) => "futures/comex",
        }
    }

    /// The event codes (and so the subscription channel prefixes) this market carries.
    pub fn channels(self) -> &'static [&'static str] {
        match self {
            Market::Stocks => &["T", "Q", "A", "AM", "LULD", "NOI", "FMV"],
            Market::Options => &["T", "Q", "A", "AM", "FMV"],
            Market::Forex => &["C", "CA", "CAS", "FMV"],
            Market::Crypto => &["XT", "XQ", "XA", "XAS", "XL2", "FMV"],
            Market::Indices => &["V", "A", "AM"],
            Market::Futures(_) => &["T", "Q", "A", "AM"],
        }
    }

    /// Whether `ev` is an event code of this market (status messages excluded).
    pub fn knows_channel(self, ev: &str) -> bool {
        self.channels().contains(&ev)
    }
}

impl fmt::Display for Market {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.path())
    }
}

impl FromStr for Market {
    type Err = MarketError;

    /// Accepts the path with or without a leading slash, in any letter case: the reference
    /// documented `Stocks` but only accepted `stocks`; tickwire accepts both.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.trim().trim_matches('/').to_ascii_lowercase();
        Market::ALL
            .into_iter()
            .find(|m| m.path() == norm)
            .ok_or_else(|| MarketError(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_path_and_is_case_insensitive() {
        for m in Market::ALL {
            assert_eq!(m.path().parse::<Market>(), Ok(m));
            assert_eq!(
                format!("/{}", m.path().to_uppercase()).parse::<Market>(),
                Ok(m)
            );
        }
        assert_eq!("Stocks".parse::<Market>(), Ok(Market::Stocks));
        assert!("bonds".parse::<Market>().is_err());
        assert!("futures/xyz".parse::<Market>().is_err());
    }

    #[test]
    fn channels_are_market_specific() {
        assert!(Market::Stocks.knows_channel("LULD"));
        assert!(!Market::Options.knows_channel("LULD"));
        assert!(Market::Crypto.knows_channel("XT"));
        assert!(!Market::Stocks.knows_channel("XT"));
        assert!(Market::Indices.knows_channel("V"));
    }
}
