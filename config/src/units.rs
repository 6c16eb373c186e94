//! Durations ("250ms", "1h30m") and sizes ("16KiB", "10MiB") as written in the config.

use std::time::Duration;

/// What a bad duration's message suggests instead.
pub(crate) const DURATION_HINT: &str = "expected e.g. 250ms, 30s, 15m, 1h30m";
/// What a bad size's message suggests instead.
pub(crate) const SIZE_HINT: &str = "expected e.g. 512, 16KiB, 10MiB";

/// Parses a duration: a bare integer (seconds) or one or more `<integer><unit>` parts with units
/// `ms`, `s`, `m`, `h`, `d`, e.g. `250ms`, `30s`, `15m`, `1h30m`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let s = text.trim();
    if s.is_empty() {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<u64>().ok().map(Duration::from_secs);
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let part = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60)?),
            "h" => Duration::from_secs(n.checked_mul(3600)?),
            "d" => Duration::from_secs(n.checked_mul(86_400)?),
            _ => return None,
        };
        rest = &rest[unit_len..];
        total = total.checked_add(part)?;
    }
    Some(total)
}

/// Parses a size in bytes: a bare integer, or an integer with a unit `B`, `KiB`, `MiB`, `GiB`,
/// `TiB` (1024-based) or `KB`/`kB`, `MB`, `GB`, `TB` (1000-based), e.g. `512`, `16KiB`, `10MiB`.
pub fn parse_size(text: &str) -> Option<u64> {
    let s = text.trim();
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let n: u64 = s[..digits].parse().ok()?;
    let factor: u64 = match s[digits..].trim_start() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        _ => return None,
    };
    n.checked_mul(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(
            parse_duration("1m500ms"),
            Some(Duration::from_millis(60_500))
        );
        assert_eq!(parse_duration("2d"), Some(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("45"), Some(Duration::from_secs(45)));
        assert_eq!(parse_duration("0s"), Some(Duration::ZERO));
        for bad in ["", "s", "10x", "1.5s", "-1s", "1h 30m", "ms", "10 s", "1hh"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("512B"), Some(512));
        assert_eq!(parse_size("16KiB"), Some(16 * 1024));
        assert_eq!(parse_size("10MiB"), Some(10 * 1024 * 1024));
        assert_eq!(parse_size("1GiB"), Some(1 << 30));
        assert_eq!(parse_size("2KB"), Some(2000));
        assert_eq!(parse_size("3MB"), Some(3_000_000));
        assert_eq!(parse_size("10 MiB"), Some(10 << 20));
        for bad in [
            "",
            "KiB",
            "10XB",
            "1.5MiB",
            "-1",
            "10kib",
            "99999999999999999999",
        ] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
        assert_eq!(parse_size("20000000TiB"), None, "overflow");
    }
}
