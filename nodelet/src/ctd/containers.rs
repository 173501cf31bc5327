//! Containers and their tasks: created, started, signalled, waited for, deleted.

use std::collections::HashMap;
use std::path::Path;

use containerd_client::services::v1 as api;
use containerd_client::tonic::Code;
use containerd_client::types::Mount;

use super::client::{req, Containerd, CtdError, Result, RUNTIME, SNAPSHOTTER, SPEC_TYPE_URL};

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

impl Containerd {
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
}
