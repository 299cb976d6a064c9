//! Who sent a request: the client's address, from the TCP peer or, when the peer is a
//! trusted proxy, from the forwarding header that proxy writes.
//!
//! A forwarding header is a list of hops, the client first and each proxy appending the
//! address it received the request from. Only the hops appended by trusted proxies can be
//! believed, so the list is read from the right: past the peer, every hop that is itself a
//! trusted proxy is skipped, and the first one that is not is the client. Anything a
//! client wrote to the left of that is ignored, and a header from an untrusted peer is
//! never read.

use std::net::IpAddr;
use std::str::FromStr;

use axum::http::HeaderMap;
use clap::ValueEnum;

/// Most entries a trusted-proxy list may have.
const MAX_PROXIES: usize = 256;

/// The forwarding header the trusted proxies write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx, HAProxy, Envoy, cloud load
    /// balancers).
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239).
    Forwarded,
}

/// An IP network: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The proxies whose forwarding headers are believed (`--trusted-proxies`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<Network>,
    header: Option<ForwardedHeader>,
}

/// Why a trusted-proxy list was refused. Names the entry by position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("trusted proxy entry {entry}: {reason}")]
pub struct TrustedProxiesError {
    /// 1-based position of the entry in the list.
    pub entry: usize,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl TrustedProxies {
    /// No trusted proxy: the client is always the TCP peer.
    pub fn none() -> Self {
        TrustedProxies::default()
    }

    /// Parses a comma-separated list of IP addresses and CIDR networks
    /// (`10.0.0.0/8, 192.0.2.7, fd00::/8`); the proxies write `header`.
    ///
    /// # Errors
    /// [`TrustedProxiesError`] for an entry that is not an address or network, or a list of
    /// more than 256 entries.
    pub fn parse(text: &str, header: ForwardedHeader) -> Result<Self, TrustedProxiesError> {
        let mut networks = Vec::new();
        for (i, entry) in text.split(',').map(str::trim).enumerate() {
            let error = |reason| TrustedProxiesError {
                entry: i + 1,
                reason,
            };
            if entry.is_empty() {
                continue;
            }
            if networks.len() == MAX_PROXIES {
                return Err(error("at most 256 entries"));
            }
            let (address, prefix) = match entry.split_once('/') {
                Some((address, prefix)) => (address, Some(prefix)),
                None => (entry, None),
            };
            let address = IpAddr::from_str(address)
                .map(canonical)
                .map_err(|_| error("not an IP address or CIDR network"))?;
            let width = if address.is_ipv4() { 32 } else { 128 };
            let prefix = match prefix {
                Some(p) => p
                    .parse::<u8>()
                    .ok()
                    .filter(|p| *p <= width)
                    .ok_or(error("the prefix length is out of range"))?,
                None => width,
            };
            networks.push(Network { address, prefix });
        }
        Ok(TrustedProxies {
            networks,
            header: Some(header),
        })
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|n| n.contains(ip))
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    /// The client of a request received from `peer` with `headers`: the peer itself unless
    /// it is a trusted proxy, else the rightmost hop of the forwarding header that is not a
    /// trusted proxy. A hop that is not an address (`unknown`, an obfuscated name, garbage)
    /// ends the walk at the last address known good.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        let Some(header) = self.header.filter(|_| self.contains(peer)) else {
            return peer;
        };
        let mut client = peer;
        for hop in hops(header, headers).into_iter().rev() {
            let Some(ip) = hop else {
                return client;
            };
            client = ip;
            if !self.contains(ip) {
                return ip;
            }
        }
        client
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// Most hops read from a forwarding header; a longer chain is cut at its left end.
const MAX_HOPS: usize = 32;

/// The hops of the forwarding header, left to right, every header line in order; `None`
/// for a hop that is not an address.
///
/// A line is split on `,` as bytes and each hop decoded on its own: a proxy appends the
/// address it saw to the line the client sent, so a byte outside ASCII that the client
/// wrote spoils its own hop only, not the proxy's on the same line.
fn hops(header: ForwardedHeader, headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let (name, parse): (_, fn(&str) -> Option<IpAddr>) = match header {
        ForwardedHeader::XForwardedFor => ("x-forwarded-for", parse_hop),
        ForwardedHeader::Forwarded => ("forwarded", forwarded_for),
    };
    let mut out: Vec<Option<IpAddr>> = Vec::new();
    for value in headers.get_all(name) {
        out.extend(value.as_bytes().split(|&b| b == b',').map(|hop| {
            std::str::from_utf8(hop)
                .ok()
                .and_then(|hop| parse(hop.trim()))
        }));
    }
    let excess = out.len().saturating_sub(MAX_HOPS);
    out.drain(..excess);
    out
}

/// The `for=` address of one element of an RFC 7239 `Forwarded` header.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("for")
            .then(|| parse_hop(value.trim().trim_matches('"')))
            .flatten()
    })
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]` or `[2001:db8::1]:4711`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = IpAddr::from_str(hop) {
        return Some(canonical(ip));
    }
    if let Some(rest) = hop.strip_prefix('[') {
        let (ip, _) = rest.split_once(']')?;
        return IpAddr::from_str(ip).ok().map(canonical);
    }
    let (ip, port) = hop.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    IpAddr::from_str(ip).ok().filter(IpAddr::is_ipv4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(name: &'static str, values: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(name, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn lists_parse_and_match() {
        let t = TrustedProxies::parse(
            "10.0.0.0/8, 192.0.2.7 ,fd00::/8",
            ForwardedHeader::XForwardedFor,
        )
        .unwrap();
        assert!(t.contains(ip("10.1.2.3")));
        assert!(t.contains(ip("::ffff:10.1.2.3")));
        assert!(t.contains(ip("192.0.2.7")));
        assert!(!t.contains(ip("192.0.2.8")));
        assert!(t.contains(ip("fd12::1")));
        assert!(!t.contains(ip("fe80::1")));
        let all = TrustedProxies::parse("0.0.0.0/0", ForwardedHeader::XForwardedFor).unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        for (bad, entry) in [
            ("10.0.0.0/33", 1),
            ("1.2.3.4,x", 2),
            ("::/129", 1),
            ("a/8", 1),
        ] {
            let e = TrustedProxies::parse(bad, ForwardedHeader::XForwardedFor).unwrap_err();
            assert_eq!(e.entry, entry, "{bad}");
        }
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_hop() {
        let t = TrustedProxies::parse("10.0.0.0/8", ForwardedHeader::XForwardedFor).unwrap();
        let h = headers("x-forwarded-for", &["6.6.6.6, 203.0.113.5, 10.0.0.2"]);
        assert_eq!(t.client(ip("10.0.0.1"), &h), ip("203.0.113.5"));
        // Several header lines are one list.
        let h = headers("x-forwarded-for", &["6.6.6.6", "203.0.113.5:1234"]);
        assert_eq!(t.client(ip("10.0.0.1"), &h), ip("203.0.113.5"));
        // An untrusted peer's header is ignored.
        let h = headers("x-forwarded-for", &["1.2.3.4"]);
        assert_eq!(t.client(ip("198.51.100.1"), &h), ip("198.51.100.1"));
        // No header: the proxy itself.
        assert_eq!(t.client(ip("10.0.0.1"), &HeaderMap::new()), ip("10.0.0.1"));
        // Garbage stops the walk at the last good address.
        let h = headers("x-forwarded-for", &["1.2.3.4, nonsense, 10.0.0.3"]);
        assert_eq!(t.client(ip("10.0.0.1"), &h), ip("10.0.0.3"));
        // The other header is not read.
        let h = headers("forwarded", &["for=1.2.3.4"]);
        assert_eq!(t.client(ip("10.0.0.1"), &h), ip("10.0.0.1"));
        // No list: never read.
        let h = headers("x-forwarded-for", &["1.2.3.4"]);
        assert_eq!(
            TrustedProxies::none().client(ip("10.0.0.1"), &h),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn a_byte_outside_ascii_spoils_its_own_hop_only() {
        let t = TrustedProxies::parse("10.0.0.0/8", ForwardedHeader::XForwardedFor).unwrap();
        let line = |bytes: &'static [u8]| {
            let mut h = HeaderMap::new();
            h.append("x-forwarded-for", HeaderValue::from_bytes(bytes).unwrap());
            h
        };
        // The client wrote garbage; the proxy appended the address it saw on the same line.
        let h = line(b"\xff\xfe, 203.0.113.5");
        assert_eq!(t.client(ip("10.0.0.1"), &h), ip("203.0.113.5"));
        let h = line(b"6.6.6.6 \xc3\xa9, 203.0.113.5, 10.0.0.2");
        assert_eq!(t.client(ip("10.0.0.1"), &h), ip("203.0.113.5"));
        // Garbage right of the client still ends the walk at the last good address.
        let h = line(b"203.0.113.5, \xff, 10.0.0.3");
        assert_eq!(t.client(ip("10.0.0.1"), &h), ip("10.0.0.3"));
        // The same for RFC 7239.
        let t = TrustedProxies::parse("10.0.0.0/8", ForwardedHeader::Forwarded).unwrap();
        let mut h = HeaderMap::new();
        h.append(
            "forwarded",
            HeaderValue::from_bytes(b"for=\"\xff\", for=203.0.113.6").unwrap(),
        );
        assert_eq!(t.client(ip("10.0.0.1"), &h), ip("203.0.113.6"));
    }

    #[test]
    fn forwarded_headers() {
        let t = TrustedProxies::parse("10.0.0.0/8", ForwardedHeader::Forwarded).unwrap();
        let h = headers(
            "forwarded",
            &["for=6.6.6.6, for=\"[2001:db8::17]:4711\";proto=https, For=10.0.0.9"],
        );
        assert_eq!(t.client(ip("10.0.0.1"), &h), ip("2001:db8::17"));
        let h = headers("forwarded", &["for=unknown"]);
        assert_eq!(t.client(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }
}
