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
    Server(ServerArgs),
    /// Store maintenance.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
}

#[derive(Debug, clap::Args)]
struct ServerArgs {
    /// Where Catalyst keeps its state, admin.yaml and join-token.
    #[arg(long, default_value = "./catalyst-data", env = "CATALYST_DATA_DIR")]
    data_dir: std::path::PathBuf,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:7443", env = "CATALYST_LISTEN")]
    listen: std::net::SocketAddr,
    /// sqlite://PATH, postgres://… or etcd://host:port[,host:port]; default: SQLite in the data dir.
    #[arg(long, env = "CATALYST_STORE")]
    store: Option<String>,
}

async fn serve(args: ServerArgs) -> anyhow::Result<()> {
    let running = catalyst_apiserver::server::start(catalyst_apiserver::server::ServerConfig {
        data_dir: args.data_dir.clone(),
        listen: args.listen,
        store: args.store,
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
            identity,
            lease_duration: std::time::Duration::from_secs(10),
            strategy: catalyst_controllers::scheduling::Strategy::Packed,
        },
    );
    println!("Catalyst API server on http://{}", running.addr);
    println!("  admin client config: {}", running.admin_config.display());
    println!("  node join token:     {}", running.join_token.display());
    println!(
        "  try: CATALYST_CONFIG={} catalystctl get gameservers -A",
        running.admin_config.display()
    );
    running.serve(shutdown_signal()).await?;
    Ok(())
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Server(args) => serve(args).await?,
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
