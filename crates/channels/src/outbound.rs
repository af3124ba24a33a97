//! Where tenant-chosen targets may point. Webhook URLs and web push endpoints come from API
//! callers: unchecked, Herald would POST for them to its own loopback, the private network or a
//! cloud metadata endpoint (169.254.169.254). Only public addresses are reached, plus the networks
//! the operator allows (`outbound.allow_private`).
//!
//! The check is made on the address actually connected to, so DNS rebinding cannot slip a private
//! one in after it: the client's resolver drops refused addresses, and IP-literal hosts, which
//! never reach a resolver, are checked before the request goes out.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

pub use ipnet::IpNet;
use ipnet::{Ipv4Net, Ipv6Net};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::{RequestBuilder, Response, Url};

use crate::SendError;

/// IPv4 networks that are not the public internet.
const NOT_PUBLIC_V4: [Ipv4Net; 15] = [
    v4(0, 0, 0, 0, 8),       // "this network", the unspecified address
    v4(10, 0, 0, 0, 8),      // private
    v4(100, 64, 0, 0, 10),   // shared address space (carrier-grade NAT)
    v4(127, 0, 0, 0, 8),     // loopback
    v4(169, 254, 0, 0, 16),  // link-local, where cloud metadata services answer
    v4(172, 16, 0, 0, 12),   // private
    v4(192, 0, 0, 0, 24),    // IETF protocol assignments
    v4(192, 0, 2, 0, 24),    // documentation
    v4(192, 88, 99, 0, 24),  // 6to4 relay anycast (deprecated)
    v4(192, 168, 0, 0, 16),  // private
    v4(198, 18, 0, 0, 15),   // benchmarking
    v4(198, 51, 100, 0, 24), // documentation
    v4(203, 0, 113, 0, 24),  // documentation
    v4(224, 0, 0, 0, 4),     // multicast
    v4(240, 0, 0, 0, 4),     // reserved, and the broadcast address
];

/// IPv6 networks that are not the public internet (IPv4-mapped addresses are judged as IPv4).
const NOT_PUBLIC_V6: [Ipv6Net; 9] = [
    v6([0, 0, 0, 0, 0, 0, 0, 0], 96), // unspecified, loopback, the deprecated IPv4-compatible form
    v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48), // NAT64 for local use
    v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64), // discard-only
    v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 32), // Teredo tunnels
    v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), // documentation
    v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7), // unique local (private)
    v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), // link-local
    v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10), // site-local (deprecated)
    v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), // multicast
];

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), prefix)
}

const fn v6(s: [u16; 8], prefix: u8) -> Ipv6Net {
    Ipv6Net::new_assert(Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]), prefix)
}

/// Whether `ip` is on the public internet: not loopback, private, link-local, shared (CGNAT),
/// unspecified, documentation, benchmarking, multicast or reserved. IPv6 forms that carry an IPv4
/// address (mapped, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are judged by that address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => !NOT_PUBLIC_V4.iter().any(|n| n.contains(&v4)),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => is_public(v4.into()),
            None => !NOT_PUBLIC_V6.iter().any(|n| n.contains(&v6)),
        },
    }
}

/// The IPv4 address a NAT64 or 6to4 address reaches.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let [.., a, b, c, d] = ip.octets();
    match s {
        [0x64, 0xff9b, 0, 0, 0, 0, ..] => Some(Ipv4Addr::new(a, b, c, d)),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo))),
        _ => None,
    }
}

/// An `outbound.allow_private` entry that is neither a network nor an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a network (such as 10.0.0.0/8 or fd00::/8) or an IP address")]
pub struct InvalidNetwork(String);

/// Parses a network in CIDR notation; a bare address is the network of that address alone (/32
/// or /128).
pub fn parse_network(s: &str) -> Result<IpNet, InvalidNetwork> {
    let s = s.trim();
    s.parse::<IpNet>()
        .map(|n| n.trunc())
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| InvalidNetwork(s.to_owned()))
}

/// Why a target's address is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The URL's host is a refused address.
    #[error("{0} is a private address; allow it with outbound.allow_private")]
    Address(IpAddr),
    /// Every address the host name resolves to is refused.
    #[error("{name} resolves only to private addresses ({}); allow them with outbound.allow_private", list(.addresses))]
    Name {
        /// The host name.
        name: String,
        /// What it resolved to.
        addresses: Vec<IpAddr>,
    },
}

fn list(addresses: &[IpAddr]) -> String {
    addresses.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// What tenant-chosen targets may reach: public addresses, and the private networks allowed.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    allow_private: Arc<[IpNet]>,
}

impl Policy {
    /// Public addresses, and those in `allow_private`.
    pub fn new(allow_private: Vec<IpNet>) -> Self {
        Self { allow_private: allow_private.into() }
    }

    /// Whether `ip` may be connected to.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        is_public(ip) || self.allow_private.iter().any(|n| n.contains(&ip))
    }

    /// Refuses a URL whose host is a refused IP address; host names are checked when resolved.
    pub fn check(&self, url: &Url) -> Result<(), Refused> {
        let ip = match url.host() {
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
            Some(url::Host::Domain(_)) | None => return Ok(()),
        };
        if self.permits(ip) { Ok(()) } else { Err(Refused::Address(ip)) }
    }
}

impl Resolve for Policy {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.clone();
        let name = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: reqwest puts in the URL's.
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let permitted: Vec<SocketAddr> = found.iter().copied().filter(|a| policy.permits(a.ip())).collect();
            if permitted.is_empty() && !found.is_empty() {
                return Err(Refused::Name { name, addresses: found.iter().map(SocketAddr::ip).collect() }.into());
            }
            Ok(Box::new(permitted.into_iter()) as Addrs)
        })
    }
}

/// An HTTP client for tenant-chosen targets that connects only where its [`Policy`] permits.
pub(crate) struct Client {
    http: reqwest::Client,
    policy: Policy,
}

impl Client {
    /// A client whose requests time out after `timeout`. It ignores proxy settings from the
    /// environment: through a proxy, the address connected to would be the proxy's, not the target's.
    pub(crate) fn new(policy: Policy, timeout: Duration) -> Result<Self, reqwest::Error> {
        let http = crate::http_client(timeout).no_proxy().dns_resolver(policy.clone()).build()?;
        Ok(Self { http, policy })
    }

    /// POSTs to `url` the request `build` makes. A refused address is a permanent error naming the
    /// target (`what`: "webhook target", "web push endpoint"); any other failure to get an answer
    /// is worth retrying.
    pub(crate) async fn post(
        &self,
        what: &str,
        url: Url,
        build: impl FnOnce(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, SendError> {
        let refused = |r: &Refused| SendError::Permanent(format!("{what} {r}"));
        self.policy.check(&url).map_err(|r| refused(&r))?;
        build(self.http.post(url)).send().await.map_err(|e| match refusal(&e) {
            Some(r) => refused(r),
            None => SendError::Transient { message: format!("request failed: {e}"), retry_after: None },
        })
    }
}

/// The refusal behind a failed request, when that is why it failed.
fn refusal(e: &reqwest::Error) -> Option<&Refused> {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<Refused>() {
            return Some(r);
        }
        source = s.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for s in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.53.0.9",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::127.0.0.1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "100::1",
            "2001:db8::1",
            "2001:0:4136:e378::1",
            "64:ff9b:1::a00:1",
        ] {
            assert!(!is_public(ip(s)), "{s} is not public");
        }
    }

    #[test]
    fn public_addresses_are_public() {
        for s in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "192.0.1.1",
            "192.169.0.1",
            "198.20.0.1",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "2001:4860:4860::8888",
        ] {
            assert!(is_public(ip(s)), "{s} is public");
        }
    }

    #[test]
    fn ipv6_forms_of_ipv4_addresses_are_judged_by_the_ipv4_address() {
        for (s, public) in [
            ("::ffff:127.0.0.1", false),
            ("::ffff:169.254.169.254", false),
            ("::ffff:10.1.2.3", false),
            ("::ffff:8.8.8.8", true),
            ("64:ff9b::7f00:1", false),
            ("64:ff9b::a9fe:a9fe", false),
            ("64:ff9b::808:808", true),
            ("2002:7f00:1::1", false),
            ("2002:c0a8:101::", false),
            ("2002:808:808::1", true),
        ] {
            assert_eq!(is_public(ip(s)), public, "{s}");
        }
    }

    #[test]
    fn allowed_networks_are_permitted_and_nothing_else_private() {
        let policy = Policy::new(vec![parse_network("127.0.0.0/8").unwrap(), parse_network("fd00::/8").unwrap()]);
        assert!(policy.permits(ip("127.0.0.1")));
        assert!(policy.permits(ip("::ffff:127.0.0.1")), "an IPv4-mapped address matches an IPv4 network");
        assert!(policy.permits(ip("fd00::5")));
        assert!(policy.permits(ip("8.8.8.8")));
        assert!(!policy.permits(ip("::1")));
        assert!(!policy.permits(ip("10.0.0.1")));
        assert!(!policy.permits(ip("169.254.169.254")));
        assert!(!Policy::default().permits(ip("127.0.0.1")));
    }

    #[test]
    fn networks_parse_with_or_without_a_prefix() {
        assert_eq!(parse_network("10.0.0.0/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse_network(" 10.1.2.3/8 ").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse_network("192.168.1.20").unwrap().to_string(), "192.168.1.20/32");
        assert_eq!(parse_network("::1").unwrap().to_string(), "::1/128");
        assert_eq!(parse_network("fd00::/8").unwrap().to_string(), "fd00::/8");
        for bad in ["", "10.0.0.0/33", "localhost", "10.0.0/8", "::1/129"] {
            assert_eq!(parse_network(bad), Err(InvalidNetwork(bad.to_owned())), "{bad:?}");
        }
    }

    #[test]
    fn ip_literal_hosts_are_checked_and_names_left_to_the_resolver() {
        let policy = Policy::default();
        let url = |s: &str| Url::parse(s).unwrap();
        assert_eq!(policy.check(&url("http://127.0.0.1:5432/")), Err(Refused::Address(ip("127.0.0.1"))));
        assert_eq!(policy.check(&url("http://[::1]/")), Err(Refused::Address(ip("::1"))));
        assert_eq!(policy.check(&url("http://2130706433/")), Err(Refused::Address(ip("127.0.0.1"))));
        assert_eq!(policy.check(&url("http://0x7f.1/")), Err(Refused::Address(ip("127.0.0.1"))));
        assert_eq!(
            policy.check(&url("http://169.254.169.254/latest/meta-data")).unwrap_err().to_string(),
            "169.254.169.254 is a private address; allow it with outbound.allow_private"
        );
        assert_eq!(policy.check(&url("https://8.8.8.8/")), Ok(()));
        assert_eq!(policy.check(&url("https://hooks.example.com/")), Ok(()));
    }

    #[tokio::test]
    async fn the_resolver_drops_refused_addresses() {
        let name = |s: &str| s.parse::<Name>().unwrap();
        let e = Policy::default().resolve(name("localhost")).await.err().expect("localhost is refused");
        let refused = e.downcast_ref::<Refused>().expect("a refusal");
        assert!(matches!(refused, Refused::Name { name, addresses } if name == "localhost" && !addresses.is_empty()));
        let allowed = Policy::new(vec![parse_network("127.0.0.0/8").unwrap(), parse_network("::1").unwrap()]);
        let addrs: Vec<SocketAddr> = allowed.resolve(name("localhost")).await.unwrap().collect();
        assert!(!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }

    #[tokio::test]
    async fn a_refused_target_fails_for_good_before_anything_is_sent() {
        crate::init_tls();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = Client::new(Policy::default(), Duration::from_secs(5)).unwrap();
        for url in [format!("http://127.0.0.1:{port}/hook"), format!("http://localhost:{port}/hook")] {
            match client.post("webhook target", Url::parse(&url).unwrap(), |r| r).await {
                Err(SendError::Permanent(m)) => {
                    assert!(m.starts_with("webhook target ") && m.contains("outbound.allow_private"), "{m}")
                }
                other => panic!("{url}: expected a permanent refusal, got {other:?}"),
            }
        }
        let accepted = tokio::time::timeout(Duration::from_millis(100), listener.accept()).await;
        assert!(accepted.is_err(), "no connection was made");
    }
}
