//! The API client `catalystctl` uses: the client crate's, re-exported under the names the
//! verbs use.

pub use catalyst_client::{
    collection_path, format_status, needs_totp, object_path, query, Client, Config, ConfigFile,
    Context, Error as ClientError,
};
pub use catalyst_client::{config, servers};
