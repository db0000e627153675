//! Durations written as strings: a decimal number and a unit.

use std::time::Duration;

use thiserror::Error;

/// The largest timeout: 24 days, so that every timeout fits `u32` milliseconds.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 24 * 3600);

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DurationError {
    #[error("{0:?} is not a duration: write a number and a unit us, ms, s, m or h (e.g. \"300s\", \"1.5s\", \"10ms\")")]
    Syntax(String),
    #[error("{0:?} is too large")]
    Overflow(String),
}

/// Parse `"300s"`, `"10ms"`, `"1.5s"`, `"2m"`, `"1h"`, `"500us"` (also `"µs"`).
/// A single number (digits, optionally `.` and more digits) followed directly by one
/// unit; no sign, no spaces. Zero is accepted here; callers decide whether it is
/// allowed. Fractions are exact down to the nanosecond (finer digits are truncated).
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let syntax = || DurationError::Syntax(s.to_string());
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(syntax)?;
    let (number, unit) = s.split_at(split);
    let unit_ns: u128 = match unit {
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return Err(syntax()),
    };
    let (int, frac) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if int.is_empty() || (number.contains('.') && frac.is_empty()) || frac.contains('.') {
        return Err(syntax());
    }
    if int.len() > 20 {
        return Err(DurationError::Overflow(s.to_string()));
    }
    let int: u128 = int.parse().map_err(|_| syntax())?;
    let mut nanos = int.checked_mul(unit_ns).ok_or_else(|| DurationError::Overflow(s.to_string()))?;
    let mut scale = unit_ns;
    for d in frac.bytes() {
        scale /= 10;
        if scale == 0 {
            break;
        }
        nanos += u128::from(d - b'0') * scale;
    }
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| DurationError::Overflow(s.to_string()))?;
    Ok(Duration::new(secs, (nanos % 1_000_000_000) as u32))
}

/// Milliseconds of a duration, rounded up (so any positive duration is at least 1 ms),
/// saturating at `u32::MAX`.
pub fn duration_ms_ceil(d: Duration) -> u32 {
    let ms = d.as_nanos().div_ceil(1_000_000);
    u32::try_from(ms).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_forms() {
        assert_eq!(parse_duration("300s"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("10ms"), Ok(Duration::from_millis(10)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("500us"), Ok(Duration::from_micros(500)));
        assert_eq!(parse_duration("500µs"), Ok(Duration::from_micros(500)));
        assert_eq!(parse_duration("0.25ms"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("1.000000001s"), Ok(Duration::new(1, 1)));
    }

    #[test]
    fn rejects_malformed() {
        for bad in ["", "s", "10", "10 s", "-1s", "1.s", ".5s", "1..5s", "1.2.3s", "10sec", "1d", "1e3s", "+1s", "1s1"]
        {
            assert!(matches!(parse_duration(bad), Err(DurationError::Syntax(_))), "{bad:?}");
        }
        assert!(matches!(parse_duration("99999999999999999999999h"), Err(DurationError::Overflow(_))));
        assert!(parse_duration("18446744073709551615h").is_err());
    }

    #[test]
    fn ms_rounds_up() {
        assert_eq!(duration_ms_ceil(Duration::from_micros(500)), 1);
        assert_eq!(duration_ms_ceil(Duration::from_millis(1500)), 1500);
        assert_eq!(duration_ms_ceil(Duration::from_micros(1001)), 2);
        assert_eq!(duration_ms_ceil(MAX_TIMEOUT), 2_073_600_000);
        assert_eq!(duration_ms_ceil(Duration::from_secs(u64::MAX)), u32::MAX);
    }
}
