//! The node token: reused from `<data-dir>/node-token` while the API server accepts it, else
//! obtained with the join token and saved (owner-only).

use catalyst_client::{Client, API};

use crate::config::Config;
use crate::error::Result;

/// The name Events from the nodelet carry as their source.
pub const COMPONENT: &str = "nodelet";

/// The node token: reused from `<data-dir>/node-token` when the API server still accepts it,
/// else obtained with the join token and saved.
pub async fn credentials(config: &Config) -> Result<Client> {
    let path = config.data_dir.join("node-token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        let c = Client::new(&config.server, t.trim()).with_component(COMPONENT);
        match c.get(&format!("{API}/nodes/{}", config.name)).await {
            Ok(_) => return Ok(c),
            Err(e) if matches!(e.code(), Some(401 | 403 | 404)) => {
                tracing::info!(error = %e, "saved node token refused; joining again");
            }
            Err(e) => return Err(e.into()),
        }
    }
    let token = Client::join(&config.server, &config.join_token, &config.name).await?;
    write_private(&path, &token)?;
    Ok(Client::new(&config.server, &token).with_component(COMPONENT))
}

fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(tmp, path)
}
