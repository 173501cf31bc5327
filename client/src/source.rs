//! The informer's HTTP source: list and watch one collection of the API server.

use futures::StreamExt;
use serde_json::Value;

use crate::client::{Client, ListParams};
use crate::error::Error;
use crate::informer::{ListWatch, WatchStream};
use crate::watch::Watched;
use crate::Revision;

/// Lists and watches one collection (a path from [`crate::collection_path`]) with selectors.
#[derive(Debug, Clone)]
pub struct HttpSource {
    client: Client,
    collection: String,
    params: ListParams,
}

impl HttpSource {
    /// The objects of `collection` that `params` select.
    pub fn new(client: Client, collection: impl Into<String>, params: ListParams) -> Self {
        Self {
            client,
            collection: collection.into(),
            params,
        }
    }
}

impl ListWatch for HttpSource {
    type Error = Error;

    async fn list(&self) -> Result<(Vec<Value>, Revision), Error> {
        let list = self.client.list(&self.collection, &self.params).await?;
        Ok((list.items, list.revision))
    }

    async fn watch(&self, from: Revision) -> Result<WatchStream<Error>, Error> {
        match self
            .client
            .watch(&self.collection, &self.params, from)
            .await
        {
            Ok(stream) => Ok(stream.boxed()),
            // refused before the stream started: the same as an ERROR 410 event
            Err(e) if e.is_gone() => {
                let why = e
                    .api_status()
                    .map(|s| s.message.clone())
                    .unwrap_or_default();
                Ok(futures::stream::once(async move { Ok(Watched::Gone(why)) }).boxed())
            }
            Err(e) => Err(e),
        }
    }
}
