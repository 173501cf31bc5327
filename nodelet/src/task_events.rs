//! containerd's task events (exits, OOM kills) wake the worker of their container.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use crate::ctd::TaskEvent;
use crate::retry::backoff;
use crate::runtime::Runtime;

/// Task exits and OOM kills from containerd wake the worker of their container. After a gap
/// in the stream every worker looks again, so no exit goes unnoticed.
pub async fn event_pump(rt: Arc<Runtime>) {
    let mut delays = backoff();
    loop {
        match rt.ctd.task_events().await {
            Ok(stream) => {
                delays = backoff();
                rt.wake_all();
                let mut stream = std::pin::pin!(stream);
                while let Some(ev) = stream.next().await {
                    match ev {
                        Ok(TaskEvent::Exit { container_id, .. }) => rt.wake(&container_id),
                        Ok(TaskEvent::Oom { container_id }) => {
                            rt.oom.lock().expect("oom").insert(container_id.clone());
                            rt.wake(&container_id);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "containerd event stream broke");
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot subscribe to containerd events"),
        }
        tokio::time::sleep(delays.next().unwrap_or(Duration::from_secs(5))).await;
        rt.wake_all();
    }
}
