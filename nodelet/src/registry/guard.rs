//! Where a registry's requests may go: the scheme and host rules for the registry itself, its
//! redirects and its token realms, and the names whose addresses are not checked.

use std::collections::HashSet;
use std::net::IpAddr;

use reqwest::Url;

use super::address::{check_ip, split_host_port};
use super::auth::Registries;
use super::reference::Reference;

/// Scheme, host and port: what "the same host" means for credentials and redirects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    /// The origin of `url`, if it has a host and a known port.
    pub(super) fn of(url: &Url) -> Option<Origin> {
        Some(Origin {
            scheme: url.scheme().to_owned(),
            host: url.host_str()?.to_ascii_lowercase(),
            port: url.port_or_known_default()?,
        })
    }
}

/// What must hold before a request may go to a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admit {
    /// It may go, whatever the host's addresses (the registry itself, allowed to be on
    /// loopback or a private network, or a host listed as insecure).
    Anywhere,
    /// Only when every address of the host is public.
    PublicOnly,
}

/// The rules for a registry: where its requests, redirects and realms may lead.
#[derive(Debug, Clone)]
pub(super) struct Rules {
    /// host[:port] as in the reference.
    pub(super) registry: String,
    /// The registry's own origin.
    pub(super) origin: Origin,
    /// The registry is on loopback or listed as insecure.
    local_ok: bool,
    regs: Registries,
}

impl Rules {
    /// The base URL of `r`'s repository (`…/v2/<repository>/`, plain HTTP only for a registry
    /// on loopback or listed as insecure) and the rules for the session's requests.
    pub(super) fn for_reference(r: &Reference, regs: &Registries) -> Result<(Url, Rules), String> {
        let host = if r.registry == "docker.io" {
            "registry-1.docker.io".to_owned()
        } else {
            r.registry.clone()
        };
        let local_ok = regs.plain_http(&r.registry);
        let scheme = if local_ok { "http" } else { "https" };
        let base = Url::parse(&format!("{scheme}://{host}/v2/{}/", r.repository))
            .map_err(|e| format!("bad registry URL: {e}"))?;
        let origin = Origin::of(&base).ok_or_else(|| "no host".to_owned())?;
        let rules = Rules {
            registry: r.registry.clone(),
            origin,
            local_ok,
            regs: regs.clone(),
        };
        Ok((base, rules))
    }

    /// The scheme and host rules for `url`, before any name is resolved.
    pub(super) fn admit(&self, url: &Url) -> Result<Admit, String> {
        let same = Origin::of(url).as_ref() == Some(&self.origin);
        match url.scheme() {
            "https" => {}
            "http" if self.local_ok || self.regs.listed(url) => {}
            "http" => {
                return Err(
                    "plain HTTP (only registries on loopback or listed with --insecure-registry \
                     may be spoken to without TLS)"
                        .into(),
                )
            }
            other => return Err(format!("scheme {other:?} is not HTTP(S)")),
        }
        if url.host().is_none() {
            return Err("no host".into());
        }
        if same && self.local_ok {
            return Ok(Admit::Anywhere);
        }
        if !same && self.regs.listed(url) {
            return Ok(Admit::Anywhere);
        }
        let new = if same {
            "the registry"
        } else {
            "another host than the registry"
        };
        let host = url.host_str().unwrap_or_default();
        match host.trim_matches(['[', ']']).parse::<IpAddr>() {
            Ok(ip) => check_ip(ip, new)?,
            Err(_) => {
                let d = host.trim_end_matches('.').to_ascii_lowercase();
                if d == "localhost" || d.ends_with(".localhost") {
                    return Err(format!("{new} on loopback ({d})"));
                }
            }
        }
        Ok(Admit::PublicOnly)
    }

    /// Host names whose addresses the resolver does not check: the registry's when it may be
    /// on loopback or a private network, and those listed as insecure.
    pub(super) fn open_names(&self) -> HashSet<String> {
        let mut open: HashSet<String> = self
            .regs
            .insecure
            .iter()
            .map(|i| split_host_port(i).0.to_ascii_lowercase())
            .collect();
        if self.local_ok {
            open.insert(self.origin.host.trim_matches(['[', ']']).to_owned());
        }
        // a proxy from the environment is the operator's, wherever it is
        for var in [
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "ALL_PROXY",
            "all_proxy",
        ] {
            if let Some(h) = std::env::var(var)
                .ok()
                .and_then(|v| Url::parse(&v).ok())
                .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
            {
                open.insert(h);
            }
        }
        open
    }
}

/// `url` without its query and fragment (for messages and logs).
pub(super) fn without_query(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    use crate::registry::reference::parse_reference;

    fn rules(registry: &str, insecure: &[&str]) -> Rules {
        let regs = Registries {
            credentials: HashMap::new(),
            insecure: insecure.iter().map(|s| s.to_string()).collect(),
        };
        let r = parse_reference(&format!("{registry}/a/b:c")).expect("reference");
        Rules::for_reference(&r, &regs).expect("rules").1
    }

    fn admit(rules: &Rules, url: &str) -> Result<Admit, String> {
        rules.admit(&Url::parse(url).expect(url))
    }

    #[test]
    fn a_loopback_registry_may_use_its_own_origin_but_redirects_elsewhere_on_loopback_are_refused()
    {
        let r = rules("127.0.0.1:5000", &[]);
        assert_eq!(
            admit(&r, "http://127.0.0.1:5000/v2/a/b/blobs/x"),
            Ok(Admit::Anywhere)
        );
        // the canaries: another port on the same loopback address, another loopback address,
        // localhost by name, the metadata service, a private network
        for url in [
            "http://127.0.0.1:5001/token",
            "http://127.0.0.2:5000/v2/",
            "http://localhost:5000/v2/",
            "http://foo.localhost/",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1/",
            "http://[::1]:5000/",
            "http://[::ffff:127.0.0.1]:5000/",
            "http://0.0.0.0:5000/",
        ] {
            assert!(admit(&r, url).is_err(), "{url} must be refused");
        }
        // a public host (a CDN): allowed, addresses checked when resolved
        assert_eq!(
            admit(&r, "https://cdn.example.com/blob"),
            Ok(Admit::PublicOnly)
        );
    }

    #[test]
    fn hosts_listed_as_insecure_may_be_anywhere() {
        let r = rules("127.0.0.1:5000", &["127.0.0.1:5001", "auth.lan"]);
        assert_eq!(
            admit(&r, "http://127.0.0.1:5001/token"),
            Ok(Admit::Anywhere)
        );
        assert_eq!(admit(&r, "http://auth.lan:9999/t"), Ok(Admit::Anywhere));
        assert!(admit(&r, "http://127.0.0.1:5002/token").is_err());
        let lan = rules("registry.lan:5000", &["registry.lan:5000"]);
        assert_eq!(
            admit(&lan, "http://registry.lan:5000/v2/"),
            Ok(Admit::Anywhere)
        );
        assert_eq!(
            admit(&lan, "http://registry.lan:6000/v2/"),
            Ok(Admit::PublicOnly),
            "another port of a listed host:port is a new host: its addresses must be public"
        );
    }

    #[test]
    fn an_https_registry_cannot_be_downgraded_or_led_to_private_addresses() {
        let r = rules("ghcr.io", &[]);
        assert_eq!(admit(&r, "https://ghcr.io/v2/"), Ok(Admit::PublicOnly));
        assert!(admit(&r, "http://ghcr.io/v2/").is_err(), "no downgrade");
        assert!(
            admit(&r, "http://cdn.example.com/x").is_err(),
            "plain-HTTP realm or redirect from an HTTPS registry"
        );
        assert!(admit(&r, "https://10.1.1.1/token").is_err());
        assert!(admit(&r, "https://[fe80::1]/").is_err());
        assert!(admit(&r, "file:///etc/shadow").is_err());
        assert!(admit(&r, "ftp://example.com/").is_err());
        // a registry at a private literal address that is not listed is refused itself
        let private = rules("10.0.0.5:443", &[]);
        assert!(admit(&private, "https://10.0.0.5/v2/").is_err());
    }
}
