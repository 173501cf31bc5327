//! The content store, leases and the image store: blobs written and read, leases that keep
//! what an import writes from garbage collection, image names.

use std::collections::HashMap;

use containerd_client::services::v1 as api;
use containerd_client::tonic::Code;
use containerd_client::types::Descriptor;

use super::client::{req, Containerd, CtdError, Result};

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

impl Containerd {
    // ---- content ----

    /// True when the content store holds this digest.
    pub async fn content_exists(&self, digest: &str) -> Result<bool> {
        Ok(self.content_size(digest).await?.is_some())
    }

    /// The size of a blob, or None when the content store lacks it.
    pub async fn content_size(&self, digest: &str) -> Result<Option<u64>> {
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
            Ok(r) => Ok(r.into_inner().info.map(|i| i.size.max(0) as u64)),
            Err(s) if s.code() == Code::NotFound => Ok(None),
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

    /// Where containerd keeps its content store (the `root` its content plugin exports).
    pub async fn content_root(&self) -> Result<Option<std::path::PathBuf>> {
        let mut c = api::introspection_client::IntrospectionClient::new(self.channel.clone());
        let r = c
            .plugins(req(
                api::PluginsRequest {
                    filters: vec!["type==io.containerd.content.v1".to_owned()],
                },
                None,
            ))
            .await
            .map_err(|s| CtdError::rpc("introspection plugins", s))?;
        Ok(r.into_inner()
            .plugins
            .into_iter()
            .find_map(|p| p.exports.get("root").map(std::path::PathBuf::from)))
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

    /// Every image in the namespace: its name, target and when it was last updated.
    pub async fn image_list(&self) -> Result<Vec<api::Image>> {
        let mut c = api::images_client::ImagesClient::new(self.channel.clone());
        let r = c
            .list(req(api::ListImagesRequest { filters: vec![] }, None))
            .await
            .map_err(|s| CtdError::rpc("image list", s))?;
        Ok(r.into_inner().images)
    }

    /// Removes an image's name (its content goes with the next garbage collection); absent is
    /// fine.
    pub async fn image_delete(&self, name: &str) -> Result<()> {
        self.image_remove(name, false).await
    }

    /// Removes an image's name; with `sync`, containerd collects the garbage it leaves (blobs
    /// and snapshots nothing else references) before answering. Absent is fine.
    pub async fn image_remove(&self, name: &str, sync: bool) -> Result<()> {
        let mut c = api::images_client::ImagesClient::new(self.channel.clone());
        match c
            .delete(req(
                api::DeleteImageRequest {
                    name: name.to_owned(),
                    sync,
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
}
