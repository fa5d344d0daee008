//! Kubernetes resource quantities (`100m`, `1.5`, `2Gi`, `500M`, `1e3`), parsed exactly.
//!
//! A [`Quantity`] holds its value in nano-units as an `i128`, which represents every quantity
//! Kubernetes itself accepts (up to `Ei` with nine fractional digits) without rounding. Finer
//! precision than nano is rounded up, as the API server does.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

const NANO: i128 = 1_000_000_000;

/// An exact Kubernetes quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Quantity {
    nanos: i128,
}

impl Quantity {
    pub const ZERO: Quantity = Quantity { nanos: 0 };

    pub fn from_nanos(nanos: i128) -> Self {
        Quantity { nanos }
    }

    pub fn from_milli(milli: i64) -> Self {
        Quantity {
            nanos: i128::from(milli) * 1_000_000,
        }
    }

    pub fn from_units(units: i64) -> Self {
        Quantity {
            nanos: i128::from(units) * NANO,
        }
    }

    pub fn nanos(self) -> i128 {
        self.nanos
    }

    /// The value in thousandths, rounded up (Kubernetes' `MilliValue`).
    pub fn milli_ceil(self) -> i128 {
        div_ceil(self.nanos, 1_000_000)
    }

    /// The value in whole units, rounded up (Kubernetes' `Value`).
    pub fn units_ceil(self) -> i128 {
        div_ceil(self.nanos, NANO)
    }

    /// Milli-units as an `i64`, the scheduler's unit for CPU.
    pub fn to_milli_i64(self, original: &str) -> Result<i64> {
        i64::try_from(self.milli_ceil()).map_err(|_| Error::quantity(original, "too large"))
    }

    /// Whole units as an `i64`, the scheduler's unit for bytes and counts.
    pub fn to_units_i64(self, original: &str) -> Result<i64> {
        i64::try_from(self.units_ceil()).map_err(|_| Error::quantity(original, "too large"))
    }

    pub fn checked_add(self, other: Quantity) -> Option<Quantity> {
        self.nanos.checked_add(other.nanos).map(Quantity::from_nanos)
    }

    pub fn checked_sub(self, other: Quantity) -> Option<Quantity> {
        self.nanos.checked_sub(other.nanos).map(Quantity::from_nanos)
    }

    pub fn checked_mul(self, factor: i64) -> Option<Quantity> {
        self.nanos
            .checked_mul(i128::from(factor))
            .map(Quantity::from_nanos)
    }

    pub fn is_negative(self) -> bool {
        self.nanos < 0
    }
}

fn div_ceil(a: i128, b: i128) -> i128 {
    let q = a / b;
    if a % b != 0 && ((a > 0) == (b > 0)) {
        q + 1
    } else {
        q
    }
}

impl FromStr for Quantity {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        parse(s)
    }
}

impl<'de> serde::Deserialize<'de> for Quantity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        // Manifests carry quantities as strings or bare YAML/JSON numbers.
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Str(String),
            Int(i64),
            Float(f64),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Str(s) => s,
            Raw::Int(i) => i.to_string(),
            Raw::Float(f) => f.to_string(),
        };
        parse(&text).map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for Quantity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Parses a quantity in Kubernetes' grammar: sign, digits with an optional fraction, then a
/// binary suffix (`Ki`…`Ei`), a decimal suffix (`n`, `u`, `m`, `k`, `M`…`E`) or an exponent.
pub fn parse(original: &str) -> Result<Quantity> {
    let s = original.trim();
    if s.is_empty() {
        return Err(Error::quantity(original, "empty"));
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let negative = match bytes[0] {
        b'-' => {
            i += 1;
            true
        }
        b'+' => {
            i += 1;
            false
        }
        _ => false,
    };
    let mut digits: i128 = 0;
    let mut fraction_digits: i32 = 0;
    let mut seen_digit = false;
    let mut seen_point = false;
    let mut significant = 0usize;
    while i < bytes.len() {
        match bytes[i] {
            b'0'..=b'9' => {
                seen_digit = true;
                if digits != 0 || bytes[i] != b'0' {
                    significant += 1;
                }
                // More than 38 significant digits cannot be held exactly; no real request needs them.
                if significant > 38 {
                    return Err(Error::quantity(original, "too many digits"));
                }
                digits = digits
                    .checked_mul(10)
                    .and_then(|d| d.checked_add(i128::from(bytes[i] - b'0')))
                    .ok_or_else(|| Error::quantity(original, "too large"))?;
                if seen_point {
                    fraction_digits += 1;
                }
            }
            b'.' if !seen_point => seen_point = true,
            _ => break,
        }
        i += 1;
    }
    if !seen_digit {
        return Err(Error::quantity(original, "expected a number"));
    }
    let suffix = &s[i..];
    let (decimal_exp, binary_exp): (i32, u32) = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        other if other.starts_with(['e', 'E']) && other.len() > 1 => {
            let exp: i32 = other[1..]
                .parse()
                .map_err(|_| Error::quantity(original, "invalid exponent"))?;
            if !(-100..=100).contains(&exp) {
                return Err(Error::quantity(original, "exponent out of range"));
            }
            (exp, 0)
        }
        _ => return Err(Error::quantity(original, "unknown suffix")),
    };
    let scale = 9 + decimal_exp - fraction_digits;
    let mut nanos = digits;
    if scale >= 0 {
        for _ in 0..scale {
            nanos = nanos
                .checked_mul(10)
                .ok_or_else(|| Error::quantity(original, "too large"))?;
        }
    } else {
        let divisor = 10i128
            .checked_pow(scale.unsigned_abs())
            .ok_or_else(|| Error::quantity(original, "too precise"))?;
        nanos = div_ceil(nanos, divisor);
    }
    nanos = nanos
        .checked_mul(1i128 << binary_exp)
        .ok_or_else(|| Error::quantity(original, "too large"))?;
    Ok(Quantity {
        nanos: if negative { -nanos } else { nanos },
    })
}

impl fmt::Display for Quantity {
    /// Canonical form: binary suffix when the value is a whole multiple of 1Ki, otherwise
    /// whole units, otherwise milli, otherwise nano.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.nanos;
        if n % NANO == 0 {
            let units = n / NANO;
            return f.write_str(&format_bytes_i128(units));
        }
        if n % 1_000_000 == 0 {
            return write!(f, "{}m", n / 1_000_000);
        }
        write!(f, "{n}n")
    }
}

fn format_bytes_i128(units: i128) -> String {
    const SUFFIXES: [(&str, u32); 6] = [
        ("Ei", 60),
        ("Pi", 50),
        ("Ti", 40),
        ("Gi", 30),
        ("Mi", 20),
        ("Ki", 10),
    ];
    if units != 0 {
        for (suffix, shift) in SUFFIXES {
            let unit = 1i128 << shift;
            if units % unit == 0 {
                return format!("{}{}", units / unit, suffix);
            }
        }
    }
    units.to_string()
}

/// CPU in millicores as Kubernetes prints it: `2` for whole cores, `1930m` otherwise.
pub fn format_cpu_milli(milli: i64) -> String {
    if milli % 1000 == 0 {
        (milli / 1000).to_string()
    } else {
        format!("{milli}m")
    }
}

/// Bytes with the largest binary suffix that divides them exactly: `6903Mi`, `17Gi`.
pub fn format_bytes(bytes: i64) -> String {
    format_bytes_i128(i128::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nanos(s: &str) -> i128 {
        parse(s).unwrap_or_else(|e| panic!("{s}: {e}")).nanos()
    }

    #[test]
    fn parses_the_forms_kubernetes_accepts() {
        assert_eq!(nanos("100m"), 100_000_000);
        assert_eq!(nanos("1.5"), 1_500_000_000);
        assert_eq!(nanos("2Gi"), 2 * (1 << 30) * NANO);
        assert_eq!(nanos("500M"), 500_000_000 * NANO);
        assert_eq!(nanos("1e3"), 1000 * NANO);
        assert_eq!(nanos("1E3"), 1000 * NANO);
        assert_eq!(nanos("1.5e-3"), 1_500_000);
        assert_eq!(nanos(".5"), 500_000_000);
        assert_eq!(nanos("5."), 5 * NANO);
        assert_eq!(nanos("+3"), 3 * NANO);
        assert_eq!(nanos("-3k"), -3000 * NANO);
        assert_eq!(nanos("0"), 0);
        assert_eq!(nanos("10n"), 10);
        assert_eq!(nanos("7u"), 7000);
        assert_eq!(nanos("1Ei"), (1i128 << 60) * NANO);
        assert_eq!(nanos("1.5Gi"), 3 * (1i128 << 29) * NANO);
    }

    #[test]
    fn rounds_precision_finer_than_nano_up() {
        assert_eq!(nanos("0.1n"), 1);
        assert_eq!(nanos("1e-10"), 1);
    }

    #[test]
    fn milli_and_units_round_up_like_kubernetes() {
        let q = parse("1.0001m").expect("valid");
        assert_eq!(q.milli_ceil(), 2);
        assert_eq!(parse("100m").expect("valid").units_ceil(), 1);
        assert_eq!(parse("2Gi").expect("valid").units_ceil(), 2 << 30);
    }

    #[test]
    fn rejects_malformed_quantities_naming_the_value() {
        for bad in [
            "", "abc", "1.2.3", "12Qi", "1Ki5", "--1", "m", "1e", "1ee3", "1e999", ".",
        ] {
            let err = parse(bad).expect_err(bad).to_string();
            assert!(err.contains(&format!("\"{bad}\"")), "error for {bad:?} was {err}");
        }
    }

    #[test]
    fn refuses_values_that_would_overflow() {
        assert!(parse("99999999999999999999999999999999999999Ei").is_err());
        assert!(parse("1e100").is_err());
        let big = Quantity::from_nanos(i128::MAX);
        assert!(big.checked_add(Quantity::from_nanos(1)).is_none());
        assert!(big.to_milli_i64("x").is_err());
    }

    #[test]
    fn formats_canonically() {
        assert_eq!(parse("2Gi").expect("valid").to_string(), "2Gi");
        assert_eq!(parse("1930m").expect("valid").to_string(), "1930m");
        assert_eq!(parse("29").expect("valid").to_string(), "29");
        assert_eq!(format_cpu_milli(2000), "2");
        assert_eq!(format_cpu_milli(1930), "1930m");
        assert_eq!(format_bytes(6903 << 20), "6903Mi");
        assert_eq!(format_bytes(17 << 30), "17Gi");
        assert_eq!(format_bytes(1000), "1000");
    }

    #[test]
    fn deserializes_strings_and_bare_numbers() {
        let q: Quantity = serde_json::from_str("\"250m\"").expect("string");
        assert_eq!(q.milli_ceil(), 250);
        let q: Quantity = serde_json::from_str("2").expect("number");
        assert_eq!(q.units_ceil(), 2);
        assert!(serde_json::from_str::<Quantity>("\"2x\"").is_err());
    }
}
