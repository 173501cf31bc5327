//! A DNS resolver for clients that connect only to addresses checked beforehand (SSRF guards:
//! the nodelet's URL pulls, the controllers' webhooks): it resolves nothing, so a name can
//! never lead to an address that was not checked.

/// Resolves nothing; give the client the checked addresses with `resolve_to_addrs`.
#[derive(Debug)]
pub struct NoResolve;

impl reqwest::dns::Resolve for NoResolve {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let name = name.as_str().to_owned();
        Box::pin(async move {
            Err(format!("{name}: not resolved (only checked addresses are connected to)").into())
        })
    }
}
