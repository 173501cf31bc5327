//! Recording fakes of the executor's traits, for tests: a containerd whose tasks are a map, a
//! network and an API that remember every call, and a clock moved by hand.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use catalyst_schemas::gameserver::{NetworkMode, PortStatus};
use catalyst_schemas::lifecycle::can_move;
use catalyst_schemas::object::phase_of;
use catalyst_schemas::template::Template;
use containerd_client::types::Mount;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::env::{
    Clock, ContainerKind, ContainerRuntime, Env, ImageLock, Network, NewContainer, Sandbox,
    StatusWriter,
};
use super::plan::Task;
use crate::console::{Console, ConsoleError};
use crate::disk::{Ensured, Usage};
use crate::image::Image;
use crate::spec::Resolved;
use crate::userns::IdRange;
use crate::{Error, Result};

/// A containerd of maps.
#[derive(Debug)]
pub struct FakeRuntime {
    /// Tasks by container id.
    pub tasks: Mutex<HashMap<String, Task>>,
    /// Every call, in order, e.g. `create gs-u1-install`, `kill gs-u1 9` (the network's too).
    pub calls: Arc<Mutex<Vec<String>>>,
    /// What `sandbox` says of the namespaces.
    pub fresh: Mutex<bool>,
    /// When each task was started (on the tokio clock).
    pub starts: Mutex<Vec<(String, Instant)>>,
    /// A started main task exits at once with this code.
    pub crash_with: Mutex<Option<u32>>,
    /// Notified when a task exits by itself, as containerd's exit event wakes the worker.
    pub exits: Arc<tokio::sync::Notify>,
    /// What `disk` says of the server's disk.
    pub disk: Mutex<Option<Ensured>>,
    /// What `disk_usage` reads.
    pub usage: Mutex<Option<Usage>>,
    /// `disk` fails: the server's disk cannot be had, for this reason.
    pub disk_fails: Mutex<Option<String>>,
    dir: tempfile::TempDir,
    console: Mutex<Option<Arc<Console>>>,
}

impl FakeRuntime {
    /// An empty node.
    pub fn new() -> Self {
        FakeRuntime {
            tasks: Mutex::default(),
            calls: Arc::default(),
            fresh: Mutex::new(false),
            starts: Mutex::default(),
            crash_with: Mutex::default(),
            exits: Arc::default(),
            disk: Mutex::default(),
            usage: Mutex::default(),
            disk_fails: Mutex::default(),
            dir: tempfile::tempdir().expect("tmp"),
            console: Mutex::default(),
        }
    }

    /// Sets the task of container `id`.
    pub fn set(&self, id: &str, task: Task) {
        self.tasks
            .lock()
            .expect("tasks")
            .insert(id.to_owned(), task);
    }

    /// The task of container `id`.
    pub fn get(&self, id: &str) -> Task {
        *self
            .tasks
            .lock()
            .expect("tasks")
            .get(id)
            .unwrap_or(&Task::Absent)
    }

    /// The calls so far whose text starts with `prefix`.
    pub fn calls_of(&self, prefix: &str) -> Vec<String> {
        self.calls
            .lock()
            .expect("calls")
            .iter()
            .filter(|c| c.starts_with(prefix))
            .cloned()
            .collect()
    }

    fn record(&self, call: String) {
        self.calls.lock().expect("calls").push(call);
    }
}

#[async_trait]
impl ContainerRuntime for FakeRuntime {
    async fn task(&self, id: &str) -> Result<Task> {
        Ok(self.get(id))
    }

    async fn kill(&self, id: &str, signal: u32, all: bool) -> Result<()> {
        self.record(format!(
            "kill {id} {signal}{}",
            if all { " all" } else { "" }
        ));
        if signal == 9 && self.get(id) == Task::Running {
            self.set(id, Task::Exited(137));
        }
        Ok(())
    }

    async fn delete_task(&self, id: &str) -> Result<()> {
        self.record(format!("delete-task {id}"));
        if matches!(self.get(id), Task::Exited(_)) {
            self.set(id, Task::Absent);
        }
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<()> {
        self.record(format!("remove {id}"));
        self.set(id, Task::Absent);
        Ok(())
    }

    fn oom_killed(&self, _id: &str) -> bool {
        false
    }

    fn forget_oom(&self, _id: &str) {}

    fn console(&self) -> std::result::Result<Arc<Console>, ConsoleError> {
        let mut c = self.console.lock().expect("console");
        if let Some(c) = c.as_ref() {
            return Ok(c.clone());
        }
        let made = Arc::new(Console::open(self.dir.path())?);
        *c = Some(made.clone());
        Ok(made)
    }

    fn check_allowed(&self, _resolved: &Resolved) -> Result<()> {
        Ok(())
    }

    async fn lock_image(&self, image: &str) -> ImageLock {
        self.record(format!("lock {image}"));
        Box::new(Unlock(self.calls.clone(), image.to_owned()))
    }

    async fn image_present(&self, _image: &str) -> Result<bool> {
        Ok(true)
    }

    async fn ensure_image(
        &self,
        image: &str,
        progress: crate::image::Progress,
    ) -> Result<(Image, Option<u64>)> {
        self.record(format!("fetch {image}"));
        if let Some(steps) = image.strip_prefix("slow-pull/") {
            // a pull of `steps` MiB, one a 300 ms
            let total: u64 = steps.parse().unwrap_or(1) << 20;
            for done in (0..=total).step_by(1 << 20) {
                progress.send_replace(Some((done, total)));
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            }
            return Ok((
                Image {
                    name: image.to_owned(),
                    top: "sha256:top".into(),
                    config: Default::default(),
                },
                Some(total),
            ));
        }
        if image.contains("missing") {
            return Err(Error::Config(format!("no image {image}")));
        }
        Ok((
            Image {
                name: image.to_owned(),
                top: "sha256:top".into(),
                config: Default::default(),
            },
            None,
        ))
    }

    async fn sandbox(&self, resolved: &Resolved) -> Result<Sandbox> {
        let network = resolved.network;
        self.record("sandbox".into());
        Ok(Sandbox {
            data_dir: self.dir.path().join("data"),
            range: IdRange {
                start: 1 << 30,
                size: 65536,
            },
            userns: self.dir.path().join("userns"),
            netns: (network == NetworkMode::Bridge).then(|| self.dir.path().join("netns")),
            fresh: *self.fresh.lock().expect("fresh"),
        })
    }

    async fn disk(&self, _resolved: &Resolved, sandbox: &Sandbox) -> Result<Option<Ensured>> {
        self.record("disk".into());
        if let Some(reason) = self.disk_fails.lock().expect("disk").clone() {
            return Err(crate::disk::DiskError::Migration {
                dir: sandbox.data_dir.clone(),
                reason,
            }
            .into());
        }
        Ok(self.disk.lock().expect("disk").clone())
    }

    async fn make_namespaces(&self, _sandbox: &Sandbox) -> Result<()> {
        self.record("namespaces".into());
        Ok(())
    }

    async fn create(&self, c: &NewContainer<'_>) -> Result<Vec<Mount>> {
        let kind = match c.kind {
            ContainerKind::Main => "main",
            ContainerKind::Install { .. } => "install",
        };
        self.record(format!("create {} {kind}", c.id));
        Ok(vec![])
    }

    async fn start(&self, id: &str, _mounts: Vec<Mount>) -> Result<()> {
        self.record(format!("start {id}"));
        self.starts
            .lock()
            .expect("starts")
            .push((id.to_owned(), Instant::now()));
        let crash = *self.crash_with.lock().expect("crash");
        let task = match crash {
            Some(code) if !id.ends_with("-install") => Task::Exited(code),
            _ => Task::Running,
        };
        let exited = matches!(task, Task::Exited(_));
        self.set(id, task);
        if exited {
            self.exits.notify_one();
        }
        Ok(())
    }

    async fn own_data(&self) -> Result<()> {
        self.record("own-data".into());
        Ok(())
    }

    async fn release(&self, gone: bool) -> Result<()> {
        self.record(format!("release gone={gone}"));
        Ok(())
    }

    async fn disk_usage(&self) -> Result<Option<Usage>> {
        Ok(*self.usage.lock().expect("usage"))
    }

    fn set_denylist(&self, patterns: &[String]) {
        self.record(format!("denylist {}", patterns.join(" ")));
    }

    fn set_images(&self, _images: std::collections::BTreeSet<String>) {
        // the fake has no image store to collect
    }

    fn gateway(&self) -> String {
        "10.89.0.1".into()
    }

    async fn edit_config_files(
        &self,
        files: Vec<super::env::ConfigEdits>,
    ) -> Result<Vec<(String, std::result::Result<bool, String>)>> {
        let paths: Vec<String> = files.into_iter().map(|(p, _, _)| p).collect();
        self.record(format!("configs {}", paths.join(" ")));
        Ok(paths.into_iter().map(|p| (p, Ok(true))).collect())
    }
}

/// Records `unlock <image>` when an image lock is let go.
struct Unlock(Arc<Mutex<Vec<String>>>, String);

impl Drop for Unlock {
    fn drop(&mut self) {
        self.0
            .lock()
            .expect("calls")
            .push(format!("unlock {}", self.1));
    }
}

/// A network that remembers, in the runtime's call log.
#[derive(Debug, Default)]
pub struct FakeNetwork {
    /// `attach <id>` / `ports <id>` / `detach <id>`, in order, among the runtime's calls.
    pub calls: Arc<Mutex<Vec<String>>>,
    /// Host port mappings fail (a broken portmap) while set.
    pub ports_fail: Mutex<bool>,
}

#[async_trait]
impl Network for FakeNetwork {
    async fn attach_bridge(&self, id: &str) -> Result<()> {
        self.calls
            .lock()
            .expect("calls")
            .push(format!("attach {id}"));
        Ok(())
    }

    async fn map_ports(&self, id: &str, _ports: &[PortStatus]) -> Result<()> {
        self.calls
            .lock()
            .expect("calls")
            .push(format!("ports {id}"));
        if *self.ports_fail.lock().expect("ports_fail") {
            return Err(crate::cni::CniError::Failed {
                what: "cni portmap ADD".into(),
                message: "iptables: resource temporarily unavailable".into(),
            }
            .into());
        }
        Ok(())
    }

    async fn detach(&self, id: &str, _ports: &[PortStatus]) -> Result<()> {
        self.calls
            .lock()
            .expect("calls")
            .push(format!("detach {id}"));
        Ok(())
    }
}

/// An API server holding one GameServer; status writes obey the lifecycle like the real one.
#[derive(Debug)]
pub struct FakeStatus {
    /// The object as stored.
    pub object: Mutex<Value>,
    /// Events recorded: (type, reason, message).
    pub events: Mutex<Vec<(String, String, String)>>,
    /// Every phase written, in order.
    pub phases: Mutex<Vec<String>>,
    /// The templates the API holds.
    pub templates: Mutex<HashMap<String, Template>>,
    /// Every status patch, in order.
    pub patches: Mutex<Vec<Value>>,
}

impl FakeStatus {
    /// Holding `object`.
    pub fn new(object: Value) -> Self {
        FakeStatus {
            object: Mutex::new(object),
            events: Mutex::default(),
            phases: Mutex::default(),
            templates: Mutex::default(),
            patches: Mutex::default(),
        }
    }

    /// The reasons of the events recorded so far.
    pub fn reasons(&self) -> Vec<String> {
        self.events
            .lock()
            .expect("events")
            .iter()
            .map(|(_, r, _)| r.clone())
            .collect()
    }

    /// The stored object.
    pub fn get(&self) -> Value {
        self.object.lock().expect("object").clone()
    }
}

#[async_trait]
impl StatusWriter for FakeStatus {
    async fn patch_status(&self, _gs: &Value, status: Value) -> Result<Value> {
        self.patches.lock().expect("patches").push(status.clone());
        let mut obj = self.object.lock().expect("object");
        let from = phase_of(&obj);
        let mut next = obj.clone();
        if next.get("status").is_none_or(Value::is_null) {
            next["status"] = json!({});
        }
        for (k, v) in status.as_object().cloned().unwrap_or_default() {
            next["status"][&k] = v;
        }
        let to = phase_of(&next);
        if !can_move(from, to) {
            return Err(Error::Config(format!(
                "status write refused: {from} -> {to}"
            )));
        }
        if from != to || status.get("phase").is_some() {
            self.phases.lock().expect("phases").push(to.to_string());
        }
        let rv = catalyst_schemas::object::resource_version(&next).unwrap_or(0) + 1;
        next["metadata"]["resourceVersion"] = json!(rv.to_string());
        *obj = next.clone();
        Ok(next)
    }

    async fn event(&self, _gs: &Value, type_: &str, reason: &str, message: &str) {
        self.events.lock().expect("events").push((
            type_.to_owned(),
            reason.to_owned(),
            message.to_owned(),
        ));
    }

    async fn template(&self, name: &str) -> Result<Option<Template>> {
        Ok(self.templates.lock().expect("templates").get(name).cloned())
    }
}

/// A clock moved by hand.
#[derive(Debug)]
pub struct ManualClock(Mutex<Instant>);

impl ManualClock {
    /// Starting now.
    pub fn new() -> Self {
        ManualClock(Mutex::new(Instant::now()))
    }

    /// Moves time on.
    pub fn advance(&self, by: Duration) {
        *self.0.lock().expect("clock") += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.0.lock().expect("clock")
    }
}

/// The fakes together, and the environment over them.
#[derive(Debug, Clone)]
pub struct Fakes {
    /// containerd.
    pub runtime: Arc<FakeRuntime>,
    /// CNI.
    pub network: Arc<FakeNetwork>,
    /// The API.
    pub status: Arc<FakeStatus>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
}

impl Fakes {
    /// Fakes holding `object`, on `clock`.
    pub fn new(object: Value, clock: Arc<dyn Clock>) -> Self {
        let runtime = Arc::new(FakeRuntime::new());
        Fakes {
            network: Arc::new(FakeNetwork {
                calls: runtime.calls.clone(),
                ports_fail: Mutex::new(false),
            }),
            runtime,
            status: Arc::new(FakeStatus::new(object)),
            clock,
        }
    }

    /// The worker's environment over the fakes.
    pub fn env(&self) -> Env {
        Env {
            runtime: self.runtime.clone(),
            network: self.network.clone(),
            status: self.status.clone(),
            clock: self.clock.clone(),
        }
    }
}
