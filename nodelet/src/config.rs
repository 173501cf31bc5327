//! How a nodelet runs: the server, its identity, directories, limits and networking.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::{image, spec, userns};

/// How a nodelet runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The API server URLs (servers sharing one store): the API client fails over between
    /// them and a tunnel is held to each.
    pub servers: Vec<String>,
    /// The join token (its value; `K10<CA sha256>::<secret>` pins the server's CA).
    pub join_token: String,
    /// The CA (PEM) to trust, when known beforehand (the in-process nodelet of
    /// `catalyst server --with-nodelet`); else the one the join token pins, fetched at the
    /// first join and kept in `<data-dir>/ca.crt`.
    pub ca_pem: Option<Vec<u8>>,
    /// The Node name.
    pub name: String,
    /// Where servers' data and the nodelet's state live.
    pub data_dir: PathBuf,
    /// containerd's socket.
    pub containerd_socket: PathBuf,
    /// The address players reach this node at (reported in status.addresses).
    pub address: Option<String>,
    /// Labels to put on the Node.
    pub labels: BTreeMap<String, String>,
    /// uid servers run as, inside their user namespace (host uid: the server's range + uid).
    pub uid: u32,
    /// gid, inside the user namespace.
    pub gid: u32,
    /// The machine-wide directory of uid range claims.
    pub idmap_dir: PathBuf,
    /// The host uid of the first server range.
    pub uid_base: u32,
    /// How many ranges of 65536 ids may be handed out.
    pub uid_ranges: u32,
    /// Directories `oci-archive:` images may be read from (besides `<data-dir>/images` and
    /// `/var/lib/catalyst/images`).
    pub image_dirs: Vec<PathBuf>,
    /// The most an image's layers may weigh (as stored), pulled or imported.
    pub max_image_bytes: u64,
    /// Image GC starts when the filesystem of containerd's content store is this full (%).
    pub image_gc_high_threshold: u8,
    /// Image GC removes unused images until it is down to this (%).
    pub image_gc_low_threshold: u8,
    /// Limits for servers that set none (a Node's `spec.defaultResources` overrides them).
    pub default_limits: spec::DefaultLimits,
    /// The CNI bridge name.
    pub bridge: String,
    /// The subnet for servers.
    pub subnet: String,
    /// Where the CNI plugins are (found when None).
    pub cni_bin_dir: Option<PathBuf>,
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// A Docker-style auth file with registry credentials.
    pub registry_auth: Option<PathBuf>,
    /// Registries that may be used over plain HTTP (loopback ones always may).
    pub insecure_registries: Vec<String>,
    /// Where the SFTP server listens (`None`: no SFTP on this node).
    pub sftp_listen: Option<std::net::SocketAddr>,
    /// Addresses a backup's S3 endpoint may reach although they are not public (exact
    /// addresses, as `PullPolicy::allow`). Empty by default.
    pub backup_endpoint_allow: Vec<std::net::IpAddr>,
    /// Disks of the default size made ahead for new servers (0: each new server's disk is
    /// made on its start).
    pub spare_disks: usize,
    /// Sandboxes (user and network namespaces attached to the bridge) made ahead for new
    /// Bridge servers (0: each new server makes its own on its start).
    pub netns_pool: usize,
}

/// Parses an SFTP listen address: `HOST:PORT`, or `off` for no SFTP server.
pub fn parse_sftp_listen(s: &str) -> Result<Option<std::net::SocketAddr>, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    s.parse()
        .map(Some)
        .map_err(|_| format!("{s:?} is not an address like 0.0.0.0:2022, nor off"))
}

impl Config {
    /// Defaults for a node name, server (one URL or a comma list) and token.
    pub fn new(server: &str, join_token: &str, name: &str) -> Self {
        Self {
            servers: catalyst_client::servers::parse_list(server),
            join_token: join_token.trim().to_owned(),
            ca_pem: None,
            name: name.to_owned(),
            data_dir: PathBuf::from("./catalyst-nodelet"),
            containerd_socket: PathBuf::from("/run/containerd/containerd.sock"),
            address: None,
            labels: BTreeMap::new(),
            uid: 1000,
            gid: 1000,
            idmap_dir: PathBuf::from(userns::DEFAULT_CLAIMS_DIR),
            uid_base: userns::DEFAULT_BASE,
            uid_ranges: userns::DEFAULT_COUNT,
            default_limits: spec::DefaultLimits::default(),
            image_dirs: Vec::new(),
            max_image_bytes: image::DEFAULT_MAX_PULL_BYTES,
            image_gc_high_threshold: crate::imagegc::DEFAULT_HIGH_THRESHOLD,
            image_gc_low_threshold: crate::imagegc::DEFAULT_LOW_THRESHOLD,
            bridge: "catalyst0".into(),
            subnet: "10.89.0.0/16".into(),
            cni_bin_dir: None,
            heartbeat: Duration::from_secs(5),
            registry_auth: std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".docker/config.json")),
            insecure_registries: Vec::new(),
            backup_endpoint_allow: Vec::new(),
            spare_disks: crate::disk::spares::DEFAULT_KEEP,
            netns_pool: crate::pool::DEFAULT_KEEP,
            sftp_listen: Some(
                crate::sftp::DEFAULT_LISTEN
                    .parse()
                    .expect("the default SFTP address parses"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sftp_listen_address_is_an_address_or_off() {
        assert_eq!(
            parse_sftp_listen("0.0.0.0:2022"),
            Ok(Some("0.0.0.0:2022".parse().expect("addr")))
        );
        assert_eq!(
            parse_sftp_listen("[::1]:22"),
            Ok(Some("[::1]:22".parse().expect("addr")))
        );
        assert_eq!(parse_sftp_listen("off"), Ok(None));
        assert_eq!(parse_sftp_listen("OFF"), Ok(None));
        assert!(parse_sftp_listen("2022").is_err());
        assert!(parse_sftp_listen("example.com:22").is_err());
        assert_eq!(
            Config::new("https://x", "t", "n").sftp_listen,
            Some("0.0.0.0:2022".parse().expect("addr"))
        );
    }
}
