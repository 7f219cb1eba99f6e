//! Go `time.Duration` values as dregsy's config writes them
//! (docs/configuration.md#value-types-and-how-errors-are-reported).

/// A duration from the config. Strings follow Go's `time.ParseDuration`; bare numbers follow
/// our rule: seconds (the original took them as nanoseconds, which nobody means).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurationValue {
    /// A signed length in nanoseconds; 0 means "use the default".
    Nanos(i128),
    /// A negative bare number: the feature is turned off (as `-1` is documented).
    Off,
}

impl DurationValue {
    /// Negative = off, 0 = default, positive = seconds (docs/compatibility.md).
    pub fn from_bare_number(n: i64) -> Self {
        if n < 0 {
            DurationValue::Off
        } else {
            DurationValue::Nanos(i128::from(n) * 1_000_000_000)
        }
    }

    /// Signed nanoseconds, with `Off` as -1 so "negative means off" holds for both spellings.
    pub fn nanos(self) -> i128 {
        match self {
            DurationValue::Nanos(n) => n,
            DurationValue::Off => -1,
        }
    }

    /// The positive length as a `std::time::Duration`, or `None` for zero and negative values.
    pub fn positive(self) -> Option<std::time::Duration> {
        let n = self.nanos();
        if n <= 0 {
            return None;
        }
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        Some(std::time::Duration::from_nanos(n))
    }
}

/// Parses a Go duration string such as `300ms`, `-1.5h` or `2h45m`.
pub fn parse_go_duration(text: &str) -> Result<i128, String> {
    let invalid = || format!("time: invalid duration \"{text}\"");
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_len];
        if number.is_empty() || number == "." {
            return Err(invalid());
        }
        let value: f64 = number.parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("time: missing unit in duration \"{text}\"")),
            other => {
                return Err(format!(
                    "time: unknown unit \"{other}\" in duration \"{text}\""
                ));
            }
        };
        rest = &rest[unit_len..];
        total += value * unit;
    }
    if total > i64::MAX as f64 {
        return Err(invalid());
    }
    let nanos = total.round() as i128;
    Ok(if negative { -nanos } else { nanos })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("30m"), Ok(1_800_000_000_000));
        assert_eq!(parse_go_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse_go_duration("-1s"), Ok(-1_000_000_000));
        assert_eq!(parse_go_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_go_duration("300ms"), Ok(300_000_000));
        assert_eq!(parse_go_duration("2us"), Ok(2_000));
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert!(parse_go_duration("1d").is_err());
        assert!(parse_go_duration("10").is_err());
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration("h").is_err());
    }

    #[test]
    fn bare_numbers_follow_d4() {
        assert_eq!(DurationValue::from_bare_number(-1), DurationValue::Off);
        assert_eq!(DurationValue::from_bare_number(0).positive(), None);
        assert_eq!(
            DurationValue::from_bare_number(60).positive(),
            Some(std::time::Duration::from_secs(60))
        );
    }
}
