//! Relays execute image jobs. `native` is our in-process engine and the default; the skopeo
//! and docker relays of the original are kept for compatibility (not in this version yet).

pub mod native;

use crate::config::{Config, Location, PlatformChoice, RelayKind};
use crate::plan::ImageJob;
use crate::registry::Registry;
use native::NativeRelay;

/// What a successful job did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyOutcome {
    /// The target already held the wanted digest.
    UpToDate,
    /// Manifests were written; `bytes` of blob data were transferred.
    Copied { bytes: u64 },
}

/// Everything a relay needs to know about the two sides of a job.
pub struct Sides<'a> {
    /// Clients for up-to-date checks (and, for the native relay, the copy itself).
    pub source: &'a Registry,
    pub target: &'a Registry,
    /// The config's view of each side: credentials, TLS choice.
    pub source_location: &'a Location,
    pub target_location: &'a Location,
    /// The task's `verbose` flag (D16).
    pub verbose: bool,
}

/// The relay a config selects.
pub enum Relay {
    Native(NativeRelay),
}

impl Relay {
    /// Creates the config's relay, after the checks the original makes at that point.
    pub fn new(config: &Config) -> Result<Relay, String> {
        check_config(config)?;
        match config.relay {
            RelayKind::Native => Ok(Relay::Native(NativeRelay::new(config.native))),
            other => Err(format!(
                "cannot create sync relay: not supported yet: relay '{}' is not available in this version; \
                 remove the 'relay' key (or write 'relay: native') to use the built-in engine, which needs neither skopeo nor Docker",
                other.name()
            )),
        }
    }

    /// How many images may be copied at once.
    pub fn parallel_images(&self) -> usize {
        match self {
            Relay::Native(native) => native.parallel_images(),
        }
    }

    /// Copies one image job. Errors name the image and say what failed.
    pub async fn copy(&self, job: &ImageJob, sides: &Sides<'_>) -> Result<CopyOutcome, String> {
        match self {
            Relay::Native(native) => native.copy(job, sides.source, sides.target).await,
        }
    }
}

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
    Ok(())
}
