//! containerd's event stream: task exits and OOM kills of the `catalyst` namespace.

use containerd_client::services::v1 as api;
use prost::Message;

use super::client::{Containerd, CtdError, Result, NAMESPACE};

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

impl Containerd {
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
