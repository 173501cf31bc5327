//! The Backup and Restore controller, run by the leader.
//!
//! A Pending Backup of a server placed on a node whose tunnel is connected here becomes
//! Running: the node packs the server's data directory (`BackupCall::Create`), telling the
//! archive's bytes as it goes (`status.bytesDone`), and the Backup ends Completed (size,
//! SHA-256, files, where it is) or Failed (why). A console command may go first
//! (`spec.command`, e.g. `save-all`), and the server may be stopped for it and started again
//! (`spec.stopServer`). Backups carry a finalizer: deleting one removes its archive from its
//! node first. `spec.locked` makes the API refuse the delete, and retention passes it by.
//!
//! A Pending Restore stops its server (when it runs), has the node check the archive's SHA-256
//! and swap the unpacked backup in (`BackupCall::Restore`), and starts the server again when
//! it was running before, also when the restore failed.
//!
//! Retention (`GameServer.spec.backupRetention`): the newest `keepLast` completed backups of a
//! server are kept and none older than `maxAge`, locked ones aside.
//!
//! A job runs in the leader's process, over the tunnel of the node to this API server. When
//! the process ends mid-job, the next leader finds the object Running with no job of its own
//! and marks it Failed ("interrupted"), as Velero does; a new Backup or Restore is the retry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use catalyst_apiserver::error::ApiError;
use catalyst_apiserver::registry::{meta_str, parse_revision, Part, Registry, Scope, TargetError};
use catalyst_apiserver::tunnel::{Answers, TunnelError, Tunnels};
use catalyst_apiserver::watch::WatchCache;
use catalyst_schemas::lifecycle::Phase;
use catalyst_schemas::object::phase_of;
use catalyst_schemas::power::PowerAction;
use catalyst_schemas::tunnel::{Answer, BackupCall, S3Target, TunnelOp};
use catalyst_schemas::{lookup_kind, KindInfo};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::informer::{self, Cache, Relist};
use crate::leader::{is_leading, Leading};
use crate::reconcilers::record_event;

/// Holds a Backup's deletion until its archive is removed from its node.
pub const FINALIZER: &str = "catalyst.dev/backup";
/// The tunnel owner of the controller's requests (its own limit of streams per node).
const OWNER: &str = "system:controller:backups";
/// How often the controller looks at everything without being woken.
const TICK: Duration = Duration::from_secs(2);
/// How often a running backup's progress is written.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// How long a server may take to stop for a backup or restore.
const STOP_TIMEOUT: Duration = Duration::from_secs(300);
/// How often retention is applied.
const RETENTION_EVERY: Duration = Duration::from_secs(30);
/// Default seconds to wait after `spec.command`.
const COMMAND_WAIT: u32 = 5;

/// Why a job failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The API refused or failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The node's tunnel refused or failed.
    #[error(transparent)]
    Tunnel(#[from] TunnelError),
    /// The node or the controller says why.
    #[error("{0}")]
    Failed(String),
}

/// A node call, made only while `leading` holds a live term: the store cannot fence it.
pub(crate) async fn node_call(
    tunnels: &Tunnels,
    leading: &Leading,
    node: &str,
    owner: &str,
    op: TunnelOp,
) -> Result<Answers, JobError> {
    if !is_leading(leading) {
        return Err(JobError::Failed(
            "this server's leadership term ended: no node call".into(),
        ));
    }
    Ok(tunnels.request(node, owner, op).await?)
}

fn kind(plural: &str) -> &'static KindInfo {
    lookup_kind(plural).expect("a built-in kind")
}

fn scope<'a>(plural: &str, ns: &'a str) -> Scope<'a> {
    Scope {
        kind: kind(plural),
        namespace: Some(ns),
    }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

fn job_phase(v: &Value) -> &str {
    str_at(v, "/status/phase").unwrap_or("Pending")
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The two kinds of job.
#[derive(Debug, Clone, Copy)]
enum Job {
    Backup,
    Restore,
}

impl Job {
    fn plural(self) -> &'static str {
        match self {
            Job::Backup => "backups",
            Job::Restore => "restores",
        }
    }

    /// The reasons of its Events: (completed, failed).
    fn reasons(self) -> (&'static str, &'static str) {
        match self {
            Job::Backup => ("BackupCompleted", "BackupFailed"),
            Job::Restore => ("RestoreCompleted", "RestoreFailed"),
        }
    }
}

/// What the controller shares with its jobs.
#[derive(Debug, Clone)]
struct Ctl {
    registry: Registry,
    tunnels: Arc<Tunnels>,
    backups: Arc<Cache>,
    restores: Arc<Cache>,
    gameservers: Arc<Cache>,
    /// Jobs running in this process, by `kind/namespace/name`.
    jobs: Arc<Mutex<HashMap<String, tokio::task::AbortHandle>>>,
    /// The term it acts under: checked before each node call (the store cannot fence those).
    leading: Leading,
}

/// Starts the informers of Backups and Restores and the controller loop; the tasks to stop.
pub fn start(
    registry: Registry,
    caches: &HashMap<&'static str, Arc<WatchCache>>,
    gameservers: Arc<Cache>,
    tunnels: Arc<Tunnels>,
    leading: Leading,
    relist: Arc<Relist>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let wake = Arc::new(Notify::new());
    let ctl = Ctl {
        registry: registry.clone(),
        tunnels,
        backups: Arc::new(Cache::default()),
        restores: Arc::new(Cache::default()),
        gameservers,
        jobs: Arc::default(),
        leading: leading.clone(),
    };
    let mut tasks = Vec::new();
    for (plural, cache) in [("backups", &ctl.backups), ("restores", &ctl.restores)] {
        let k = kind(plural);
        let w = wake.clone();
        tasks.push(tokio::spawn(informer::run(
            registry.clone(),
            caches[k.plural].clone(),
            k,
            cache.clone(),
            move |_| w.notify_one(),
            relist.clone(),
        )));
    }
    tasks.push(tokio::spawn(run(ctl, wake, leading)));
    tasks
}

async fn run(ctl: Ctl, wake: Arc<Notify>, leading: Leading) {
    let mut retained: Option<Instant> = None;
    loop {
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(TICK) => {}
        }
        if !is_leading(&leading) {
            // only the leader acts: jobs of a replica that lost the lease stop
            for (_, job) in ctl.jobs.lock().expect("jobs").drain() {
                job.abort();
            }
            continue;
        }
        for b in ctl.backups.all() {
            if let Err(e) = ctl.step_backup(&b).await.or_else(quiet_conflict) {
                tracing::warn!(backup = meta_str(&b, "name"), error = %e, "backup step failed");
            }
        }
        for r in ctl.restores.all() {
            if let Err(e) = ctl.step_restore(&r).await.or_else(quiet_conflict) {
                tracing::warn!(restore = meta_str(&r, "name"), error = %e, "restore step failed");
            }
        }
        if retained.is_none_or(|t| t.elapsed() >= RETENTION_EVERY) {
            retained = Some(Instant::now());
            ctl.retention().await;
        }
    }
}

/// A decision that lost to a newer write is taken again next round from what is there.
fn quiet_conflict(e: JobError) -> Result<(), JobError> {
    match e {
        JobError::Api(ApiError::Conflict { .. }) => Ok(()),
        e => Err(e),
    }
}

/// `kind/namespace/name` of an object.
fn job_key(plural: &str, obj: &Value) -> String {
    format!(
        "{plural}/{}/{}",
        meta_str(obj, "namespace").unwrap_or_default(),
        meta_str(obj, "name").unwrap_or_default()
    )
}

impl Ctl {
    fn running(&self, key: &str) -> bool {
        self.jobs
            .lock()
            .expect("jobs")
            .get(key)
            .is_some_and(|j| !j.is_finished())
    }

    /// Merges `status` into the object's status (a fresh read each try): what a running job
    /// writes, as the job owns the object until it ends.
    async fn set_status(
        &self,
        plural: &str,
        obj: &Value,
        status: Value,
    ) -> Result<Value, ApiError> {
        self.write_status(plural, obj, status, false).await
    }

    /// As [`Ctl::set_status`], for a decision made from `obj` as the cache showed it: only if
    /// the object has not changed since (else the write conflicts and the next round decides
    /// again from what is there).
    async fn decide(&self, plural: &str, obj: &Value, status: Value) -> Result<Value, ApiError> {
        self.write_status(plural, obj, status, true).await
    }

    async fn write_status(
        &self,
        plural: &str,
        obj: &Value,
        status: Value,
        pinned: bool,
    ) -> Result<Value, ApiError> {
        let ns = meta_str(obj, "namespace").unwrap_or("default").to_owned();
        let name = meta_str(obj, "name").unwrap_or_default().to_owned();
        let pin = if pinned {
            meta_str(obj, "resourceVersion")
                .map(parse_revision)
                .transpose()?
        } else {
            None
        };
        let written = self
            .registry
            .update_with(scope(plural, &ns), &name, pin, Part::Status, false, |cur| {
                let mut next = cur.clone();
                if !next["status"].is_object() {
                    next["status"] = json!({});
                }
                for (k, v) in status.as_object().into_iter().flatten() {
                    if v.is_null() {
                        next["status"].as_object_mut().map(|s| s.remove(k));
                    } else {
                        next["status"][k] = v.clone();
                    }
                }
                Ok(next)
            })
            .await?;
        Ok(written.object)
    }

    /// Refuses an object as the cache showed it (see [`Ctl::decide`]): Failed with `message`
    /// and a Warning Event.
    async fn refuse(
        &self,
        plural: &str,
        obj: &Value,
        reason: &str,
        message: String,
    ) -> Result<(), ApiError> {
        self.failed(plural, obj, reason, message, true).await
    }

    /// Marks a job Failed with `message` and records a Warning Event.
    async fn fail(
        &self,
        plural: &str,
        obj: &Value,
        reason: &str,
        message: String,
    ) -> Result<(), ApiError> {
        self.failed(plural, obj, reason, message, false).await
    }

    async fn failed(
        &self,
        plural: &str,
        obj: &Value,
        reason: &str,
        message: String,
        pinned: bool,
    ) -> Result<(), ApiError> {
        tracing::warn!(
            object = meta_str(obj, "name"),
            reason,
            message,
            "{plural} failed"
        );
        let status =
            json!({"phase": "Failed", "message": message, "completedAt": now(), "step": null});
        let written = self.write_status(plural, obj, status, pinned).await?;
        record_event(&self.registry, &written, "Warning", reason, &message).await;
        Ok(())
    }

    /// Sets a waiting message on a Pending object, once.
    async fn wait(&self, plural: &str, obj: &Value, message: String) -> Result<(), ApiError> {
        if str_at(obj, "/status/message") != Some(message.as_str()) {
            self.decide(plural, obj, json!({"phase": "Pending", "message": message}))
                .await?;
        }
        Ok(())
    }

    /// The object as stored now, if it is still Running (so a stale cache never fails a job
    /// that just ended).
    async fn still_running(&self, plural: &str, obj: &Value) -> Result<Option<Value>, ApiError> {
        let ns = meta_str(obj, "namespace").unwrap_or("default");
        let name = meta_str(obj, "name").unwrap_or_default();
        match self.registry.get(scope(plural, ns), name).await {
            Ok(fresh) if job_phase(&fresh) == "Running" => Ok(Some(fresh)),
            Ok(_) | Err(ApiError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Fails a job found Running with no task of this process behind it.
    async fn interrupted(&self, job: Job, obj: &Value) -> Result<(), ApiError> {
        let plural = job.plural();
        if let Some(fresh) = self.still_running(plural, obj).await? {
            let message = format!(
                "interrupted: the control plane restarted or lost its lease during the {}",
                plural.trim_end_matches('s')
            );
            self.refuse(plural, &fresh, job.reasons().1, message)
                .await?;
        }
        Ok(())
    }

    /// Runs `work` as the job of `obj` (by `key`): Completed with the status it gives and a
    /// Normal Event with its message, or Failed with the error.
    fn spawn_job(
        &self,
        job: Job,
        obj: Value,
        key: String,
        work: impl std::future::Future<Output = Result<(Value, String), JobError>> + Send + 'static,
    ) {
        let ctl = self.clone();
        let (plural, (done, failed)) = (job.plural(), job.reasons());
        let jkey = key.clone();
        let task = tokio::spawn(async move {
            let outcome = match work.await {
                Ok((mut status, message)) => {
                    status["phase"] = "Completed".into();
                    status["completedAt"] = now().into();
                    match ctl.set_status(plural, &obj, status).await {
                        Ok(written) => {
                            record_event(&ctl.registry, &written, "Normal", done, &message).await;
                            Ok(())
                        }
                        Err(e) => Err(e),
                    }
                }
                Err(e) => ctl.fail(plural, &obj, failed, e.to_string()).await,
            };
            if let Err(e) = outcome {
                tracing::warn!(object = meta_str(&obj, "name"), error = %e, "{plural}: status not written");
            }
            ctl.jobs.lock().expect("jobs").remove(&jkey);
        });
        self.jobs
            .lock()
            .expect("jobs")
            .insert(key, task.abort_handle());
    }

    /// The GameServer a job acts on and its node; None when there is none (the job is
    /// refused) or it is not on a node yet (the job waits).
    async fn placed(
        &self,
        job: Job,
        obj: &Value,
        ns: &str,
        gs_name: &str,
    ) -> Result<Option<(Value, String)>, ApiError> {
        let plural = job.plural();
        let Some(gs) = self.server(ns, gs_name) else {
            let message = format!("gameserver {gs_name:?} not found");
            self.refuse(plural, obj, job.reasons().1, message).await?;
            return Ok(None);
        };
        match str_at(&gs, "/status/nodeName").map(str::to_owned) {
            Some(node) => Ok(Some((gs, node))),
            None => {
                let message = format!("waiting: gameserver {gs_name:?} is not on a node yet");
                self.wait(plural, obj, message).await?;
                Ok(None)
            }
        }
    }

    fn server(&self, ns: &str, name: &str) -> Option<Value> {
        self.gameservers
            .get(&format!("{ns}/{name}"))
            .map(Arc::unwrap_or_clone)
    }

    fn connected(&self, node: &str) -> bool {
        self.tunnels.nodes().iter().any(|n| n == node)
    }

    // ---- backups ---------------------------------------------------------------------------

    async fn step_backup(&self, b: &Value) -> Result<(), JobError> {
        let key = job_key("backups", b);
        if self.running(&key) {
            return Ok(());
        }
        if b.pointer("/metadata/deletionTimestamp").is_some() {
            return self.finalize_backup(b).await;
        }
        match job_phase(b) {
            "Completed" | "Failed" => Ok(()),
            "Running" => Ok(self.interrupted(Job::Backup, b).await?),
            _ => self.start_backup(b, key).await,
        }
    }

    async fn start_backup(&self, b: &Value, key: String) -> Result<(), JobError> {
        let ns = meta_str(b, "namespace").unwrap_or("default").to_owned();
        // an S3 backup's credentials are checked before anything is asked of a node
        let s3 = match self.registry.backup_s3_target(b).await {
            Ok(t) => t,
            Err(TargetError::Api(e)) => return Err(e.into()),
            Err(e) => {
                self.refuse("backups", b, "BackupFailed", e.to_string())
                    .await?;
                return Ok(());
            }
        };
        let gs_name = str_at(b, "/spec/gameServer").unwrap_or_default().to_owned();
        let Some((gs, node)) = self.placed(Job::Backup, b, &ns, &gs_name).await? else {
            return Ok(());
        };
        if !self.connected(&node) {
            return Ok(self
                .wait(
                    "backups",
                    b,
                    format!("waiting for node {node:?} to connect"),
                )
                .await?);
        }
        let b = self.ensure_finalizer(b).await?;
        let gs_uid = meta_str(&gs, "uid").unwrap_or_default().to_owned();
        let mut running = json!({"phase": "Running", "startedAt": now(), "nodeName": node,
                       "gameServerUid": gs_uid, "message": null, "bytesDone": 0});
        if let Some(t) = &s3 {
            // recorded first, so a deletion finds the object whatever happens next
            running["objectKey"] = t.key.clone().into();
        }
        let b = self.decide("backups", &b, running).await?;
        let b_obj = b.clone();
        let ctl = self.clone();
        let work = async move {
            let location = match &s3 {
                Some(t) => format!("s3://{}/{}", t.bucket, t.key),
                None => format!(
                    "node://{node}/backups/{gs_uid}/{}.tar.zst",
                    meta_str(&b, "uid").unwrap_or_default()
                ),
            };
            let made = ctl.backup_job(&b, &node, s3).await?;
            let size = made["size"].as_i64().unwrap_or(0);
            let status = json!({
                "sizeBytes": size,
                "bytesDone": size,
                "sha256": made["sha256"],
                "files": made["files"],
                "location": location,
            });
            Ok((
                status,
                format!("backup of {size} bytes made on node {node} to {location}"),
            ))
        };
        self.spawn_job(Job::Backup, b_obj, key, work);
        Ok(())
    }

    /// The Backup with its finalizer (added if missing, only if `b` is current); the object
    /// as written.
    async fn ensure_finalizer(&self, b: &Value) -> Result<Value, ApiError> {
        let has = b
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| f.iter().any(|x| x == FINALIZER));
        if has {
            return Ok(b.clone());
        }
        let ns = meta_str(b, "namespace").unwrap_or("default");
        let name = meta_str(b, "name").unwrap_or_default();
        let pin = meta_str(b, "resourceVersion")
            .map(parse_revision)
            .transpose()?;
        let written = self
            .registry
            .update_with(scope("backups", ns), name, pin, Part::Main, false, |cur| {
                let mut next = cur.clone();
                let list = next["metadata"]["finalizers"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                if !list.iter().any(|x| x == FINALIZER) {
                    let mut list = list;
                    list.push(FINALIZER.into());
                    next["metadata"]["finalizers"] = list.into();
                }
                Ok(next)
            })
            .await?;
        Ok(written.object)
    }

    /// The job of one backup: the command, the stop, the archive, the start; the node's
    /// result (`size`, `sha256`, `files`, …).
    async fn backup_job(
        &self,
        b: &Value,
        node: &str,
        s3: Option<S3Target>,
    ) -> Result<Value, JobError> {
        let ns = meta_str(b, "namespace").unwrap_or("default").to_owned();
        let gs_name = str_at(b, "/spec/gameServer").unwrap_or_default().to_owned();
        let gs_uid = str_at(b, "/status/gameServerUid")
            .unwrap_or_default()
            .to_owned();
        if let Some(command) = str_at(b, "/spec/command") {
            let wait = b
                .pointer("/spec/commandWaitSeconds")
                .and_then(Value::as_u64)
                .unwrap_or(u64::from(COMMAND_WAIT));
            let op = TunnelOp::Command {
                uid: gs_uid.clone(),
                text: command.to_owned(),
            };
            match self.ask(node, op).await {
                Ok(_) => tokio::time::sleep(Duration::from_secs(wait)).await,
                // a stopped server has no console: the backup goes on
                Err(e) => {
                    tracing::info!(backup = meta_str(b, "name"), error = %e, "backup command not sent")
                }
            }
        }
        let stop = b.pointer("/spec/stopServer").and_then(Value::as_bool) == Some(true);
        let restart = stop && self.stop_server(&ns, &gs_name).await?;
        let result = self.pack(b, node, &gs_uid, s3).await;
        if restart {
            self.power(&ns, &gs_name, PowerAction::Start).await?;
        }
        result
    }

    /// Asks the node to pack the archive, writing progress as it comes.
    async fn pack(
        &self,
        b: &Value,
        node: &str,
        gs_uid: &str,
        s3: Option<S3Target>,
    ) -> Result<Value, JobError> {
        let ignore: Vec<String> = b
            .pointer("/spec/ignore")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let call = BackupCall::Create {
            uid: gs_uid.to_owned(),
            id: meta_str(b, "uid").unwrap_or_default().to_owned(),
            ignore,
            everything: false,
            s3,
        };
        let mut answers = self.node_call(node, TunnelOp::Backup { call }).await?;
        let mut told = Instant::now();
        loop {
            match answers.next().await {
                Some(Answer::Progress(n)) => {
                    if told.elapsed() >= PROGRESS_EVERY {
                        told = Instant::now();
                        self.set_status("backups", b, json!({ "bytesDone": n }))
                            .await?;
                    }
                }
                Some(Answer::End { result }) => return Ok(result.unwrap_or(Value::Null)),
                Some(Answer::Failed { error, .. }) => return Err(JobError::Failed(error)),
                Some(_) => {}
                None => {
                    return Err(JobError::Failed(format!(
                        "the tunnel of node {node:?} closed during the backup"
                    )))
                }
            }
        }
    }

    /// A node call while the term lasts ([`node_call`]).
    async fn node_call(&self, node: &str, op: TunnelOp) -> Result<Answers, JobError> {
        node_call(&self.tunnels, &self.leading, node, OWNER, op).await
    }

    /// Sends one request and waits for its end (no timeout beyond the tunnel's own).
    async fn ask(&self, node: &str, op: TunnelOp) -> Result<Option<Value>, JobError> {
        let mut answers = self.node_call(node, op).await?;
        loop {
            match answers.next().await {
                Some(Answer::End { result }) => return Ok(result),
                Some(Answer::Failed { error, .. }) => return Err(JobError::Failed(error)),
                Some(_) => {}
                None => {
                    return Err(JobError::Failed(format!(
                        "the tunnel of node {node:?} closed"
                    )))
                }
            }
        }
    }

    async fn power(&self, ns: &str, name: &str, action: PowerAction) -> Result<(), ApiError> {
        self.registry
            .merge_patch(
                scope("gameservers", ns),
                name,
                action.merge_patch(Utc::now()),
                Part::Main,
                false,
            )
            .await?;
        Ok(())
    }

    /// Stops the server if it runs and waits until nothing of it runs; whether it ran.
    async fn stop_server(&self, ns: &str, name: &str) -> Result<bool, JobError> {
        let Some(gs) = self.server(ns, name) else {
            return Err(JobError::Failed(format!("gameserver {name:?} not found")));
        };
        let wanted_running = str_at(&gs, "/spec/state") != Some("Stopped");
        let down = |p: Phase| {
            matches!(
                p,
                Phase::Stopped | Phase::Crashed | Phase::Error | Phase::Suspended | Phase::Pending
            )
        };
        if down(phase_of(&gs)) && !wanted_running {
            return Ok(false);
        }
        self.power(ns, name, PowerAction::Stop).await?;
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            let phase = self.server(ns, name).map(|g| phase_of(&g));
            if phase.is_none_or(down) {
                return Ok(wanted_running);
            }
            if Instant::now() > deadline {
                return Err(JobError::Failed(format!(
                    "gameserver {name:?} did not stop within {}s",
                    STOP_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Removes a deleted Backup's archive from its node, then its finalizer.
    async fn finalize_backup(&self, b: &Value) -> Result<(), JobError> {
        let has = b
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| f.iter().any(|x| x == FINALIZER));
        if !has {
            return Ok(());
        }
        if b.pointer("/spec/storage/s3").is_some_and(Value::is_object) {
            if !self.remove_s3_object(b).await? {
                return Ok(());
            }
        } else if let (Some(node), Some(from)) = (
            str_at(b, "/status/nodeName"),
            str_at(b, "/status/gameServerUid"),
        ) {
            let node_exists = self
                .registry
                .get(
                    Scope {
                        kind: kind("nodes"),
                        namespace: None,
                    },
                    node,
                )
                .await
                .is_ok();
            if node_exists {
                if !self.connected(node) {
                    // the archive stays until its node is back (or the Node is deleted)
                    return Ok(());
                }
                let call = BackupCall::Remove {
                    from: from.to_owned(),
                    id: meta_str(b, "uid").unwrap_or_default().to_owned(),
                    s3: None,
                };
                self.ask(node, TunnelOp::Backup { call }).await?;
            }
        }
        let ns = meta_str(b, "namespace").unwrap_or("default");
        let name = meta_str(b, "name").unwrap_or_default();
        self.registry
            .update_with(scope("backups", ns), name, None, Part::Main, false, |cur| {
                let mut next = cur.clone();
                if let Some(list) = next["metadata"]["finalizers"].as_array_mut() {
                    list.retain(|x| x != FINALIZER);
                }
                Ok(next)
            })
            .await?;
        Ok(())
    }

    /// Deletes a deleted S3 Backup's object through a connected node (its own first); false
    /// while no node is connected (the Backup waits in deletion). Only a Completed backup has
    /// an object (a failed upload was aborted by the node); one whose Secret is gone lets go
    /// with a Warning Event.
    async fn remove_s3_object(&self, b: &Value) -> Result<bool, JobError> {
        if str_at(b, "/status/objectKey").is_none() || job_phase(b) != "Completed" {
            return Ok(true);
        }
        let target = match self.registry.backup_s3_target(b).await {
            Ok(Some(t)) => t,
            Ok(None) => return Ok(true),
            Err(TargetError::Api(e)) => return Err(e.into()),
            Err(e) => {
                let message = format!("the backup's object was not deleted from S3: {e}");
                record_event(&self.registry, b, "Warning", "BackupObjectKept", &message).await;
                return Ok(true);
            }
        };
        let Some(node) = self.s3_node(str_at(b, "/status/nodeName")) else {
            return Ok(false);
        };
        let call = BackupCall::Remove {
            from: str_at(b, "/status/gameServerUid")
                .unwrap_or("none")
                .to_owned(),
            id: meta_str(b, "uid").unwrap_or_default().to_owned(),
            s3: Some(target),
        };
        self.ask(&node, TunnelOp::Backup { call }).await?;
        Ok(true)
    }

    /// A connected node to reach S3 through: `preferred` when connected, else any.
    fn s3_node(&self, preferred: Option<&str>) -> Option<String> {
        let nodes = self.tunnels.nodes();
        match preferred {
            Some(p) if nodes.iter().any(|n| n == p) => Some(p.to_owned()),
            _ => nodes.into_iter().next(),
        }
    }

    // ---- restores --------------------------------------------------------------------------

    async fn step_restore(&self, r: &Value) -> Result<(), JobError> {
        let key = job_key("restores", r);
        if self.running(&key) || r.pointer("/metadata/deletionTimestamp").is_some() {
            return Ok(());
        }
        match job_phase(r) {
            "Completed" | "Failed" => Ok(()),
            "Running" => Ok(self.interrupted(Job::Restore, r).await?),
            _ => self.start_restore(r, key).await,
        }
    }

    async fn start_restore(&self, r: &Value, key: String) -> Result<(), JobError> {
        let ns = meta_str(r, "namespace").unwrap_or("default").to_owned();
        let backup_name = str_at(r, "/spec/backup").unwrap_or_default().to_owned();
        let Some(b) = self.backups.get(&format!("{ns}/{backup_name}")) else {
            self.refuse(
                "restores",
                r,
                "RestoreFailed",
                format!("backup {backup_name:?} not found"),
            )
            .await?;
            return Ok(());
        };
        match job_phase(&b) {
            "Completed" => {}
            "Failed" => {
                self.refuse(
                    "restores",
                    r,
                    "RestoreFailed",
                    format!("backup {backup_name:?} failed"),
                )
                .await?;
                return Ok(());
            }
            _ => {
                return Ok(self
                    .wait(
                        "restores",
                        r,
                        format!("waiting for backup {backup_name:?} to complete"),
                    )
                    .await?)
            }
        }
        let gs_name = str_at(r, "/spec/gameServer")
            .or_else(|| str_at(&b, "/spec/gameServer"))
            .unwrap_or_default()
            .to_owned();
        let Some((_, node)) = self.placed(Job::Restore, r, &ns, &gs_name).await? else {
            return Ok(());
        };
        let held = str_at(&b, "/status/nodeName").unwrap_or_default();
        // an S3 backup restores on any node; a local one only where it is kept
        let s3 = match self.registry.backup_s3_target(&b).await {
            Ok(t) => t,
            Err(TargetError::Api(e)) => return Err(e.into()),
            Err(e) => {
                let message = format!("backup {backup_name:?}: {e}");
                self.refuse("restores", r, "RestoreFailed", message).await?;
                return Ok(());
            }
        };
        if s3.is_none() && held != node {
            self.refuse(
                "restores",
                r,
                "RestoreFailed",
                format!(
                    "backup {backup_name:?} is kept on node {held:?} and gameserver {gs_name:?} \
                     is on node {node:?}: a local backup restores only on its own node"
                ),
            )
            .await?;
            return Ok(());
        }
        if !self.connected(&node) {
            return Ok(self
                .wait(
                    "restores",
                    r,
                    format!("waiting for node {node:?} to connect"),
                )
                .await?);
        }
        let r = self
            .decide(
                "restores",
                r,
                json!({"phase": "Running", "startedAt": now(), "message": null,
                       "step": "stopping the server"}),
            )
            .await?;
        let ctl = self.clone();
        let (b, r_obj) = (b.clone(), r.clone());
        let work = async move {
            let report = ctl.restore_job(&r, &b, &ns, &gs_name, &node, s3).await?;
            let status = json!({"step": null, "files": report["files"], "bytes": report["bytes"]});
            let msg = format!(
                "backup {:?} restored into gameserver {gs_name:?}",
                meta_str(&b, "name").unwrap_or_default()
            );
            Ok((status, msg))
        };
        self.spawn_job(Job::Restore, r_obj, key, work);
        Ok(())
    }

    async fn restore_job(
        &self,
        r: &Value,
        b: &Value,
        ns: &str,
        gs_name: &str,
        node: &str,
        s3: Option<S3Target>,
    ) -> Result<Value, JobError> {
        let was_running = self.stop_server(ns, gs_name).await?;
        self.set_status("restores", r, json!({"step": "restoring the files"}))
            .await?;
        let uid = self
            .server(ns, gs_name)
            .and_then(|g| meta_str(&g, "uid").map(str::to_owned))
            .unwrap_or_default();
        let call = BackupCall::Restore {
            uid,
            from: str_at(b, "/status/gameServerUid")
                .unwrap_or_default()
                .to_owned(),
            id: meta_str(b, "uid").unwrap_or_default().to_owned(),
            sha256: str_at(b, "/status/sha256").unwrap_or_default().to_owned(),
            truncate: r.pointer("/spec/truncate").and_then(Value::as_bool) == Some(true),
            s3,
        };
        let result = self.ask(node, TunnelOp::Backup { call }).await;
        if was_running {
            // back to how it was, whether the restore worked or not
            self.set_status("restores", r, json!({"step": "starting the server"}))
                .await?;
            self.power(ns, gs_name, PowerAction::Start).await?;
        }
        result.map(Option::unwrap_or_default)
    }

    // ---- retention -------------------------------------------------------------------------

    async fn retention(&self) {
        let now = Utc::now();
        for gs in self.gameservers.all() {
            let Some(rules) = gs.pointer("/spec/backupRetention") else {
                continue;
            };
            let keep = rules.get("keepLast").and_then(Value::as_u64);
            let max_age = rules
                .get("maxAge")
                .and_then(Value::as_str)
                .and_then(|s| catalyst_schemas::validation::duration(s).ok());
            if keep.is_none() && max_age.is_none() {
                continue;
            }
            let ns = meta_str(&gs, "namespace").unwrap_or("default").to_owned();
            let name = meta_str(&gs, "name").unwrap_or_default().to_owned();
            let mut done: Vec<(DateTime<Utc>, Arc<Value>)> = self
                .backups
                .all()
                .into_iter()
                .filter(|b| {
                    meta_str(b, "namespace") == Some(ns.as_str())
                        && str_at(b, "/spec/gameServer") == Some(name.as_str())
                        && job_phase(b) == "Completed"
                        && b.pointer("/spec/locked").and_then(Value::as_bool) != Some(true)
                        && b.pointer("/metadata/deletionTimestamp").is_none()
                })
                .filter_map(|b| {
                    let at = str_at(&b, "/status/completedAt")
                        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())?
                        .with_timezone(&Utc);
                    Some((at, b))
                })
                .collect();
            done.sort_by_key(|d| std::cmp::Reverse(d.0));
            for (i, (at, b)) in done.iter().enumerate() {
                let too_many = keep.is_some_and(|k| i as u64 >= k);
                let too_old = max_age
                    .is_some_and(|secs| now.signed_duration_since(*at).num_seconds() > secs as i64);
                if !(too_many || too_old) {
                    continue;
                }
                let bname = meta_str(b, "name").unwrap_or_default();
                match self
                    .registry
                    .delete(scope("backups", &ns), bname, None, false)
                    .await
                {
                    Ok(_) => {
                        let why = if too_many { "keepLast" } else { "maxAge" };
                        let msg = format!("backup {bname:?} deleted by the retention ({why})");
                        record_event(&self.registry, &gs, "Normal", "BackupPruned", &msg).await;
                    }
                    Err(e) => {
                        tracing::warn!(backup = bname, error = %e, "retention could not delete")
                    }
                }
            }
        }
    }
}
