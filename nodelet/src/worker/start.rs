//! Starting a server: the image, the sandbox, the network and the container, then its task;
//! taking over a task that already runs; and the ready line.

use std::sync::atomic::Ordering;
use std::time::Instant as WallInstant;

use catalyst_schemas::gameserver::{GameServer, NetworkMode};
use catalyst_schemas::lifecycle::Event;
use containerd_client::types::Mount;
use serde_json::json;
use tokio::task::JoinHandle;

use super::env::{ContainerKind, NewContainer};
use super::exec::SOON;
use super::plan::{backoff, Launch};
use super::progress;
use super::{Next, Worker, START_RETRIES};
use crate::spec::Resolved;
use crate::Error;

/// How long each step of a start took, logged as one line per start (`start path`).
#[derive(Debug)]
pub(super) struct Steps {
    began: WallInstant,
    last: WallInstant,
    steps: Vec<(&'static str, u128)>,
}

impl Steps {
    pub(super) fn new() -> Self {
        let now = WallInstant::now();
        Steps {
            began: now,
            last: now,
            steps: Vec::new(),
        }
    }

    /// Ends step `name` now.
    pub(super) fn lap(&mut self, name: &'static str) {
        let now = WallInstant::now();
        self.steps
            .push((name, now.duration_since(self.last).as_millis()));
        self.last = now;
    }

    fn log(&self, server: &str, bridge: bool) {
        let steps: Vec<String> = self
            .steps
            .iter()
            .map(|(name, ms)| format!("{name}:{ms}"))
            .collect();
        tracing::info!(
            server,
            network = if bridge { "Bridge" } else { "Host" },
            total_ms = self.began.elapsed().as_millis() as u64,
            steps = %steps.join(","),
            "start path"
        );
    }
}

/// A container ready to start, and its host ports being mapped meanwhile.
#[derive(Debug)]
pub(super) struct Prepared {
    /// The container's root filesystem.
    pub mounts: Vec<Mount>,
    ports: Option<JoinHandle<crate::Result<()>>>,
}

impl Prepared {
    /// Waits until the host ports are mapped (portmap runs beside the task's start: the
    /// host's rules are invisible to the process).
    pub(super) async fn ports_mapped(&mut self) -> crate::Result<()> {
        match self.ports.take() {
            Some(h) => h.await.map_err(|e| {
                Error::Cni(crate::cni::CniError::Failed {
                    what: "portmap".into(),
                    message: e.to_string(),
                })
            })?,
            None => Ok(()),
        }
    }
}

/// The status reason of a failed start or install: an image that cannot be had says so.
pub(super) fn failure_reason(e: &Error, otherwise: &'static str) -> &'static str {
    match e {
        Error::Image(_) => "ImagePullFailed",
        Error::NotAllowed(_) => "NotAllowedOnNode",
        Error::Disk(_) => "DiskFailed",
        _ => otherwise,
    }
}

impl Worker {
    /// The status bookkeeping of a launch: restart count, crash-loop warning, the restart
    /// annotation acknowledged.
    pub(super) async fn launch_bookkeeping(&mut self, launch: &Launch) -> crate::Result<()> {
        if let Some(count) = launch.restart_count {
            self.patch_status(json!({ "restartCount": count })).await?;
        }
        if launch.crash_loop {
            let count = launch.restart_count.unwrap_or_default();
            self.event(
                "Warning",
                "CrashLoop",
                &format!(
                    "restarted {count} times after crashes; next restart in {}s",
                    backoff(count).as_secs()
                ),
            )
            .await;
        }
        if let Some(ack) = &launch.acknowledge_restart {
            self.memory.restarted_at = Some(ack.clone());
            self.save();
        }

        Ok(())
    }

    /// Ensures the image while writing the pull's progress to the `ImagePulled` condition (at
    /// most once a [`progress::INTERVAL`]); a failed fetch leaves the condition False.
    async fn ensure_reporting(
        &mut self,
        image_ref: &str,
    ) -> crate::Result<(crate::image::Image, Option<u64>)> {
        let rt = self.env.runtime.clone();
        let (tx, mut rx) = tokio::sync::watch::channel(None);
        let ensure = rt.ensure_image(image_ref, std::sync::Arc::new(tx));
        let mut ensure = std::pin::pin!(ensure);
        let mut last = None;
        let result = loop {
            tokio::select! {
                biased;
                r = &mut ensure => break r,
                p = progress::next(&mut rx, last, progress::INTERVAL) => match p {
                    Some((done, total)) => {
                        last = Some(tokio::time::Instant::now());
                        let msg = progress::message(done, total);
                        self.image_condition(false, "Pulling", &msg).await;
                    }
                    None => break ensure.await,
                },
            }
        };
        if let (Err(e), Some(_)) = (&result, last) {
            self.image_condition(false, "PullFailed", &e.to_string())
                .await;
        }
        result
    }

    /// Writes the `ImagePulled` condition (failures are logged: progress is not worth a pass).
    async fn image_condition(&mut self, ok: bool, reason: &str, message: &str) {
        let mut status = json!({});
        self.with_condition(&mut status, progress::CONDITION, ok, reason, message);
        if let Err(e) = self.patch_status(status).await {
            tracing::debug!(server = self.name(), error = %e, "image condition not written");
        }
    }

    /// Fetches the image, makes the sandbox, attaches the network and creates container `id`.
    pub(super) async fn prepare_container(
        &mut self,
        id: &str,
        kind: &ContainerKind,
        gs: &GameServer,
        resolved: &Resolved,
        image_ref: &str,
        steps: &mut Steps,
    ) -> crate::Result<Prepared> {
        let rt = self.env.runtime.clone();
        rt.check_allowed(resolved)?;
        let lock = rt.lock_image(image_ref).await;
        if !rt.image_present(image_ref).await? {
            let what = if image_ref.starts_with("oci-archive:") {
                "importing"
            } else {
                "pulling"
            };
            let msg = format!("{what} image {image_ref}");
            self.console_line(&msg);
            self.event("Normal", "Pulling", &msg).await;
        }
        let started = WallInstant::now();
        let (image, fetched) = self.ensure_reporting(image_ref).await?;
        if let Some(bytes) = fetched {
            let msg = format!(
                "image {image_ref}: {:.1} MiB of layers in {:.1} s",
                bytes as f64 / (1 << 20) as f64,
                started.elapsed().as_secs_f64()
            );
            self.console_line(&msg);
            self.event("Normal", "Pulled", &msg).await;
            self.image_condition(true, "Pulled", &msg).await;
        }
        drop(lock);
        steps.lap("image");
        let sandbox = rt.sandbox(resolved).await?;
        steps.lap("sandbox");
        let bridge = resolved.network == NetworkMode::Bridge;
        let ports = gs.status.clone().unwrap_or_default().ports;
        if bridge && sandbox.fresh {
            // the namespaces are made anew: an attachment to an old network namespace (its
            // address, its port mappings) must go first (nothing runs when none was recorded)
            let _ = self.env.network.detach(&self.cid, &ports).await;
            steps.lap("detach");
        }
        rt.make_namespaces(&sandbox).await?;
        steps.lap("namespaces");
        // The server's disk, the network and the container are independent until the task
        // starts (nothing reads the data directory before): all three at once (mkfs and the
        // CNI plugins take most of a start's time); the host ports as soon as the bridge is
        // there (at once for a sandbox of the pool), beside the container's making and the
        // task's start (the host's rules are invisible to the process).
        let net = async {
            if !bridge {
                return Ok::<_, Error>(None);
            }
            self.env.network.attach_bridge(&self.cid).await?;
            let network = self.env.network.clone();
            let cid = self.cid.clone();
            Ok(Some(tokio::spawn(async move {
                network.map_ports(&cid, &ports).await
            })))
        };
        let namespace = gs.metadata.namespace.clone().unwrap_or_default();
        let container = NewContainer {
            id,
            kind,
            resolved,
            image: &image,
            sandbox: &sandbox,
            namespace: &namespace,
            name: &gs.metadata.name,
            generation: gs.metadata.generation.unwrap_or(0),
        };
        let (disk, net, mounts) =
            tokio::join!(rt.disk(resolved, &sandbox), net, rt.create(&container));
        steps.lap("disk+bridge+create");
        let mut prepared = Prepared {
            mounts: Vec::new(),
            ports: None,
        };
        match net {
            Ok(ports) => prepared.ports = ports,
            Err(e) => {
                if mounts.is_ok() {
                    let _ = rt.remove(id).await;
                }
                return Err(e);
            }
        }
        let disk = match disk {
            Ok(d) => d,
            Err(e) => {
                // the container made beside it never runs on the node's own filesystem; the
                // host ports mapped meanwhile stay recorded (the next start keeps them, a
                // delete removes them)
                if mounts.is_ok() {
                    let _ = rt.remove(id).await;
                }
                let _ = prepared.ports_mapped().await;
                return Err(e);
            }
        };
        if let Some(d) = &disk {
            self.disk_notes(d).await;
        }
        match mounts {
            Ok(m) => prepared.mounts = m,
            Err(e) => {
                let _ = prepared.ports_mapped().await;
                return Err(e);
            }
        }
        Ok(prepared)
    }

    /// Starts the server's container; `events` (Started) are written once its task runs.
    pub(super) async fn start(
        &mut self,
        gs: &GameServer,
        resolved: &Resolved,
        launch: Launch,
        events: &[Event],
    ) -> crate::Result<Next> {
        let mut steps = Steps::new();
        self.launch_bookkeeping(&launch).await?;
        self.console_line("starting the server");
        let cid = self.cid.clone();
        let prepared = self
            .prepare_container(
                &cid,
                &ContainerKind::Main,
                gs,
                resolved,
                &resolved.image,
                &mut steps,
            )
            .await;
        let mut prepared = match prepared {
            Ok(p) => p,
            Err(e) => {
                let reason = failure_reason(&e, "StartFailed");
                return self.start_failed(gs, reason, e).await;
            }
        };
        self.apply_config_files(resolved).await;
        self.ready.store(false, Ordering::SeqCst);
        self.env.runtime.forget_oom(&cid);
        self.set_stop_asked(false);
        self.pin(resolved);
        let mounts = std::mem::take(&mut prepared.mounts);
        let started = self.env.runtime.start(&cid, mounts).await;
        steps.lap("task");
        let mapped = prepared.ports_mapped().await;
        steps.lap("ports");
        if let Err(e) = started {
            let _ = self.env.runtime.delete_task(&cid).await;
            return self.start_failed(gs, "StartFailed", e).await;
        }
        if let Err(e) = mapped {
            // the process runs without its ports: it goes, and the start is tried again
            let _ = self.env.runtime.remove(&cid).await;
            return self.start_failed(gs, "StartFailed", e).await;
        }
        self.start_failures = 0;
        let mut status = json!({"reason": null, "message": null});
        if let Some(g) = resolved.template_generation {
            status["templateGeneration"] = g.into();
        }
        if let Some(disk) = self.disk_for_status().await {
            status["disk"] = disk;
        }
        self.report(events, status).await?;
        self.event("Normal", "Started", "the server's process started")
            .await;
        steps.lap("starting");
        self.watch_ready();
        let bridge = resolved.network == NetworkMode::Bridge;
        // no ready line to wait for: Running now (as a pod is once its container started). A
        // process that already ended is reported by the next pass: its exit event has woken
        // the worker. (Asking containerd instead costs a `runc state` exec, ~40 ms a start.)
        if self.ready.load(Ordering::SeqCst) {
            let next = self.mark_ready(&[Event::Ready]).await;
            steps.lap("running");
            steps.log(&gs.metadata.name, bridge);
            return next;
        }
        steps.log(&gs.metadata.name, bridge);
        Ok(Next::After(SOON))
    }

    /// A start that failed: networking and containerd hiccups are retried (with the worker's
    /// backoff) a few times before the server goes to Error; a missing image or a bad spec is
    /// reported at once.
    pub(super) async fn start_failed(
        &mut self,
        gs: &GameServer,
        reason: &str,
        e: Error,
    ) -> crate::Result<Next> {
        let transient = matches!(e, Error::Cni(_) | Error::Containerd(_) | Error::Io(_));
        if transient && self.start_failures < START_RETRIES {
            self.start_failures += 1;
            self.console_line(&format!("start failed ({e}); trying again"));
            let ports = gs.status.clone().unwrap_or_default().ports;
            let _ = self.env.network.detach(&self.cid, &ports).await;
            return Err(e);
        }
        self.start_failures = 0;
        self.fail(reason, &e.to_string(), &[Event::Failed]).await
    }

    /// A task runs that the status does not show: report it started and watch for the ready
    /// line.
    pub(super) async fn adopt(&mut self, events: &[Event]) -> crate::Result<Next> {
        tracing::info!(server = self.name(), "adopting a running container");
        self.report(events, json!({})).await?;
        self.event(
            "Normal",
            "Adopted",
            "the nodelet took over the server's running container",
        )
        .await;
        self.watch_ready();
        Ok(Next::After(SOON))
    }

    /// The task runs and the ready line has not been seen: make sure something watches for it.
    pub(super) fn await_ready(&mut self) -> crate::Result<Next> {
        self.watch_ready();
        if self.ready.load(Ordering::SeqCst) {
            return Ok(Next::After(SOON));
        }
        Ok(Next::Idle)
    }

    /// The ready line was seen.
    pub(super) async fn mark_ready(&mut self, events: &[Event]) -> crate::Result<Next> {
        self.report(events, json!({"reason": null, "message": null}))
            .await?;
        self.event("Normal", "Ready", "the server is ready").await;
        self.console_line("server is ready");
        Ok(Next::Idle)
    }

    /// Follows the console for the ready text or pattern of the resolved spec the task started
    /// with (none: ready at once); the match wakes the worker.
    pub(super) fn watch_ready(&mut self) {
        if self.ready_watch.as_ref().is_some_and(|h| !h.is_finished())
            || self.ready.load(Ordering::SeqCst)
        {
            return;
        }
        let pattern = self
            .current_resolved()
            .and_then(|r| crate::spec::ReadyMatcher::new(r.ready.as_ref()));
        let Some(re) = pattern else {
            self.ready.store(true, Ordering::SeqCst);
            return;
        };
        let Ok(console) = self.env.runtime.console() else {
            return;
        };
        let (seen, mut rx) = console.follow(Some(200));
        if seen.iter().any(|l| re.is_match(l)) {
            self.ready.store(true, Ordering::SeqCst);
            return;
        }
        let ready = self.ready.clone();
        let waker = self.waker.clone();
        self.ready_watch = Some(tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(line) if re.is_match(&line) => {
                        ready.store(true, Ordering::SeqCst);
                        waker.notify_one();
                        return;
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => return,
                }
            }
        }));
    }

    /// Stops following the console for the ready line (the task ended).
    pub(super) fn forget_ready(&mut self) {
        if let Some(h) = self.ready_watch.take() {
            h.abort();
        }
        self.ready.store(false, Ordering::SeqCst);
    }
}
