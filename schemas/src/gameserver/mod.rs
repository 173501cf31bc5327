//! The GameServer kind: one persistent game server. The spec types live in `spec`, the status
//! types in `status`, defaulting and validation in `rules`; everything is re-exported here.

mod rules;
mod spec;
mod status;
#[cfg(test)]
mod tests;

use crate::resource::resource;
use crate::validation;

pub(crate) use rules::validate_ports;
pub use rules::{image_reference, log_pattern};
pub use spec::{
    DesiredState, GameServerPort, GameServerSpec, InstallSpec, NetworkMode, PortPolicy, Protocol,
    ReadySpec, Resources, RestartPolicy, StopSpec, FIXED_HOST_PORTS, STOP_SIGNALS,
};
pub use status::{DiskStatus, ExitStatus, GameServerStatus, PortStatus, TransferStatus};

resource! {
    /// One persistent game server.
    GameServer {
        spec: GameServerSpec,
        status: GameServerStatus,
        plural: "gameservers",
        singular: "gameserver",
        short: ["gs"],
        namespaced: true,
        name_rule: validation::dns_label,
    }
}
