//! `rate-limits` (on tenants and routes) and the connection limits of the listeners.

use super::*;

/// The largest rate accepted: one request per microsecond (the resolution of the buckets).
const MAX_PER_SECOND: u64 = 1_000_000;

/// Parses `N/s`, `N/m` or `N/h` into (N, period). N is a whole number of at least 1.
pub(crate) fn parse_rate(text: &str) -> Result<(u64, Duration), String> {
    let hint = "expected N/s, N/m or N/h with N a whole number of at least 1, e.g. 100/s";
    let Some((n, unit)) = text.trim().split_once('/') else {
        return Err(format!("invalid rate {text:?} ({hint})"));
    };
    let period = match unit.trim() {
        "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        _ => return Err(format!("invalid rate {text:?}: unknown unit ({hint})")),
    };
    let n = n.trim();
    let count = match n.parse::<u64>() {
        Ok(c) if n.bytes().all(|b| b.is_ascii_digit()) => c,
        _ => return Err(format!("invalid rate {text:?} ({hint})")),
    };
    if count == 0 {
        return Err(format!(
            "invalid rate {text:?}: must be at least 1 per {unit}"
        ));
    }
    if count / period.as_secs() > MAX_PER_SECOND {
        return Err(format!("invalid rate {text:?}: at most {MAX_PER_SECOND}/s"));
    }
    Ok((count, period))
}

/// The default `burst`: the rate per second, rounded up, at least 1.
pub(crate) fn default_burst(count: u64, period: Duration) -> u64 {
    count.div_ceil(period.as_secs()).max(1)
}

/// Validates a `rate-limits` list at `path`. `redis` says whether the session store is Redis
/// (what `shared: true` counts in).
pub(crate) fn rate_limits(
    d: &mut Diag<'_>,
    given: Option<Vec<FileRateLimit>>,
    path: &str,
    redis: bool,
) -> Vec<RateLimit> {
    let mut out = Vec::new();
    for (i, f) in given.unwrap_or_default().into_iter().enumerate() {
        let item = index(path, i);
        let key = match f.key.as_deref().map(str::trim) {
            None => {
                d.error(&join(&item, "key"), "missing required key \"key\"");
                None
            }
            Some("client-ip") => Some(RateLimitKey::ClientIp),
            Some("subject") => Some(RateLimitKey::Subject),
            Some("tenant") => Some(RateLimitKey::Tenant),
            Some(other) => {
                d.error(
                    &join(&item, "key"),
                    format!("invalid key {other:?} (expected client-ip, subject or tenant)"),
                );
                None
            }
        };
        let rate = match &f.rate {
            None => {
                d.error(&join(&item, "rate"), "missing required key \"rate\"");
                None
            }
            Some(t) => match parse_rate(&t.0) {
                Ok(r) => Some(r),
                Err(e) => {
                    d.error(&join(&item, "rate"), e);
                    None
                }
            },
        };
        let burst = f.burst.map(|b| b.0);
        if burst == Some(0) {
            d.error(&join(&item, "burst"), "must be at least 1");
        }
        let shared = f.shared.is_some_and(|s| s.0);
        if shared && !redis {
            d.error(
                &join(&item, "shared"),
                "shared: true counts in the session store's Redis, but session-store.url is not redis:// or redis-cluster://",
            );
        }
        if let (Some(key), Some((count, period))) = (key, rate) {
            out.push(RateLimit {
                key,
                count,
                period,
                burst: burst
                    .filter(|&b| b > 0)
                    .unwrap_or_else(|| default_burst(count, period)),
                shared,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_in_three_units_and_refuse_the_rest() {
        assert_eq!(parse_rate("10/s"), Ok((10, Duration::from_secs(1))));
        assert_eq!(parse_rate(" 5/m "), Ok((5, Duration::from_secs(60))));
        assert_eq!(parse_rate("1000/h"), Ok((1000, Duration::from_secs(3600))));
        for bad in [
            "10/x", "0/s", "abc", "10", "/s", "-1/s", "+1/s", "1.5/s", "10/ s s", "",
        ] {
            assert!(parse_rate(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_rate("1000001/s").is_err());
        assert!(parse_rate("60000000/m").is_ok());
    }

    #[test]
    fn default_burst_is_the_rate_per_second_rounded_up() {
        assert_eq!(default_burst(100, Duration::from_secs(1)), 100);
        assert_eq!(default_burst(100, Duration::from_secs(60)), 2);
        assert_eq!(default_burst(10, Duration::from_secs(3600)), 1);
    }
}
