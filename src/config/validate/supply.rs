//! The supply-chain settings (`referrers`, `min-age`, `verify`) and how each level inherits
//! them from the one above (docs/configuration.md#referrers, #min-age, #verify).

use std::path::PathBuf;
use std::time::Duration;

use super::Failure;
use crate::config::Verify;
use crate::config::raw::RawSupply;

/// The supply-chain settings in force at one level, after inheritance (our extension:
/// docs/configuration.md#referrers, #min-age, #verify).
#[derive(Debug, Clone, Default)]
pub(super) struct Supply {
    pub(super) referrers: bool,
    pub(super) min_age: Option<Duration>,
    pub(super) verify: Option<Verify>,
}

/// The settings of one level: what it sets, else what it inherits from `above`. A key file is
/// read and checked here, so a wrong one stops the config at load.
pub(super) fn supply(raw: &RawSupply, above: &Supply) -> Result<Supply, Failure> {
    let mut out = above.clone();
    if let Some((on, _)) = raw.referrers {
        out.referrers = on;
    }
    if let Some((value, line)) = raw.min_age {
        if value.nanos() < 0 {
            return Err((
                Some(line),
                "'min-age' must not be negative: write a minimum age such as '72h', or 0 for none"
                    .into(),
            ));
        }
        out.min_age = value.positive();
    }
    if let Some(verify) = &raw.verify {
        let line = Some(verify.line);
        let path = verify.cosign_key.trim();
        if path.is_empty() {
            return Err((
                line,
                "'verify' needs 'cosign-key': the path of a cosign public key (keyless \
                 verification with Fulcio and Rekor is not supported)"
                    .into(),
            ));
        }
        let key_file = PathBuf::from(path);
        let key = crate::cosign::PublicKey::load(&key_file)
            .map_err(|e| (line, format!("'verify.cosign-key': {e}")))?;
        out.verify = Some(Verify { key_file, key });
    }
    Ok(out)
}
