//! Go durations as Karpenter's objects spell them.

use crate::pod::Millis;

/// Parses a Go duration (`720h`, `1m30s`, `500ms`) or `Never` (returned as `None`).
pub fn parse_duration(s: &str) -> std::result::Result<Option<Millis>, String> {
    if s == "Never" {
        return Ok(None);
    }
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut total: f64 = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_end == 0 {
            return Err(format!("invalid duration {s:?}"));
        }
        let n: f64 = rest[..num_end]
            .parse()
            .map_err(|_| format!("invalid duration {s:?}"))?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-6,
            "us" | "µs" => 1e-3,
            "ms" => 1.0,
            "s" => 1e3,
            "m" => 60e3,
            "h" => 3600e3,
            "" if n == 0.0 && s == "0" => 0.0,
            unit => return Err(format!("unknown unit {unit:?} in duration {s:?}")),
        };
        total += n * scale;
        rest = &rest[unit_end..];
    }
    if total > i64::MAX as f64 / 2.0 {
        return Err(format!("duration {s:?} is too long"));
    }
    Ok(Some(total.round() as Millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse_duration("1m30s"), Ok(Some(90_000)));
        assert_eq!(parse_duration("500ms"), Ok(Some(500)));
        assert_eq!(parse_duration("Never"), Ok(None));
        assert_eq!(parse_duration("0s"), Ok(Some(0)));
        assert!(parse_duration("5 days").is_err());
        assert!(parse_duration("").is_err());
    }
}
