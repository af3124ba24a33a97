//! `[outbound]`: which private networks webhook and web push targets may reach.

use herald_channels::outbound::{IpNet, parse_network};
use serde::{Deserialize, Serialize};

/// `[outbound]`: webhook URLs and web push endpoints are chosen by API callers, so Herald reaches
/// only public addresses for them unless a private network is allowed here.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Outbound {
    /// Networks reachable although private, loopback or link-local (a bare address is /32 or
    /// /128): a list, or one string separated by commas as an environment variable gives it.
    #[serde(deserialize_with = "networks")]
    pub allow_private: Vec<IpNet>,
}

/// Reads `allow_private`: `["10.0.0.0/8", "::1"]` or `"10.0.0.0/8,::1"`.
fn networks<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    struct Networks;
    impl<'de> serde::de::Visitor<'de> for Networks {
        type Value = Vec<IpNet>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(
                "a list of networks such as [\"10.0.0.0/8\", \"fd00::/8\"], or one string of them separated by commas",
            )
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Vec<IpNet>, E> {
            s.split(',').filter(|n| !n.trim().is_empty()).map(|n| parse_network(n).map_err(E::custom)).collect()
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<IpNet>, A::Error> {
            let mut nets = Vec::new();
            while let Some(n) = seq.next_element::<String>()? {
                nets.push(parse_network(&n).map_err(serde::de::Error::custom)?);
            }
            Ok(nets)
        }
    }
    d.deserialize_any(Networks)
}
