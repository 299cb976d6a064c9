//! The address guard: which addresses a webhook may reach, and the resolver that enforces
//! it on every connection.
//!
//! A receiver's name is resolved once per connection by [`GuardedResolver`]; every address
//! it resolves to is checked, and the HTTP client connects only to the addresses that came
//! out of the check (there is no second lookup). An address written as the URL's host is
//! checked when the file is read. Outside development, only public unicast addresses pass;
//! the development setting adds loopback and private networks, never link-local (cloud
//! metadata services live there), unspecified, multicast, broadcast or reserved ranges.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// What kind of address an IP address is, for the guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// Public unicast: webhooks may reach it.
    Public,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// RFC 1918 (`10/8`, `172.16/12`, `192.168/16`), carrier-grade NAT (`100.64/10`),
    /// IPv6 unique-local (`fc00::/7`).
    Private,
    /// `169.254/16`, `fe80::/10`.
    LinkLocal,
    /// `0.0.0.0`, `::`.
    Unspecified,
    /// `224/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// Anything else that is not public unicast: `0/8`, `240/4`, documentation,
    /// benchmarking and protocol ranges, IPv6 outside `2000::/3`, deprecated IPv4-compatible,
    /// 6to4, Teredo and site-local forms.
    Reserved,
}

impl AddressClass {
    /// The class's name in messages and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            AddressClass::Public => "public",
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private",
            AddressClass::LinkLocal => "link-local",
            AddressClass::Unspecified => "unspecified",
            AddressClass::Multicast => "multicast",
            AddressClass::Broadcast => "broadcast",
            AddressClass::Reserved => "reserved",
        }
    }
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Classifies an address. IPv4-mapped (`::ffff:a.b.c.d`) and NAT64 (`64:ff9b::a.b.c.d`)
/// IPv6 addresses are classified by the IPv4 address they carry.
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let [a, b, c, _] = ip.octets();
    if ip.is_unspecified() {
        AddressClass::Unspecified
    } else if ip.is_loopback() {
        AddressClass::Loopback
    } else if ip.is_private() || (a == 100 && b & 0xc0 == 64) {
        AddressClass::Private
    } else if ip.is_link_local() {
        AddressClass::LinkLocal
    } else if ip.is_broadcast() {
        AddressClass::Broadcast
    } else if ip.is_multicast() {
        AddressClass::Multicast
    } else if a == 0
        || a >= 240
        || (a, b, c) == (192, 0, 0)
        || (a, b, c) == (192, 0, 2)
        || (a, b, c) == (192, 88, 99)
        || (a, b, c) == (198, 51, 100)
        || (a, b, c) == (203, 0, 113)
        || (a == 198 && b & 0xfe == 18)
    {
        AddressClass::Reserved
    } else {
        AddressClass::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    let s = ip.segments();
    let embedded_v4 = || Ipv4Addr::from((u32::from(s[6]) << 16) | u32::from(s[7]));
    if ip.is_unspecified() {
        AddressClass::Unspecified
    } else if ip.is_loopback() {
        AddressClass::Loopback
    } else if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        // NAT64: the gateway translates to the IPv4 address it carries.
        classify_v4(embedded_v4())
    } else if s[0] & 0xff00 == 0xff00 {
        AddressClass::Multicast
    } else if s[0] & 0xffc0 == 0xfe80 {
        AddressClass::LinkLocal
    } else if s[0] & 0xfe00 == 0xfc00 {
        AddressClass::Private
    } else if s[0] & 0xe000 != 0x2000
        || (s[0] == 0x2001 && s[1] < 0x0200)
        || (s[0] == 0x2001 && s[1] == 0x0db8)
        || s[0] == 0x2002
        || (s[0] == 0x3fff && s[1] < 0x1000)
    {
        // Outside global unicast (IPv4-compatible ::a.b.c.d, site-local, discard, local
        // NAT64 ...), IETF protocol assignments with Teredo, documentation, 6to4.
        AddressClass::Reserved
    } else {
        AddressClass::Public
    }
}

/// The address rule of one receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetRule {
    /// The development setting: loopback and private networks are allowed.
    pub development: bool,
    /// The URL is plain http: every address must be loopback (and `development` set).
    pub loopback_only: bool,
}

/// Why the guard refused a receiver.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressRefused {
    /// An address webhooks do not reach.
    #[error("the receiver resolves to a {0} address, which webhooks do not reach")]
    Class(AddressClass),
    /// Plain http to an address that is not loopback.
    #[error("plain http goes to loopback receivers only")]
    NotLoopback,
    /// A name other than the configured host.
    #[error("a connection to a host other than the configured one")]
    OtherHost,
    /// The name resolves to nothing.
    #[error("the receiver's name resolves to no address")]
    NoAddress,
}

impl AddressRefused {
    /// A short reason for configuration errors.
    pub fn reason(&self) -> &'static str {
        match self {
            AddressRefused::Class(AddressClass::Loopback | AddressClass::Private) => {
                "url: a loopback or private address needs the development setting"
            }
            AddressRefused::Class(_) => {
                "url: the address is link-local, unspecified, multicast, broadcast or reserved"
            }
            AddressRefused::NotLoopback => "url: plain http goes to loopback receivers only",
            AddressRefused::OtherHost | AddressRefused::NoAddress => "url: no usable address",
        }
    }
}

/// Checks one address against a receiver's rule.
///
/// # Errors
/// [`AddressRefused`] when the rule does not allow it.
pub fn check_ip(ip: IpAddr, rule: TargetRule) -> Result<(), AddressRefused> {
    let class = classify(ip);
    let allowed = match class {
        AddressClass::Public => true,
        AddressClass::Loopback | AddressClass::Private => rule.development,
        _ => false,
    };
    if !allowed {
        return Err(AddressRefused::Class(class));
    }
    if rule.loopback_only && class != AddressClass::Loopback {
        return Err(AddressRefused::NotLoopback);
    }
    Ok(())
}

/// Resolves `host` and checks every address: all must pass, or none is used (a name that
/// resolves to a mix of public and internal addresses is refused as a whole).
///
/// # Errors
/// [`ResolveError`] when the name does not resolve, or an address is refused.
pub async fn resolve_checked(
    host: &str,
    rule: TargetRule,
) -> Result<Vec<SocketAddr>, ResolveError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
        .await
        .map_err(|e| ResolveError::Lookup(e.kind()))?
        .collect();
    if addrs.is_empty() {
        return Err(AddressRefused::NoAddress.into());
    }
    for addr in &addrs {
        check_ip(addr.ip(), rule)?;
    }
    Ok(addrs)
}

/// Why a receiver's name gave no usable address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The lookup failed (worth retrying).
    #[error("the receiver's name did not resolve ({0})")]
    Lookup(std::io::ErrorKind),
    /// The guard refused it (not retried).
    #[error(transparent)]
    Refused(#[from] AddressRefused),
}

/// The HTTP client's resolver for one receiver: resolves only the configured host, and
/// hands the client exactly the addresses that passed [`check_ip`].
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    host: String,
    rule: TargetRule,
}

impl GuardedResolver {
    /// A resolver for the receiver at `host` (a name, as in its URL).
    pub fn new(host: &str, rule: TargetRule) -> Self {
        GuardedResolver {
            host: host.to_ascii_lowercase(),
            rule,
        }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let this = self.clone();
        let name = name.as_str().to_ascii_lowercase();
        Box::pin(async move {
            if name != this.host {
                return Err(boxed(AddressRefused::OtherHost.into()));
            }
            let addrs = resolve_checked(&this.host, this.rule)
                .await
                .map_err(boxed)?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The error type of [`Resolve`], holding the [`ResolveError`] itself (not a box of it), so
/// the delivery can find it among the HTTP error's sources.
fn boxed(error: ResolveError) -> Box<dyn std::error::Error + Send + Sync> {
    Box::new(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: TargetRule = TargetRule {
        development: false,
        loopback_only: false,
    };
    const DEVELOPMENT: TargetRule = TargetRule {
        development: true,
        loopback_only: false,
    };
    const DEVELOPMENT_HTTP: TargetRule = TargetRule {
        development: true,
        loopback_only: true,
    };

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn classes() {
        use AddressClass::*;
        for (text, class) in [
            ("8.8.8.8", Public),
            ("1.1.1.1", Public),
            ("100.63.255.255", Public),
            ("100.128.0.0", Public),
            ("172.32.0.1", Public),
            ("2606:4700::1111", Public),
            ("::ffff:8.8.8.8", Public),
            ("64:ff9b::808:808", Public),
            ("127.0.0.1", Loopback),
            ("127.255.255.254", Loopback),
            ("::1", Loopback),
            ("::ffff:127.0.0.1", Loopback),
            ("64:ff9b::7f00:1", Loopback),
            ("10.0.0.1", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("192.168.1.1", Private),
            ("100.64.0.1", Private),
            ("100.127.255.255", Private),
            ("fc00::1", Private),
            ("fd12:3456::1", Private),
            ("::ffff:10.0.0.1", Private),
            ("::ffff:192.168.0.1", Private),
            ("169.254.169.254", LinkLocal),
            ("fe80::1", LinkLocal),
            ("febf::1", LinkLocal),
            ("::ffff:169.254.169.254", LinkLocal),
            ("0.0.0.0", Unspecified),
            ("::", Unspecified),
            ("::ffff:0.0.0.0", Unspecified),
            ("224.0.0.1", Multicast),
            ("239.255.255.250", Multicast),
            ("ff02::1", Multicast),
            ("255.255.255.255", Broadcast),
            ("0.1.2.3", Reserved),
            ("240.0.0.1", Reserved),
            ("192.0.0.8", Reserved),
            ("192.0.2.1", Reserved),
            ("198.51.100.1", Reserved),
            ("203.0.113.1", Reserved),
            ("198.18.0.1", Reserved),
            ("198.19.255.255", Reserved),
            ("192.88.99.1", Reserved),
            ("::127.0.0.1", Reserved),
            ("::10.0.0.1", Reserved),
            ("fec0::1", Reserved),
            ("100::1", Reserved),
            ("64:ff9b:1::1", Reserved),
            ("2001::1", Reserved),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", Reserved),
            ("2001:db8::1", Reserved),
            ("2002:7f00:1::1", Reserved),
            ("3fff::1", Reserved),
            ("5f00::1", Reserved),
        ] {
            assert_eq!(classify(ip(text)), class, "{text}");
        }
    }

    #[test]
    fn outside_development_only_public_addresses_pass() {
        for text in ["8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert_eq!(check_ip(ip(text), STRICT), Ok(()), "{text}");
        }
        for text in [
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:7f00:1",
            "64:ff9b::7f00:1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.0.1",
            "100.64.0.1",
            "fd00::1",
            "::ffff:10.0.0.1",
            "169.254.169.254",
            "fe80::1",
            "0.0.0.0",
            "::",
            "224.0.0.1",
            "ff02::1",
            "255.255.255.255",
            "::127.0.0.1",
            "2002:7f00:1::1",
            "2001::1",
        ] {
            assert!(check_ip(ip(text), STRICT).is_err(), "{text}");
        }
    }

    #[test]
    fn development_adds_loopback_and_private_networks_only() {
        for text in [
            "127.0.0.1",
            "::1",
            "10.0.0.1",
            "fd00::1",
            "100.64.0.1",
            "8.8.8.8",
        ] {
            assert_eq!(check_ip(ip(text), DEVELOPMENT), Ok(()), "{text}");
        }
        for text in [
            "169.254.169.254",
            "fe80::1",
            "0.0.0.0",
            "::",
            "224.0.0.1",
            "::127.0.0.1",
        ] {
            assert!(check_ip(ip(text), DEVELOPMENT).is_err(), "{text}");
        }
        assert_eq!(check_ip(ip("127.0.0.1"), DEVELOPMENT_HTTP), Ok(()));
        assert_eq!(check_ip(ip("::1"), DEVELOPMENT_HTTP), Ok(()));
        for text in ["10.0.0.1", "8.8.8.8", "fd00::1"] {
            assert_eq!(
                check_ip(ip(text), DEVELOPMENT_HTTP),
                Err(AddressRefused::NotLoopback),
                "{text}"
            );
        }
    }

    /// Numeric spellings of loopback reach the guard as the address they mean: the URL
    /// parser normalizes them before anything connects.
    #[test]
    fn numeric_url_forms_are_the_addresses_they_spell() {
        for url in [
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0x7f.1/",
            "http://017700000001/",
            "http://127.1/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://[0:0:0:0:0:ffff:127.0.0.1]/",
        ] {
            let parsed = url::Url::parse(url).unwrap();
            let host: IpAddr = match parsed.host() {
                Some(url::Host::Ipv4(v4)) => v4.into(),
                Some(url::Host::Ipv6(v6)) => v6.into(),
                other => panic!("{url}: {other:?}"),
            };
            assert_eq!(classify(host), AddressClass::Loopback, "{url}");
            assert!(
                crate::config::parse_receiver_url(url, false).is_err(),
                "{url}"
            );
            let https = url.replacen("http:", "https:", 1);
            assert!(
                crate::config::parse_receiver_url(&https, false).is_err(),
                "{https}"
            );
        }
    }

    /// `localhost` resolves (without /etc/hosts entries of ours) to loopback addresses,
    /// which the resolver refuses outside development.
    #[tokio::test]
    async fn names_are_checked_after_resolution() {
        assert_eq!(
            resolve_checked("localhost", STRICT).await,
            Err(ResolveError::Refused(AddressRefused::Class(
                AddressClass::Loopback
            )))
        );
        let addrs = resolve_checked("localhost", DEVELOPMENT_HTTP)
            .await
            .unwrap();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
        for numeric in [
            "127.0.0.1",
            "::1",
            "::ffff:127.0.0.1",
            "2130706433",
            "10.0.0.1",
        ] {
            assert!(
                matches!(
                    resolve_checked(numeric, STRICT).await,
                    Err(ResolveError::Refused(_))
                ),
                "{numeric}"
            );
        }
    }

    #[tokio::test]
    async fn the_resolver_resolves_only_its_host() {
        let resolver = GuardedResolver::new("LocalHost", DEVELOPMENT_HTTP);
        let addrs: Vec<_> = resolver
            .resolve("localhost".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert!(!addrs.is_empty());
        let Err(error) = resolver.resolve("example.com".parse().unwrap()).await else {
            panic!("another host resolved");
        };
        assert_eq!(
            error.downcast_ref::<ResolveError>(),
            Some(&ResolveError::Refused(AddressRefused::OtherHost))
        );
        let strict = GuardedResolver::new("localhost", STRICT);
        assert!(strict.resolve("localhost".parse().unwrap()).await.is_err());
    }
}
