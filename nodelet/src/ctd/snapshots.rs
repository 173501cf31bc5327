//! Snapshots (prepared, committed, removed) and the diff service that applies a layer onto one.

use std::collections::HashMap;

use containerd_client::services::v1 as api;
use containerd_client::services::v1::snapshots as snap;
use containerd_client::tonic::Code;
use containerd_client::types::{Descriptor, Mount};

use super::client::{req, Containerd, CtdError, Result, SNAPSHOTTER};

impl Containerd {
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

    /// The bytes a snapshot uses on disk (its own layer, not its parents'); 0 when absent.
    pub async fn snapshot_usage(&self, key: &str) -> Result<u64> {
        let mut c = snap::snapshots_client::SnapshotsClient::new(self.channel.clone());
        match c
            .usage(req(
                snap::UsageRequest {
                    snapshotter: SNAPSHOTTER.into(),
                    key: key.to_owned(),
                },
                None,
            ))
            .await
        {
            Ok(r) => Ok(r.into_inner().size.max(0) as u64),
            Err(s) if s.code() == Code::NotFound => Ok(0),
            Err(s) => Err(CtdError::rpc("snapshot usage", s)),
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
}
