//! Address checks against SSRF: which IP addresses are public, which host names are on
//! loopback, and the HTTP client's resolver that refuses non-public addresses for every name
//! not allowed to have them, so that what was checked is what is connected to.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

pub use catalyst_schemas::net::{is_public, non_public};

/// `host` and `port` of `host[:port]` (brackets of an IPv6 literal removed).
pub(super) fn split_host_port(registry: &str) -> (&str, Option<&str>) {
    match registry.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) => {
            (h.trim_matches(['[', ']']), Some(p))
        }
        _ => (registry.trim_matches(['[', ']']), None),
    }
}

/// True for `localhost` and loopback literals.
pub(super) fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback() || ip.to_canonical().is_loopback())
}

/// Refuses a non-public address; `what` names what is at it.
pub(super) fn check_ip(ip: IpAddr, what: &str) -> Result<(), String> {
    match non_public(ip) {
        Some(class) => Err(format!(
            "{what} at {ip}, a {class} address (only registries on loopback or listed with \
             --insecure-registry may use such addresses, and redirects or token realms may not \
             lead to them)"
        )),
        None => Ok(()),
    }
}

/// The client's resolver: a name not in `open` resolves only when all its addresses are
/// public, and the connection goes to exactly those addresses.
#[derive(Debug)]
pub(super) struct GuardedResolver {
    /// Names whose addresses are not checked.
    pub(super) open: HashSet<String>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().trim_end_matches('.').to_ascii_lowercase();
        let open = self.open.contains(&host);
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !open {
                if let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
                    return Err(format!(
                        "{host} resolves to {}, which is not a public address",
                        bad.ip()
                    )
                    .into());
                }
            }
            let it: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(it)
        })
    }
}
