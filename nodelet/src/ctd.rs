//! A small containerd 1.6 client over gRPC: the calls the nodelet makes, each with the
//! `catalyst` namespace (and, during imports, a lease) attached.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use containerd_client::services::v1 as api;
use containerd_client::services::v1::snapshots as snap;
use containerd_client::tonic::transport::Channel;
use containerd_client::tonic::{Code, Request, Status};
use containerd_client::types::{Descriptor, Mount};
use prost::Message;

/// The containerd namespace every Catalyst container lives in.
pub const NAMESPACE: &str = "catalyst";
/// The snapshotter used for images and containers.
pub const SNAPSHOTTER: &str = "overlayfs";
/// The runtime for containers.
pub const RUNTIME: &str = "io.containerd.runc.v2";
/// The type URL containerd expects for an OCI runtime spec.
const SPEC_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";

/// What can go wrong talking to containerd.
#[derive(Debug, thiserror::Error)]
pub enum CtdError {
    /// The socket could not be reached.
    #[error("cannot connect to containerd at {path}: {message}")]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The object does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The object exists already.
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// Any other gRPC failure.
    #[error("containerd {op}: {status}")]
    Rpc {
        /// The call that failed.
        op: &'static str,
        /// The gRPC status message.
        status: String,
    },
}

impl CtdError {
    fn rpc(op: &'static str, s: Status) -> Self {
        match s.code() {
            Code::NotFound => CtdError::NotFound(format!("{op}: {}", s.message())),
            Code::AlreadyExists => CtdError::AlreadyExists(format!("{op}: {}", s.message())),
            _ => CtdError::Rpc {
                op,
                status: format!("{:?}: {}", s.code(), s.message()),
            },
        }
    }

    /// True for NotFound.
    pub fn is_not_found(&self) -> bool {
        matches!(self, CtdError::NotFound(_))
    }
}

type Result<T> = std::result::Result<T, CtdError>;

/// The state of a task as containerd reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    /// Created, not started.
    Created,
    /// Running (or paused).
    Running,
    /// Exited with this status.
    Stopped(u32),
    /// Something else.
    Unknown,
}

/// A task exit or OOM seen on the event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskEvent {
    /// The init process of a container exited.
    Exit {
        /// The container.
        container_id: String,
        /// Its exit status.
        status: u32,
    },
    /// The container's cgroup hit its memory limit and the kernel killed a process.
    Oom {
        /// The container.
        container_id: String,
    },
}

/// A blob being read from the content store.
#[derive(Debug)]
pub struct ContentStream(containerd_client::tonic::Streaming<api::ReadContentResponse>);

impl ContentStream {
    /// The next chunk, or None at the end.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        Ok(self
            .0
            .message()
            .await
            .map_err(|s| CtdError::rpc("content read", s))?
            .map(|m| m.data))
    }
}

/// A connection to containerd.
#[derive(Debug, Clone)]
pub struct Containerd {
    channel: Channel,
    socket: PathBuf,
}

fn req<T>(msg: T, lease: Option<&str>) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut()
        .insert("containerd-namespace", NAMESPACE.parse().expect("ascii"));
    if let Some(lease) = lease {
        if let Ok(v) = lease.parse() {
            r.metadata_mut().insert("containerd-lease", v);
        }
    }
    r
}

impl Containerd {
    /// Connects to the socket (lazily: the first call fails if containerd is down).
    pub async fn connect(socket: &Path) -> Result<Self> {
        let channel = containerd_client::connect(socket)
            .await
            .map_err(|e| CtdError::Connect {
                path: socket.to_owned(),
                message: format!("{e}"),
            })?;
        Ok(Self {
            channel,
            socket: socket.to_owned(),
        })
    }

    /// The socket this client talks to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// containerd's version string.
    pub async fn version(&self) -> Result<String> {
        let mut c = api::version_client::VersionClient::new(self.channel.clone());
        let v = c
            .version(())
            .await
            .map_err(|s| CtdError::rpc("version", s))?
            .into_inner();
        Ok(v.version)
    }

    // ---- content ----

    /// True when the content store holds this digest.
    pub async fn content_exists(&self, digest: &str) -> Result<bool> {
        let mut c = api::content_client::ContentClient::new(self.channel.clone());
        match c
            .info(req(
                api::InfoRequest {
                    digest: digest.to_owned(),
                },
                None,
            ))
            .await
        {
            Ok(_) => Ok(true),
            Err(s) if s.code() == Code::NotFound => Ok(false),
            Err(s) => Err(CtdError::rpc("content info", s)),
        }
    }

    /// Writes a blob (read in chunks from `chunks`) and commits it under its digest with labels.
    pub async fn write_content(
        &self,
        lease: &str,
        digest: &str,
        total: i64,
        labels: HashMap<String, String>,
        chunks: impl futures::Stream<Item = Vec<u8>> + Send + 'static,
    ) -> Result<()> {
        use futures::StreamExt;
        let mut c = api::content_client::ContentClient::new(self.channel.clone());
        let reference = format!("catalyst-{}", digest.replace(':', "-"));
        let expected = digest.to_owned();
        let r2 = reference.clone();
        let mut offset = 0i64;
        let writes = chunks.map(move |data| {
            let m = api::WriteContentRequest {
                action: api::WriteAction::Write as i32,
                r#ref: r2.clone(),
                total,
                expected: expected.clone(),
                offset,
                data: data.clone(),
                labels: HashMap::new(),
            };
            offset += data.len() as i64;
            m
        });
        let commit = api::WriteContentRequest {
            action: api::WriteAction::Commit as i32,
            r#ref: reference.clone(),
            total,
            expected: digest.to_owned(),
            offset: total,
            data: Vec::new(),
            labels,
        };
        let stream = writes.chain(futures::stream::iter([commit]));
        let mut resp = match c.write(req(stream, Some(lease))).await {
            Ok(r) => r.into_inner(),
            Err(s) if s.code() == Code::AlreadyExists => return Ok(()),
            Err(s) => return Err(CtdError::rpc("content write", s)),
        };
        loop {
            match resp.message().await {
                Ok(Some(_)) => {}
                Ok(None) => return Ok(()),
                Err(s) if s.code() == Code::AlreadyExists => return Ok(()),
                Err(s) => return Err(CtdError::rpc("content write", s)),
            }
        }
    }

    /// Reads a blob as a stream of chunks.
    pub async fn read_content_stream(&self, digest: &str) -> Result<ContentStream> {
        let mut c = api::content_client::ContentClient::new(self.channel.clone());
        let stream = c
            .read(req(
                api::ReadContentRequest {
                    digest: digest.to_owned(),
                    offset: 0,
                    size: 0,
                },
                None,
            ))
            .await
            .map_err(|s| CtdError::rpc("content read", s))?
            .into_inner();
        Ok(ContentStream(stream))
    }

    /// Reads a whole blob.
    pub async fn read_content(&self, digest: &str) -> Result<Vec<u8>> {
        let mut stream = self.read_content_stream(digest).await?;
        let mut out = Vec::new();
        while let Some(chunk) = stream.next_chunk().await? {
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    // ---- leases ----

    /// Creates a lease that protects what an import writes from garbage collection for an hour.
    pub async fn lease_create(&self) -> Result<String> {
        let mut c = api::leases_client::LeasesClient::new(self.channel.clone());
        let id = format!("catalyst-import-{}", uuid::Uuid::new_v4().simple());
        let expire = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
        c.create(req(
            api::CreateRequest {
                id: id.clone(),
                labels: HashMap::from([("containerd.io/gc.expire".to_owned(), expire)]),
            },
            None,
        ))
        .await
        .map_err(|s| CtdError::rpc("lease create", s))?;
        Ok(id)
    }

    /// Deletes a lease; with `sync`, containerd collects the garbage it leaves before
    /// answering.
    pub async fn lease_delete(&self, id: &str, sync: bool) -> Result<()> {
        let mut c = api::leases_client::LeasesClient::new(self.channel.clone());
        c.delete(req(
            api::DeleteRequest {
                id: id.to_owned(),
                sync,
            },
            None,
        ))
        .await
        .map_err(|s| CtdError::rpc("lease delete", s))?;
        Ok(())
    }

    // ---- images ----

    /// The target descriptor of a named image.
    pub async fn image_get(&self, name: &str) -> Result<Option<Descriptor>> {
        let mut c = api::images_client::ImagesClient::new(self.channel.clone());
        match c
            .get(req(
                api::GetImageRequest {
                    name: name.to_owned(),
                },
                None,
            ))
            .await
        {
            Ok(r) => Ok(r.into_inner().image.and_then(|i| i.target)),
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(CtdError::rpc("image get", s)),
        }
    }

    /// Creates or updates a named image.
    pub async fn image_put(&self, name: &str, target: Descriptor) -> Result<()> {
        let mut c = api::images_client::ImagesClient::new(self.channel.clone());
        let image = api::Image {
            name: name.to_owned(),
            labels: HashMap::new(),
            target: Some(target),
            created_at: None,
            updated_at: None,
        };
        match c
            .create(req(
                api::CreateImageRequest {
                    image: Some(image.clone()),
                    source_date_epoch: None,
                },
                None,
            ))
            .await
        {
            Ok(_) => Ok(()),
            Err(s) if s.code() == Code::AlreadyExists => {
                c.update(req(
                    api::UpdateImageRequest {
                        image: Some(image),
                        update_mask: None,
                        source_date_epoch: None,
                    },
                    None,
                ))
                .await
                .map_err(|s| CtdError::rpc("image update", s))?;
                Ok(())
            }
            Err(s) => Err(CtdError::rpc("image create", s)),
        }
    }

    /// Removes an image's name (its content goes with the next garbage collection); absent is
    /// fine.
    pub async fn image_delete(&self, name: &str) -> Result<()> {
        let mut c = api::images_client::ImagesClient::new(self.channel.clone());
        match c
            .delete(req(
                api::DeleteImageRequest {
                    name: name.to_owned(),
                    sync: false,
                    target: None,
                },
                None,
            ))
            .await
        {
            Ok(_) => Ok(()),
            Err(s) if s.code() == Code::NotFound => Ok(()),
            Err(s) => Err(CtdError::rpc("image delete", s)),
        }
    }

    // ---- snapshots and diff ----

    /// A snapshot's info (kind, parent, labels), or None when there is none of that name.
    pub async fn snapshot_stat(&self, key: &str) -> Result<Option<snap::Info>> {
        let mut c = snap::snapshots_client::SnapshotsClient::new(self.channel.clone());
        match c
            .stat(req(
                snap::StatSnapshotRequest {
                    snapshotter: SNAPSHOTTER.into(),
                    key: key.to_owned(),
                },
                None,
            ))
            .await
        {
            Ok(r) => Ok(r.into_inner().info),
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(CtdError::rpc("snapshot stat", s)),
        }
    }

    /// Prepares an active snapshot on `parent` and returns its mounts.
    pub async fn snapshot_prepare(
        &self,
        lease: Option<&str>,
        key: &str,
        parent: &str,
    ) -> Result<Vec<Mount>> {
        let mut c = snap::snapshots_client::SnapshotsClient::new(self.channel.clone());
        let r = c
            .prepare(req(
                snap::PrepareSnapshotRequest {
                    snapshotter: SNAPSHOTTER.into(),
                    key: key.to_owned(),
                    parent: parent.to_owned(),
                    labels: HashMap::new(),
                },
                lease,
            ))
            .await
            .map_err(|s| CtdError::rpc("snapshot prepare", s))?;
        Ok(r.into_inner().mounts)
    }

    /// The mounts of an existing snapshot.
    pub async fn snapshot_mounts(&self, key: &str) -> Result<Vec<Mount>> {
        let mut c = snap::snapshots_client::SnapshotsClient::new(self.channel.clone());
        let r = c
            .mounts(req(
                snap::MountsRequest {
                    snapshotter: SNAPSHOTTER.into(),
                    key: key.to_owned(),
                },
                None,
            ))
            .await
            .map_err(|s| CtdError::rpc("snapshot mounts", s))?;
        Ok(r.into_inner().mounts)
    }

    /// Commits an active snapshot under a name, with labels.
    pub async fn snapshot_commit(
        &self,
        lease: &str,
        key: &str,
        name: &str,
        labels: HashMap<String, String>,
    ) -> Result<()> {
        let mut c = snap::snapshots_client::SnapshotsClient::new(self.channel.clone());
        c.commit(req(
            snap::CommitSnapshotRequest {
                snapshotter: SNAPSHOTTER.into(),
                name: name.to_owned(),
                key: key.to_owned(),
                labels,
            },
            Some(lease),
        ))
        .await
        .map_err(|s| CtdError::rpc("snapshot commit", s))?;
        Ok(())
    }

    /// Removes a snapshot; absent is fine.
    pub async fn snapshot_remove(&self, key: &str) -> Result<()> {
        let mut c = snap::snapshots_client::SnapshotsClient::new(self.channel.clone());
        match c
            .remove(req(
                snap::RemoveSnapshotRequest {
                    snapshotter: SNAPSHOTTER.into(),
                    key: key.to_owned(),
                },
                None,
            ))
            .await
        {
            Ok(_) => Ok(()),
            Err(s) if s.code() == Code::NotFound => Ok(()),
            Err(s) => Err(CtdError::rpc("snapshot remove", s)),
        }
    }

    /// Applies a layer blob onto mounts through the diff service; the descriptor of what was
    /// applied (its digest is the uncompressed one).
    pub async fn diff_apply(
        &self,
        lease: &str,
        layer: Descriptor,
        mounts: Vec<Mount>,
    ) -> Result<Descriptor> {
        let mut c = api::diff_client::DiffClient::new(self.channel.clone());
        let r = c
            .apply(req(
                api::ApplyRequest {
                    diff: Some(layer),
                    mounts,
                    payloads: HashMap::new(),
                    sync_fs: false,
                },
                Some(lease),
            ))
            .await
            .map_err(|s| CtdError::rpc("diff apply", s))?;
        r.into_inner().applied.ok_or_else(|| CtdError::Rpc {
            op: "diff apply",
            status: "no applied descriptor in the answer".into(),
        })
    }

    // ---- containers ----

    /// Creates a container with an OCI runtime spec (JSON) on an existing snapshot.
    pub async fn container_create(
        &self,
        id: &str,
        image: &str,
        labels: HashMap<String, String>,
        spec_json: Vec<u8>,
    ) -> Result<()> {
        let mut c = api::containers_client::ContainersClient::new(self.channel.clone());
        let container = api::Container {
            id: id.to_owned(),
            labels,
            image: image.to_owned(),
            runtime: Some(api::container::Runtime {
                name: RUNTIME.into(),
                options: None,
            }),
            spec: Some(prost_types::Any {
                type_url: SPEC_TYPE_URL.into(),
                value: spec_json,
            }),
            snapshotter: SNAPSHOTTER.into(),
            snapshot_key: id.to_owned(),
            created_at: None,
            updated_at: None,
            extensions: HashMap::new(),
            sandbox: String::new(),
        };
        c.create(req(
            api::CreateContainerRequest {
                container: Some(container),
            },
            None,
        ))
        .await
        .map_err(|s| CtdError::rpc("container create", s))?;
        Ok(())
    }

    /// Containers in the namespace whose labels match `filter` (containerd filter syntax).
    pub async fn container_list(&self, filter: &str) -> Result<Vec<api::Container>> {
        let mut c = api::containers_client::ContainersClient::new(self.channel.clone());
        let r = c
            .list(req(
                api::ListContainersRequest {
                    filters: if filter.is_empty() {
                        vec![]
                    } else {
                        vec![filter.to_owned()]
                    },
                },
                None,
            ))
            .await
            .map_err(|s| CtdError::rpc("container list", s))?;
        Ok(r.into_inner().containers)
    }

    /// Deletes a container (its task must be gone); absent is fine.
    pub async fn container_delete(&self, id: &str) -> Result<()> {
        let mut c = api::containers_client::ContainersClient::new(self.channel.clone());
        match c
            .delete(req(api::DeleteContainerRequest { id: id.to_owned() }, None))
            .await
        {
            Ok(_) => Ok(()),
            Err(s) if s.code() == Code::NotFound => Ok(()),
            Err(s) => Err(CtdError::rpc("container delete", s)),
        }
    }

    // ---- tasks ----

    /// Creates the task of a container with stdio on the given FIFOs; returns its pid.
    pub async fn task_create(
        &self,
        id: &str,
        rootfs: Vec<Mount>,
        stdin: &Path,
        stdout: &Path,
        stderr: &Path,
    ) -> Result<u32> {
        let mut c = api::tasks_client::TasksClient::new(self.channel.clone());
        let r = c
            .create(req(
                api::CreateTaskRequest {
                    container_id: id.to_owned(),
                    rootfs,
                    stdin: stdin.display().to_string(),
                    stdout: stdout.display().to_string(),
                    stderr: stderr.display().to_string(),
                    terminal: false,
                    checkpoint: None,
                    options: None,
                    runtime_path: String::new(),
                },
                None,
            ))
            .await
            .map_err(|s| CtdError::rpc("task create", s))?;
        Ok(r.into_inner().pid)
    }

    /// Starts a created task.
    pub async fn task_start(&self, id: &str) -> Result<u32> {
        let mut c = api::tasks_client::TasksClient::new(self.channel.clone());
        let r = c
            .start(req(
                api::StartRequest {
                    container_id: id.to_owned(),
                    exec_id: String::new(),
                },
                None,
            ))
            .await
            .map_err(|s| CtdError::rpc("task start", s))?;
        Ok(r.into_inner().pid)
    }

    /// The state of a container's task, or None when it has none.
    pub async fn task_state(&self, id: &str) -> Result<Option<(TaskState, u32)>> {
        let mut c = api::tasks_client::TasksClient::new(self.channel.clone());
        match c
            .get(req(
                api::GetRequest {
                    container_id: id.to_owned(),
                    exec_id: String::new(),
                },
                None,
            ))
            .await
        {
            Ok(r) => {
                let Some(p) = r.into_inner().process else {
                    return Ok(None);
                };
                use containerd_client::types::v1::Status as S;
                let state = match S::try_from(p.status).unwrap_or(S::Unknown) {
                    S::Created => TaskState::Created,
                    S::Running | S::Paused | S::Pausing => TaskState::Running,
                    S::Stopped => TaskState::Stopped(p.exit_status),
                    S::Unknown => TaskState::Unknown,
                };
                Ok(Some((state, p.pid)))
            }
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(CtdError::rpc("task get", s)),
        }
    }

    /// Sends a signal to the task's init process (or all its processes).
    pub async fn task_kill(&self, id: &str, signal: u32, all: bool) -> Result<()> {
        let mut c = api::tasks_client::TasksClient::new(self.channel.clone());
        match c
            .kill(req(
                api::KillRequest {
                    container_id: id.to_owned(),
                    exec_id: String::new(),
                    signal,
                    all,
                },
                None,
            ))
            .await
        {
            Ok(_) => Ok(()),
            Err(s) if s.code() == Code::NotFound => Ok(()),
            Err(s) => Err(CtdError::rpc("task kill", s)),
        }
    }

    /// Waits for the task to exit; returns its exit status.
    pub async fn task_wait(&self, id: &str) -> Result<u32> {
        let mut c = api::tasks_client::TasksClient::new(self.channel.clone());
        let r = c
            .wait(req(
                api::WaitRequest {
                    container_id: id.to_owned(),
                    exec_id: String::new(),
                },
                None,
            ))
            .await
            .map_err(|s| CtdError::rpc("task wait", s))?;
        Ok(r.into_inner().exit_status)
    }

    /// Deletes a stopped task; absent is fine. Returns the exit status when there was one.
    pub async fn task_delete(&self, id: &str) -> Result<Option<u32>> {
        let mut c = api::tasks_client::TasksClient::new(self.channel.clone());
        match c
            .delete(req(
                api::DeleteTaskRequest {
                    container_id: id.to_owned(),
                },
                None,
            ))
            .await
        {
            Ok(r) => Ok(Some(r.into_inner().exit_status)),
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(CtdError::rpc("task delete", s)),
        }
    }

    // ---- events ----

    /// Subscribes to task exit and OOM events of the `catalyst` namespace.
    pub async fn task_events(
        &self,
    ) -> Result<impl futures::Stream<Item = std::result::Result<TaskEvent, CtdError>>> {
        let mut c = api::events_client::EventsClient::new(self.channel.clone());
        let filters = vec![
            format!("namespace=={NAMESPACE},topic==\"/tasks/exit\""),
            format!("namespace=={NAMESPACE},topic==\"/tasks/oom\""),
        ];
        let stream = c
            .subscribe(api::SubscribeRequest { filters })
            .await
            .map_err(|s| CtdError::rpc("events subscribe", s))?
            .into_inner();
        Ok(futures::stream::unfold(stream, |mut s| async move {
            loop {
                match s.message().await {
                    Ok(Some(env)) => {
                        let Some(any) = env.event else { continue };
                        let ev = match env.topic.as_str() {
                            "/tasks/exit" => {
                                containerd_client::events::TaskExit::decode(any.value.as_slice())
                                    .ok()
                                    .filter(|e| e.id == e.container_id || e.id.is_empty())
                                    .map(|e| TaskEvent::Exit {
                                        container_id: e.container_id,
                                        status: e.exit_status,
                                    })
                            }
                            "/tasks/oom" => {
                                containerd_client::events::TaskOom::decode(any.value.as_slice())
                                    .ok()
                                    .map(|e| TaskEvent::Oom {
                                        container_id: e.container_id,
                                    })
                            }
                            _ => None,
                        };
                        if let Some(ev) = ev {
                            return Some((Ok(ev), s));
                        }
                    }
                    Ok(None) => return None,
                    Err(st) => return Some((Err(CtdError::rpc("events", st)), s)),
                }
            }
        }))
    }
}

/// A containerd configuration for a containerd of Catalyst's own, with everything under `dir`
/// (root, state, socket) and the CRI plugin off. Returns the socket path.
pub fn write_config(dir: &Path) -> std::io::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir)?;
    let socket = dir.join("containerd.sock");
    let config = dir.join("config.toml");
    let text = format!(
        "version = 2\nroot = {root:?}\nstate = {state:?}\n\
         disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
         [grpc]\n  address = {sock:?}\n[ttrpc]\n  address = {ttrpc:?}\n",
        root = dir.join("root").display().to_string(),
        state = dir.join("state").display().to_string(),
        sock = socket.display().to_string(),
        ttrpc = format!("{}.ttrpc", socket.display()),
    );
    std::fs::write(&config, text)?;
    Ok((config, socket))
}
