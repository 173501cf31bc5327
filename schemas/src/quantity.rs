//! Kubernetes resource quantities (`1500m`, `2Gi`, `4G`, `1e3`), kept as written and compared
//! by value.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a quantity could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// Nothing was given.
    #[error("quantity must not be empty")]
    Empty,
    /// The text is not `<number><suffix>`.
    #[error("{0:?} is not a quantity: expected a number with an optional suffix (m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei)")]
    Syntax(String),
    /// The value does not fit in 64 bits.
    #[error("{0:?} is too large")]
    Overflow(String),
}

/// A quantity as the user wrote it, with its value in nano-units.
#[derive(Debug, Clone)]
pub struct Quantity {
    text: String,
    nanos: i128,
}

impl Quantity {
    /// The quantity in thousandths, rounded up (CPU: millicores).
    pub fn milli_value(&self) -> i64 {
        ceil_div(self.nanos, 1_000_000)
    }

    /// The quantity in whole units, rounded up (memory and disk: bytes).
    pub fn value(&self) -> i64 {
        ceil_div(self.nanos, 1_000_000_000)
    }

    /// True when the quantity is below zero.
    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    /// True when the quantity is exactly zero.
    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// `self + other`, written in the shortest exact form (`3Gi`, `4500m`, `2G`); saturates
    /// instead of overflowing.
    pub fn add(&self, other: &Quantity) -> Quantity {
        Self::from_nanos(self.nanos.saturating_add(other.nanos))
    }

    /// The quantity of `nanos` nano-units, written in the shortest exact form.
    fn from_nanos(nanos: i128) -> Quantity {
        Self {
            text: canonical(nanos),
            nanos,
        }
    }
}

/// The shortest exact text for `nanos`: a whole number with the suffix (none, decimal, then
/// binary, on ties) that writes it in the fewest characters, else `m`, `u` or `n`.
fn canonical(nanos: i128) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    const UNIT: u128 = 1_000_000_000;
    if n % UNIT != 0 {
        for (div, suffix) in [(1_000_000, "m"), (1_000, "u"), (1, "n")] {
            if n % div == 0 {
                return format!("{sign}{}{suffix}", n / div);
            }
        }
    }
    let v = n / UNIT;
    let mut best = v.to_string();
    if v != 0 {
        let decimal = (1..)
            .zip(["k", "M", "G", "T", "P", "E"])
            .map(|(e, s)| (1000u128.pow(e), s));
        let binary = (1..)
            .zip(["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"])
            .map(|(e, s)| (1u128 << (10 * e), s));
        for (m, suffix) in decimal.chain(binary) {
            if v % m == 0 {
                let text = format!("{}{suffix}", v / m);
                if text.len() < best.len() {
                    best = text;
                }
            }
        }
    }
    format!("{sign}{best}")
}

fn ceil_div(n: i128, d: i128) -> i64 {
    let q = n.div_euclid(d) + i128::from(n.rem_euclid(d) != 0);
    i64::try_from(q).unwrap_or(if q < 0 { i64::MIN } else { i64::MAX })
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

impl FromStr for Quantity {
    type Err = QuantityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        if text.is_empty() {
            return Err(QuantityError::Empty);
        }
        let syntax = || QuantityError::Syntax(text.to_owned());
        let overflow = || QuantityError::Overflow(text.to_owned());
        let (negative, body) = match text.as_bytes()[0] {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let num_end = body
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(body.len());
        let (number, suffix) = body.split_at(num_end);
        let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
        if int_part.is_empty() && frac_part.is_empty() || frac_part.contains('.') {
            return Err(syntax());
        }
        if frac_part.len() > 9 {
            return Err(syntax());
        }
        // mantissa in nano-units before the suffix multiplier
        let digits = format!("{int_part}{frac_part:0<9}");
        let mut nanos: i128 = digits.parse().map_err(|_| overflow())?;
        // (multiplier numerator, divisor)
        let (mul, div): (i128, i128) = match suffix {
            "" => (1, 1),
            "n" => (1, 1_000_000_000),
            "u" => (1, 1_000_000),
            "m" => (1, 1_000),
            "k" => (1_000, 1),
            "M" => (1_000_000, 1),
            "G" => (1_000_000_000, 1),
            "T" => (1_000_000_000_000, 1),
            "P" => (1_000_000_000_000_000, 1),
            "E" => (1_000_000_000_000_000_000, 1),
            "Ki" => (1 << 10, 1),
            "Mi" => (1 << 20, 1),
            "Gi" => (1 << 30, 1),
            "Ti" => (1 << 40, 1),
            "Pi" => (1 << 50, 1),
            "Ei" => (1 << 60, 1),
            s if s.starts_with(['e', 'E']) => {
                let exp: i32 = s[1..].parse().map_err(|_| syntax())?;
                if !(-9..=18).contains(&exp) {
                    return Err(overflow());
                }
                if exp >= 0 {
                    (10i128.pow(exp.unsigned_abs()), 1)
                } else {
                    (1, 10i128.pow(exp.unsigned_abs()))
                }
            }
            _ => return Err(syntax()),
        };
        nanos = nanos.checked_mul(mul).ok_or_else(overflow)? / div;
        if nanos > i128::from(i64::MAX) * 1_000_000_000 {
            return Err(overflow());
        }
        if negative {
            nanos = -nanos;
        }
        Ok(Self {
            text: text.to_owned(),
            nanos,
        })
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Int(i64),
            Float(f64),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Text(t) => t,
            Raw::Int(i) => i.to_string(),
            Raw::Float(f) => f.to_string(),
        };
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Quantity {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Quantity".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A Kubernetes quantity: a number with an optional suffix, e.g. 1500m, 2, 512Mi, 4Gi, 1G.",
            "anyOf": [
                {"type": "string", "pattern": "^[+-]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(n|u|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?[0-9]+)?$"},
                {"type": "number"}
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        s.parse().unwrap()
    }

    #[test]
    fn sums_are_exact_and_written_short() {
        let sum = |a: &str, b: &str| q(a).add(&q(b)).to_string();
        assert_eq!(sum("1Gi", "2Gi"), "3Gi");
        assert_eq!(sum("1500m", "3"), "4500m");
        assert_eq!(sum("1", "1"), "2");
        assert_eq!(sum("1G", "1G"), "2G");
        assert_eq!(sum("1Gi", "512Mi"), "1536Mi");
        assert_eq!(sum("0", "0"), "0");
        assert_eq!(sum("1", "-3"), "-2");
        assert_eq!(sum("1n", "1"), "1000000001n");
        assert_eq!(q("1Gi").add(&q("1Mi")), q("1025Mi"));
        assert_eq!(sum("1Gi", "1Mi").parse::<Quantity>().unwrap(), q("1025Mi"));
    }

    #[test]
    fn cpu_quantities_convert_to_millicores() {
        assert_eq!(q("1500m").milli_value(), 1500);
        assert_eq!(q("2").milli_value(), 2000);
        assert_eq!(q("0.5").milli_value(), 500);
        assert_eq!(q("100u").milli_value(), 1, "rounds up");
    }

    #[test]
    fn memory_quantities_convert_to_bytes() {
        assert_eq!(q("2Gi").value(), 2 * 1024 * 1024 * 1024);
        assert_eq!(q("4G").value(), 4_000_000_000);
        assert_eq!(q("512Mi").value(), 512 << 20);
        assert_eq!(q("1.5Ki").value(), 1536);
        assert_eq!(q("1e3").value(), 1000);
        assert_eq!(q("1E-3").milli_value(), 1);
    }

    #[test]
    fn equal_values_written_differently_compare_equal() {
        assert_eq!(q("1024Mi"), q("1Gi"));
        assert!(q("1500m") < q("2"));
        assert_eq!(q("1Gi").to_string(), "1Gi");
    }

    #[test]
    fn malformed_quantities_are_rejected_with_the_text() {
        for bad in ["", "Gi", "1.2.3", "12XB", "1 Gi", "1e99", "99999999999Ei"] {
            let err = bad.parse::<Quantity>().unwrap_err();
            assert!(!err.to_string().is_empty(), "{bad:?}");
        }
    }

    #[test]
    fn numbers_in_yaml_are_accepted_as_quantities() {
        let v: Quantity = serde_json::from_str("2").unwrap();
        assert_eq!(v.milli_value(), 2000);
        let v: Quantity = serde_json::from_str("0.25").unwrap();
        assert_eq!(v.milli_value(), 250);
    }
}
