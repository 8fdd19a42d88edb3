//! Money as an integer count of nano-USD (1e-9 USD), parsed from and written as the decimal text
//! of JSON numbers, so no value ever passes through binary floating point. Also percentages.
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Number;
use std::str::FromStr;

pub const NANOS_PER_USD: i64 = 1_000_000_000;
/// Larger amounts are refused: a billion dollars per value is beyond any usage event or limit.
const MAX_NANOS: i128 = 1_000_000_000 * NANOS_PER_USD as i128;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MoneyError {
    #[error("`{0}` is not a number")]
    Invalid(String),
    #[error("must not be negative")]
    Negative,
    #[error("is too large")]
    TooLarge,
    #[error("has more decimals than can be held exactly")]
    Inexact,
}

/// What to do with digits past the scale: round them half to even (a client's amount), or
/// refuse them (a conversion that promises to be exact).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Past {
    Round,
    Refuse,
}

/// Divides a non-negative numerator, rounding half to even (banker's rounding), so rounding
/// errors do not drift in one direction across many values.
pub fn div_round_half_even(num: i128, den: i128) -> i128 {
    let (q, r) = (num / den, num % den);
    match (2 * r).cmp(&den) {
        std::cmp::Ordering::Less => q,
        std::cmp::Ordering::Greater => q + 1,
        std::cmp::Ordering::Equal => q + (q & 1),
    }
}

/// Parses JSON number text into an integer count of 10^-scale units, rounding half to even
/// past `scale` fractional digits. Works on the digits as text, so a long mantissa or a huge
/// exponent cannot overflow or hang.
fn parse_scaled(text: &str, scale: i64, max: i128) -> Result<i128, MoneyError> {
    parse_digits(text, scale, max, Past::Round)
}

fn parse_digits(text: &str, scale: i64, max: i128, past: Past) -> Result<i128, MoneyError> {
    let invalid = || MoneyError::Invalid(crate::error::clip(text).chars().take(32).collect());
    let (negative, rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text),
    };
    let (mantissa, exp) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let digits_ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits_ok(int)
        || (int.len() > 1 && int.starts_with('0'))
        || frac.is_some_and(|f| !digits_ok(f))
    {
        return Err(invalid());
    }
    let exp: i64 = match exp {
        None => 0,
        Some(e) => {
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if !digits_ok(digits) {
                return Err(invalid());
            }
            // Saturate: anything past ±10^15 is absurd either way and is decided below.
            let magnitude: i64 = digits
                .parse()
                .unwrap_or(i64::MAX)
                .min(1_000_000_000_000_000);
            if e.starts_with('-') {
                -magnitude
            } else {
                magnitude
            }
        }
    };
    let frac = frac.unwrap_or("");
    let all: String = format!("{int}{frac}");
    let digits = all.trim_start_matches('0');
    if digits.is_empty() {
        return Ok(0);
    }
    if negative {
        return Err(MoneyError::Negative);
    }
    // value = digits × 10^shift units
    let shift = exp - frac.len() as i64 + scale;
    let len = digits.len() as i64;
    if shift >= 0 {
        if len + shift > 30 {
            return Err(MoneyError::TooLarge);
        }
        let v: i128 =
            digits.parse::<i128>().map_err(|_| MoneyError::TooLarge)? * 10i128.pow(shift as u32);
        return if v > max {
            Err(MoneyError::TooLarge)
        } else {
            Ok(v)
        };
    }
    let cut = len + shift; // digits kept before the point
    if past == Past::Refuse && digits[cut.max(0) as usize..].bytes().any(|b| b != b'0') {
        return Err(MoneyError::Inexact);
    }
    if cut < 0 {
        return Ok(0); // below half a unit
    }
    let (keep, drop) = digits.split_at(cut as usize);
    if keep.len() > 30 {
        return Err(MoneyError::TooLarge);
    }
    let q: i128 = if keep.is_empty() {
        0
    } else {
        keep.parse().map_err(|_| MoneyError::TooLarge)?
    };
    let first = drop.as_bytes()[0];
    let rest_nonzero = drop[1..].bytes().any(|b| b != b'0');
    let round_up = first > b'5' || (first == b'5' && (rest_nonzero || q & 1 == 1));
    let v = q + i128::from(round_up);
    if v > max {
        Err(MoneyError::TooLarge)
    } else {
        Ok(v)
    }
}

/// The shortest decimal text of `units` × 10^-scale.
fn format_scaled(units: i128, scale: u32) -> String {
    let den = 10i128.pow(scale);
    let (whole, frac) = (units / den, units % den);
    if frac == 0 {
        return whole.to_string();
    }
    let f = format!("{:0width$}", frac, width = scale as usize);
    format!("{whole}.{}", f.trim_end_matches('0'))
}

fn number(text: &str) -> Number {
    Number::from_str(text).expect("formatted decimals are valid JSON numbers")
}

/// An amount of USD in nano-dollars. The field is private: amounts come from parsing, from the
/// store, or from checked arithmetic, never from a bare integer by accident.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Nanousd(i64);

impl Nanousd {
    pub const ZERO: Nanousd = Nanousd(0);

    /// An amount as stored (a column of nano-USD) or written as a constant.
    pub const fn from_nanos(nanos: i64) -> Nanousd {
        Nanousd(nanos)
    }

    pub const fn nanos(self) -> i64 {
        self.0
    }

    /// The exact decimal USD text, as the JSON answers write it (`0.0012`, `3`).
    pub fn decimal(self) -> String {
        format_scaled(i128::from(self.0), 9)
    }

    /// As `decimal`, appended to `out` without allocating: the CSV export writes millions.
    pub fn write_decimal(self, out: &mut Vec<u8>) {
        if self.0 < 0 {
            out.extend_from_slice(self.decimal().as_bytes());
            return;
        }
        let (whole, mut frac) = (self.0 / 1_000_000_000, self.0 % 1_000_000_000);
        out.extend_from_slice(itoa::Buffer::new().format(whole).as_bytes());
        if frac == 0 {
            return;
        }
        let mut digits = [b'0'; 9];
        for d in digits.iter_mut().rev() {
            *d = b'0' + (frac % 10) as u8;
            frac /= 10;
        }
        let end = 9 - digits.iter().rev().take_while(|d| **d == b'0').count();
        out.push(b'.');
        out.extend_from_slice(&digits[..end]);
    }

    pub fn from_usd_decimal(text: &str) -> Result<Nanousd, MoneyError> {
        parse_scaled(text, 9, MAX_NANOS).map(|v| Nanousd(v as i64))
    }

    /// With `arbitrary_precision`, a `Number` keeps the text the client sent.
    pub fn from_json_number(n: &Number) -> Result<Nanousd, MoneyError> {
        Self::from_usd_decimal(&n.to_string())
    }

    /// As `from_json_number`, refusing more than `max` (a bound of the contract's, such as
    /// an event's cost or a price).
    pub fn from_json_number_up_to(n: &Number, max: Nanousd) -> Result<Nanousd, MoneyError> {
        parse_scaled(&n.to_string(), 9, i128::from(max.0)).map(|v| Nanousd(v as i64))
    }

    pub fn to_json_number(self) -> Number {
        number(&format_scaled(i128::from(self.0), 9))
    }

    /// A price per token in USD (LiteLLM's `input_cost_per_token`, such as `2.5e-06`) as
    /// nano-USD per million tokens (2,500,000,000), exactly: the decimal point moves 15 places
    /// in the text, and a price with digits past a nano-USD per million is refused, not rounded.
    pub fn per_million_from_per_token(n: &Number, max: Nanousd) -> Result<Nanousd, MoneyError> {
        parse_digits(&n.to_string(), 15, i128::from(max.0), Past::Refuse).map(|v| Nanousd(v as i64))
    }

    pub fn checked_add(self, other: Nanousd) -> Option<Nanousd> {
        self.0.checked_add(other.0).map(Nanousd)
    }

    pub fn saturating_add(self, other: Nanousd) -> Nanousd {
        Nanousd(self.0.saturating_add(other.0))
    }

    pub fn saturating_sub(self, other: Nanousd) -> Nanousd {
        Nanousd(self.0.saturating_sub(other.0))
    }
}

impl Serialize for Nanousd {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json_number().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Nanousd {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = Number::deserialize(d)?;
        Nanousd::from_json_number(&n).map_err(serde::de::Error::custom)
    }
}

/// A percentage from 0 to 1000 with up to four decimals, as integer ten-thousandths of a percent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MarkupPercent(i64);

const PERCENT_SCALE: u32 = 4;
const MAX_PERCENT_UNITS: i128 = 1000 * 10_000;

impl MarkupPercent {
    pub const ZERO: MarkupPercent = MarkupPercent(0);

    pub fn from_whole(p: i64) -> MarkupPercent {
        MarkupPercent((p * 10_000).clamp(0, MAX_PERCENT_UNITS as i64))
    }

    pub fn from_json_number(n: &Number) -> Result<MarkupPercent, String> {
        match parse_scaled(&n.to_string(), i64::from(PERCENT_SCALE), MAX_PERCENT_UNITS) {
            Ok(v) => Ok(MarkupPercent(v as i64)),
            Err(MoneyError::Negative) | Err(MoneyError::TooLarge) => {
                Err("must be between 0 and 1000".into())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    pub fn to_json_number(self) -> Number {
        number(&format_scaled(i128::from(self.0), PERCENT_SCALE))
    }

    /// Ten-thousandths of a percent, as stored with each event.
    pub fn units(self) -> i64 {
        self.0
    }

    /// `cost × (1 + percent/100)`, exactly, rounded half to even to the nano-USD; `None` when
    /// that does not fit in nano-USD.
    pub fn apply(self, cost: Nanousd) -> Option<Nanousd> {
        let den = 100 * 10_000i128;
        let v = div_round_half_even(i128::from(cost.0) * (den + i128::from(self.0)), den);
        i64::try_from(v).ok().map(Nanousd)
    }
}

impl Serialize for MarkupPercent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json_number().serialize(s)
    }
}

impl<'de> Deserialize<'de> for MarkupPercent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = Number::deserialize(d)?;
        MarkupPercent::from_json_number(&n).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_decimal_writes_what_the_json_writes() {
        for n in [
            0,
            1,
            10,
            999_999_999,
            1_000_000_000,
            1_200_000,
            123_456_789_012,
            i64::MAX,
        ] {
            let mut out = Vec::new();
            Nanousd(n).write_decimal(&mut out);
            let want = Nanousd(n).to_json_number().to_string();
            assert_eq!(String::from_utf8(out).unwrap(), want, "{n}");
        }
    }

    fn usd(s: &str) -> Result<i64, MoneyError> {
        Nanousd::from_usd_decimal(s).map(|n| n.0)
    }

    #[test]
    fn parses_json_number_forms_exactly() {
        assert_eq!(usd("0"), Ok(0));
        assert_eq!(usd("-0"), Ok(0));
        assert_eq!(usd("12"), Ok(12_000_000_000));
        assert_eq!(usd("0.0012"), Ok(1_200_000));
        assert_eq!(usd("1e-6"), Ok(1_000));
        assert_eq!(usd("1.5E+3"), Ok(1_500_000_000_000));
        assert_eq!(usd("2.50"), Ok(2_500_000_000));
        assert_eq!(usd("0.000000150"), Ok(150));
        assert_eq!(usd("0.000000001"), Ok(1));
        assert_eq!(usd("1000000000"), Ok(1_000_000_000 * NANOS_PER_USD));
    }

    #[test]
    fn rounds_past_nine_decimals_half_to_even() {
        assert_eq!(usd("0.0000000005"), Ok(0));
        assert_eq!(usd("0.0000000015"), Ok(2));
        assert_eq!(usd("0.0000000025"), Ok(2));
        assert_eq!(usd("0.00000000250001"), Ok(3));
        assert_eq!(usd("0.00123456789012"), Ok(1_234_568));
        assert_eq!(usd("1e-999999"), Ok(0));
        assert_eq!(usd("4e-10"), Ok(0));
        assert_eq!(usd("6e-10"), Ok(1));
    }

    #[test]
    fn refuses_what_is_not_a_json_number_or_out_of_range() {
        for bad in [
            "", "NaN", "Infinity", ".5", "5.", "+1", "0x10", "01", "1e", "1e+", "--1", "1 ",
            "1.2.3",
        ] {
            assert!(matches!(usd(bad), Err(MoneyError::Invalid(_))), "{bad:?}");
        }
        assert_eq!(usd("-0.01"), Err(MoneyError::Negative));
        assert_eq!(usd("1000000000.000000001"), Err(MoneyError::TooLarge));
        assert_eq!(usd("1e999999999999"), Err(MoneyError::TooLarge));
        assert_eq!(
            usd(&format!("1{}", "0".repeat(5000))),
            Err(MoneyError::TooLarge)
        );
    }

    #[test]
    fn writes_the_shortest_exact_decimal() {
        let t = |n: i64| Nanousd(n).to_json_number().to_string();
        assert_eq!(t(1_000_000_000), "1");
        assert_eq!(t(150), "0.00000015");
        assert_eq!(t(1_200_000), "0.0012");
        assert_eq!(t(0), "0");
        let v = serde_json::json!({"c": Nanousd(150)});
        assert_eq!(serde_json::to_string(&v).unwrap(), r#"{"c":0.00000015}"#);
    }

    #[test]
    fn text_round_trips_for_many_values() {
        let mut n: i64 = 1;
        while n < 100_000_000_000_000_000 {
            for v in [n, n + 1, n * 7 + 3] {
                let text = Nanousd(v).to_json_number().to_string();
                assert_eq!(usd(&text), Ok(v), "{text}");
            }
            n *= 3;
        }
    }

    #[test]
    fn a_million_micro_dollars_sum_to_exactly_one() {
        let one = Nanousd::from_usd_decimal("0.000001").unwrap();
        let mut total = Nanousd::ZERO;
        for _ in 0..1_000_000 {
            total = total.checked_add(one).unwrap();
        }
        assert_eq!(total.to_json_number().to_string(), "1");
    }

    #[test]
    fn markup_is_exact() {
        let p = |s: &str| MarkupPercent::from_json_number(&Number::from_str(s).unwrap());
        assert_eq!(p("12.5").unwrap().to_json_number().to_string(), "12.5");
        assert_eq!(p("20").unwrap().apply(Nanousd(1_000)), Some(Nanousd(1_200)));
        assert_eq!(p("0").unwrap().apply(Nanousd(777)), Some(Nanousd(777)));
        assert_eq!(p("1000").unwrap().apply(Nanousd(5)), Some(Nanousd(55)));
        assert_eq!(p("12.5").unwrap().apply(Nanousd(3)), Some(Nanousd(3))); // 3.375 -> 3
        assert_eq!(p("50").unwrap().apply(Nanousd(3)), Some(Nanousd(4))); // 4.5 -> 4 (even)
        assert_eq!(
            p("0").unwrap().apply(Nanousd(i64::MAX)),
            Some(Nanousd(i64::MAX))
        );
        assert_eq!(p("0.0001").unwrap().apply(Nanousd(i64::MAX)), None);
        assert!(p("1000.0001").is_err());
        assert!(p("-1").is_err());
        assert_eq!(p("0.00001").unwrap(), MarkupPercent::ZERO);
    }

    #[test]
    fn per_token_prices_become_per_million_exactly() {
        let per_m = |s: &str| {
            Nanousd::per_million_from_per_token(
                &Number::from_str(s).unwrap(),
                Nanousd(1_000_000 * NANOS_PER_USD),
            )
            .map(|n| n.0)
        };
        assert_eq!(per_m("2.5e-06"), Ok(2_500_000_000)); // $2.50 per million
        assert_eq!(per_m("2.5E-6"), Ok(2_500_000_000));
        assert_eq!(per_m("0.0000025"), Ok(2_500_000_000));
        assert_eq!(per_m("1.25e-07"), Ok(125_000_000));
        assert_eq!(per_m("3.75e-08"), Ok(37_500_000));
        assert_eq!(per_m("1e-15"), Ok(1)); // one nano-USD per million
        assert_eq!(per_m("0.000000000000001000"), Ok(1));
        assert_eq!(per_m("0"), Ok(0));
        assert_eq!(per_m("0.0"), Ok(0));
        assert_eq!(per_m("0e-5"), Ok(0));
        assert_eq!(per_m("1"), Ok(1_000_000 * NANOS_PER_USD)); // the bound itself
        assert_eq!(per_m("1e+0"), Ok(1_000_000 * NANOS_PER_USD));
        assert_eq!(per_m("0.1e1"), Ok(1_000_000 * NANOS_PER_USD));
        // 0.3 of a nano-USD per million is not representable; never rounded to 0.
        assert_eq!(per_m("3e-16"), Err(MoneyError::Inexact));
        assert_eq!(per_m("1.0000000000000001e-06"), Err(MoneyError::Inexact));
        assert_eq!(per_m("1e-999999"), Err(MoneyError::Inexact));
        assert_eq!(per_m("1.000000000000001"), Err(MoneyError::TooLarge));
        assert_eq!(per_m("2"), Err(MoneyError::TooLarge));
        assert_eq!(per_m("1e999999999"), Err(MoneyError::TooLarge));
        assert_eq!(per_m("-1e-06"), Err(MoneyError::Negative));
    }

    #[test]
    fn half_even_division() {
        assert_eq!(div_round_half_even(5, 2), 2);
        assert_eq!(div_round_half_even(7, 2), 4);
        assert_eq!(div_round_half_even(37_500_000, 1_000_000), 38);
        assert_eq!(div_round_half_even(150_000_000, 1_000_000), 150);
    }
}
