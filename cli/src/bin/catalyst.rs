//! `catalyst`: the Catalyst daemon.

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "catalyst", version, about = "Catalyst: game servers, declared")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the API server and the controllers.
    Server(Box<ServerArgs>),
    /// Runs a nodelet: registers this machine as a Node and runs its game servers in containerd.
    Nodelet(Box<NodeletArgs>),
    /// Images from this machine's files, for `oci-archive:` references.
    Image {
        #[command(subcommand)]
        command: ImageCommand,
    },
    /// Store maintenance.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Node join tokens: make (with an expiry), list and revoke them, straight on the store.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Print a shell completion script.
    Completion(catalyst_cli::ctl::completion::CompletionArgs),
}

#[derive(Debug, clap::Args)]
struct ServerArgs {
    /// A YAML file of settings whose keys are these long flag names (`listen: 0.0.0.0:7443`);
    /// default: /etc/catalyst/server.yaml when it exists. Flags and their environment
    /// variables win over it.
    #[arg(long, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// Where Catalyst keeps its state, admin.yaml and join-token.
    #[arg(long, default_value = "./catalyst-data", env = "CATALYST_DATA_DIR")]
    data_dir: std::path::PathBuf,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:7443", env = "CATALYST_LISTEN")]
    listen: std::net::SocketAddr,
    /// The address (IP or DNS name) other machines reach this server at, for the join command
    /// it prints; the generated certificate names it. Default: the listen address, or this
    /// machine's first global address when listening on all of them.
    #[arg(long, env = "CATALYST_ADVERTISE_ADDRESS")]
    advertise_address: Option<String>,
    /// sqlite://PATH, postgres://… or etcd://host:port[,host:port]; default: SQLite in the data dir.
    #[arg(long, env = "CATALYST_STORE")]
    store: Option<String>,
    /// Also run a nodelet in this process (the one-machine install). Without
    /// --containerd-socket it runs its own containerd under <data-dir>/containerd/.
    #[arg(long)]
    with_nodelet: bool,
    /// The containerd socket of the in-process nodelet.
    #[arg(long, requires = "with_nodelet")]
    containerd_socket: Option<std::path::PathBuf>,
    /// The Node name of the in-process nodelet; default: the host name.
    #[arg(long, requires = "with_nodelet")]
    node_name: Option<String>,
    /// A directory the in-process nodelet may read `oci-archive:` images from (repeatable),
    /// besides `<data-dir>/nodelet/images` and `/var/lib/catalyst/images`.
    #[arg(long = "image-dir", requires = "with_nodelet")]
    image_dirs: Vec<std::path::PathBuf>,
    /// Where the in-process nodelet's SFTP server listens (users log in as USER.SERVER);
    /// `off`: no SFTP.
    #[arg(long, default_value = catalyst_nodelet::sftp::DEFAULT_LISTEN, value_parser = catalyst_nodelet::config::parse_sftp_listen, requires = "with_nodelet")]
    sftp_listen: ::std::option::Option<std::net::SocketAddr>,
    /// An address a Backup's S3 endpoint may reach from the in-process nodelet although it
    /// is not public (repeatable; exact addresses).
    #[arg(long = "backup-endpoint-allow", requires = "with_nodelet")]
    backup_endpoint_allow: Vec<std::net::IpAddr>,
    /// The in-process nodelet removes unused images when the filesystem of containerd's
    /// content store is this full (percent).
    #[arg(long, default_value_t = catalyst_nodelet::imagegc::DEFAULT_HIGH_THRESHOLD, value_parser = clap::value_parser!(u8).range(1..=100), requires = "with_nodelet")]
    image_gc_high_threshold: u8,
    /// … down to this (percent, below the high threshold).
    #[arg(long, default_value_t = catalyst_nodelet::imagegc::DEFAULT_LOW_THRESHOLD, value_parser = clap::value_parser!(u8).range(0..=99), requires = "with_nodelet")]
    image_gc_low_threshold: u8,
    /// Also append every audit record (writes and refused requests) to this file, one JSON
    /// line each.
    #[arg(long, env = "CATALYST_AUDIT_LOG")]
    audit_log: Option<std::path::PathBuf>,
    /// How long audit records are kept in the store: 30d, 12h, 90m, …
    #[arg(long, default_value = "30d", value_parser = parse_retention)]
    audit_retention: std::time::Duration,
    /// Serve plain HTTP instead of HTTPS; only on a loopback listen address.
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key", "tls_ca", "tls_sans"])]
    insecure_http: bool,
    /// Serve this certificate chain (PEM, leaf first) instead of one signed by the cluster CA.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// With --tls-cert: the CA certificate admin.yaml carries and the join token pins;
    /// default: the last certificate of the --tls-cert chain.
    #[arg(long, requires = "tls_cert")]
    tls_ca: Option<std::path::PathBuf>,
    /// Serve under this server's CA although the servers on the store recorded another one
    /// (a CA change: every client config and nodelet must then trust the new CA). Without
    /// it such a server refuses to start.
    #[arg(long, conflicts_with = "insecure_http")]
    tls_replace_pin: bool,
    /// Another host name or IP for the generated serving certificate (repeatable), besides the
    /// listen IP, 127.0.0.1, ::1, localhost and the host name.
    #[arg(long = "tls-san", conflicts_with = "tls_cert")]
    tls_sans: Vec<String>,
    /// A block of addresses AlertRule webhooks may reach although they are not public, e.g.
    /// 10.20.0.0/16 for an internal chat relay (repeatable). Default: none; webhooks reach
    /// public addresses only (no loopback, private, link-local or metadata addresses).
    #[arg(long = "alert-webhook-allow-cidr", value_parser = parse_cidr)]
    alert_webhook_allow: Vec<catalyst_schemas::net::Cidr>,
    /// How often AlertRules are evaluated and nodes' samples taken: 10s, 1m, …
    #[arg(long, default_value = "10s", value_parser = parse_interval)]
    alert_interval: std::time::Duration,
    /// How long a node may go without a heartbeat before it is NotReady and its servers
    /// Unknown (nodelets heartbeat every 10 s).
    #[arg(long, default_value = "40s", value_parser = parse_grace)]
    node_grace_period: std::time::Duration,
    /// How long a standby waits, from the last change it saw to the controllers' leader Lease,
    /// before taking over (judged on its own monotonic clock): 3s, 1500ms, …
    #[arg(long, default_value = "3s", value_parser = parse_election)]
    leader_lease: std::time::Duration,
    /// How often the leader renews its Lease (and a standby looks at it).
    #[arg(long, default_value = "1s", value_parser = parse_election)]
    leader_renew: std::time::Duration,
    /// How long the leader goes on leading without a successful renewal before it steps down;
    /// must lie between --leader-renew and --leader-lease.
    #[arg(long, default_value = "2s", value_parser = parse_election)]
    leader_renew_deadline: std::time::Duration,
    /// Revisions of history kept for watchers that resume (older ones are compacted every
    /// minute). Hidden: for soaks, whose hour would otherwise never compact.
    #[arg(long, hide = true, default_value_t = catalyst_apiserver::server::HISTORY, value_parser = clap::value_parser!(i64).range(1000..))]
    store_history: i64,
}

fn parse_cidr(s: &str) -> Result<catalyst_schemas::net::Cidr, String> {
    s.parse()
}

fn parse_interval(s: &str) -> Result<std::time::Duration, String> {
    match catalyst_schemas::validation::duration(s)? {
        0 => Err("the interval must be longer than 0s".into()),
        secs => Ok(std::time::Duration::from_secs(secs)),
    }
}

fn parse_grace(s: &str) -> Result<std::time::Duration, String> {
    match catalyst_schemas::validation::duration(s)? {
        secs if secs < 15 => Err(format!("{s}: at least 15s (nodelets heartbeat every 10 s)")),
        secs => Ok(std::time::Duration::from_secs(secs)),
    }
}

fn parse_election(s: &str) -> Result<std::time::Duration, String> {
    let d = match s.strip_suffix("ms") {
        Some(ms) => std::time::Duration::from_millis(
            ms.parse()
                .map_err(|_| format!("{s}: expected e.g. 500ms or 3s"))?,
        ),
        None => std::time::Duration::from_secs(catalyst_schemas::validation::duration(s)?),
    };
    if d < std::time::Duration::from_millis(100) {
        return Err(format!("{s}: at least 100ms"));
    }
    Ok(d)
}

fn parse_retention(s: &str) -> Result<std::time::Duration, String> {
    match catalyst_schemas::validation::duration(s)? {
        0 => Err("the audit retention must be longer than 0s".into()),
        secs => Ok(std::time::Duration::from_secs(secs)),
    }
}

#[derive(Debug, clap::Args)]
struct NodeletArgs {
    /// A YAML file of settings whose keys are these long flag names (`server: https://…`);
    /// default: /etc/catalyst/nodelet.yaml when it exists. Flags and their environment
    /// variables win over it.
    #[arg(long, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// The API server URL, e.g. https://10.0.0.1:7443; several servers sharing one store as a
    /// comma list (or the flag repeated): the nodelet holds a tunnel to each and fails over.
    #[arg(long, env = "CATALYST_SERVER", value_delimiter = ',', required = true)]
    server: Vec<String>,
    /// The join token, or a file holding it (e.g. <server-data-dir>/join-token). Its
    /// `K10<sha256>::` prefix pins the server's CA: the nodelet trusts no other.
    #[arg(long, env = "CATALYST_JOIN_TOKEN")]
    join_token: String,
    /// The Node name; default: the host name.
    #[arg(long)]
    name: Option<String>,
    /// Where game servers' data and the nodelet's state live.
    #[arg(
        long,
        default_value = "./catalyst-nodelet",
        env = "CATALYST_NODELET_DIR"
    )]
    data_dir: std::path::PathBuf,
    /// containerd's socket.
    #[arg(long, default_value = "/run/containerd/containerd.sock")]
    containerd_socket: std::path::PathBuf,
    /// The address players reach this node at; default: its global IPv4 addresses.
    #[arg(long)]
    address: Option<String>,
    /// A label for the Node, KEY=VALUE (repeatable).
    #[arg(long = "label", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    /// The uid:gid game servers run as.
    #[arg(long, default_value = "1000:1000")]
    user: String,
    /// The bridge servers are attached to.
    #[arg(long, default_value = "catalyst0")]
    bridge: String,
    /// The subnet servers get addresses from.
    #[arg(long, default_value = "10.89.0.0/16")]
    subnet: String,
    /// Where the CNI plugins are; default: /usr/lib/cni or /opt/cni/bin.
    #[arg(long)]
    cni_bin_dir: Option<std::path::PathBuf>,
    /// A Docker-style auth file with registry credentials; default: ~/.docker/config.json.
    #[arg(long)]
    registry_auth: Option<std::path::PathBuf>,
    /// A registry that may be used over plain HTTP (repeatable); loopback ones always may.
    #[arg(long = "insecure-registry")]
    insecure_registries: Vec<String>,
    /// The machine-wide directory where every nodelet claims the host uid ranges of its
    /// servers (one range of 65536 ids per server).
    #[arg(long, default_value = catalyst_nodelet::userns::DEFAULT_CLAIMS_DIR)]
    idmap_dir: std::path::PathBuf,
    /// A directory `oci-archive:` images may be read from (repeatable), besides
    /// `<data-dir>/images` and `/var/lib/catalyst/images`.
    #[arg(long = "image-dir")]
    image_dirs: Vec<std::path::PathBuf>,
    /// The most an image's layers may weigh (as stored, in bytes), pulled or imported.
    #[arg(long, default_value_t = catalyst_nodelet::image::DEFAULT_MAX_PULL_BYTES)]
    max_image_size: u64,
    /// The host uid (and gid) of the first server's range; servers' ranges follow it.
    #[arg(long, default_value_t = catalyst_nodelet::userns::DEFAULT_BASE)]
    uid_base: u32,
    /// Where the SFTP server listens (users log in as USER.SERVER); `off`: no SFTP.
    #[arg(long, default_value = catalyst_nodelet::sftp::DEFAULT_LISTEN, value_parser = catalyst_nodelet::config::parse_sftp_listen)]
    sftp_listen: ::std::option::Option<std::net::SocketAddr>,
    /// An address a Backup's S3 endpoint may reach although it is not public (repeatable;
    /// exact addresses, e.g. a MinIO on the private network).
    #[arg(long = "backup-endpoint-allow")]
    backup_endpoint_allow: Vec<std::net::IpAddr>,
    /// Remove unused images (least recently used first) when the filesystem of containerd's
    /// content store is this full (percent).
    #[arg(long, default_value_t = catalyst_nodelet::imagegc::DEFAULT_HIGH_THRESHOLD, value_parser = clap::value_parser!(u8).range(1..=100))]
    image_gc_high_threshold: u8,
    /// … down to this (percent, below the high threshold).
    #[arg(long, default_value_t = catalyst_nodelet::imagegc::DEFAULT_LOW_THRESHOLD, value_parser = clap::value_parser!(u8).range(0..=99))]
    image_gc_low_threshold: u8,
    /// Disks of the default size made ahead, so that a new server's start takes one instead of
    /// making its own (0: none).
    #[arg(long, default_value_t = catalyst_nodelet::disk::spares::DEFAULT_KEEP as u8, value_parser = clap::value_parser!(u8).range(0..=16))]
    spare_disks: u8,
    /// Network sandboxes (namespaces attached to the bridge) made ahead, so that a new
    /// Bridge server's start takes one instead of making its own (0: none).
    #[arg(long, default_value_t = catalyst_nodelet::pool::DEFAULT_KEEP as u8, value_parser = clap::value_parser!(u8).range(0..=16))]
    netns_pool: u8,
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

async fn nodelet(args: NodeletArgs) -> anyhow::Result<()> {
    let token = match std::fs::read_to_string(&args.join_token) {
        Ok(t) => t,
        Err(_) if !args.join_token.contains('/') => args.join_token.clone(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", args.join_token)),
    };
    let name = args.name.unwrap_or_else(host_name);
    let (uid, gid) = args
        .user
        .split_once(':')
        .and_then(|(u, g)| Some((u.parse().ok()?, g.parse().ok()?)))
        .context("--user must be UID:GID")?;
    anyhow::ensure!(uid != 0, "--user: game servers do not run as root");
    let mut config = catalyst_nodelet::Config::new(&args.server.join(","), &token, &name);
    config.data_dir = args.data_dir;
    config.containerd_socket = args.containerd_socket;
    config.address = args.address;
    config.labels = args.labels.into_iter().collect();
    config.uid = uid;
    config.gid = gid;
    config.bridge = args.bridge;
    config.subnet = args.subnet;
    config.cni_bin_dir = args.cni_bin_dir;
    if args.registry_auth.is_some() {
        config.registry_auth = args.registry_auth;
    }
    config.insecure_registries = args.insecure_registries;
    config.idmap_dir = args.idmap_dir;
    config.uid_base = args.uid_base;
    config.image_dirs = args.image_dirs;
    config.max_image_bytes = args.max_image_size;
    config.image_gc_high_threshold = args.image_gc_high_threshold;
    config.image_gc_low_threshold = args.image_gc_low_threshold;
    config.spare_disks = usize::from(args.spare_disks);
    config.netns_pool = usize::from(args.netns_pool);
    config.sftp_listen = args.sftp_listen;
    config.backup_endpoint_allow = args.backup_endpoint_allow;
    catalyst_nodelet::run(config, shutdown_signal()).await?;
    Ok(())
}

async fn serve(args: ServerArgs) -> anyhow::Result<()> {
    if args.insecure_http && !args.listen.ip().is_loopback() {
        use clap::CommandFactory;
        Cli::command()
            .error(
                clap::error::ErrorKind::ArgumentConflict,
                format!(
                    "--insecure-http is allowed only on a loopback listen address, not {} \
                     (drop it to serve HTTPS)",
                    args.listen
                ),
            )
            .exit();
    }
    let election = catalyst_controllers::leader::Timing {
        lease: args.leader_lease,
        renew: args.leader_renew,
        renew_deadline: args.leader_renew_deadline,
    };
    election.validate().map_err(anyhow::Error::msg)?;
    let advertise = catalyst_cli::join::advertise_host(
        args.advertise_address.as_deref(),
        args.listen,
        &catalyst_cli::join::this_machines_addresses(),
    );
    let mut sans = args.tls_sans;
    // the generated certificate names the address the join command gives (a certificate of
    // one's own, --tls-cert, must name it itself)
    if let Some(host) = advertise.as_ref().filter(|_| args.tls_cert.is_none()) {
        sans.push(host.clone());
    }
    let running = catalyst_apiserver::server::start(catalyst_apiserver::server::ServerConfig {
        data_dir: args.data_dir.clone(),
        listen: args.listen,
        store: args.store,
        audit_log: args.audit_log,
        audit_retention: args.audit_retention,
        tls: catalyst_apiserver::tls::TlsConfig {
            insecure_http: args.insecure_http,
            sans,
            cert: args.tls_cert,
            key: args.tls_key,
            ca: args.tls_ca,
            replace_pin: args.tls_replace_pin,
        },
        history: args.store_history,
    })
    .await
    .context("starting the API server")?;
    tracing::info!(addr = %running.addr, "API server listening");
    let identity = format!(
        "{}-{}",
        std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "catalyst".into()),
        std::process::id()
    );
    let _controllers = catalyst_controllers::manager::start(
        running.state.registry.clone(),
        &running.state.caches,
        catalyst_controllers::manager::Config {
            node_grace: args.node_grace_period,
            tunnels: running.state.tunnels.clone(),
            alerts: Some(catalyst_controllers::alerts::AlertConfig {
                interval: args.alert_interval,
                sender: catalyst_controllers::alerts::notify::Sender {
                    allow: args.alert_webhook_allow,
                    ..Default::default()
                },
                metrics: running.state.tunnels.clone(),
            }),
            election,
            ..catalyst_controllers::manager::Config::new(&identity, args.leader_lease)
        },
    );
    // catalyst_controllers_leading follows the election
    {
        let (mut leading, metrics) = (_controllers.leading.clone(), running.state.metrics.clone());
        // from now on the nodes' samples in /metrics come from the leader only
        let now = leading.borrow_and_update().as_ref().map(|t| t.valid_until);
        metrics.set_controllers_leading(now);
        tokio::spawn(async move {
            while leading.changed().await.is_ok() {
                let now = leading.borrow_and_update().as_ref().map(|t| t.valid_until);
                metrics.set_controllers_leading(now);
            }
        });
    }
    // the first line names the URL: scripts and the test harness read it
    println!("Catalyst API server on {}", running.url());
    println!("  admin client config: {}", running.admin_config.display());
    println!("  node join token:     {}", running.join_token.display());
    match (&advertise, std::fs::read_to_string(&running.join_token)) {
        (Some(host), Ok(token)) => {
            let url = catalyst_cli::join::url(
                running.url().starts_with("https://"),
                host,
                running.addr.port(),
            );
            println!(
                "  join another machine: {}",
                catalyst_cli::join::command(&url, &token)
            );
            println!("  {}", catalyst_cli::join::several_servers_hint(&url));
        }
        (None, _) => {
            println!("  join another machine: no address to give it; pass --advertise-address")
        }
        (_, Err(e)) => tracing::warn!(error = %e, "reading the join token"),
    }
    println!(
        "  try: CATALYST_CONFIG={} catalystctl get gameservers -A",
        running.admin_config.display()
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (nodelet_stop_tx, nodelet_stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let mut nodelet = None;
    let mut own_containerd = None;
    if args.with_nodelet {
        let socket = match args.containerd_socket {
            Some(s) => s,
            None => {
                let c = catalyst_nodelet::supervisor::start(&args.data_dir.join("containerd"))
                    .await
                    .context("starting containerd")?;
                let s = c.socket.clone();
                own_containerd = Some(c);
                s
            }
        };
        let token = std::fs::read_to_string(&running.join_token).context("reading join-token")?;
        let name = args.node_name.unwrap_or_else(host_name);
        let mut config = catalyst_nodelet::Config::new(&running.url(), &token, &name);
        config.ca_pem = running.ca_pem().map(|p| p.as_bytes().to_vec());
        config.data_dir = args.data_dir.join("nodelet");
        config.containerd_socket = socket;
        config.image_dirs = args.image_dirs;
        config.sftp_listen = args.sftp_listen;
        config.backup_endpoint_allow = args.backup_endpoint_allow.clone();
        config.image_gc_high_threshold = args.image_gc_high_threshold;
        config.image_gc_low_threshold = args.image_gc_low_threshold;
        println!(
            "  nodelet:             node {name}, data in {}",
            config.data_dir.display()
        );
        let rx = nodelet_stop_rx.clone();
        nodelet = Some(tokio::spawn(async move {
            if let Err(e) = catalyst_nodelet::run(config, stopped(rx)).await {
                tracing::error!(error = %e, "nodelet stopped");
            }
        }));
    }
    // the nodelet first (it drains its namespace pool; its tunnel and watch would hold the
    // API server's graceful shutdown), then the API server
    let nodelet_done = nodelet.as_ref().map(|n| n.abort_handle());
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = nodelet_stop_tx.send(true);
        if let Some(n) = nodelet_done {
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
            while !n.is_finished() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
        let _ = stop_tx.send(true);
    });
    running.serve(stopped(stop_rx)).await?;
    if let Some(n) = nodelet {
        let _ = n.await;
    }
    if let Some(c) = own_containerd {
        c.shutdown().await;
    }
    Ok(())
}

/// `catalyst image busybox` and `catalyst image pack`: an OCI archive of this machine's files.
fn pack(
    output: std::path::PathBuf,
    paths: Vec<std::path::PathBuf>,
    cmd: Vec<String>,
) -> anyhow::Result<()> {
    if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let paths: Vec<&std::path::Path> = paths.iter().map(|p| p.as_path()).collect();
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    catalyst_nodelet::pack::host_archive(&output, &paths, &cmd)
        .with_context(|| format!("packing into {}", output.display()))?;
    let abs = std::fs::canonicalize(&output)?;
    println!("image: oci-archive:{}", abs.display());
    Ok(())
}

/// `catalyst image prune`: asks the local nodelet (it knows which images its servers use).
async fn prune(data_dir: &std::path::Path) -> anyhow::Result<()> {
    let outcome = catalyst_nodelet::imagegc::request_prune(data_dir)
        .await
        .with_context(|| {
            format!(
                "no nodelet answers at {} (is it running with this --data-dir?)",
                data_dir
                    .join(catalyst_nodelet::imagegc::SOCKET_NAME)
                    .display()
            )
        })?
        .map_err(|e| anyhow::anyhow!("the nodelet refused: {e}"))?;
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    for r in &outcome.removed {
        println!("removed {} ({:.1} MiB)", r.name, mib(r.freed));
    }
    println!(
        "{} image(s) removed, {:.1} MiB freed; {} in use kept",
        outcome.removed.len(),
        mib(outcome.freed),
        outcome.in_use
    );
    Ok(())
}

fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_lowercase())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".into())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutting down");
}

#[derive(Debug, Subcommand)]
enum ImageCommand {
    /// Packs Debian's busybox-static into an OCI archive (a shell, httpd, nc, wget …).
    Busybox {
        /// The archive to write; use it as `image: oci-archive:/absolute/path`.
        #[arg(long, short)]
        output: std::path::PathBuf,
    },
    /// Packs files of this machine (e.g. a game server from Debian's packages) with the shared
    /// libraries they need, on the busybox base, into an OCI archive.
    Pack {
        /// The archive to write.
        #[arg(long, short)]
        output: std::path::PathBuf,
        /// Files or directories to include at the same paths.
        #[arg(required = true)]
        paths: Vec<std::path::PathBuf>,
        /// The image's default command.
        #[arg(long, num_args = 1.., default_values = ["sh"])]
        cmd: Vec<String>,
    },
    /// Has the nodelet running on this machine remove every image none of its servers uses
    /// (with their blobs and snapshots) and prints what was freed.
    Prune {
        /// The nodelet's data directory (`<data-dir>/nodelet` of `catalyst server
        /// --with-nodelet`).
        #[arg(
            long,
            default_value = "./catalyst-nodelet",
            env = "CATALYST_NODELET_DIR"
        )]
        data_dir: std::path::PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Opens the store (creating an embedded one if absent) and prints its backend and revision.
    Status(StoreArgs),
    /// Forgets history older than the last KEEP revisions.
    Compact {
        #[command(flatten)]
        store: StoreArgs,
        /// Revisions of history to keep.
        #[arg(long, default_value_t = 10_000)]
        keep: i64,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Makes a join token and prints it (`K10<CA sha256>::<secret>`; shown once).
    Create {
        #[command(flatten)]
        store: StoreArgs,
        /// How long it works: 30s, 15m, 24h, 7d, …; default: until revoked.
        #[arg(long, value_parser = parse_ttl)]
        ttl: Option<std::time::Duration>,
        /// What it is for.
        #[arg(long)]
        description: Option<String>,
    },
    /// Lists the join tokens: ID, DESCRIPTION, EXPIRES, and DEFAULT (`*`: the data dir's
    /// join-token file).
    List(StoreArgs),
    /// Deletes a join token (nodes it admitted keep their own credentials).
    Revoke {
        #[command(flatten)]
        store: StoreArgs,
        /// The token's ID as `catalyst token list` shows it.
        id: String,
    },
}

fn parse_ttl(s: &str) -> Result<std::time::Duration, String> {
    match catalyst_schemas::validation::duration(s)? {
        0 => Err("the ttl must be longer than 0s".into()),
        secs => Ok(std::time::Duration::from_secs(secs)),
    }
}

/// The pin of join tokens: the data dir's `ca.crt` (what the server serves), else the
/// cluster CA in the store; none for a plain-HTTP cluster.
async fn ca_pin(
    args: &StoreArgs,
    store: &std::sync::Arc<dyn catalyst_apiserver::store::Store>,
) -> anyhow::Result<Option<String>> {
    let file = args.data_dir.join("ca.crt");
    if let Ok(pem) = std::fs::read(&file) {
        let what = file.display().to_string();
        return Ok(Some(catalyst_apiserver::tls::pem_sha256(&what, &pem)?));
    }
    Ok(catalyst_apiserver::tls::stored_ca_sha256(store).await?)
}

/// The id of the data dir's default join token, if it has one.
fn default_token_id(args: &StoreArgs) -> Option<String> {
    let text = std::fs::read_to_string(args.data_dir.join("join-token")).ok()?;
    let secret = catalyst_apiserver::tls::join_token_secret(text.trim());
    let hash = catalyst_apiserver::auth::hash(secret);
    Some(catalyst_apiserver::auth::token_id(&hash).to_owned())
}

async fn token(command: TokenCommand) -> anyhow::Result<()> {
    use catalyst_apiserver::auth::join_tokens;
    match command {
        TokenCommand::Create {
            store: args,
            ttl,
            description,
        } => {
            let store = args.open().await?;
            let expires = ttl
                .map(|t| chrono::Duration::from_std(t).map(|t| chrono::Utc::now() + t))
                .transpose()
                .context("--ttl is too long")?;
            let pin = ca_pin(&args, &store).await?;
            let (id, secret) = join_tokens::create(&store, expires, description).await?;
            let until = expires.map_or_else(|| "never expires".into(), |t| format!("expires {t}"));
            eprintln!("join token {id} ({until}); it is shown only now");
            println!(
                "{}",
                catalyst_apiserver::tls::pinned_join_token(pin.as_deref(), &secret)
            );
        }
        TokenCommand::List(args) => {
            let store = args.open().await?;
            let default = default_token_id(&args);
            let now = chrono::Utc::now();
            let rows: Vec<[String; 4]> = join_tokens::list(&store)
                .await?
                .into_iter()
                .map(|t| {
                    let expires = match t.expires {
                        None => "never".to_owned(),
                        Some(e) if e <= now => {
                            format!("{} (expired)", e.format("%Y-%m-%dT%H:%M:%SZ"))
                        }
                        Some(e) => e.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                    };
                    let mark = if default.as_deref() == Some(t.id.as_str()) {
                        "*"
                    } else {
                        ""
                    };
                    [
                        t.id,
                        t.description.unwrap_or_default(),
                        expires,
                        mark.to_owned(),
                    ]
                })
                .collect();
            let header = ["ID", "DESCRIPTION", "EXPIRES", "DEFAULT"].map(String::from);
            let mut widths = [0; 4];
            for row in std::iter::once(&header).chain(&rows) {
                for (w, cell) in widths.iter_mut().zip(row) {
                    *w = (*w).max(cell.chars().count());
                }
            }
            for row in std::iter::once(&header).chain(&rows) {
                let line = format!(
                    "{:w0$}   {:w1$}   {:w2$}   {}",
                    row[0],
                    row[1],
                    row[2],
                    row[3],
                    w0 = widths[0],
                    w1 = widths[1],
                    w2 = widths[2],
                );
                println!("{}", line.trim_end());
            }
        }
        TokenCommand::Revoke { store: args, id } => {
            let store = args.open().await?;
            let gone = join_tokens::revoke(&store, &id).await?;
            if default_token_id(&args).as_deref() == Some(gone.as_str()) {
                eprintln!(
                    "note: that was the token of the data dir's join-token file, which no longer joins nodes"
                );
            }
            println!("join token {gone} revoked");
        }
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
struct StoreArgs {
    /// Where Catalyst keeps its state.
    #[arg(long, default_value = "./catalyst-data", env = "CATALYST_DATA_DIR")]
    data_dir: std::path::PathBuf,
    /// sqlite://PATH, postgres://… or etcd://host:port[,host:port]; default: SQLite in the data dir.
    #[arg(long, env = "CATALYST_STORE")]
    store: Option<String>,
}

impl StoreArgs {
    async fn open(&self) -> anyhow::Result<std::sync::Arc<dyn catalyst_apiserver::store::Store>> {
        let url = match &self.store {
            Some(url) => url.clone(),
            None => {
                std::fs::create_dir_all(&self.data_dir)
                    .with_context(|| format!("creating {}", self.data_dir.display()))?;
                format!("sqlite://{}", self.data_dir.join("catalyst.db").display())
            }
        };
        catalyst_apiserver::store::open(&url)
            .await
            .with_context(|| format!("opening the store at {url}"))
    }
}

/// Every panic (a request handler's, a task's) goes to the log with where it happened and its
/// backtrace; the API answers a handler's panic with a 500 and keeps serving.
fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("(no message)");
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let backtrace = std::backtrace::Backtrace::force_capture();
        tracing::error!(
            panic = message,
            location,
            thread = std::thread::current().name().unwrap_or("unnamed"),
            "panic\n{backtrace}"
        );
    }));
}

/// The command line, with the settings of `catalyst server`'s or `catalyst nodelet`'s config
/// file (`--config`, else /etc/catalyst/COMMAND.yaml when present) where the command line does
/// not say otherwise; exits with clap's message (and the file's name) when it does not parse.
fn parse_with_config_file() -> Cli {
    use catalyst_cli::daemon_config;
    use clap::CommandFactory;
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let expanded = match daemon_config::with_config_file(
        &Cli::command(),
        argv,
        std::path::Path::new(daemon_config::DEFAULT_DIR),
    ) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2)
        }
    };
    let cli = match Cli::try_parse_from(&expanded.args) {
        Ok(cli) => cli,
        Err(e) => {
            if let Some(file) = expanded.file.as_ref().filter(|_| e.use_stderr()) {
                eprintln!("note: settings were read from {}", file.display());
            }
            e.exit()
        }
    };
    let given = match &cli.command {
        Command::Server(a) => a.config.as_ref(),
        Command::Nodelet(a) => a.config.as_ref(),
        _ => None,
    };
    if let Some(file) = given.or(expanded.file.as_ref()) {
        tracing::info!(file = %file.display(), "settings from the config file");
    }
    cli
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Catalyst's own TLS configs name the ring provider; this covers libraries that ask rustls
    // for the process default (the stores' TLS)
    let _ = rustls::crypto::ring::default_provider().install_default();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    log_panics();
    match parse_with_config_file().command {
        Command::Server(args) => serve(*args).await?,
        Command::Nodelet(args) => nodelet(*args).await?,
        Command::Image { command } => match command {
            ImageCommand::Prune { data_dir } => prune(&data_dir).await?,
            ImageCommand::Busybox { output } => pack(output, vec![], vec!["sh".to_owned()])?,
            ImageCommand::Pack { output, paths, cmd } => pack(output, paths, cmd)?,
        },
        Command::Token { command } => token(command).await?,
        Command::Completion(args) => {
            use clap::CommandFactory;
            let mut out = catalyst_cli::ctl::Out::stdio();
            args.run(&mut Cli::command(), "catalyst", &mut out)?;
        }
        Command::Store { command } => match command {
            StoreCommand::Status(args) => {
                let store = args.open().await?;
                let rev = store.current_revision().await?;
                println!("backend: {}\nrevision: {rev}", store.backend());
            }
            StoreCommand::Compact { store, keep } => {
                let store = store.open().await?;
                let target = store.current_revision().await? - keep;
                if target > 0 {
                    store.compact(target).await?;
                    println!("compacted history before revision {target}");
                } else {
                    println!("nothing to compact");
                }
            }
        },
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodelet_servers(args: &[&str]) -> Vec<String> {
        let cli = Cli::try_parse_from(args).expect("parses");
        match cli.command {
            Command::Nodelet(n) => n.server,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_nodelet_takes_a_comma_list_of_servers_on_the_command_line_and_in_its_file() {
        let flags = ["catalyst", "nodelet", "--join-token", "t", "--server"];
        let with = |more: &[&'static str]| [&flags[..], more].concat();
        assert_eq!(nodelet_servers(&with(&["https://a:1"])), ["https://a:1"]);
        assert_eq!(
            nodelet_servers(&with(&[
                "https://a:1,https://b:1",
                "--server",
                "https://c:1"
            ])),
            ["https://a:1", "https://b:1", "https://c:1"]
        );
        use clap::CommandFactory;
        for file in [
            "server: https://a:1,https://b:1\njoin-token: t\n",
            "server: [https://a:1, https://b:1]\njoin-token: t\n",
        ] {
            let dir = tempfile::tempdir().expect("tempdir");
            std::fs::write(dir.path().join("nodelet.yaml"), file).expect("write");
            let e = catalyst_cli::daemon_config::with_config_file(
                &Cli::command(),
                vec!["catalyst".into(), "nodelet".into()],
                dir.path(),
            )
            .expect("expands");
            let args: Vec<String> = e
                .args
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            assert_eq!(
                nodelet_servers(&args),
                ["https://a:1", "https://b:1"],
                "{file}"
            );
        }
    }
}
