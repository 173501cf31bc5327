//! The API client `catalystctl` uses: the client crate's, re-exported under the names the
//! verbs use.

pub use catalyst_client::{
    collection_path, format_status, object_path, query, Client, Config, Error as ClientError,
};
