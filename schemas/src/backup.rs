//! The Backup and Restore kinds: a copy of one GameServer's data, and putting one back.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::Condition;
use crate::resource::{resource, Validate};
use crate::validation::{self, Causes, FieldPath};

resource! {
    /// A backup of one GameServer's data directory.
    Backup {
        spec: BackupSpec,
        status: BackupStatus,
        plural: "backups",
        singular: "backup",
        short: ["bk"],
        namespaced: true,
        name_rule: validation::dns_subdomain,
    }
}

resource! {
    /// Puts a Backup back into a GameServer's data directory.
    Restore {
        spec: RestoreSpec,
        status: RestoreStatus,
        plural: "restores",
        singular: "restore",
        short: ["rs"],
        namespaced: true,
        name_rule: validation::dns_subdomain,
    }
}

/// What to back up and where to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupSpec {
    /// The GameServer, in the same namespace.
    pub game_server: String,
    /// Where the archive goes.
    #[serde(default)]
    pub storage: BackupStorage,
    /// Paths (gitignore syntax) left out of the archive, besides those the server's
    /// `.catalystignore` (or `.pteroignore`) names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore: Vec<String>,
    /// Kept from deletion and from retention while true (a delete is refused).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub locked: bool,
    /// A console line sent before the backup begins (e.g. `save-all`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Seconds to wait after `command` (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_wait_seconds: Option<u32>,
    /// Stop the server for the backup and start it again afterwards if it was running.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stop_server: bool,
}

/// How many backups of a server are kept (`GameServer.spec.backupRetention`): the newest
/// `keepLast` completed ones, none older than `maxAge`; locked backups always stay.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupRetention {
    /// Keep this many of the newest completed backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<u32>,
    /// Delete completed backups older than this, e.g. `30d` or `72h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,
}

impl Validate for BackupRetention {
    fn validate(&self, path: &FieldPath, causes: &mut Causes) {
        if let Some(n) = self.keep_last {
            causes.check(
                (1..=1000).contains(&n),
                &path.child("keepLast"),
                "must be from 1 to 1000",
            );
        }
        if let Some(age) = &self.max_age {
            causes.rule(&path.child("maxAge"), validation::duration(age).map(|_| ()));
        }
    }
}

/// Where backups are kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupStorage {
    /// On the node, under its backup directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalStorage>,
    /// In an S3-compatible store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Storage>,
}

/// Local backup storage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LocalStorage {}

/// An S3-compatible bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct S3Storage {
    /// `https://s3.example.com`.
    pub endpoint: String,
    /// The bucket.
    pub bucket: String,
    /// The region.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub region: String,
    /// A key prefix.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    /// The name of a Secret in the Backup's namespace holding `accessKeyId` and
    /// `secretAccessKey` (and optionally `sessionToken`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub credentials: String,
    /// Address the bucket in the path (`endpoint/bucket/key`) rather than the host name:
    /// what MinIO, moto and other stores on an IP address need.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub path_style: bool,
}

impl Validate for BackupSpec {
    fn validate(&self, path: &FieldPath, causes: &mut Causes) {
        causes.rule(
            &path.child("gameServer"),
            validation::dns_label(&self.game_server),
        );
        let s = &self.storage;
        causes.check(
            !(s.local.is_some() && s.s3.is_some()),
            &path.child("storage"),
            "set local or s3, not both",
        );
        if let Some(s3) = &s.s3 {
            let p = path.child("storage").child("s3");
            causes.check(
                s3.endpoint.starts_with("http://") || s3.endpoint.starts_with("https://"),
                &p.child("endpoint"),
                "must be an http:// or https:// URL",
            );
            causes.check(
                s3.endpoint.len() <= 2048 && !s3.endpoint.contains(char::is_whitespace),
                &p.child("endpoint"),
                "at most 2048 bytes, no spaces",
            );
            causes.check(
                (3..=63).contains(&s3.bucket.len())
                    && s3.bucket.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'
                    }),
                &p.child("bucket"),
                "must be an S3 bucket name: 3 to 63 lowercase letters, digits, '-' or '.'",
            );
            causes.check(
                s3.region.len() <= 64
                    && s3
                        .region
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                &p.child("region"),
                "at most 64 letters, digits, '-' or '_'",
            );
            causes.check(
                s3.prefix.len() <= 512
                    && !s3.prefix.starts_with('/')
                    && !s3.prefix.trim_end_matches('/').contains("//")
                    && !s3.prefix.split('/').any(|c| c == ".." || c == ".")
                    && !s3.prefix.contains(|c: char| c.is_control()),
                &p.child("prefix"),
                "at most 512 bytes, relative, no '.' or '..' segments, no control characters",
            );
            causes.check(
                !s3.credentials.is_empty(),
                &p.child("credentials"),
                "is required: the name of a Secret with accessKeyId and secretAccessKey",
            );
            if !s3.credentials.is_empty() {
                causes.rule(
                    &p.child("credentials"),
                    validation::dns_subdomain(&s3.credentials),
                );
            }
        }
        if let Some(c) = &self.command {
            causes.check(
                !c.trim().is_empty() && !c.contains(['\n', '\r', '\0']) && c.len() <= 4096,
                &path.child("command"),
                "must be one non-empty line of at most 4096 bytes",
            );
        }
        if let Some(w) = self.command_wait_seconds {
            causes.check(
                w <= 600,
                &path.child("commandWaitSeconds"),
                "must be at most 600",
            );
        }
        for (i, pattern) in self.ignore.iter().enumerate() {
            causes.check(
                !pattern.contains(['\n', '\r', '\0']) && pattern.len() <= 1024,
                &path.child("ignore").index(i),
                "must be one line of at most 1024 bytes",
            );
        }
        causes.check(
            self.ignore.len() <= 1000,
            &path.child("ignore"),
            "at most 1000 patterns",
        );
    }
}

/// Progress of a Backup or Restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum JobPhase {
    /// Not begun.
    #[default]
    Pending,
    /// Under way.
    Running,
    /// Done.
    Completed,
    /// Ended with an error.
    Failed,
}

/// What the nodelet observed of a backup.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupStatus {
    /// Pending, Running, Completed or Failed.
    #[serde(default)]
    pub phase: JobPhase,
    /// The archive's size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
    /// The archive's SHA-256, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Bytes of the archive written so far, while Running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_done: Option<i64>,
    /// Files in the archive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<i64>,
    /// Where the archive is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The object's key in the bucket, for a backup kept in S3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_key: Option<String>,
    /// The node that holds a local backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// The uid of the GameServer it was made of (its files on the node are kept by uid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub game_server_uid: Option<String>,
    /// When it began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Observations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

impl Validate for BackupStatus {
    fn validate(&self, path: &FieldPath, causes: &mut Causes) {
        if let Some(sha) = &self.sha256 {
            causes.check(
                sha.len() == 64 && sha.chars().all(|c| c.is_ascii_hexdigit()),
                &path.child("sha256"),
                "must be 64 hex digits",
            );
        }
        if let Some(size) = self.size_bytes {
            causes.check(size >= 0, &path.child("sizeBytes"), "must not be negative");
        }
    }
}

/// Which backup to put back, into which server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestoreSpec {
    /// The Backup, in the same namespace.
    pub backup: String,
    /// The GameServer; default: the one the backup was taken of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub game_server: Option<String>,
    /// Delete the data directory's files first.
    #[serde(default)]
    pub truncate: bool,
}

impl Validate for RestoreSpec {
    fn validate(&self, path: &FieldPath, causes: &mut Causes) {
        causes.rule(
            &path.child("backup"),
            validation::dns_subdomain(&self.backup),
        );
        if let Some(gs) = &self.game_server {
            causes.rule(&path.child("gameServer"), validation::dns_label(gs));
        }
    }
}

/// What the nodelet observed of a restore.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreStatus {
    /// Pending, Running, Completed or Failed.
    #[serde(default)]
    pub phase: JobPhase,
    /// What it is doing now (stopping the server, restoring, starting it again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// Files put back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<i64>,
    /// Bytes put back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<i64>,
    /// When it began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Observations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

impl Validate for RestoreStatus {
    fn validate(&self, _: &FieldPath, _: &mut Causes) {}
}
