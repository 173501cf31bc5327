//! The metrics sampler: every running server's cgroup, network and data dir, and the node
//! totals, kept in memory for the Prometheus endpoint.

use std::sync::Arc;
use std::time::Duration;

use crate::runtime::{self, Runtime, LABEL_UID};
use crate::{ctd, metrics};

/// How often running servers' metrics are sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(10);

/// Samples every running server's cgroup, network and data dir, and the node totals, into
/// memory for the Prometheus endpoint.
pub async fn sample_loop(rt: Arc<Runtime>) {
    loop {
        let mut samples = Vec::new();
        let mut all = Vec::new();
        if let Ok(containers) = rt
            .ctd
            .container_list(&format!("labels.\"{LABEL_UID}\""))
            .await
        {
            for c in containers {
                let (Some(uid), Some(nsname)) =
                    (c.labels.get(LABEL_UID), c.labels.get(runtime::LABEL_NAME))
                else {
                    continue;
                };
                let Ok(Some((ctd::TaskState::Running, pid))) = rt.ctd.task_state(&c.id).await
                else {
                    continue;
                };
                let (ns, name) = nsname.split_once('/').unwrap_or(("default", nsname));
                let (cid, dir) = (c.id.clone(), rt.server_dir(uid));
                let m = tokio::task::spawn_blocking(move || metrics::server(&cid, Some(pid), &dir))
                    .await
                    .unwrap_or_default();
                samples.extend(metrics::server_samples(&rt.node, ns, name, &m));
                all.push(m);
            }
        }
        samples.extend(metrics::node_samples(&rt.node, &all));
        *rt.samples.lock().expect("samples") = samples;
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
}
