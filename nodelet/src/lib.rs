//! The nodelet: registers its Node, heartbeats, watches the GameServers bound to it and
//! converges containerd toward them (images, containers with limits, CNI networking, console,
//! lifecycle), re-adopting what runs after its own restart.

pub mod backup;
pub mod bound;
pub mod cni;
pub mod config;
pub mod configfile;
pub mod console;
pub mod credentials;
pub mod ctd;
pub mod disk;
pub mod error;
pub mod events;
pub mod file_ops;
pub mod files;
pub mod heartbeat;
pub mod image;
pub mod imagegc;
pub mod metrics;
pub mod ownership;
pub mod pack;
pub mod pool;
pub mod registry;
pub mod retry;
pub mod rootfs;
pub mod runtime;
pub mod sampler;
pub mod seccomp;
pub mod servers;
pub mod sftp;
pub mod spec;
pub mod startup;
pub mod supervisor;
pub mod task_events;
pub mod tunnel;
pub mod userns;
pub mod worker;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use config::Config;
pub use error::{Error, Result};

use crate::cni::Network;
use crate::ctd::Containerd;
use crate::retry::backoff;
use crate::runtime::Runtime;

/// Runs until `shutdown` resolves. Game servers keep running when the nodelet stops.
pub async fn run(config: Config, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
    std::fs::create_dir_all(&config.data_dir)?;
    let data_dir = std::fs::canonicalize(&config.data_dir)?;
    // the API server first: a join token that pins another CA stops here, before anything
    // on this machine is touched
    let mut delays = backoff();
    let api = loop {
        match credentials::credentials(&config).await {
            Ok(c) => break c,
            Err(Error::Api(e))
                if matches!(
                    e,
                    catalyst_client::Error::Unreachable { .. }
                        | catalyst_client::Error::MayHaveApplied { .. }
                ) || e.code() >= Some(500) =>
            {
                tracing::warn!(error = %e, "API server not reachable yet");
                tokio::time::sleep(delays.next().unwrap_or(Duration::from_secs(5))).await;
            }
            Err(e) => return Err(e),
        }
    };
    let ctd = Containerd::connect(&config.containerd_socket).await?;
    let mut delays = backoff();
    let ctd_version = loop {
        match ctd.version().await {
            Ok(v) => break v,
            Err(e) => {
                tracing::warn!(error = %e, "containerd not answering yet");
                tokio::time::sleep(delays.next().unwrap_or(Duration::from_secs(5))).await;
            }
        }
    };
    let bin_dir = config
        .cni_bin_dir
        .clone()
        .or_else(cni::find_bin_dir)
        .ok_or_else(|| {
            Error::Config(
                "no CNI plugins found (install containernetworking-plugins, or pass --cni-bin-dir)"
                    .into(),
            )
        })?;
    let mut images = image::ImagePolicy::for_data_dir(&data_dir);
    images.image_dirs.extend(config.image_dirs.iter().cloned());
    images.max_pull_bytes = config.max_image_bytes;
    let image_gc = Arc::new(
        imagegc::ImageGc::new(
            ctd.clone(),
            &data_dir,
            config.image_gc_high_threshold,
            config.image_gc_low_threshold,
        )
        .map_err(|e| Error::Config(e.to_string()))?,
    );
    let (event_queue, event_writer) = events::EventQueue::new(api.clone(), credentials::COMPONENT);
    let spares = disk::spares::Spares::new(&data_dir, config.spare_disks);
    let pool = pool::NetnsPool::new(&data_dir, config.netns_pool);
    let rt = Arc::new(Runtime {
        ctd,
        api: api.clone(),
        events: event_queue,
        net: Network {
            bin_dir,
            bridge: config.bridge.clone(),
            subnet: config.subnet.clone(),
            state_dir: data_dir.join("cni"),
        },
        node: config.name.clone(),
        data_dir,
        uid: config.uid,
        gid: config.gid,
        defaults: Mutex::new(config.default_limits),
        node_spec: Mutex::new(None),
        images,
        ids: userns::IdAllocator::open(&config.idmap_dir, config.uid_base, config.uid_ranges)?,
        consoles: Mutex::new(HashMap::new()),
        wakers: Mutex::new(HashMap::new()),
        oom: Mutex::new(HashSet::new()),
        registries: registry::Registries::load(
            config.registry_auth.as_deref(),
            config.insecure_registries.clone(),
        )
        .map_err(|e| Error::Config(format!("registry auth file: {e}")))?,
        samples: Mutex::new(Vec::new()),
        image_gc: image_gc.clone(),
        image_fetched: tokio::sync::Notify::new(),
        servers_listed: Default::default(),
        bound: Arc::new(bound::BoundServers::new()),
        backup_endpoint_allow: config.backup_endpoint_allow.clone(),
        spares: Arc::new(spares),
        pool: Arc::new(pool),
        denylists: Default::default(),
    });
    tracing::info!(
        node = config.name,
        containerd = ctd_version,
        "nodelet started"
    );
    // SFTP beside the tunnel; a node whose SFTP port can't be had runs on without it
    let sftp = match config.sftp_listen {
        Some(listen) => match sftp::for_node(rt.clone(), listen).await {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "SFTP server not started");
                None
            }
        },
        None => None,
    };
    let heartbeat = tokio::spawn(heartbeat::heartbeat_loop(
        rt.clone(),
        config.clone(),
        ctd_version,
        sftp.as_ref().map(sftp::SftpServer::status),
    ));
    let events = tokio::spawn(task_events::event_pump(rt.clone()));
    // a tunnel to every server, so each one can reach this node
    let tunnels = futures::future::join_all(
        rt.api
            .servers()
            .iter()
            .map(|url| tunnel::run(rt.clone(), url.clone()))
            .collect::<Vec<_>>(),
    );
    let tunnel = tokio::spawn(async move {
        tunnels.await;
    });
    // before any worker: what a kill left of the pool is finished or undone
    rt.pool.recover(&rt).await;
    let pool = tokio::spawn(rt.pool.clone().run(rt.clone()));
    let servers = tokio::spawn(servers::server_loop(rt.clone()));
    let sampler = tokio::spawn(sampler::sample_loop(rt.clone()));
    let gc = tokio::spawn(image_gc_loop(rt.clone()));
    let spares = {
        let r = rt.clone();
        tokio::spawn(rt.spares.clone().run(move || {
            let defaults = *r.defaults.lock().expect("defaults");
            spec::disk_bytes(&Default::default(), &defaults)
        }))
    };
    let prune = {
        let r = rt.clone();
        tokio::spawn(imagegc::serve_prune(
            image_gc,
            rt.data_dir.join(imagegc::SOCKET_NAME),
            move || r.image_users_known(),
        ))
    };
    let (stop_events, events_stopped) = tokio::sync::oneshot::channel::<()>();
    let event_writer = tokio::spawn(event_writer.run(
        async {
            let _ = events_stopped.await;
        },
        Duration::from_secs(2),
    ));
    shutdown.await;
    tracing::info!("nodelet stopping; game servers keep running");
    for h in [
        heartbeat, events, tunnel, servers, sampler, gc, prune, spares,
    ] {
        h.abort();
    }
    // no entry of the pool outlives the nodelet (a kill leaves them to the next start)
    rt.pool.drain(&rt, Duration::from_secs(10)).await;
    pool.abort();
    // what the workers recorded last (e.g. a server's Stopped) is still written
    let _ = stop_events.send(());
    let _ = event_writer.await;
    if let Some(s) = sftp {
        s.shutdown();
    }
    Ok(())
}

/// Checks the image filesystem every [`imagegc::CHECK_INTERVAL`] and after each fetch, and
/// collects unused images above the high threshold (once every server bound here has said
/// which images it needs).
async fn image_gc_loop(rt: Arc<Runtime>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(imagegc::CHECK_INTERVAL) => {}
            _ = rt.image_fetched.notified() => {}
        }
        if !rt.image_users_known() {
            tracing::debug!("image GC waits for every server to be resolved");
            continue;
        }
        match rt.image_gc.collect(imagegc::Mode::Thresholds).await {
            Ok(o) if !o.removed.is_empty() => {
                tracing::info!(removed = o.removed.len(), freed = o.freed, "image GC");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "image GC failed"),
        }
    }
}
