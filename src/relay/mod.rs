//! Relays execute image jobs. `native` is our in-process engine and the default; the skopeo
//! and docker relays of the original are kept for compatibility (not in this version yet).

pub mod native;

use crate::config::{Config, PlatformChoice, RelayKind};

/// The checks the original makes when it creates the relay (SPEC §2.3 step 8), before any
/// task runs: a config that loads can still be one no relay can execute.
pub fn check_config(config: &Config) -> Result<(), String> {
    let platform_all = config
        .tasks
        .iter()
        .flat_map(|t| &t.mappings)
        .any(|m| m.platform == PlatformChoice::All);
    if config.relay == RelayKind::Docker && platform_all {
        return Err(
            "cannot create sync relay: relay 'docker' does not support mappings with 'platform: all'"
                .into(),
        );
    }
    match config.relay {
        RelayKind::Native => Ok(()),
        other => Err(format!(
            "cannot create sync relay: not supported yet: relay '{}' is not available in this version; \
             remove the 'relay' key (or write 'relay: native') to use the built-in engine, which needs neither skopeo nor Docker",
            other.name()
        )),
    }
}
