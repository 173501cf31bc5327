//! Moves GameServers between nodes, run by the leader.
//!
//! A server whose `spec.nodeName` names another node than the one it is on
//! (`status.nodeName`) moves there (`catalystctl transfer NAME --to NODE` sets it):
//!
//! 1. **Stopping**: the target must exist, be Ready and uncordoned, have its tunnel here and
//!    room for the server (the scheduler's own filters and port allocation); the server is
//!    stopped (`spec.state: Stopped`) and goes `Transferring`.
//! 2. **Packing**: the source node packs the whole data directory (tar.zst and SHA-256, ignore
//!    files aside) into an archive of its own.
//! 3. **Copying**: the archive goes from the source's tunnel to the target's, chunk by chunk
//!    with the file transfers' windows (bounded memory here and on both nodes); the target keeps
//!    it only when its size and SHA-256 are the source's.
//! 4. **Restoring**: the target makes the server's disk, as a start would, and unpacks the
//!    archive into it with the restore's checks; it holds that data until the server is its own.
//! 5. **Starting**: the source is told to hold the server's data, then the server is bound to
//!    the target with host ports allocated there and its address, and started again if it ran.
//!
//! It ends when the server is Running on the target (or, if it was not running, at once): the
//! source's copy and both archives are removed, `status.transfer` goes, and the `Transferred`
//! condition and an Event say so. A failure at any step before the server is bound to the
//! target removes what the target got and leaves the server on the source, its data untouched;
//! a failure to run on the target (Error, Crashed, or not Running within [`START_TIMEOUT`])
//! binds the server back to the source, where its data was held. Either way `spec.nodeName` is
//! set back to the source, the server starts again if it ran, and a Warning Event names the
//! reason. A leader that finds a transfer with no task of its own behind it (the previous one
//! ended mid-way) rolls it back, or, past the switch, waits for the target as the task would.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use catalyst_apiserver::error::ApiError;
use catalyst_apiserver::registry::{meta_str, Part, Scope};
use catalyst_apiserver::tunnel::{Answers, Tunnels};
use catalyst_schemas::gameserver::{GameServerSpec, TransferStatus};
use catalyst_schemas::lifecycle::Phase;
use catalyst_schemas::lookup_kind;
use catalyst_schemas::meta::Condition;
use catalyst_schemas::object::{phase_of, put_condition, uid_of};
use catalyst_schemas::power::PowerAction;
use catalyst_schemas::tunnel::{Answer, BackupCall, TunnelOp, FILE_WINDOW};
use chrono::Utc;
use serde_json::{json, Value};

use crate::backups::node_call;
use crate::leader::{is_leading, Leading};
use crate::reconcilers::{node_address, node_info, record_event, request_of, Context};
use crate::scheduling::{self, Placement};

/// The tunnel owner of the controller's requests (its own limit of streams per node).
const OWNER: &str = "system:controller:transfers";
/// How often the controller looks for servers to move.
const TICK: Duration = Duration::from_secs(2);
/// How often progress is written.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// How long a server may take to stop before its move.
const STOP_TIMEOUT: Duration = Duration::from_secs(300);
/// How long the server may take to run on its new node.
pub const START_TIMEOUT: Duration = Duration::from_secs(300);
/// The condition that tells how the last move went.
const CONDITION: &str = "Transferred";
/// The archive id of a server's moves on both nodes.
const ARCHIVE: &str = "transfer";

/// Why a move failed: as a backup job fails (the API, a node's tunnel, or a reason).
pub use crate::backups::JobError as TransferError;

type Result<T> = std::result::Result<T, TransferError>;

fn failed(why: impl Into<String>) -> TransferError {
    TransferError::Failed(why.into())
}

/// Where a server is in its move, as `status.transfer.step` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Stopping,
    Packing,
    Copying,
    Restoring,
    Starting,
}

impl Step {
    fn as_str(self) -> &'static str {
        match self {
            Step::Stopping => "Stopping",
            Step::Packing => "Packing",
            Step::Copying => "Copying",
            Step::Restoring => "Restoring",
            Step::Starting => "Starting",
        }
    }
}

/// What the controller shares with its moves.
#[derive(Debug, Clone)]
struct Ctl {
    ctx: Context,
    tunnels: Arc<Tunnels>,
    /// Moves running in this process, by `namespace/name`.
    jobs: Arc<Mutex<HashMap<String, tokio::task::AbortHandle>>>,
    /// The term it acts under: checked before each node call (the store cannot fence those).
    leading: Leading,
}

/// Starts the controller loop (it acts only while `leading`); the task to stop.
pub fn start(ctx: Context, tunnels: Arc<Tunnels>, leading: Leading) -> tokio::task::JoinHandle<()> {
    let ctl = Ctl {
        ctx,
        tunnels,
        jobs: Arc::default(),
        leading: leading.clone(),
    };
    tokio::spawn(run(ctl, leading))
}

/// Whether a server is moving or asked to.
fn moving(gs: &Value) -> bool {
    if gs.pointer("/status/transfer").is_some_and(|t| !t.is_null()) {
        return true;
    }
    let at = |p: &str| gs.pointer(p).and_then(Value::as_str);
    gs.pointer("/metadata/deletionTimestamp").is_none()
        && matches!((at("/spec/nodeName"), at("/status/nodeName")), (Some(to), Some(from)) if to != from)
}

async fn run(ctl: Ctl, leading: Leading) {
    loop {
        tokio::time::sleep(TICK).await;
        if !is_leading(&leading) {
            for (_, job) in ctl.jobs.lock().expect("jobs").drain() {
                job.abort();
            }
            continue;
        }
        ctl.jobs
            .lock()
            .expect("jobs")
            .retain(|_, j| !j.is_finished());
        for key in ctl.ctx.gameservers.keys_where(moving) {
            if ctl.jobs.lock().expect("jobs").contains_key(&key) {
                continue;
            }
            let Some(gs) = ctl.ctx.gameservers.get(&key) else {
                continue;
            };
            let c = ctl.clone();
            let k = key.clone();
            let task = tokio::spawn(async move {
                if let Err(e) = c.step(Arc::unwrap_or_clone(gs)).await {
                    tracing::warn!(server = k, error = %e, "transfer: step failed");
                }
            });
            ctl.jobs
                .lock()
                .expect("jobs")
                .insert(key, task.abort_handle());
        }
    }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

fn gs_scope(ns: &str) -> Scope<'_> {
    Scope {
        kind: lookup_kind("gameservers").expect("a built-in kind"),
        namespace: Some(ns),
    }
}

/// The server being moved: its names, uid and the two nodes.
#[derive(Debug, Clone)]
struct Move {
    ns: String,
    name: String,
    uid: String,
    from: String,
    to: String,
    was_running: bool,
}

impl Ctl {
    /// Begins a move, or picks up one a previous leader left; decides from the server as
    /// stored (not as the cache may still show it), and writes only if it has not changed
    /// since.
    async fn step(&self, cached: Value) -> Result<()> {
        let ns = meta_str(&cached, "namespace")
            .unwrap_or("default")
            .to_owned();
        let name = meta_str(&cached, "name").unwrap_or_default().to_owned();
        let gs = match self.ctx.registry.get(gs_scope(&ns), &name).await {
            Ok(gs) => gs,
            Err(ApiError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if !moving(&gs) {
            return Ok(());
        }
        let uid = uid_of(&gs).unwrap_or_default().to_owned();
        let left: Option<TransferStatus> = gs
            .pointer("/status/transfer")
            .filter(|t| !t.is_null())
            .and_then(|t| serde_json::from_value(t.clone()).ok());
        if let Some(t) = left {
            let m = Move {
                ns,
                name,
                uid,
                from: t.from.clone(),
                to: t.to.clone(),
                was_running: t.was_running,
            };
            if t.step == Step::Starting.as_str() && str_at(&gs, "/status/nodeName") == Some(&t.to) {
                return self.finish(&m).await;
            }
            let why = "interrupted: the control plane restarted or lost its lease during the move";
            return self.roll_back(&m, why.into(), false).await;
        }
        let (Some(to), Some(from)) = (
            str_at(&gs, "/spec/nodeName"),
            str_at(&gs, "/status/nodeName"),
        ) else {
            return Ok(());
        };
        let m = Move {
            ns,
            name,
            uid,
            from: from.to_owned(),
            to: to.to_owned(),
            was_running: str_at(&gs, "/spec/state") != Some("Stopped")
                && !phase_of(&gs).eq(&Phase::Error),
        };
        if let Err(why) = self.admissible(&gs, &m) {
            return self.refuse(&gs, &m, why).await;
        }
        let started = Instant::now();
        // the decision was made from the cache: only if the server has not changed since
        let transfer = TransferStatus {
            from: m.from.clone(),
            to: m.to.clone(),
            step: Step::Stopping.as_str().into(),
            was_running: m.was_running,
            started_at: Some(Utc::now()),
            ..TransferStatus::default()
        };
        let written = self
            .ctx
            .registry
            .update_with(
                gs_scope(&m.ns),
                &m.name,
                catalyst_schemas::object::resource_version(&gs),
                Part::Status,
                false,
                |cur| {
                    let mut next = cur.clone();
                    next["status"]["transfer"] = serde_json::to_value(&transfer).expect("json");
                    Ok(next)
                },
            )
            .await;
        let written = match written {
            Ok(w) => w.object,
            Err(ApiError::Conflict { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        self.ctx.gameservers.write_through(&written);
        record_event(
            &self.ctx.registry,
            &written,
            "Normal",
            "TransferStarted",
            &format!("moving from node {} to node {}", m.from, m.to),
        )
        .await;
        match self.carry(&m).await {
            Ok(bytes) => {
                tracing::info!(
                    server = m.name,
                    from = m.from,
                    to = m.to,
                    bytes,
                    seconds = started.elapsed().as_secs_f64(),
                    "transfer: bound to the target"
                );
                self.finish(&m).await
            }
            Err(e) => self.roll_back(&m, e.to_string(), false).await,
        }
    }

    /// Why the move cannot begin, if it cannot: the target's state and room, both tunnels.
    fn admissible(&self, gs: &Value, m: &Move) -> std::result::Result<(), String> {
        let phase = phase_of(gs);
        if !matches!(
            phase,
            Phase::Running
                | Phase::Starting
                | Phase::Stopped
                | Phase::Crashed
                | Phase::Error
                | Phase::Stopping
        ) {
            return Err(format!("a server in phase {phase} cannot move"));
        }
        self.placement(gs, &m.to).map(|_| ())?;
        for node in [&m.from, &m.to] {
            if !self.connected(node) {
                return Err(format!("node {node} is not connected to the control plane"));
            }
        }
        Ok(())
    }

    /// Host ports for the server on `node`, if it fits there now.
    fn placement(&self, gs: &Value, node: &str) -> std::result::Result<Placement, String> {
        let mut spec: GameServerSpec =
            serde_json::from_value(gs.get("spec").cloned().unwrap_or_default())
                .map_err(|e| format!("the server's spec: {e}"))?;
        spec.node_name = Some(node.to_owned());
        let Some(obj) = self.ctx.nodes.get(node) else {
            return Err(format!("node {node} does not exist"));
        };
        let Some(info) = node_info(&obj, Utc::now()) else {
            return Err(format!("node {node} has not reported its capacity"));
        };
        let usage = self.ctx.usage.lock().expect("usage lock");
        scheduling::schedule(&request_of(&spec), &[info], &usage, self.ctx.strategy)
            .map_err(|e| e.to_string())
    }

    fn connected(&self, node: &str) -> bool {
        self.tunnels.nodes().iter().any(|n| n == node)
    }

    /// The server as stored now; None when it is gone.
    async fn fresh(&self, m: &Move) -> Result<Option<Value>> {
        match self.ctx.registry.get(gs_scope(&m.ns), &m.name).await {
            Ok(gs) if uid_of(&gs) == Some(m.uid.as_str()) => Ok(Some(gs)),
            Ok(_) | Err(ApiError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Merges `status` into the server's status (a fresh read each try).
    async fn set_status(&self, m: &Move, change: impl Fn(&mut Value)) -> Result<Value> {
        let written = self
            .ctx
            .registry
            .update_with(gs_scope(&m.ns), &m.name, None, Part::Status, false, |cur| {
                if uid_of(cur) != Some(m.uid.as_str()) {
                    return Err(ApiError::NotFound {
                        kind: "gameservers".into(),
                        name: m.name.clone(),
                    });
                }
                let mut next = cur.clone();
                if !next.get("status").is_some_and(Value::is_object) {
                    next["status"] = json!({});
                }
                change(&mut next["status"]);
                Ok(next)
            })
            .await?;
        self.ctx.gameservers.write_through(&written.object);
        Ok(written.object)
    }

    async fn set_step(&self, m: &Move, step: Step) -> Result<()> {
        self.set_status(m, |st| {
            st["transfer"]["step"] = step.as_str().into();
        })
        .await?;
        Ok(())
    }

    async fn power(&self, m: &Move, action: PowerAction) -> Result<()> {
        self.ctx
            .registry
            .merge_patch(
                gs_scope(&m.ns),
                &m.name,
                action.merge_patch(Utc::now()),
                Part::Main,
                false,
            )
            .await?;
        Ok(())
    }

    /// Waits until the server's phase is one of `until` (true) or `bad` (false), or the time
    /// is up (an error).
    async fn wait_phase(
        &self,
        m: &Move,
        until: &[Phase],
        bad: &[Phase],
        timeout: Duration,
    ) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            let Some(gs) = self.fresh(m).await? else {
                return Err(failed(format!("gameserver {:?} was deleted", m.name)));
            };
            let phase = phase_of(&gs);
            if until.contains(&phase) {
                return Ok(true);
            }
            if bad.contains(&phase) {
                return Ok(false);
            }
            if Instant::now() > deadline {
                return Err(failed(format!(
                    "gameserver {:?} was still {phase} after {}s",
                    m.name,
                    timeout.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// A node call while the term lasts ([`crate::backups::node_call`]).
    async fn node_call(&self, node: &str, op: TunnelOp) -> Result<Answers> {
        node_call(&self.tunnels, &self.leading, node, OWNER, op).await
    }

    /// Sends one request and waits for its end.
    async fn ask(&self, node: &str, call: BackupCall) -> Result<Option<Value>> {
        let mut answers = self.node_call(node, TunnelOp::Backup { call }).await?;
        loop {
            match answers.next().await {
                Some(Answer::End { result }) => return Ok(result),
                Some(Answer::Failed { error, .. }) => {
                    return Err(failed(format!("node {node}: {error}")))
                }
                Some(_) => {}
                None => return Err(failed(format!("the tunnel of node {node} closed"))),
            }
        }
    }

    /// Steps 1–5: the server bound to the target with its data there; the archive's bytes.
    async fn carry(&self, m: &Move) -> Result<u64> {
        // 1. stopped, then Transferring
        if self
            .fresh(m)
            .await?
            .is_some_and(|g| str_at(&g, "/spec/state") != Some("Stopped"))
        {
            self.power(m, PowerAction::Stop).await?;
        }
        let down = [Phase::Stopped, Phase::Crashed, Phase::Error];
        self.wait_phase(m, &down, &[], STOP_TIMEOUT).await?;
        self.set_status(m, |st| {
            st["phase"] = "Transferring".into();
            st["reason"] = "Transferring".into();
            st["message"] = "the data moves to another node".into();
            st["transfer"]["step"] = Step::Packing.as_str().into();
        })
        .await?;
        // 2. packed on the source
        let made = self.pack(m).await?;
        let size = made.get("size").and_then(Value::as_u64).unwrap_or(0);
        let sha256 = str_at(&made, "/sha256").unwrap_or_default().to_owned();
        self.set_status(m, |st| {
            st["transfer"]["step"] = Step::Copying.as_str().into();
            st["transfer"]["bytesTotal"] = size.into();
            st["transfer"]["bytesDone"] = 0.into();
            st["transfer"]["sha256"] = sha256.clone().into();
        })
        .await?;
        // 3. copied to the target
        self.copy(m, size, &sha256).await?;
        // 4. unpacked into the server's new disk on the target
        self.set_step(m, Step::Restoring).await?;
        let Some(gs) = self.fresh(m).await? else {
            return Err(failed(format!("gameserver {:?} was deleted", m.name)));
        };
        self.ask(
            &m.to,
            BackupCall::Adopt {
                server: gs.clone(),
                id: ARCHIVE.into(),
                sha256: sha256.clone(),
            },
        )
        .await?;
        // 5. the source holds its copy; the server is bound to the target
        self.ask(
            &m.from,
            BackupCall::Hold {
                uid: m.uid.clone(),
                held: true,
            },
        )
        .await?;
        self.bind(m, &gs, &m.to, Step::Starting).await?;
        if m.was_running {
            self.power(m, PowerAction::Start).await?;
        }
        Ok(size)
    }

    /// Binds the server to `node` (host ports allocated there, its address), Stopped.
    async fn bind(&self, m: &Move, gs: &Value, node: &str, step: Step) -> Result<()> {
        let placement = self
            .placement(gs, node)
            .map_err(|why| failed(format!("node {node} no longer fits the server: {why}")))?;
        let spec: GameServerSpec =
            serde_json::from_value(gs.get("spec").cloned().unwrap_or_default())
                .map_err(|e| failed(format!("the server's spec: {e}")))?;
        let ports: Vec<Value> = spec
            .ports
            .iter()
            .zip(&placement.host_ports)
            .map(|(port, host)| json!({"name": port.name, "containerPort": port.container_port, "hostPort": host, "protocol": port.protocol}))
            .collect();
        let address = self.ctx.nodes.get(node).as_deref().and_then(node_address);
        let written = self
            .set_status(m, |st| {
                st["nodeName"] = node.into();
                st["ports"] = ports.clone().into();
                match &address {
                    Some(a) => st["address"] = a.clone().into(),
                    None => {
                        if let Some(o) = st.as_object_mut() {
                            o.remove("address");
                        }
                    }
                }
                st["phase"] = "Stopped".into();
                st["reason"] = "Transferred".into();
                st["message"] = format!("moved to node {node}").into();
                st["transfer"]["step"] = step.as_str().into();
                if let Some(o) = st.as_object_mut() {
                    o.remove("disk");
                }
            })
            .await?;
        self.ctx.track(&format!("{}/{}", m.ns, m.name));
        let _ = written;
        Ok(())
    }

    /// Asks the source to pack the server's whole data directory; `{size, sha256, …}`.
    async fn pack(&self, m: &Move) -> Result<Value> {
        let call = BackupCall::Create {
            uid: m.uid.clone(),
            id: ARCHIVE.into(),
            ignore: Vec::new(),
            everything: true,
            s3: None,
        };
        let mut answers = self.node_call(&m.from, TunnelOp::Backup { call }).await?;
        let mut told = Instant::now();
        loop {
            match answers.next().await {
                Some(Answer::Progress(n)) => {
                    if told.elapsed() >= PROGRESS_EVERY {
                        told = Instant::now();
                        self.set_status(m, |st| st["transfer"]["bytesDone"] = n.into())
                            .await?;
                    }
                }
                Some(Answer::End { result }) => return Ok(result.unwrap_or(Value::Null)),
                Some(Answer::Failed { error, .. }) => {
                    return Err(failed(format!("node {}: {error}", m.from)))
                }
                Some(_) => {}
                None => {
                    return Err(failed(format!(
                        "the tunnel of node {} closed while packing",
                        m.from
                    )))
                }
            }
        }
    }

    /// Relays the archive from the source's tunnel to the target's: the source sends at most
    /// [`FILE_WINDOW`] chunks ahead of what went on, the target takes at most as many ahead of
    /// its acknowledgements.
    async fn copy(&self, m: &Move, size: u64, sha256: &str) -> Result<()> {
        let read = BackupCall::Read {
            from: m.uid.clone(),
            id: ARCHIVE.into(),
            start: None,
            end: None,
            suffix: None,
            s3: None,
        };
        let mut src = self
            .node_call(&m.from, TunnelOp::Backup { call: read })
            .await?;
        opened(&mut src, &m.from).await?;
        let receive = BackupCall::Receive {
            uid: m.uid.clone(),
            id: ARCHIVE.into(),
            size,
            sha256: sha256.to_owned(),
        };
        let mut dst = self
            .node_call(&m.to, TunnelOp::Backup { call: receive })
            .await?;
        opened(&mut dst, &m.to).await?;
        let to = m.to.clone();
        let settle = move |a: Answer, in_flight: &mut u32| -> Result<()> {
            match a {
                Answer::Ack(n) => {
                    *in_flight = in_flight.saturating_sub(n);
                    Ok(())
                }
                Answer::Failed { error, .. } => Err(failed(format!("node {to}: {error}"))),
                Answer::End { .. } => Err(failed(format!("node {to} ended the copy early"))),
                _ => Ok(()),
            }
        };
        let (mut in_flight, mut done) = (0u32, 0u64);
        let mut told = Instant::now();
        loop {
            match src.next_in_time().await? {
                Answer::Data(chunk) => {
                    while let Some(a) = dst.try_next() {
                        settle(a, &mut in_flight)?;
                    }
                    while in_flight >= FILE_WINDOW {
                        let a = dst.next_in_time().await?;
                        settle(a, &mut in_flight)?;
                    }
                    dst.send_data(&chunk).await?;
                    in_flight += 1;
                    done += chunk.len() as u64;
                    src.ack(1).await?;
                    if told.elapsed() >= PROGRESS_EVERY {
                        told = Instant::now();
                        self.set_status(m, |st| st["transfer"]["bytesDone"] = done.into())
                            .await?;
                    }
                }
                Answer::End { .. } => break,
                Answer::Failed { error, .. } => {
                    return Err(failed(format!("node {}: {error}", m.from)))
                }
                _ => {}
            }
        }
        dst.send_data(&[]).await?;
        // the target syncs and checks the archive: that may take a while for a big one
        let deadline = dst.timeout() * 6;
        let end = tokio::time::timeout(deadline, async {
            loop {
                match dst.next().await {
                    Some(Answer::End { .. }) => return Ok(()),
                    Some(Answer::Failed { error, .. }) => {
                        return Err(failed(format!("node {}: {error}", m.to)))
                    }
                    Some(_) => {}
                    None => return Err(failed(format!("the tunnel of node {} closed", m.to))),
                }
            }
        })
        .await
        .map_err(|_| failed(format!("node {} did not finish taking the archive", m.to)))?;
        end?;
        self.set_status(m, |st| st["transfer"]["bytesDone"] = done.into())
            .await?;
        Ok(())
    }

    /// After the switch: waits for the server to run on the target (when it was running), then
    /// lets the source's copy and the archives go; rolls back when it does not run there.
    async fn finish(&self, m: &Move) -> Result<()> {
        if m.was_running {
            let ok = match self
                .wait_phase(
                    m,
                    &[Phase::Running],
                    &[Phase::Error, Phase::Crashed],
                    START_TIMEOUT,
                )
                .await
            {
                Ok(ok) => ok,
                Err(e) => {
                    return self
                        .roll_back(m, format!("it did not run on node {}: {e}", m.to), true)
                        .await
                }
            };
            if !ok {
                let why = match self.fresh(m).await? {
                    Some(gs) => str_at(&gs, "/status/message")
                        .unwrap_or("it failed there")
                        .to_owned(),
                    None => "it was deleted".into(),
                };
                return self
                    .roll_back(m, format!("it did not run on node {}: {why}", m.to), true)
                    .await;
            }
        }
        // the source's copy, then the archives; the target's data goes with the server again
        self.release(&m.from, m).await;
        self.best_effort(
            &m.to,
            BackupCall::Hold {
                uid: m.uid.clone(),
                held: false,
            },
        )
        .await;
        self.remove_archives(m).await;
        let message = format!("moved from node {} to node {}", m.from, m.to);
        self.conclude(m, "TransferSucceeded", &message, |_| {})
            .await?;
        Ok(())
    }

    /// Has `node` remove the server's data, once the server is no longer bound there (its
    /// informer may lag the switch by a moment); a failure is only logged.
    async fn release(&self, node: &str, m: &Move) {
        for _ in 0..30 {
            match self
                .ask(node, BackupCall::Release { uid: m.uid.clone() })
                .await
            {
                Ok(_) => return,
                Err(TransferError::Failed(e)) if e.contains("is on this node") => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => {
                    tracing::warn!(node, server = m.name, error = %e, "transfer: a copy of the server's data was not removed");
                    return;
                }
            }
        }
        tracing::warn!(
            node,
            server = m.name,
            "transfer: the node still has the server bound; its copy stays"
        );
    }

    /// Ends a move: `status.transfer` goes (and `change` is made to the status), the
    /// `Transferred` condition says how (`TransferSucceeded` is the one success), and an Event
    /// (Normal `TransferSucceeded`, else Warning `TransferFailed`) says it to people.
    async fn conclude(
        &self,
        m: &Move,
        reason: &str,
        message: &str,
        change: impl Fn(&mut Value),
    ) -> Result<()> {
        let ok = reason == "TransferSucceeded";
        let written = self
            .set_status(m, |st| {
                change(st);
                if let Some(o) = st.as_object_mut() {
                    o.remove("transfer");
                }
                put_condition(st, Condition::new(CONDITION, ok, reason, message, None));
            })
            .await?;
        let (type_, event) = if ok {
            ("Normal", "TransferSucceeded")
        } else {
            ("Warning", "TransferFailed")
        };
        record_event(&self.ctx.registry, &written, type_, event, message).await;
        Ok(())
    }

    /// Removes the move's archive from both nodes (best effort).
    async fn remove_archives(&self, m: &Move) {
        for node in [&m.from, &m.to] {
            let call = BackupCall::Remove {
                from: m.uid.clone(),
                id: ARCHIVE.into(),
                s3: None,
            };
            self.best_effort(node, call).await;
        }
    }

    /// A request whose failure is only logged (clean-up).
    async fn best_effort(&self, node: &str, call: BackupCall) {
        if let Err(e) = self.ask(node, call.clone()).await {
            tracing::warn!(node, ?call, error = %e, "transfer: clean-up step failed");
        }
    }

    /// A move that cannot begin: `spec.nodeName` back to where the server is, and why.
    async fn refuse(&self, gs: &Value, m: &Move, why: String) -> Result<()> {
        let message = format!("cannot move to node {}: {why}", m.to);
        let reverted = self
            .ctx
            .registry
            .update_with(
                gs_scope(&m.ns),
                &m.name,
                catalyst_schemas::object::resource_version(gs),
                Part::Main,
                false,
                |cur| {
                    let mut next = cur.clone();
                    next["spec"]["nodeName"] = m.from.clone().into();
                    Ok(next)
                },
            )
            .await;
        match reverted {
            Ok(w) => self.ctx.gameservers.write_through(&w.object),
            // changed since: the next round decides again
            Err(ApiError::Conflict { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        self.conclude(m, "TransferRefused", &message, |_| {})
            .await?;
        Ok(())
    }

    /// Puts the server back on the source with its data as it was: what the target got goes,
    /// the source holds nothing back any more, `spec.nodeName` names the source, and the
    /// server starts again if it ran. `switched`: it was bound to the target already.
    async fn roll_back(&self, m: &Move, why: String, switched: bool) -> Result<()> {
        tracing::warn!(
            server = m.name,
            from = m.from,
            to = m.to,
            why,
            "transfer failed; rolling back"
        );
        let Some(gs) = self.fresh(m).await? else {
            // deleted mid-way: nothing is held for it any more
            for node in [&m.from, &m.to] {
                self.release(node, m).await;
            }
            return Ok(());
        };
        let on_target = str_at(&gs, "/status/nodeName") == Some(m.to.as_str());
        if switched || on_target {
            // stopped there, then bound back to the source (Transferring is the way from
            // Error or Crashed to Stopped)
            if str_at(&gs, "/spec/state") != Some("Stopped") {
                self.power(m, PowerAction::Stop).await?;
            }
            let down = [Phase::Stopped, Phase::Crashed, Phase::Error, Phase::Unknown];
            if let Err(e) = self.wait_phase(m, &down, &[], STOP_TIMEOUT).await {
                tracing::warn!(server = m.name, error = %e, "transfer: the target did not stop");
            }
            self.set_status(m, |st| st["phase"] = "Transferring".into())
                .await?;
            let gs = self.fresh(m).await?.unwrap_or(gs);
            self.bind(m, &gs, &m.from, Step::Starting).await?;
        }
        // the source takes its data back
        self.best_effort(
            &m.from,
            BackupCall::Hold {
                uid: m.uid.clone(),
                held: false,
            },
        )
        .await;
        // the target lets go of what it got, once the server is no longer its own
        self.release(&m.to, m).await;
        self.remove_archives(m).await;
        self.ctx
            .registry
            .merge_patch(
                gs_scope(&m.ns),
                &m.name,
                json!({"spec": {"nodeName": m.from}}),
                Part::Main,
                false,
            )
            .await?;
        let message = format!("the server stays on node {}: {why}", m.from);
        self.conclude(m, "TransferFailed", &message, |st| {
            if st["phase"] == "Transferring" {
                st["phase"] = "Stopped".into();
                st["reason"] = "TransferFailed".into();
                st["message"] = message.clone().into();
            }
        })
        .await?;
        if m.was_running {
            self.power(m, PowerAction::Start).await?;
        }
        Ok(())
    }
}

/// Waits for the `Opened` answer a transfer begins with.
async fn opened(answers: &mut Answers, node: &str) -> Result<()> {
    match answers.next_in_time().await? {
        Answer::Opened(_) => Ok(()),
        Answer::Failed { error, .. } => Err(failed(format!("node {node}: {error}"))),
        other => Err(failed(format!(
            "node {node} answered {other:?} instead of opening the transfer"
        ))),
    }
}
