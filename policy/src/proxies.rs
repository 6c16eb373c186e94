//! Trusted proxies and `X-Forwarded-For`.
//!
//! A peer inside a trusted CIDR is another proxy of ours (a load balancer in front of the
//! gateway): its `X-Forwarded-For` is kept and extended. Any other peer is the client itself,
//! and whatever `X-Forwarded-For` it sent is discarded, so clients cannot forge their address.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// A set of trusted CIDRs, merged into sorted disjoint ranges so that [`contains`] is a binary
/// search.
///
/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`, as a dual-stack listener reports IPv4 peers)
/// are treated as the IPv4 address they carry, both in the CIDRs given and in lookups.
///
/// [`contains`]: TrustedProxies::contains
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    /// Inclusive `(first, last)` ranges, sorted and disjoint.
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl TrustedProxies {
    /// Builds the set from CIDRs (overlaps and duplicates are fine; host bits are ignored, so
    /// `10.1.2.3/8` means `10.0.0.0/8`). An empty list trusts nobody.
    pub fn new(nets: Vec<IpNet>) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for net in nets {
            match net {
                IpNet::V4(n) => v4.push(v4_range(n)),
                IpNet::V6(n) => match mapped_v4_net(n) {
                    Some(n) => v4.push(v4_range(n)),
                    None => v6.push((u128::from(n.network()), u128::from(n.broadcast()))),
                },
            }
        }
        TrustedProxies {
            v4: merge(v4),
            v6: merge(v6),
        }
    }

    /// Whether no address is trusted.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Whether `ip` is inside one of the trusted CIDRs (an IPv4-mapped IPv6 address is checked
    /// as IPv4).
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip.to_canonical() {
            IpAddr::V4(a) => in_ranges(&self.v4, u32::from(a)),
            IpAddr::V6(a) => in_ranges(&self.v6, u128::from(a)),
        }
    }
}

impl From<Vec<IpNet>> for TrustedProxies {
    fn from(nets: Vec<IpNet>) -> Self {
        TrustedProxies::new(nets)
    }
}

fn v4_range(n: Ipv4Net) -> (u32, u32) {
    (u32::from(n.network()), u32::from(n.broadcast()))
}

/// The IPv4 network an IPv6 network inside `::ffff:0:0/96` stands for.
fn mapped_v4_net(n: Ipv6Net) -> Option<Ipv4Net> {
    let len = n.prefix_len().checked_sub(96)?;
    let v4: Ipv4Addr = n.network().to_ipv4_mapped()?;
    Ipv4Net::new(v4, len).ok()
}

/// Sorts ranges and merges overlapping or adjacent ones.
fn merge<T: Ord + Copy + num::Step>(mut ranges: Vec<(T, T)>) -> Vec<(T, T)> {
    ranges.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match out.last_mut() {
            Some(last) if last.1.next().is_none_or(|n| lo <= n) => {
                if hi > last.1 {
                    last.1 = hi;
                }
            }
            _ => out.push((lo, hi)),
        }
    }
    out.shrink_to_fit();
    out
}

fn in_ranges<T: Ord + Copy>(ranges: &[(T, T)], ip: T) -> bool {
    // Index of the first range starting above `ip`; the one before it is the only candidate.
    let i = ranges.partition_point(|&(lo, _)| lo <= ip);
    i > 0 && ip <= ranges[i - 1].1
}

/// Integer successor without overflow, for merging adjacent ranges.
mod num {
    /// `self + 1`, or `None` at the maximum.
    pub trait Step: Sized {
        /// The successor.
        fn next(self) -> Option<Self>;
    }

    impl Step for u32 {
        fn next(self) -> Option<Self> {
            self.checked_add(1)
        }
    }

    impl Step for u128 {
        fn next(self) -> Option<Self> {
            self.checked_add(1)
        }
    }
}

/// The `X-Forwarded-For` value to send upstream.
///
/// - `trusted` (the peer is a trusted proxy) and a non-blank `existing` value: `existing`
///   (trimmed) followed by `, peer`;
/// - otherwise: just `peer`, discarding whatever the client claimed.
///
/// The peer is written in canonical form (an IPv4-mapped IPv6 address as plain IPv4).
#[must_use]
pub fn forwarded_for(existing: Option<&str>, peer: IpAddr, trusted: bool) -> String {
    let peer = peer.to_canonical();
    let existing = existing
        .filter(|_| trusted)
        .map(str::trim)
        .filter(|e| !e.is_empty());
    // Room for the longest IPv6 text form.
    let mut out = String::with_capacity(existing.map_or(0, |e| e.len() + 2) + 39);
    if let Some(e) = existing {
        out.push_str(e);
        out.push_str(", ");
    }
    out.push_str(IpText::new(peer).as_str());
    out
}

/// The text form of an IP address (`203.0.113.9`, `2001:db8::1`) on the stack. IPv4, the
/// common case on every proxied request, is written digit by digit; IPv6 through `Display`.
pub struct IpText {
    buf: [u8; 45],
    len: usize,
}

impl IpText {
    /// Formats `ip`.
    pub fn new(ip: IpAddr) -> IpText {
        let mut text = IpText {
            buf: [0; 45],
            len: 0,
        };
        match ip {
            IpAddr::V4(v4) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        text.push(b'.');
                    }
                    if octet >= 100 {
                        text.push(b'0' + octet / 100);
                    }
                    if octet >= 10 {
                        text.push(b'0' + octet / 10 % 10);
                    }
                    text.push(b'0' + octet % 10);
                }
            }
            // The longest IPv6 text form (45 bytes) fits: writing cannot fail.
            IpAddr::V6(v6) => {
                let _ = write!(text, "{v6}");
            }
        }
        text
    }

    fn push(&mut self, b: u8) {
        self.buf[self.len] = b;
        self.len += 1;
    }

    /// The address as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits, dots, hex digits and colons are ever written.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

impl std::fmt::Write for IpText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        self.buf
            .get_mut(self.len..end)
            .ok_or(std::fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter()
            .map(|s| s.parse().expect("valid CIDR"))
            .collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("valid IP")
    }

    #[test]
    fn contains_v4_and_v6() {
        let t = TrustedProxies::new(nets(&["10.0.0.0/8", "192.168.1.7/32", "fd00::/8"]));
        assert!(t.contains(ip("10.1.2.3")));
        assert!(t.contains(ip("10.255.255.255")));
        assert!(!t.contains(ip("11.0.0.0")));
        assert!(!t.contains(ip("9.255.255.255")));
        assert!(t.contains(ip("192.168.1.7")));
        assert!(!t.contains(ip("192.168.1.8")));
        assert!(t.contains(ip("fd12::1")));
        assert!(!t.contains(ip("fe80::1")));
        assert!(!t.contains(ip("::1")));
    }

    #[test]
    fn ipv4_mapped() {
        let t = TrustedProxies::new(nets(&["10.0.0.0/8", "::ffff:172.16.0.0/108"]));
        assert!(t.contains(ip("::ffff:10.0.0.1")));
        assert!(!t.contains(ip("::ffff:11.0.0.1")));
        // A mapped CIDR covers the plain IPv4 addresses too.
        assert!(t.contains(ip("172.16.3.4")));
        assert!(t.contains(ip("::ffff:172.31.255.255")));
        assert!(!t.contains(ip("172.32.0.0")));
        // IPv4-compatible (deprecated) addresses are not mapped ones.
        assert!(!t.contains(ip("::10.0.0.1")));
    }

    #[test]
    fn overlapping_adjacent_and_empty() {
        let t = TrustedProxies::new(nets(&[
            "10.0.0.0/24",
            "10.0.0.0/16",
            "10.0.1.0/24",
            "10.1.0.0/16",
            "10.1.2.3/8",
            "0.0.0.0/32",
            "255.255.255.255/32",
            "::/0",
        ]));
        assert_eq!(
            t.v4,
            vec![(0, 0), (0x0a00_0000, 0x0aff_ffff), (u32::MAX, u32::MAX)]
        );
        assert_eq!(t.v6, vec![(0, u128::MAX)]);
        assert!(t.contains(ip("10.200.0.1")));
        assert!(t.contains(ip("255.255.255.255")));
        assert!(t.contains(ip("0.0.0.0")));
        assert!(!t.contains(ip("1.1.1.1")));
        assert!(t.contains(ip("2001:db8::1")));
        let all = TrustedProxies::new(nets(&["0.0.0.0/0", "0.0.0.0/1"]));
        assert_eq!(all.v4, vec![(0, u32::MAX)]);

        let none = TrustedProxies::new(Vec::new());
        assert!(none.is_empty());
        assert!(!none.contains(ip("127.0.0.1")));
        assert!(!none.contains(ip("::1")));
        assert_eq!(TrustedProxies::from(Vec::new()), none);
    }

    #[test]
    fn ip_text_matches_display() {
        for text in [
            "0.0.0.0",
            "1.2.3.4",
            "9.10.99.100",
            "127.0.0.1",
            "203.0.113.9",
            "255.255.255.255",
            "::1",
            "2001:db8::1",
            "::ffff:1.2.3.4",
            "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
            "1111:2222:3333:4444:5555:6666:7777:8888",
        ] {
            let ip: IpAddr = text.parse().expect("an address");
            assert_eq!(IpText::new(ip).as_str(), ip.to_string(), "{text}");
        }
    }

    #[test]
    fn forwarded_for_values() {
        let peer = ip("203.0.113.9");
        assert_eq!(
            forwarded_for(Some("198.51.100.1"), peer, true),
            "198.51.100.1, 203.0.113.9"
        );
        assert_eq!(
            forwarded_for(Some(" 1.1.1.1, 2.2.2.2 "), peer, true),
            "1.1.1.1, 2.2.2.2, 203.0.113.9"
        );
        assert_eq!(forwarded_for(Some("1.1.1.1"), peer, false), "203.0.113.9");
        assert_eq!(forwarded_for(None, peer, true), "203.0.113.9");
        assert_eq!(forwarded_for(Some("  "), peer, true), "203.0.113.9");
        assert_eq!(
            forwarded_for(None, ip("::ffff:10.0.0.1"), false),
            "10.0.0.1"
        );
        assert_eq!(
            forwarded_for(Some("10.0.0.1"), ip("2001:db8::1"), true),
            "10.0.0.1, 2001:db8::1"
        );
    }
}
