//! Lenient scalar types for Massive fields whose wire form varies.
//!
//! Massive mixes timestamp units (ms for trades, ns for LULD/NOI, either for FMV), carries exact
//! volumes as decimal strings, sends some integers as fractions (`z` in bars) and some IDs as
//! either strings or integers. Each type here accepts every form seen in the wild and writes back
//! the one form Massive documents, so the simulator's output matches the real service.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

/// Below this a timestamp is read as milliseconds (10^14 ms is the year 5138).
pub const MS_LIMIT: i64 = 100_000_000_000_000;
/// From this on a timestamp is read as nanoseconds (10^17 ns is 1973).
pub const NS_FLOOR: i64 = 100_000_000_000_000_000;

/// Converts a raw epoch value of unknown unit into nanoseconds by magnitude (massive.md §5).
/// Values between the two ranges are rejected: they are neither plausible ms nor ns.
pub fn epoch_to_nanos(raw: i64) -> Result<i64, String> {
    if (0..MS_LIMIT).contains(&raw) {
        // Milliseconds past the year 2262 have no nanosecond form in an i64.
        raw.checked_mul(1_000_000)
            .ok_or_else(|| format!("timestamp {raw} ms is past the year 2262"))
    } else if raw >= NS_FLOOR {
        Ok(raw)
    } else {
        Err(format!(
            "timestamp {raw} is neither milliseconds (< 10^14) nor nanoseconds (>= 10^17)"
        ))
    }
}

fn integral_i64<E: de::Error>(v: f64) -> Result<i64, E> {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 9.0e18 {
        Ok(v as i64)
    } else {
        Err(E::custom(format!("timestamp {v} is not an integer")))
    }
}

struct EpochVisitor;

impl Visitor<'_> for EpochVisitor {
    type Value = i64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an epoch timestamp in milliseconds or nanoseconds")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        epoch_to_nanos(v).map_err(E::custom)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        let v = i64::try_from(v).map_err(|_| E::custom(format!("timestamp {v} is too large")))?;
        self.visit_i64(v)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
        self.visit_i64(integral_i64(v)?)
    }
}

/// A timestamp Massive documents in milliseconds. Accepts ms or ns; stored and written as ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TsMillis(pub i64);

/// A timestamp Massive documents in nanoseconds. Accepts ms or ns; stored and written as ns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TsNanos(pub i64);

impl TsMillis {
    pub fn nanos(self) -> i64 {
        self.0.saturating_mul(1_000_000)
    }
}

impl TsNanos {
    pub fn millis(self) -> i64 {
        self.0 / 1_000_000
    }
}

impl<'de> Deserialize<'de> for TsMillis {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(EpochVisitor)
            .map(|ns| TsMillis(ns / 1_000_000))
    }
}

impl<'de> Deserialize<'de> for TsNanos {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(EpochVisitor).map(TsNanos)
    }
}

impl Serialize for TsMillis {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(self.0)
    }
}

impl Serialize for TsNanos {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(self.0)
    }
}

/// An exact decimal carried as a JSON string (`ds`, `dv`, `dav`), e.g. `"0.007300"`.
///
/// The text is kept as sent (fraction digits vary and must not be rounded away); it is checked
/// to be a plain decimal. A JSON number is accepted too, because futures send `dv` as one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DecimalStr(String);

impl DecimalStr {
    /// Validates `s` as `-?digits[.digits]`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let body = s.strip_prefix('-').unwrap_or(s);
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        let ok = !int.is_empty()
            && int.bytes().all(|b| b.is_ascii_digit())
            && frac.bytes().all(|b| b.is_ascii_digit())
            && !(body.contains('.') && frac.is_empty());
        if ok {
            Ok(DecimalStr(s.to_string()))
        } else {
            Err(format!("{s:?} is not a decimal number"))
        }
    }

    /// Builds the string from a value with a fixed number of fraction digits.
    pub fn from_f64(v: f64, digits: usize) -> Self {
        DecimalStr(format!("{v:.digits$}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value as a float (exact enough for analytics; the string keeps the exact form).
    pub fn to_f64(&self) -> f64 {
        // Validated at construction, so the parse cannot fail; 0.0 is a harmless fallback.
        self.0.parse().unwrap_or(0.0)
    }
}

impl<'de> Deserialize<'de> for DecimalStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DecimalStr;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a decimal number in a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DecimalStr, E> {
                DecimalStr::parse(v).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<DecimalStr, E> {
                Ok(DecimalStr(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<DecimalStr, E> {
                Ok(DecimalStr(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<DecimalStr, E> {
                if v.is_finite() {
                    Ok(DecimalStr(v.to_string()))
                } else {
                    Err(E::custom("decimal is not finite"))
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for DecimalStr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// A number that Massive documents as an integer but has sent as a fraction (`z`, `v`, `av`).
/// Read from either form; written as an integer when it has no fraction.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct LenientNum(pub f64);

impl<'de> Deserialize<'de> for LenientNum {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        if v.is_finite() {
            Ok(LenientNum(v))
        } else {
            Err(de::Error::custom("number is not finite"))
        }
    }
}

impl Serialize for LenientNum {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.fract() == 0.0 && self.0.abs() < 9.0e15 {
            s.serialize_i64(self.0 as i64)
        } else {
            s.serialize_f64(self.0)
        }
    }
}

/// An identifier Massive sends as a string in one market and an integer in another
/// (stocks trade `i` is a string; crypto `i` and forex `x` can be either). Kept as text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(transparent)]
pub struct StrOrInt(pub String);

impl<'de> Deserialize<'de> for StrOrInt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = StrOrInt;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an integer")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StrOrInt, E> {
                Ok(StrOrInt(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<StrOrInt, E> {
                Ok(StrOrInt(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<StrOrInt, E> {
                Ok(StrOrInt(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_normalise_by_magnitude() {
        let ms: TsMillis = serde_json::from_str("1772652572552").unwrap();
        assert_eq!(ms.0, 1772652572552);
        let ms_from_ns: TsMillis = serde_json::from_str("1772652572553123456").unwrap();
        assert_eq!(ms_from_ns.0, 1772652572553);
        let ns: TsNanos = serde_json::from_str("1772652572553123456").unwrap();
        assert_eq!(ns.0, 1772652572553123456);
        let ns_from_ms: TsNanos = serde_json::from_str("1772652572553").unwrap();
        assert_eq!(ns_from_ms.0, 1772652572553000000);
        let err = serde_json::from_str::<TsNanos>("1772652572553123").unwrap_err();
        assert!(err.to_string().contains("neither milliseconds"), "{err}");
        assert!(serde_json::from_str::<TsMillis>("-5").is_err());
        assert!(serde_json::from_str::<TsMillis>("\"12\"").is_err());
        assert!(serde_json::from_str::<TsMillis>("1e400").is_err());
        assert!(serde_json::from_str::<TsMillis>("99999999999999999999999").is_err());
        // Milliseconds with no nanosecond form (past 2262): refused, not overflowed.
        let err = serde_json::from_str::<TsNanos>("9223372036855").unwrap_err();
        assert!(err.to_string().contains("2262"), "{err}");
        assert!(epoch_to_nanos(MS_LIMIT - 1).is_err());
    }

    #[test]
    fn decimal_strings_keep_their_text() {
        let d: DecimalStr = serde_json::from_str("\"0.007300\"").unwrap();
        assert_eq!(d.as_str(), "0.007300");
        assert!((d.to_f64() - 0.0073).abs() < 1e-12);
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"0.007300\"");
        let n: DecimalStr = serde_json::from_str("1234.5").unwrap();
        assert_eq!(n.as_str(), "1234.5");
        for bad in ["\"\"", "\"1.\"", "\"abc\"", "\"1e5\"", "\".5\"", "true"] {
            assert!(serde_json::from_str::<DecimalStr>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lenient_numbers_accept_fractions_and_write_integers() {
        let z: LenientNum = serde_json::from_str("91.5").unwrap();
        assert_eq!(z.0, 91.5);
        let v: LenientNum = serde_json::from_str("4989").unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), "4989");
        assert_eq!(serde_json::to_string(&z).unwrap(), "91.5");
    }

    #[test]
    fn str_or_int_keeps_text() {
        assert_eq!(
            serde_json::from_str::<StrOrInt>("\"52983525029461\"")
                .unwrap()
                .0,
            "52983525029461"
        );
        assert_eq!(
            serde_json::from_str::<StrOrInt>("14272084").unwrap().0,
            "14272084"
        );
        assert!(serde_json::from_str::<StrOrInt>("1.5").is_err());
    }
}
