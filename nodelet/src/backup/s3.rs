//! Backups kept in an S3-compatible bucket (`BackupCall`s with an [`S3Target`]).
//!
//! The endpoint is written by a tenant, so it is checked as a URL pull is
//! ([`crate::files::pull`]): http or https only, its host resolved here once and every address
//! public unless the operator allowed that exact address (`--backup-endpoint-allow`), and the
//! HTTP client handed to `object_store` connects only to those addresses (its resolver
//! resolves nothing else, no proxy, no redirects). Messages never carry the credentials: what
//! the store answers is scrubbed of them.
//!
//! Uploads are multipart, one part (8 MiB or more) read from the local archive at a time;
//! a failed upload is aborted. Downloads are streamed to a file while hashed.

use std::io::Read;
use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use catalyst_schemas::tunnel::S3Target;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::client::{ClientOptions, HttpClient, HttpConnector};
use object_store::path::Path as ObjectPath;
use object_store::{BackoffConfig, GetOptions, GetRange, ObjectStore, PutPayload, RetryConfig};
use reqwest::Url;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::BackupError;
use crate::files::pull::checked_client;

/// The smallest part of a multipart upload (S3 wants 5 MiB but for the last).
const PART_BYTES: u64 = 8 << 20;
/// S3 allows 10,000 parts; the part size grows for archives past ~78 GiB.
const MAX_PARTS: u64 = 9_000;
/// How long the store may stay silent while a response is read.
const READ_TIMEOUT: Duration = Duration::from_secs(120);
/// The longest message kept of what the store answered.
const MAX_MESSAGE: usize = 1000;

/// The HTTP client of one bucket: the checked addresses only.
#[derive(Debug)]
struct Checked(reqwest::Client);

impl HttpConnector for Checked {
    fn connect(&self, _: &ClientOptions) -> object_store::Result<HttpClient> {
        Ok(HttpClient::new(self.0.clone()))
    }
}

/// One object in a checked bucket.
#[derive(Debug)]
pub struct Object {
    store: AmazonS3,
    path: ObjectPath,
    /// What messages call it: `s3://bucket/key`.
    pub shown: String,
    /// The values scrubbed from messages.
    secrets: Vec<String>,
}

/// Opens the object a target names, once its endpoint is checked (see the [module](self)).
pub async fn open(target: &S3Target, allow: &[IpAddr]) -> Result<Object, BackupError> {
    let shown = format!("s3://{}/{}", target.bucket, target.key);
    let bad = |why: String| BackupError::S3 {
        object: shown.clone(),
        why,
    };
    let mut url = Url::parse(&target.endpoint).map_err(|e| bad(format!("endpoint: {e}")))?;
    if !url.username().is_empty() || url.password().is_some() || url.query().is_some() {
        return Err(bad(
            "the endpoint may not hold credentials or a query".into()
        ));
    }
    let host = url
        .host_str()
        .ok_or_else(|| bad("the endpoint has no host".into()))?
        .to_owned();
    let is_ip = host.starts_with('[') || host.parse::<IpAddr>().is_ok();
    // virtual-hosted style: the bucket is part of the host name connected to (and checked)
    let path_style = target.path_style || is_ip;
    if !path_style {
        url.set_host(Some(&format!("{}.{host}", target.bucket)))
            .map_err(|e| bad(format!("endpoint: {e}")))?;
    }
    let client = checked_client(&url, allow, &shown, READ_TIMEOUT)
        .await
        .map_err(|e| BackupError::S3Refused {
            object: shown.clone(),
            why: e.to_string(),
        })?;
    let region = if target.region.is_empty() {
        "us-east-1"
    } else {
        &target.region
    };
    let mut s3 = AmazonS3Builder::new()
        .with_endpoint(url.as_str().trim_end_matches('/'))
        .with_bucket_name(&target.bucket)
        .with_region(region)
        .with_access_key_id(&target.access_key_id)
        .with_secret_access_key(&target.secret_access_key)
        .with_virtual_hosted_style_request(!path_style)
        .with_allow_http(true)
        .with_http_connector(Checked(client))
        .with_retry(RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 3,
            retry_timeout: Duration::from_secs(60),
        });
    if let Some(token) = &target.session_token {
        s3 = s3.with_token(token);
    }
    let mut secrets = vec![
        target.secret_access_key.clone(),
        target.access_key_id.clone(),
    ];
    secrets.extend(target.session_token.clone());
    secrets.retain(|s| !s.is_empty());
    let store = s3
        .build()
        .map_err(|e| bad(scrub(&e.to_string(), &secrets)))?;
    let path = ObjectPath::parse(&target.key).map_err(|e| bad(format!("key: {e}")))?;
    Ok(Object {
        store,
        path,
        shown,
        secrets,
    })
}

/// A message without the credentials, and not too long.
fn scrub(message: &str, secrets: &[String]) -> String {
    let mut m = message.to_owned();
    for s in secrets {
        m = m.replace(s.as_str(), "<redacted>");
    }
    if m.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !m.is_char_boundary(cut) {
            cut -= 1;
        }
        m.truncate(cut);
        m.push('…');
    }
    m
}

impl Object {
    fn fail(&self, e: &dyn std::fmt::Display) -> BackupError {
        BackupError::S3 {
            object: self.shown.clone(),
            why: scrub(&e.to_string(), &self.secrets),
        }
    }

    /// Uploads `size` bytes of `file` in parts; `progress` hears the bytes sent so far. The
    /// upload is aborted when a part fails.
    pub async fn upload(
        &self,
        file: std::fs::File,
        size: u64,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(), BackupError> {
        let part = PART_BYTES.max(size.div_ceil(MAX_PARTS));
        let mut upload = self
            .store
            .put_multipart(&self.path)
            .await
            .map_err(|e| self.fail(&e))?;
        let mut file = Some(file);
        let mut sent = 0u64;
        let result: Result<(), BackupError> = async {
            while sent < size {
                let want = part.min(size - sent) as usize;
                let f = file.take().expect("the file is back after each part");
                let (f, buf) = tokio::task::spawn_blocking(move || {
                    let mut f = f;
                    let mut buf = vec![0u8; want];
                    f.read_exact(&mut buf).map(|()| (f, buf))
                })
                .await
                .map_err(|e| self.fail(&e))?
                .map_err(|e| self.fail(&format!("reading the archive: {e}")))?;
                file = Some(f);
                upload
                    .put_part(PutPayload::from(buf))
                    .await
                    .map_err(|e| self.fail(&e))?;
                sent += want as u64;
                progress(sent);
            }
            upload.complete().await.map_err(|e| self.fail(&e))?;
            Ok(())
        }
        .await;
        if result.is_err() {
            if let Err(e) = upload.abort().await {
                tracing::warn!(object = self.shown, error = %self.fail(&e), "s3: abort failed");
            }
        }
        result
    }

    /// Downloads the object into `dest` (created or truncated), hashing it: its size and
    /// SHA-256.
    pub async fn download(&self, dest: &std::path::Path) -> Result<(u64, String), BackupError> {
        let got = self
            .store
            .get(&self.path)
            .await
            .map_err(|e| self.missing(e))?;
        let mut stream = got.into_stream();
        let mut file = tokio::fs::File::create(dest)
            .await
            .map_err(|e| self.fail(&format!("{}: {e}", dest.display())))?;
        let (mut hash, mut size) = (Sha256::new(), 0u64);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.fail(&e))?;
            hash.update(&chunk);
            size += chunk.len() as u64;
            file.write_all(&chunk)
                .await
                .map_err(|e| self.fail(&format!("{}: {e}", dest.display())))?;
        }
        file.sync_all()
            .await
            .map_err(|e| self.fail(&format!("{}: {e}", dest.display())))?;
        Ok((size, format!("{:x}", hash.finalize())))
    }

    /// The object's size.
    pub async fn size(&self) -> Result<u64, BackupError> {
        let meta = self
            .store
            .head(&self.path)
            .await
            .map_err(|e| self.missing(e))?;
        Ok(meta.size)
    }

    /// `length` bytes from `start`, streamed.
    pub async fn range(
        &self,
        start: u64,
        length: u64,
    ) -> Result<BoxStream<'static, Result<Bytes, BackupError>>, BackupError> {
        let options = GetOptions {
            range: Some(GetRange::Bounded(start..start + length)),
            ..GetOptions::default()
        };
        let got = self
            .store
            .get_opts(&self.path, options)
            .await
            .map_err(|e| self.missing(e))?;
        let (shown, secrets) = (self.shown.clone(), self.secrets.clone());
        Ok(got
            .into_stream()
            .map(move |c| {
                c.map_err(|e| BackupError::S3 {
                    object: shown.clone(),
                    why: scrub(&e.to_string(), &secrets),
                })
            })
            .boxed())
    }

    /// Deletes the object; false when there was none.
    pub async fn delete(&self) -> Result<bool, BackupError> {
        match self.store.delete(&self.path).await {
            Ok(()) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.fail(&e)),
        }
    }

    fn missing(&self, e: object_store::Error) -> BackupError {
        match e {
            object_store::Error::NotFound { .. } => BackupError::NotFound(self.shown.clone()),
            e => self.fail(&e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(endpoint: &str) -> S3Target {
        S3Target {
            endpoint: endpoint.into(),
            bucket: "bkt".into(),
            region: String::new(),
            key: "ns/b-1.tar.zst".into(),
            path_style: true,
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "very-secret".into(),
            session_token: None,
        }
    }

    #[tokio::test]
    async fn private_endpoints_are_refused_unless_allowed() {
        for e in [
            "http://127.0.0.1:9000",
            "http://169.254.169.254",
            "http://10.0.0.1",
            "http://[::1]:9000",
            "http://localhost:9000",
        ] {
            let err = open(&target(e), &[]).await.unwrap_err();
            assert!(matches!(err, BackupError::S3Refused { .. }), "{e}: {err}");
            assert_eq!(err.status(), 403);
        }
        let allowed: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(open(&target("http://127.0.0.1:9000"), &[allowed])
            .await
            .is_ok());
        // the allowance is for that address only
        assert!(open(&target("http://127.0.0.2:9000"), &[allowed])
            .await
            .is_err());
        assert!(open(&target("file:///etc"), &[allowed]).await.is_err());
        assert!(open(&target("http://u:p@127.0.0.1"), &[allowed])
            .await
            .is_err());
    }

    #[test]
    fn messages_lose_the_credentials() {
        let m = scrub(
            "403: <AWSAccessKeyId>AKIDEXAMPLE</AWSAccessKeyId> very-secret",
            &["very-secret".into(), "AKIDEXAMPLE".into()],
        );
        assert!(
            !m.contains("AKIDEXAMPLE") && !m.contains("very-secret"),
            "{m}"
        );
        assert!(scrub(&"x".repeat(5000), &[]).len() < 1100);
    }

    #[test]
    fn debug_hides_the_secret() {
        let shown = format!("{:?}", target("http://x"));
        assert!(
            !shown.contains("very-secret") && !shown.contains("AKIDEXAMPLE"),
            "{shown}"
        );
    }
}
