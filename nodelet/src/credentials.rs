//! The node token and the CA: the CA the join token pins (`<data-dir>/ca.crt`, checked
//! against the pin at every start), and the node token, reused from `<data-dir>/node-token`
//! while the API server accepts it, else obtained with the join token and saved (owner-only).
//! With several server URLs each step tries them in turn (the client fails over): servers
//! sharing a store share the CA and the tokens. The client starts at the server the node's
//! name spreads to, so nodelets share the load.

use catalyst_client::{Client, JoinToken, API};

use crate::config::Config;
use crate::error::Result;

/// The name Events from the nodelet carry as their source.
pub const COMPONENT: &str = "nodelet";

/// The node token: reused from `<data-dir>/node-token` when the API server still accepts it,
/// else obtained with the join token and saved. The client trusts the CA the join token pins
/// (or the configured one, checked against the pin) and nothing else.
///
/// Fails with `catalyst_client::Error::CaMismatch` when the saved, configured or served CA is
/// not the pinned one: this nodelet talks to no other server.
pub async fn credentials(config: &Config) -> Result<Client> {
    let servers = config.servers.join(",");
    let client = |token: &str, ca: Option<&[u8]>| -> Result<Client> {
        let c = Client::with_ca(&servers, token, ca)?.with_component(COMPONENT);
        c.spread_by(&config.name);
        Ok(c)
    };
    let token_path = config.data_dir.join("node-token");
    let ca_path = config.data_dir.join("ca.crt");
    let pin = JoinToken::parse(&config.join_token)?;
    let ca = match (&config.ca_pem, std::fs::read(&ca_path)) {
        (Some(ca), _) => Some(ca.clone()),
        (None, Ok(saved)) => Some(saved),
        (None, Err(_)) => Client::pinned_ca(&servers, &pin).await?,
    };
    if let Some(ca) = &ca {
        pin.check(ca)?;
        if std::fs::read(&ca_path).ok().as_ref() != Some(ca) {
            write_private(&ca_path, ca)?;
        }
    }
    if let Ok(t) = std::fs::read_to_string(&token_path) {
        let c = client(t.trim(), ca.as_deref())?;
        match c.get(&format!("{API}/nodes/{}", config.name)).await {
            Ok(_) => return Ok(c),
            Err(e) if matches!(e.code(), Some(401 | 403 | 404)) => {
                tracing::info!(error = %e, "saved node token refused; joining again");
            }
            Err(e) => return Err(e.into()),
        }
    }
    let joined = Client::join_trusting(
        &servers,
        &config.join_token,
        &config.name,
        ca.as_deref(),
        &config.labels,
    )
    .await?;
    write_private(&token_path, joined.token.as_bytes())?;
    client(&joined.token, ca.as_deref())
}

fn write_private(path: &std::path::Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(contents)?;
    f.sync_all()?;
    std::fs::rename(tmp, path)
}
