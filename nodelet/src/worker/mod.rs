//! One worker per GameServer bound to this node: it converges containerd toward the server's
//! spec and reports the lifecycle through `/status`.
//!
//! Each pass observes (the main and install tasks, the ready line, OOM kills, the resolved
//! spec), decides with the pure [`plan::plan`], and carries the [`plan::Plan`] out through the
//! traits of [`env`]. Nothing waits inline: a pass returns when it has acted, and the worker
//! sleeps until a wake-up source fires — a new version of the object, a task exit or OOM on
//! containerd's event stream, the ready line on the console, or the next deadline (stop,
//! install, crash backoff) the plan named.
//!
//! The verbs live in their own files: [`start`] (start, adopt, ready), [`stop`] (stop, kill,
//! stopping an install), [`exit`] (exits, lost tasks, failures), [`install`] and [`cleanup`];
//! [`exec`] dispatches a plan and writes the lifecycle events it causes; [`quota`] reports the
//! server's disk (its use in the status, Events).

mod cleanup;
mod configs;
pub mod env;
mod exec;
mod exit;
#[cfg(test)]
mod fake;
mod install;
pub mod plan;
pub mod progress;
mod quota;
mod start;
mod stop;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use catalyst_schemas::gameserver::GameServer;
use catalyst_schemas::object::{is_newer_or_same, name_of};
use serde_json::{json, Value};
use tokio::sync::{watch, Notify};

use crate::runtime::Runtime;
use crate::spec::{self, Resolved};
use env::Env;
use plan::{Memory, Observed, Plan};

/// What a worker keeps on disk across nodelet restarts (`run/<uid>/state.json`).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Persisted {
    /// The restartedAt annotation value already acted on.
    #[serde(default)]
    restarted_at: Option<String>,
    /// The reinstallRequestedAt annotation value already acted on.
    #[serde(default)]
    reinstalled_at: Option<String>,
    /// A stop was asked for the current task.
    #[serde(default)]
    stop_asked: bool,
    /// The running install was killed for its timeout.
    #[serde(default)]
    install_timed_out: bool,
    /// The resolved spec the running task (server or install) was started with.
    #[serde(default)]
    pinned: Option<Resolved>,
}

/// When the worker looks next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// When woken (and every 30 s regardless).
    Idle,
    /// After this long at the latest.
    After(Duration),
}

/// How long an idle worker sleeps before it looks again anyway.
const IDLE: Duration = Duration::from_secs(30);

/// A worker for one GameServer.
pub struct Worker {
    env: Env,
    uid: String,
    cid: String,
    install_id: String,
    state_file: Option<PathBuf>,
    rx: watch::Receiver<Option<Value>>,
    gs: Value,
    memory: Memory,
    ready: Arc<AtomicBool>,
    ready_watch: Option<tokio::task::JoinHandle<()>>,
    waker: Arc<Notify>,
    start_failures: u32,
    /// No pass has looked at containerd yet.
    first_look: bool,
    /// The spec as last resolved against its template.
    last_resolved: Option<Resolved>,
    /// The resolved spec the running task was started with: while it runs, a change of its
    /// Template does not reach it (stop, ready, config files stay as they were started).
    pinned: Option<Resolved>,
    /// What the worker keeps of the server's disk (warnings given, use written).
    disk: quota::DiskMemory,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("uid", &self.uid).finish()
    }
}

/// Attempts of a start that fails for a transient reason before the server goes to Error.
const START_RETRIES: u32 = 3;

impl Worker {
    /// Starts a worker; it runs until the channel closes (the object is gone and cleaned up).
    pub fn spawn(rt: Arc<Runtime>, uid: String, rx: watch::Receiver<Option<Value>>) {
        let cid = Runtime::container_id(&uid);
        let waker = rt.waker(&cid);
        let state_file = rt.run_dir(&uid).join("state.json");
        let env = Env::real(rt, &uid);
        let w = Worker::new(env, uid, rx, waker, Some(state_file));
        tokio::spawn(w.run());
    }

    /// A worker over `env` (the real one, or fakes in tests); `state_file` keeps what must
    /// survive a restart.
    fn new(
        env: Env,
        uid: String,
        rx: watch::Receiver<Option<Value>>,
        waker: Arc<Notify>,
        state_file: Option<PathBuf>,
    ) -> Self {
        let cid = Runtime::container_id(&uid);
        let persisted: Persisted = state_file
            .as_ref()
            .and_then(|f| std::fs::read(f).ok())
            .and_then(|d| serde_json::from_slice(&d).ok())
            .unwrap_or_default();
        let gs = rx.borrow().clone().unwrap_or(Value::Null);
        Worker {
            env,
            install_id: Runtime::install_id(&cid),
            uid,
            cid,
            state_file,
            rx,
            gs,
            memory: Memory {
                restarted_at: persisted.restarted_at,
                reinstalled_at: persisted.reinstalled_at,
                stop_asked: persisted.stop_asked,
                install_timed_out: persisted.install_timed_out,
                ..Memory::default()
            },
            ready: Arc::new(AtomicBool::new(false)),
            ready_watch: None,
            waker,
            start_failures: 0,
            first_look: true,
            last_resolved: None,
            pinned: persisted.pinned,
            disk: quota::DiskMemory::default(),
        }
    }

    async fn run(mut self) {
        let mut failures = 0u32;
        loop {
            let next = match self.pass().await {
                Ok(None) => return,
                Ok(Some(n)) => {
                    failures = 0;
                    n
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(server = name_of(&self.gs), error = %e, "worker pass failed");
                    Next::After(Duration::from_millis(200 * (1 << failures.min(8))))
                }
            };
            // a deadline far away is still looked at every IDLE: a missed exit event costs
            // at most that
            let sleep = match next {
                Next::Idle => IDLE,
                Next::After(d) => d.min(IDLE),
            };
            tokio::select! {
                r = self.rx.changed() => {
                    if r.is_err() {
                        // the manager dropped us: nodelet shutting down
                        return;
                    }
                }
                _ = self.waker.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }

    /// One pass: take the latest object, then clean up (gone) or plan and act. `None` when the
    /// server is gone and everything of it removed.
    async fn pass(&mut self) -> crate::Result<Option<Next>> {
        if let Some(latest) = self.rx.borrow_and_update().clone() {
            if is_newer_or_same(&latest, &self.gs) {
                self.gs = latest;
            }
        }
        if self.rx.borrow().is_none() {
            self.clean_up_gone().await?;
            tracing::info!(uid = self.uid, "server gone; container removed");
            return Ok(None);
        }
        let gs = self.typed()?;
        let observed = self.observe(&gs).await?;
        let plan = plan::plan(&observed, &gs, &self.memory, self.env.clock.now());
        tracing::debug!(server = gs.metadata.name, ?plan, "worker plan");
        let first_look = self.first_look && observed.main != plan::Task::Unknown;
        if observed.main != plan::Task::Unknown {
            self.first_look = false;
        }
        if first_look
            && observed.main == plan::Task::Running
            && matches!(plan, Plan::Nothing | Plan::AwaitReady | Plan::MarkReady)
        {
            // a task this worker did not start, kept as it is (a nodelet restart); Plan::Adopt
            // says so itself
            tracing::info!(server = gs.metadata.name, "adopting a running container");
            self.event(
                "Normal",
                "Adopted",
                "the nodelet took over the server's running container",
            )
            .await;
        }
        let running =
            observed.main == plan::Task::Running || observed.install == plan::Task::Running;
        let next = self.execute(plan, &gs, observed).await?;
        if running {
            self.watch_disk().await;
        }
        Ok(Some(next))
    }

    /// What runs, and the spec resolved against its template.
    async fn observe(&mut self, gs: &GameServer) -> crate::Result<Observed> {
        let rt = &self.env.runtime;
        let main = rt.task(&self.cid).await?;
        let install = rt.task(&self.install_id).await?;
        let oom = rt.oom_killed(&self.cid);
        let live = main == plan::Task::Running || install == plan::Task::Running;
        // resolved every pass (the file denylist follows the Template at once, also after a
        // nodelet restart); a running task keeps the resolution it started with
        let latest = self.resolve(gs).await?;
        let resolved = match (&self.pinned, live) {
            (Some(p), true) => Ok(p.clone()),
            _ => latest,
        };
        Ok(Observed {
            main,
            install,
            ready: self.ready.load(Ordering::SeqCst),
            oom,
            resolved,
        })
    }

    /// The server resolved against its template; an API failure is an error of the pass, a
    /// missing template or a bad spec is the server's problem.
    /// While the API cannot be asked for the template, the last resolution stands in, so
    /// deadlines (stop, install) are kept during an API outage.
    async fn resolve(&mut self, gs: &GameServer) -> crate::Result<Result<Resolved, String>> {
        let template = match &gs.spec.template {
            Some(name) => match self.env.status.template(name).await {
                Ok(t) => t,
                Err(e) => match &self.last_resolved {
                    Some(r) => {
                        tracing::debug!(error = %e, "template unreadable; using the last one");
                        return Ok(Ok(r.clone()));
                    }
                    None => return Err(e),
                },
            },
            None => None,
        };
        let resolved = spec::resolve(gs, template.as_ref()).map_err(|e| e.to_string());
        self.record_images(gs, resolved.as_ref().ok());
        if let Ok(r) = &resolved {
            let before = self
                .last_resolved
                .as_ref()
                .map_or(&[][..], |l| &l.file_denylist[..]);
            if before != &r.file_denylist[..] {
                self.env.runtime.set_denylist(&r.file_denylist);
            }
            self.last_resolved = Some(r.clone());
        }
        Ok(resolved)
    }

    /// Tells the image GC the images this server needs: those of the latest resolution and of
    /// the pinned one (main and install), else the spec's own.
    fn record_images(&self, gs: &GameServer, latest: Option<&Resolved>) {
        let mut images = std::collections::BTreeSet::new();
        for r in [latest, self.pinned.as_ref()].into_iter().flatten() {
            images.insert(r.image.clone());
            if let Some(i) = r.install.as_ref().and_then(|i| i.image.clone()) {
                images.insert(i);
            }
        }
        if latest.is_none() {
            images.extend(gs.spec.image.clone());
        }
        self.env.runtime.set_images(images);
    }

    /// Keeps the resolved spec a task starts with, for as long as it runs.
    fn pin(&mut self, resolved: &Resolved) {
        if self.pinned.as_ref() != Some(resolved) {
            self.pinned = Some(resolved.clone());
            self.save();
        }
    }

    /// The resolved spec of the running task, else the latest.
    fn current_resolved(&self) -> Option<&Resolved> {
        self.pinned.as_ref().or(self.last_resolved.as_ref())
    }

    fn save(&self) {
        let Some(file) = &self.state_file else { return };
        let persisted = Persisted {
            restarted_at: self.memory.restarted_at.clone(),
            reinstalled_at: self.memory.reinstalled_at.clone(),
            stop_asked: self.memory.stop_asked,
            install_timed_out: self.memory.install_timed_out,
            pinned: self.pinned.clone(),
        };
        if let Some(dir) = file.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let tmp = file.with_extension("json.tmp");
        let _ = std::fs::remove_file(&tmp);
        // the pinned spec holds the server's variables (passwords): for root's eyes only
        let written = {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .and_then(|mut f| f.write_all(&serde_json::to_vec(&persisted).expect("json")))
        };
        if written.is_ok() {
            let _ = std::fs::rename(&tmp, file);
        }
    }

    fn set_stop_asked(&mut self, asked: bool) {
        if self.memory.stop_asked != asked {
            self.memory.stop_asked = asked;
            self.save();
        }
    }

    fn typed(&self) -> crate::Result<GameServer> {
        let mut v = self.gs.clone();
        if v.get("status").is_none_or(Value::is_null) {
            v["status"] = json!({});
        }
        Ok(serde_json::from_value(v)?)
    }

    async fn event(&self, type_: &str, reason: &str, message: &str) {
        self.env
            .status
            .event(&self.gs, type_, reason, message)
            .await;
    }

    fn console_line(&self, line: &str) {
        if let Ok(c) = self.env.runtime.console() {
            c.system(line);
        }
    }
}
