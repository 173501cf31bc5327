//! One worker per GameServer bound to this node: it converges containerd toward the server's
//! spec and reports the lifecycle through `/status`.
//!
//! The worker is woken by a new version of the object, by a task exit or OOM from containerd's
//! event stream, by a ready line on the console, or by a timer (stop timeout, crash backoff).
//! Each wake runs [`Worker::step`], which compares what should run with what runs and acts.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use catalyst_schemas::gameserver::{DesiredState, GameServer, NetworkMode, RestartPolicy};
use catalyst_schemas::lifecycle::{can_move, Phase};
use catalyst_schemas::template::Template;
use serde_json::{json, Value};
use tokio::sync::{watch, Notify};

use crate::cni::Network;
use crate::console::Console;
use crate::ctd::{Containerd, TaskState};
use crate::image;
use crate::spec::{self, Placement, Resolved};
use crate::Error;
use catalyst_client::{gs_path, Client, API};

/// Container label: the GameServer's uid.
pub const LABEL_UID: &str = "catalyst.dev/uid";
/// Container label: namespace/name.
pub const LABEL_NAME: &str = "catalyst.dev/gameserver";
/// Container label: the generation the container was made from.
pub const LABEL_GENERATION: &str = "catalyst.dev/generation";
/// The annotation `catalystctl restart` sets.
pub const RESTARTED_AT: &str = "catalyst.dev/restartedAt";

/// What every worker shares.
#[derive(Debug)]
pub struct Runtime {
    /// containerd.
    pub ctd: Containerd,
    /// API client with the node token.
    pub api: Client,
    /// CNI networking.
    pub net: Network,
    /// This node's name.
    pub node: String,
    /// The nodelet's data directory.
    pub data_dir: PathBuf,
    /// uid servers run as, inside their user namespace.
    pub uid: u32,
    /// gid, inside the user namespace.
    pub gid: u32,
    /// Limits for servers that set none.
    pub defaults: Mutex<spec::DefaultLimits>,
    /// The Node's spec as last read (host network and port range rules).
    pub node_spec: Mutex<Option<catalyst_schemas::node::NodeSpec>>,
    /// Where images may come from and how large they may be.
    pub images: crate::image::ImagePolicy,
    /// Host uid ranges, one per server.
    pub ids: crate::userns::IdAllocator,
    /// Open consoles by GameServer uid.
    pub consoles: Mutex<HashMap<String, Arc<Console>>>,
    /// Wake-ups by container id.
    pub wakers: Mutex<HashMap<String, Arc<Notify>>>,
    /// Containers that saw an OOM kill since their task started.
    pub oom: Mutex<HashSet<String>>,
    /// Registry credentials and insecure registries.
    pub registries: crate::registry::Registries,
    /// The last metrics sample of every running server and the node (Prometheus).
    pub samples: Mutex<Vec<crate::metrics::Sample>>,
    /// One fetch per image at a time: servers sharing an image wait for the first one's pull.
    pub image_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Runtime {
    /// The container id of a server.
    pub fn container_id(uid: &str) -> String {
        format!("gs-{uid}")
    }

    /// The server's data directory (mounted at /home/container).
    pub fn server_dir(&self, uid: &str) -> PathBuf {
        self.data_dir.join("servers").join(uid)
    }

    /// The server's runtime directory (FIFOs, console log, worker state).
    pub fn run_dir(&self, uid: &str) -> PathBuf {
        self.data_dir.join("run").join(uid)
    }

    /// The console of a server, opened on first use.
    pub fn console(&self, uid: &str) -> Result<Arc<Console>, crate::console::ConsoleError> {
        let mut consoles = self.consoles.lock().expect("consoles lock");
        if let Some(c) = consoles.get(uid) {
            return Ok(c.clone());
        }
        let c = Arc::new(Console::open(&self.run_dir(uid))?);
        consoles.insert(uid.to_owned(), c.clone());
        Ok(c)
    }

    /// The console of a server if it is open.
    pub fn console_if_open(&self, uid: &str) -> Option<Arc<Console>> {
        self.consoles
            .lock()
            .expect("consoles lock")
            .get(uid)
            .cloned()
    }

    fn waker(&self, cid: &str) -> Arc<Notify> {
        self.wakers
            .lock()
            .expect("wakers lock")
            .entry(cid.to_owned())
            .or_default()
            .clone()
    }

    /// Wakes the worker of a container.
    pub fn wake(&self, cid: &str) {
        if let Some(n) = self.wakers.lock().expect("wakers lock").get(cid) {
            n.notify_one();
        }
    }

    /// Wakes every worker (after a gap in containerd's event stream).
    pub fn wake_all(&self) {
        for n in self.wakers.lock().expect("wakers lock").values() {
            n.notify_one();
        }
    }
}

/// What a worker remembers across nodelet restarts (`run/<uid>/state.json`).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Persisted {
    /// The restartedAt annotation value already acted on.
    #[serde(default)]
    restarted_at: Option<String>,
    /// A stop was asked for the current task.
    #[serde(default)]
    stop_asked: bool,
}

/// A worker for one GameServer.
pub struct Worker {
    rt: Arc<Runtime>,
    uid: String,
    cid: String,
    rx: watch::Receiver<Option<Value>>,
    gs: Value,
    persisted: Persisted,
    stop_deadline: Option<Instant>,
    crashed_at: Option<Instant>,
    ready: Arc<AtomicBool>,
    ready_watch: Option<tokio::task::JoinHandle<()>>,
    waker: Arc<Notify>,
    start_failures: u32,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("uid", &self.uid).finish()
    }
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn phase_of(v: &Value) -> Phase {
    v.pointer("/status/phase")
        .cloned()
        .and_then(|p| serde_json::from_value(p).ok())
        .unwrap_or_default()
}

fn st(gs: &GameServer) -> catalyst_schemas::gameserver::GameServerStatus {
    gs.status.clone().unwrap_or_default()
}

fn rv_of(v: &Value) -> u64 {
    s(v, "/metadata/resourceVersion").parse().unwrap_or(0)
}

/// What to do after a step.
enum Next {
    /// Sleep until woken.
    Idle,
    /// Wake after this long at the latest.
    After(Duration),
}

/// Crash backoff: 1 s doubling per restart, at most 60 s.
fn backoff(restarts: i64) -> Duration {
    Duration::from_secs(1u64 << restarts.clamp(0, 6) as u64).min(Duration::from_secs(60))
}

/// Attempts of a start that fails for a transient reason before the server goes to Error.
const START_RETRIES: u32 = 3;

/// Restarts after which a crashing server is reported as crash-looping.
const CRASH_LOOP: i64 = 5;

impl Worker {
    /// Starts a worker; it runs until the channel closes (the object is gone and cleaned up).
    pub fn spawn(rt: Arc<Runtime>, uid: String, rx: watch::Receiver<Option<Value>>) {
        let cid = Runtime::container_id(&uid);
        let persisted = std::fs::read(rt.run_dir(&uid).join("state.json"))
            .ok()
            .and_then(|d| serde_json::from_slice(&d).ok())
            .unwrap_or_default();
        let waker = rt.waker(&cid);
        let gs = rx.borrow().clone().unwrap_or(Value::Null);
        let w = Worker {
            rt,
            uid,
            cid,
            rx,
            gs,
            persisted,
            stop_deadline: None,
            crashed_at: None,
            ready: Arc::new(AtomicBool::new(false)),
            ready_watch: None,
            waker,
            start_failures: 0,
        };
        tokio::spawn(w.run());
    }

    async fn run(mut self) {
        let mut failures = 0u32;
        loop {
            if let Some(latest) = self.rx.borrow_and_update().clone() {
                if rv_of(&latest) >= rv_of(&self.gs) {
                    self.gs = latest;
                }
            }
            let gone = self.rx.borrow().is_none();
            let next = if gone {
                match self.cleanup().await {
                    Ok(()) => {
                        tracing::info!(uid = self.uid, "server gone; container removed");
                        self.rt.wakers.lock().expect("wakers").remove(&self.cid);
                        self.rt.consoles.lock().expect("consoles").remove(&self.uid);
                        let _ = std::fs::remove_dir_all(self.rt.run_dir(&self.uid));
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(uid = self.uid, error = %e, "cleanup failed; retrying");
                        Next::After(Duration::from_secs(2))
                    }
                }
            } else {
                match self.step().await {
                    Ok(n) => {
                        failures = 0;
                        n
                    }
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(server = s(&self.gs, "/metadata/name"), error = %e, "step failed");
                        Next::After(Duration::from_millis(200 * (1 << failures.min(8))))
                    }
                }
            };
            let sleep = match next {
                Next::Idle => Duration::from_secs(30),
                Next::After(d) => d,
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

    fn save(&self) {
        let dir = self.rt.run_dir(&self.uid);
        let _ = std::fs::create_dir_all(&dir);
        let tmp = dir.join("state.json.tmp");
        if std::fs::write(&tmp, serde_json::to_vec(&self.persisted).expect("json")).is_ok() {
            let _ = std::fs::rename(&tmp, dir.join("state.json"));
        }
    }

    fn name(&self) -> String {
        s(&self.gs, "/metadata/name").to_owned()
    }

    fn typed(&self) -> crate::Result<GameServer> {
        let mut v = self.gs.clone();
        if v.get("status").is_none_or(Value::is_null) {
            v["status"] = json!({});
        }
        Ok(serde_json::from_value(v)?)
    }

    /// Writes status fields; moves the phase only where the lifecycle allows, going through
    /// Stopping when a running server must become Stopped.
    async fn report(&mut self, phase: Phase, extra: Value) -> crate::Result<()> {
        let from = phase_of(&self.gs);
        if from == Phase::Running && phase == Phase::Stopped {
            self.patch_status(json!({"phase": "Stopping"})).await?;
        }
        let from = phase_of(&self.gs);
        let mut patch = extra;
        if can_move(from, phase) {
            patch["phase"] = json!(phase);
        } else if from != phase {
            tracing::debug!(%from, to = %phase, "lifecycle does not allow this move; status only");
        }
        patch["observedGeneration"] = self
            .gs
            .pointer("/metadata/generation")
            .cloned()
            .unwrap_or(json!(null));
        self.patch_status(patch).await
    }

    async fn patch_status(&mut self, status: Value) -> crate::Result<()> {
        let ns = s(&self.gs, "/metadata/namespace").to_owned();
        let path = format!("{}/status", gs_path(&ns, &self.name()));
        let updated = self
            .rt
            .api
            .patch(&path, json!({ "status": status }))
            .await?;
        if rv_of(&updated) >= rv_of(&self.gs) {
            self.gs = updated;
        }
        Ok(())
    }

    async fn set_condition(
        &mut self,
        type_: &str,
        status: bool,
        reason: &str,
        message: &str,
    ) -> crate::Result<()> {
        let mut conditions: Vec<Value> = self
            .gs
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let st = if status { "True" } else { "False" };
        let now = chrono::Utc::now();
        match conditions.iter_mut().find(|c| c["type"] == type_) {
            Some(c) => {
                if c["status"] != st {
                    c["lastTransitionTime"] = json!(now);
                }
                c["status"] = json!(st);
                c["reason"] = json!(reason);
                c["message"] = json!(message);
            }
            None => conditions.push(json!({"type": type_, "status": st, "reason": reason,
                                           "message": message, "lastTransitionTime": now})),
        }
        self.patch_status(json!({ "conditions": conditions })).await
    }

    fn condition_true(&self, type_: &str) -> bool {
        self.gs
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == type_ && c["status"] == "True")
            })
    }

    async fn resolve(&self, gs: &GameServer) -> crate::Result<Resolved> {
        let template = match &gs.spec.template {
            // Templates are cluster-wide.
            Some(t) => match self.rt.api.get(&format!("{API}/templates/{t}")).await {
                Ok(v) => Some(serde_json::from_value::<Template>(v)?),
                Err(e) if e.code() == Some(404) => None,
                Err(e) => return Err(e.into()),
            },
            None => None,
        };
        Ok(spec::resolve(gs, template.as_ref())?)
    }

    /// One pass of convergence.
    async fn step(&mut self) -> crate::Result<Next> {
        let gs = self.typed()?;
        let phase = st(&gs).phase;
        let deleting = gs.metadata.deletion_timestamp.is_some();
        let restart_wanted = gs
            .metadata
            .annotations
            .get(RESTARTED_AT)
            .is_some_and(|v| Some(v) != self.persisted.restarted_at.as_ref());
        let want_run = !deleting
            && gs.spec.state == DesiredState::Running
            && !gs.spec.suspended
            && !matches!(
                phase,
                Phase::Pending | Phase::Error | Phase::Suspended | Phase::Transferring
            );
        let task = self.rt.ctd.task_state(&self.cid).await?;
        match task {
            Some((TaskState::Running | TaskState::Created, _)) => {
                let console = self.rt.console(&self.uid)?;
                if !want_run || restart_wanted || self.persisted.stop_asked {
                    return self.stop(&gs, &console).await;
                }
                match phase {
                    Phase::Starting
                    | Phase::Unknown
                    | Phase::Scheduled
                    | Phase::Stopped
                    | Phase::Crashed => {
                        if phase != Phase::Starting {
                            // adopted after a restart of the node or the nodelet
                            self.report(Phase::Starting, json!({})).await?;
                        }
                        self.watch_ready(&gs, &console);
                        if self.ready.load(Ordering::SeqCst) {
                            self.report(Phase::Running, json!({"reason": null, "message": null}))
                                .await?;
                            self.rt
                                .api
                                .event(&self.gs, "Normal", "Ready", "the server is ready")
                                .await;
                            console.system("server is ready");
                        }
                    }
                    _ => {}
                }
                Ok(Next::Idle)
            }
            Some((TaskState::Stopped(code), _)) => {
                self.on_exit(&gs, code).await?;
                Ok(Next::After(Duration::from_millis(10)))
            }
            Some((TaskState::Unknown, _)) => Ok(Next::After(Duration::from_secs(1))),
            None => {
                if self.persisted.stop_asked {
                    self.persisted.stop_asked = false;
                    self.save();
                }
                self.stop_deadline = None;
                if matches!(
                    phase,
                    Phase::Starting | Phase::Running | Phase::Stopping | Phase::Unknown
                ) {
                    // no task but the status says one runs: it ended while nobody watched
                    let (to, reason) = if phase == Phase::Stopping || !want_run {
                        (Phase::Stopped, "Stopped")
                    } else {
                        (Phase::Crashed, "TaskLost")
                    };
                    self.report(
                        to,
                        json!({"reason": reason, "message": "no task found in containerd"}),
                    )
                    .await?;
                    if to == Phase::Crashed {
                        self.crashed_at = Some(Instant::now());
                    }
                    return Ok(Next::After(Duration::from_millis(10)));
                }
                if deleting {
                    self.cleanup().await?;
                    if phase != Phase::Stopped && can_move(phase, Phase::Stopped) {
                        self.report(Phase::Stopped, json!({"reason": "Deleted"}))
                            .await?;
                    }
                    return Ok(Next::Idle);
                }
                if !want_run {
                    return Ok(Next::Idle);
                }
                let resolved = match self.resolve(&gs).await {
                    Ok(r) => r,
                    Err(e) => return self.fail(&gs, "InvalidSpec", &e.to_string()).await,
                };
                if phase == Phase::Crashed && !restart_wanted {
                    let exit = st(&gs).last_exit;
                    let clean = exit
                        .as_ref()
                        .is_some_and(|e| e.exit_code == 0 && !e.oom_killed);
                    let restart = match gs.spec.restart_policy {
                        RestartPolicy::Always => true,
                        RestartPolicy::OnCrash => !clean,
                        RestartPolicy::Never => false,
                    };
                    if !restart {
                        return Ok(Next::Idle);
                    }
                    let wait = backoff(st(&gs).restart_count);
                    let since = self.crashed_at.get_or_insert_with(Instant::now).elapsed();
                    if since < wait {
                        return Ok(Next::After(wait - since));
                    }
                    let count = st(&gs).restart_count + 1;
                    self.patch_status(json!({"restartCount": count})).await?;
                    if count >= CRASH_LOOP {
                        self.rt
                            .api
                            .event(
                                &self.gs,
                                "Warning",
                                "CrashLoop",
                                &format!(
                                    "restarted {count} times after crashes; next restart in {}s",
                                    backoff(count).as_secs()
                                ),
                            )
                            .await;
                    }
                }
                if restart_wanted {
                    self.persisted.restarted_at =
                        gs.metadata.annotations.get(RESTARTED_AT).cloned();
                    self.save();
                    if st(&gs).restart_count != 0 {
                        self.patch_status(json!({"restartCount": 0})).await?;
                    }
                }
                if let Some(install) = resolved.install.clone() {
                    if !self.condition_true("Installed") {
                        return self.install(&gs, &resolved, &install).await;
                    }
                }
                self.start(&gs, &resolved).await
            }
        }
    }

    fn watch_ready(&mut self, gs: &GameServer, console: &Arc<Console>) {
        if self.ready_watch.as_ref().is_some_and(|h| !h.is_finished())
            || self.ready.load(Ordering::SeqCst)
        {
            return;
        }
        let pattern = gs
            .spec
            .ready
            .as_ref()
            .and_then(|r| regex::Regex::new(&r.log_pattern).ok());
        let Some(re) = pattern else {
            self.ready.store(true, Ordering::SeqCst);
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

    async fn fail(&mut self, gs: &GameServer, reason: &str, message: &str) -> crate::Result<Next> {
        tracing::warn!(server = self.name(), reason, message, "server failed");
        let phase = st(gs).phase;
        if can_move(phase, Phase::Error) {
            self.report(Phase::Error, json!({"reason": reason, "message": message}))
                .await?;
        } else {
            self.patch_status(json!({"reason": reason, "message": message}))
                .await?;
        }
        self.rt
            .api
            .event(&self.gs, "Warning", reason, message)
            .await;
        if let Ok(c) = self.rt.console(&self.uid) {
            c.system(&format!("{reason}: {message}"));
        }
        Ok(Next::After(Duration::from_secs(30)))
    }

    /// Sends the stop command or signal, then SIGKILL after the timeout.
    async fn stop(&mut self, gs: &GameServer, console: &Arc<Console>) -> crate::Result<Next> {
        if let Some(deadline) = self.stop_deadline {
            if Instant::now() >= deadline {
                console.system("stop timeout reached; killing the server");
                self.rt.ctd.task_kill(&self.cid, 9, true).await?;
                self.stop_deadline = Some(Instant::now() + Duration::from_secs(5));
                return Ok(Next::After(Duration::from_secs(5)));
            }
            return Ok(Next::After(deadline - Instant::now()));
        }
        let resolved = self.resolve(gs).await.ok();
        let stop = resolved.and_then(|r| r.stop);
        let timeout = Duration::from_secs(stop.as_ref().map_or(30, |s| s.timeout_seconds as u64));
        self.persisted.stop_asked = true;
        self.save();
        self.stop_deadline = Some(Instant::now() + timeout);
        if st(gs).phase != Phase::Stopping {
            self.report(Phase::Stopping, json!({})).await?;
        }
        match stop.as_ref().and_then(|s| s.command.clone()) {
            Some(cmd) => {
                console.system(&format!("stopping: sending {cmd:?} to the console"));
                if let Err(e) = console.command(&cmd).await {
                    console.system(&format!("stop command failed ({e}); sending SIGTERM"));
                    self.rt.ctd.task_kill(&self.cid, 15, false).await?;
                }
            }
            None => {
                let name = stop
                    .and_then(|s| s.signal)
                    .unwrap_or_else(|| "SIGTERM".into());
                let sig = signal_number(&name);
                console.system(&format!("stopping: sending {name}"));
                self.rt.ctd.task_kill(&self.cid, sig, false).await?;
            }
        }
        Ok(Next::After(timeout))
    }

    /// The task exited: read how, report Stopped or Crashed with the last lines, delete the task.
    async fn on_exit(&mut self, gs: &GameServer, code: u32) -> crate::Result<()> {
        let oom = self.oom_killed();
        self.rt.ctd.task_delete(&self.cid).await?;
        self.rt.oom.lock().expect("oom").remove(&self.cid);
        if let Some(h) = self.ready_watch.take() {
            h.abort();
        }
        self.ready.store(false, Ordering::SeqCst);
        let asked = self.persisted.stop_asked || st(gs).phase == Phase::Stopping;
        self.persisted.stop_asked = false;
        self.save();
        self.stop_deadline = None;
        let console = self.rt.console(&self.uid)?;
        let exit = json!({"exitCode": code, "oomKilled": oom, "finishedAt": chrono::Utc::now()});
        if gs.metadata.deletion_timestamp.is_some() {
            // Stopped lets the controller drop the finalizer: nothing may be left behind then
            self.cleanup().await?;
        }
        if asked {
            console.system(&format!("server stopped (exit code {code})"));
            self.report(
                Phase::Stopped,
                json!({"lastExit": exit, "reason": "Stopped", "message": null}),
            )
            .await?;
            self.rt
                .api
                .event(
                    &self.gs,
                    "Normal",
                    "Stopped",
                    &format!("exited with code {code} after a stop"),
                )
                .await;
        } else {
            let why = if oom {
                "killed by the kernel's OOM killer (memory limit reached)".to_owned()
            } else {
                format!("exited with code {code}")
            };
            console.system(&format!("server crashed: {why}"));
            let tail = console.tail(Some(10)).join("\n");
            let reason = if oom { "OOMKilled" } else { "Crashed" };
            self.report(
                Phase::Crashed,
                json!({"lastExit": exit, "reason": reason, "message": why}),
            )
            .await?;
            self.crashed_at = Some(Instant::now());
            self.rt
                .api
                .event(
                    &self.gs,
                    "Warning",
                    reason,
                    &format!("{why}; last console lines:\n{tail}"),
                )
                .await;
        }
        Ok(())
    }

    fn oom_killed(&self) -> bool {
        if self.rt.oom.lock().expect("oom").contains(&self.cid) {
            return true;
        }
        crate::metrics::oom_kills(&self.cid) > 0
    }

    /// The server's data directory and its host id range; the directory belongs to the
    /// server's user (its host id), re-owned when it does not (a new range, an upgrade).
    async fn placement_dirs(&self) -> crate::Result<(PathBuf, crate::userns::IdRange)> {
        let dir = self.rt.server_dir(&self.uid);
        std::fs::create_dir_all(&dir)?;
        let range = self.rt.ids.claim(&dir)?;
        let (uid, gid) = self.host_ids(range);
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::symlink_metadata(&dir)?;
        if (m.uid(), m.gid()) != (uid, gid) {
            let d = dir.clone();
            tokio::task::spawn_blocking(move || chown_tree(&d, uid, gid))
                .await
                .map_err(|e| Error::Config(format!("chown: {e}")))??;
        }
        Ok((dir, range))
    }

    /// The host uid and gid of the server's user.
    fn host_ids(&self, range: crate::userns::IdRange) -> (u32, u32) {
        (
            range.host(self.rt.uid).unwrap_or(range.start),
            range.host(self.rt.gid).unwrap_or(range.start),
        )
    }

    async fn prepare_container(
        &mut self,
        cid: &str,
        gs: &GameServer,
        resolved: &Resolved,
        image_ref: &str,
        remap: bool,
        build: impl FnOnce(
            &Placement<'_>,
            &image::ImageConfig,
        ) -> Result<oci_spec::runtime::Spec, spec::SpecError>,
    ) -> crate::Result<Vec<containerd_client::types::Mount>> {
        // defence in depth: what the scheduler checked, checked again where it matters
        if let Some(node) = self.rt.node_spec.lock().expect("node spec").as_ref() {
            catalyst_schemas::node::host_network_allowed(node, resolved.network)
                .and_then(|()| catalyst_schemas::node::host_ports_allowed(node, &resolved.ports))
                .map_err(Error::NotAllowed)?;
        }
        let lock = self
            .rt
            .image_locks
            .lock()
            .expect("image locks")
            .entry(image_ref.to_owned())
            .or_default()
            .clone();
        let fetching = lock.lock().await;
        let fetch = !image::present(&self.rt.ctd, image_ref).await?;
        if fetch {
            let what = if image_ref.starts_with("oci-archive:") {
                "importing"
            } else {
                "pulling"
            };
            if let Some(c) = self.rt.console_if_open(&self.uid) {
                c.system(&format!("{what} image {image_ref}"));
            }
            self.rt
                .api
                .event(
                    &self.gs,
                    "Normal",
                    "Pulling",
                    &format!("{what} image {image_ref}"),
                )
                .await;
        }
        let started = Instant::now();
        let (img, fetched) = image::ensure_with(
            &self.rt.ctd,
            &self.rt.registries,
            &self.rt.images,
            image_ref,
        )
        .await?;
        if let Some(bytes) = fetched {
            let msg = format!(
                "image {image_ref}: {:.1} MiB of layers in {:.1} s",
                bytes as f64 / (1 << 20) as f64,
                started.elapsed().as_secs_f64()
            );
            if let Some(c) = self.rt.console_if_open(&self.uid) {
                c.system(&msg);
            }
            self.rt.api.event(&self.gs, "Normal", "Pulled", &msg).await;
        }
        drop(fetching);
        let (data_dir, range) = self.placement_dirs().await?;
        let bridge = resolved.network == NetworkMode::Bridge;
        let netns = bridge.then(|| crate::cni::netns_path(&self.cid));
        if bridge && !crate::userns::reusable(&self.cid, range, netns.as_deref()) {
            // the namespaces are about to be made anew: an attachment to an old network
            // namespace (its address, its port mappings) must go first
            let _ = self.rt.net.detach(&self.cid, &st(gs).ports).await;
        }
        // the server's user namespace, and its network namespace owned by it, shared by the
        // install and the main container (like a pod's)
        let userns = crate::userns::ensure(&self.cid, range, netns.as_deref()).await?;
        let hostname = self.name();
        let defaults = *self.rt.defaults.lock().expect("defaults");
        let placement = Placement {
            id: cid,
            hostname: &hostname,
            data_dir: &data_dir,
            netns: netns.as_deref(),
            userns: &userns,
            range,
            uid: self.rt.uid,
            gid: self.rt.gid,
            defaults,
            server_uid: &self.uid,
        };
        let oci = serde_json::to_vec(&build(&placement, &img.config)?)?;
        let labels = HashMap::from([
            (LABEL_UID.to_owned(), self.uid.clone()),
            (
                LABEL_NAME.to_owned(),
                format!(
                    "{}/{}",
                    gs.metadata.namespace.clone().unwrap_or_default(),
                    gs.metadata.name
                ),
            ),
            (
                LABEL_GENERATION.to_owned(),
                gs.metadata.generation.unwrap_or(0).to_string(),
            ),
        ]);
        // The network and the container are independent until the task starts: set both up
        // at once (the CNI plugins take most of a start's time).
        let ports = st(gs).ports;
        let net = async {
            if bridge {
                self.rt.net.attach(&self.cid, &ports).await?;
            }
            Ok::<_, Error>(())
        };
        let container = async {
            // a fresh container each start: it carries the current spec and generation
            let ctd = &self.rt.ctd;
            let _ = ctd.task_delete(cid).await;
            ctd.container_delete(cid).await?;
            ctd.snapshot_remove(cid).await?;
            // the snapshot is held by a lease until the container refers to it: containerd's
            // garbage collector (run when any other lease ends, e.g. another image import)
            // would otherwise take it in between
            let lease = ctd.lease_create().await?;
            let made = async {
                let mounts = ctd.snapshot_prepare(Some(&lease), cid, &img.top).await?;
                // /tmp writable whatever the image made of it; for an install, the image's
                // files given to the server's range so that root inside may install packages
                let target = self.rt.run_dir(&self.uid).join(format!("rootfs-{cid}"));
                let touches = crate::rootfs::Touches {
                    remap: remap.then_some(range),
                };
                let m = mounts.clone();
                tokio::task::spawn_blocking(move || crate::rootfs::prepare(&m, &target, touches))
                    .await
                    .map_err(|e| Error::Config(format!("rootfs: {e}")))??;
                ctd.container_create(cid, &img.name, labels, oci).await?;
                Ok::<_, Error>(mounts)
            }
            .await;
            let _ = ctd.lease_delete(&lease, false).await;
            let mounts = made?;
            Ok::<_, Error>(mounts)
        };
        let (net, mounts) = tokio::join!(net, container);
        net?;
        let mounts = mounts?;
        Ok(mounts)
    }

    async fn start(&mut self, gs: &GameServer, resolved: &Resolved) -> crate::Result<Next> {
        let console = self.rt.console(&self.uid)?;
        console.system("starting the server");
        let cid = self.cid.clone();
        let prepared = self
            .prepare_container(
                &cid,
                gs,
                resolved,
                &resolved.image.clone(),
                false,
                |p, img| {
                    let env = spec::environment(resolved, img, p);
                    let args = spec::argv(resolved, img)?;
                    spec::runtime_spec(resolved, args, env, p, true)
                },
            )
            .await;
        let mounts = match prepared {
            Ok(m) => m,
            Err(e) => {
                let reason = failure_reason(&e, "StartFailed");
                return self.start_failed(gs, reason, e).await;
            }
        };
        let (stdin, stdout, stderr) = Console::fifo_paths(&self.rt.run_dir(&self.uid));
        self.ready.store(false, Ordering::SeqCst);
        self.rt.oom.lock().expect("oom").remove(&self.cid);
        self.persisted.stop_asked = false;
        self.save();
        let started = async {
            self.rt
                .ctd
                .task_create(&cid, mounts, &stdin, &stdout, &stderr)
                .await?;
            self.rt.ctd.task_start(&cid).await
        }
        .await;
        if let Err(e) = started {
            let _ = self.rt.ctd.task_delete(&cid).await;
            return self.start_failed(gs, "StartFailed", e.into()).await;
        }
        self.start_failures = 0;
        self.report(Phase::Starting, json!({"reason": null, "message": null}))
            .await?;
        self.rt
            .api
            .event(
                &self.gs,
                "Normal",
                "Started",
                "the server's process started",
            )
            .await;
        let typed = self.typed()?;
        self.watch_ready(&typed, &console);
        Ok(Next::After(Duration::from_millis(10)))
    }

    /// A start that failed: networking and containerd hiccups are retried (with the worker's
    /// backoff) a few times before the server goes to Error; a missing image or a bad spec is
    /// reported at once.
    async fn start_failed(
        &mut self,
        gs: &GameServer,
        reason: &str,
        e: Error,
    ) -> crate::Result<Next> {
        let transient = matches!(e, Error::Cni(_) | Error::Containerd(_) | Error::Io(_));
        if transient && self.start_failures < START_RETRIES {
            self.start_failures += 1;
            if let Some(c) = self.rt.console_if_open(&self.uid) {
                c.system(&format!("start failed ({e}); trying again"));
            }
            let _ = self.rt.net.detach(&self.cid, &st(gs).ports).await;
            return Err(e);
        }
        self.start_failures = 0;
        self.fail_start(gs, reason, &e.to_string()).await
    }

    async fn fail_start(
        &mut self,
        gs: &GameServer,
        reason: &str,
        message: &str,
    ) -> crate::Result<Next> {
        // Error is reachable from Scheduled/Starting; from Stopped/Crashed go through Starting.
        if matches!(
            st(gs).phase,
            Phase::Stopped | Phase::Crashed | Phase::Unknown
        ) {
            self.report(Phase::Starting, json!({})).await?;
        }
        let gs = self.typed()?;
        self.fail(&gs, reason, message).await
    }

    /// Runs the install script once in its own container (data dir at /mnt/server, as in
    /// Pterodactyl), with the server's limits, as root; failure → Error.
    async fn install(
        &mut self,
        gs: &GameServer,
        resolved: &Resolved,
        install: &catalyst_schemas::gameserver::InstallSpec,
    ) -> crate::Result<Next> {
        let console = self.rt.console(&self.uid)?;
        if st(gs).phase != Phase::Installing {
            self.report(Phase::Installing, json!({"reason": null, "message": null}))
                .await?;
        }
        console.system("running the install script");
        let run_dir = self.rt.run_dir(&self.uid);
        let script_dir = run_dir.join("install");
        std::fs::create_dir_all(&script_dir)?;
        std::fs::write(script_dir.join("install.sh"), &install.script)?;
        let icid = format!("{}-install", self.cid);
        // an install container left by a wait that was lost (nodelet or containerd restart)
        // must not run beside the new one
        remove_container(&self.rt.ctd, &icid).await?;
        let image_ref = install
            .image
            .clone()
            .unwrap_or_else(|| resolved.image.clone());
        let entry = install.entrypoint.clone().unwrap_or_else(|| "sh".into());
        let sd = script_dir.clone();
        let prepared = self
            .prepare_container(&icid, gs, resolved, &image_ref, true, move |p, img| {
                let env = spec::environment(resolved, img, p);
                let args = vec![entry, "/mnt/install/install.sh".to_owned()];
                let mut oci = spec::runtime_spec(resolved, args, env, p, false)?;
                crate::spec::install_layout(&mut oci, p.data_dir, &sd);
                Ok(oci)
            })
            .await;
        let mounts = match prepared {
            Ok(m) => m,
            Err(e) => {
                let reason = failure_reason(&e, "InstallFailed");
                let gs = self.typed()?;
                return self.fail(&gs, reason, &e.to_string()).await;
            }
        };
        let (stdin, stdout, stderr) = Console::fifo_paths(&run_dir);
        self.rt
            .ctd
            .task_create(&icid, mounts, &stdin, &stdout, &stderr)
            .await?;
        self.rt.ctd.task_start(&icid).await?;
        self.rt
            .api
            .event(
                &self.gs,
                "Normal",
                "InstallStarted",
                "the install script runs",
            )
            .await;
        let code = self.rt.ctd.task_wait(&icid).await?;
        let _ = self.rt.ctd.task_delete(&icid).await;
        let _ = self.rt.ctd.container_delete(&icid).await;
        let _ = self.rt.ctd.snapshot_remove(&icid).await;
        let (dir, range) = self.placement_dirs().await?;
        let (uid, gid) = self.host_ids(range);
        tokio::task::spawn_blocking(move || chown_tree(&dir, uid, gid))
            .await
            .map_err(|e| Error::Config(format!("chown: {e}")))??;
        if code == 0 {
            console.system("install script finished");
            self.report(
                Phase::Stopped,
                json!({"reason": "Installed", "message": null}),
            )
            .await?;
            self.set_condition(
                "Installed",
                true,
                "InstallSucceeded",
                "the install script exited 0",
            )
            .await?;
            self.rt
                .api
                .event(
                    &self.gs,
                    "Normal",
                    "Installed",
                    "the install script exited 0",
                )
                .await;
            Ok(Next::After(Duration::from_millis(10)))
        } else {
            let tail = console.tail(Some(10)).join("\n");
            let msg = format!("the install script exited with code {code}");
            console.system(&msg);
            self.report(
                Phase::Error,
                json!({"reason": "InstallFailed", "message": msg}),
            )
            .await?;
            self.set_condition("Installed", false, "InstallFailed", &msg)
                .await?;
            self.rt
                .api
                .event(
                    &self.gs,
                    "Warning",
                    "InstallFailed",
                    &format!("{msg}; last lines:\n{tail}"),
                )
                .await;
            Ok(Next::Idle)
        }
    }

    /// Removes the task, container, snapshot and network of a server; keeps its data unless it
    /// is gone from the API.
    async fn cleanup(&mut self) -> crate::Result<()> {
        let ctd = &self.rt.ctd;
        // the server's container and an install container a lost wait may have left running:
        // nothing of the server may outlive it (its uid range goes to the next server)
        let install = format!("{}-install", self.cid);
        for id in [self.cid.as_str(), install.as_str()] {
            remove_container(ctd, id).await?;
        }
        let ports: Vec<catalyst_schemas::gameserver::PortStatus> = serde_json::from_value(
            self.gs
                .pointer("/status/ports")
                .cloned()
                .unwrap_or(json!([])),
        )
        .unwrap_or_default();
        self.rt.net.detach(&self.cid, &ports).await?;
        crate::userns::remove_ns_file(&crate::userns::userns_path(&self.cid));
        if self.rx.borrow().is_none() {
            let dir = self.rt.server_dir(&self.uid);
            let _ = std::fs::remove_dir_all(&dir);
            self.rt.ids.release(&dir)?;
        }
        Ok(())
    }
}

/// Kills a container's task (all its processes), waits for it briefly, and removes the task,
/// the container and its snapshot. Absent pieces are fine.
async fn remove_container(ctd: &crate::ctd::Containerd, id: &str) -> crate::Result<()> {
    if let Some((state, _)) = ctd.task_state(id).await? {
        if !matches!(state, TaskState::Stopped(_)) {
            ctd.task_kill(id, 9, true).await?;
            let _ = tokio::time::timeout(Duration::from_secs(10), ctd.task_wait(id)).await;
        }
        ctd.task_delete(id).await?;
    }
    ctd.container_delete(id).await?;
    ctd.snapshot_remove(id).await?;
    Ok(())
}

/// The status reason of a failed start or install: an image that cannot be had says so.
fn failure_reason(e: &Error, otherwise: &'static str) -> &'static str {
    match e {
        Error::Image(_) => "ImagePullFailed",
        Error::NotAllowed(_) => "NotAllowedOnNode",
        _ => otherwise,
    }
}

fn signal_number(name: &str) -> u32 {
    match name {
        "SIGHUP" => 1,
        "SIGINT" => 2,
        "SIGQUIT" => 3,
        "SIGKILL" => 9,
        "SIGUSR1" => 10,
        "SIGUSR2" => 12,
        _ => 15,
    }
}

/// Gives a tree to uid:gid without ever following a symlink, even one swapped in while the
/// walk runs: every directory is opened relative to its parent's descriptor with `O_NOFOLLOW`,
/// every entry is changed with `AT_SYMLINK_NOFOLLOW`, and the walk stays on the root's
/// filesystem. Entries that vanish meanwhile are skipped. Blocking: call it off the runtime.
pub fn chown_tree(root: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    use nix::dir::Dir;
    use nix::fcntl::{open, openat, AtFlags, OFlag};
    use nix::sys::stat::{fstat, fstatat, Mode, SFlag};
    use nix::unistd::{fchown, fchownat, Gid, Uid};
    use std::os::fd::OwnedFd;
    use std::rc::Rc;
    const MAX_DEPTH: usize = 4096;
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let (owner, group) = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
    let top = open(root, flags, Mode::empty())?;
    let dev = fstat(&top)?.st_dev;
    fchown(&top, owner, group)?;
    // pending directories: (parent's descriptor, name, depth); a parent's descriptor stays open
    // only while some of its children wait, so open descriptors grow with depth, not width
    let mut stack: Vec<(Rc<OwnedFd>, std::ffi::CString, usize)> = Vec::new();
    let mut dirs = vec![(top, 0usize)];
    while let Some((fd, depth)) = dirs.pop() {
        let fd = Rc::new(fd);
        let mut dir = match Dir::openat(&*fd, ".", flags, Mode::empty()) {
            Ok(d) => d,
            Err(_) => continue,
        };
        for entry in dir.iter().flatten() {
            let name = entry.file_name();
            if name.to_bytes() == b"." || name.to_bytes() == b".." {
                continue;
            }
            let Ok(st) = fstatat(&*fd, name, AtFlags::AT_SYMLINK_NOFOLLOW) else {
                continue;
            };
            if st.st_dev != dev {
                continue;
            }
            let _ = fchownat(&*fd, name, owner, group, AtFlags::AT_SYMLINK_NOFOLLOW);
            if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR {
                if depth + 1 < MAX_DEPTH {
                    stack.push((fd.clone(), name.to_owned(), depth + 1));
                } else {
                    tracing::warn!(root = %root.display(), "chown: tree deeper than {MAX_DEPTH} levels; the rest is left");
                }
            }
        }
        while let Some((parent, name, d)) = stack.pop() {
            if let Ok(child) = openat(&*parent, name.as_c_str(), flags, Mode::empty()) {
                if fstat(&child).is_ok_and(|st| st.st_dev == dev) {
                    dirs.push((child, d));
                    break;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn chown_tree_changes_every_entry_and_never_follows_a_link() {
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path().join("data");
        std::fs::create_dir_all(root.join("a/b/c")).expect("dirs");
        std::fs::write(root.join("a/b/c/file"), b"x").expect("file");
        std::fs::create_dir_all(root.join("wide")).expect("wide");
        for i in 0..50 {
            std::fs::create_dir(root.join(format!("wide/{i}"))).expect("dir");
        }
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).expect("outside");
        std::fs::write(outside.join("secret"), b"s").expect("secret");
        std::os::unix::fs::symlink(&outside, root.join("a/link")).expect("link");
        chown_tree(&root, 4242, 4343).expect("chown");
        for p in ["", "a", "a/b/c", "a/b/c/file", "wide/49"] {
            let m = std::fs::symlink_metadata(root.join(p)).expect(p);
            assert_eq!((m.uid(), m.gid()), (4242, 4343), "{p}");
        }
        let link = std::fs::symlink_metadata(root.join("a/link")).expect("link");
        assert_eq!(link.uid(), 4242, "the link itself is changed");
        assert_eq!(
            std::fs::metadata(outside.join("secret"))
                .expect("secret")
                .uid(),
            0,
            "what the link points at is not"
        );
        assert_eq!(std::fs::metadata(&outside).expect("outside").uid(), 0);
    }

    #[test]
    fn chown_tree_refuses_a_root_that_is_a_link() {
        let tmp = tempfile::tempdir().expect("tmp");
        let target = tmp.path().join("t");
        std::fs::create_dir(&target).expect("t");
        let link = tmp.path().join("l");
        std::os::unix::fs::symlink(&target, &link).expect("link");
        assert!(chown_tree(&link, 4242, 4242).is_err());
        assert_eq!(std::fs::metadata(&target).expect("t").uid(), 0);
    }
}
