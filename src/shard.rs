//! Sharding across replicas (docs/behaviour.md#sharding): several dregsy processes
//! share one config, each plans everything but copies only the images whose target
//! repository it owns. There is no coordinator: the index and count come from `-shard` or
//! from what Kubernetes sets, and ownership is a pure function of the repository name.
//!
//! Ownership is rendezvous (highest random weight) hashing: shard `i`'s weight for a
//! repository is the first 8 bytes (big-endian) of SHA-256 over the text `"{i}:{name}"`, and
//! the shard with the highest weight owns it (ties, which SHA-256 makes vanishingly rare, go
//! to the lower index). Going from COUNT to COUNT+1 shards moves only the repositories whose
//! new shard outweighs their old one, about 1/(COUNT+1) of them, and nothing else. The hash
//! is fixed, so every process of every version agrees.

use std::fmt;

/// The environment variable giving the number of shards when the index comes from the
/// environment.
pub const SHARDS_VAR: &str = "DREGSY_SHARDS";
/// The completion index Kubernetes sets in each pod of an Indexed Job.
pub const JOB_INDEX_VAR: &str = "JOB_COMPLETION_INDEX";
/// The pod name in Kubernetes; a StatefulSet's pods end in `-<ordinal>`.
pub const HOSTNAME_VAR: &str = "HOSTNAME";

/// The most shards there can be. Each process weighs every target repository once per shard,
/// so a mistyped count of billions would hang planning; a thousand replicas of a mirror is
/// already far beyond any registry's rate limits.
pub const MAX_SHARDS: u32 = 1000;

/// This process's share: shard `index` of `count` (0-based). `0/1` owns everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    count: u32,
}

impl Default for Shard {
    fn default() -> Self {
        Shard::WHOLE
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// One process owning every repository: no sharding.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Shard `index` of `count`.
    ///
    /// # Errors
    /// `count` is 0 or above [`MAX_SHARDS`], or `index` is not below `count`.
    pub fn new(index: u32, count: u32) -> Result<Shard, String> {
        if count == 0 {
            return Err("the shard count must be at least 1".into());
        }
        if count > MAX_SHARDS {
            return Err(format!(
                "the shard count {count} is above the maximum of {MAX_SHARDS}"
            ));
        }
        if index >= count {
            return Err(format!(
                "shard index {index} is out of range: with {count} shard(s) the index is 0 to {}",
                count - 1
            ));
        }
        Ok(Shard { index, count })
    }

    /// Parses `INDEX/COUNT`, e.g. `1/3`.
    ///
    /// # Errors
    /// Not two whole numbers separated by `/`, or out of range (see [`Shard::new`]).
    pub fn parse(text: &str) -> Result<Shard, String> {
        let (index, count) = text
            .trim()
            .split_once('/')
            .ok_or_else(|| format!("'{text}' is not INDEX/COUNT (e.g. 0/3)"))?;
        let number = |part: &str, what: &str| {
            part.trim().parse::<u32>().map_err(|_| {
                format!("'{text}' is not INDEX/COUNT: the {what} '{part}' is not a whole number")
            })
        };
        Shard::new(number(index, "index")?, number(count, "count")?)
            .map_err(|e| format!("'{text}': {e}"))
    }

    /// The shard this process is, from the `-shard` flag (empty: not given) and the
    /// environment, in this order of precedence:
    ///
    /// 1. `-shard=INDEX/COUNT`;
    /// 2. `JOB_COMPLETION_INDEX` (an Indexed Job) with the count in `DREGSY_SHARDS`;
    /// 3. the number after the last `-` of `HOSTNAME` (a StatefulSet's pod ordinal), when
    ///    `DREGSY_SHARDS` is set;
    /// 4. otherwise [`Shard::WHOLE`].
    ///
    /// # Errors
    /// A malformed or out-of-range value; `JOB_COMPLETION_INDEX` without `DREGSY_SHARDS`;
    /// `DREGSY_SHARDS` with no index in the environment. Each message names its source.
    pub fn from_sources(flag: &str, env: impl Fn(&str) -> Option<String>) -> Result<Shard, String> {
        if !flag.trim().is_empty() {
            return Shard::parse(flag).map_err(|e| format!("-shard: {e}"));
        }
        let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let job_index = env(JOB_INDEX_VAR);
        let Some(count_text) = env(SHARDS_VAR) else {
            return match job_index {
                Some(index) => Err(format!(
                    "{JOB_INDEX_VAR}={index} is set but {SHARDS_VAR} is not: set {SHARDS_VAR} to \
                     the Job's completions to shard, or unset {JOB_INDEX_VAR}"
                )),
                None => Ok(Shard::WHOLE),
            };
        };
        let count = count_text
            .trim()
            .parse::<u32>()
            .map_err(|_| format!("{SHARDS_VAR}='{count_text}' is not a whole number of shards"))?;
        let (index_text, source) = match job_index {
            Some(index) => (index, JOB_INDEX_VAR.to_string()),
            None => {
                let host = env(HOSTNAME_VAR).ok_or_else(|| {
                    format!(
                        "{SHARDS_VAR}={count} is set but no shard index is: set {JOB_INDEX_VAR} \
                         (an Indexed Job sets it), run as a StatefulSet pod (HOSTNAME ends in \
                         -<ordinal>), or pass -shard=INDEX/COUNT"
                    )
                })?;
                let ordinal = host.rsplit_once('-').map(|(_, n)| n).unwrap_or_default();
                if ordinal.is_empty() || !ordinal.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!(
                        "{SHARDS_VAR}={count} is set but {HOSTNAME_VAR}='{host}' does not end in \
                         -<ordinal> as a StatefulSet pod's name does: set {JOB_INDEX_VAR} or pass \
                         -shard=INDEX/COUNT"
                    ));
                }
                (
                    ordinal.to_string(),
                    format!("the ordinal of {HOSTNAME_VAR}='{host}'"),
                )
            }
        };
        let index = index_text
            .trim()
            .parse::<u32>()
            .map_err(|_| format!("{source}: '{index_text}' is not a whole number"))?;
        Shard::new(index, count).map_err(|e| format!("{source} with {SHARDS_VAR}={count}: {e}"))
    }

    /// The 0-based index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// How many shards there are.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Whether this is one shard of several (not [`Shard::WHOLE`]).
    pub fn is_sharded(&self) -> bool {
        self.count > 1
    }

    /// Whether this shard writes the target repository `name` (its path on the target
    /// registry, e.g. `mirror/library/nginx`).
    pub fn owns(&self, name: &str) -> bool {
        owner(name, self.count) == self.index
    }
}

/// The shard (0-based) that owns the target repository `name` among `count` shards; 0 when
/// `count` is 0 or 1. See the module documentation for the hash.
pub fn owner(name: &str, count: u32) -> u32 {
    (0..count.max(1))
        .map(|index| (weight(index, name), std::cmp::Reverse(index)))
        .max()
        .map(|(_, std::cmp::Reverse(index))| index)
        .unwrap_or(0)
}

/// Shard `index`'s weight for `name`: the first 8 bytes of SHA-256(`"{index}:{name}"`).
fn weight(index: u32, name: &str) -> u64 {
    let digest = ring::digest::digest(&ring::digest::SHA256, format!("{index}:{name}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    u64::from_be_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_hash_is_fixed() {
        // The weights are part of the contract between processes (and versions): these
        // values are SHA-256("0:mirror/app") etc., computed independently with sha256sum.
        assert_eq!(weight(0, "mirror/app"), 0x2117_28fa_fa6a_51b0);
        assert_eq!(owner("anything", 1), 0);
        assert_eq!(owner("anything", 0), 0);
    }

    #[test]
    fn every_name_has_exactly_one_owner_and_the_shares_are_even() {
        let names: Vec<String> = (0..3000)
            .map(|i| format!("team-{}/image-{i}", i % 7))
            .collect();
        let mut counts = [0usize; 3];
        for name in &names {
            let owners: Vec<u32> = (0..3)
                .filter(|&i| Shard::new(i, 3).unwrap().owns(name))
                .collect();
            assert_eq!(owners.len(), 1, "{name}: {owners:?}");
            counts[owners[0] as usize] += 1;
        }
        for count in counts {
            assert!((800..1200).contains(&count), "{counts:?}");
        }
    }

    #[test]
    fn growing_from_3_to_4_shards_moves_about_a_quarter_and_only_to_the_new_shard() {
        let names: Vec<String> = (0..4000).map(|i| format!("r{i}")).collect();
        let mut moved = 0;
        for name in &names {
            let (before, after) = (owner(name, 3), owner(name, 4));
            if before != after {
                assert_eq!(
                    after, 3,
                    "{name} moved from {before} to {after}, not to the new shard"
                );
                moved += 1;
            }
        }
        // 1/4 of 4000 is 1000; the hash is fixed, so this is a fact, not a chance.
        assert!((800..1200).contains(&moved), "{moved} of 4000 moved");
    }

    #[test]
    fn parsing_and_bad_values() {
        assert_eq!(Shard::parse("1/3"), Shard::new(1, 3));
        assert_eq!(Shard::parse(" 0/1 "), Ok(Shard::WHOLE));
        assert_eq!(Shard::parse("999/1000"), Shard::new(999, MAX_SHARDS));
        for (bad, says) in [
            ("3/3", "out of range"),
            ("0/0", "at least 1"),
            (
                "0/4294967295",
                "the shard count 4294967295 is above the maximum of 1000",
            ),
            ("x/2", "the index 'x' is not a whole number"),
            ("1/y", "the count 'y'"),
            ("-1/2", "not a whole number"),
            ("2", "not INDEX/COUNT"),
            ("", "not INDEX/COUNT"),
        ] {
            let error = Shard::parse(bad).expect_err(bad);
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    #[test]
    fn precedence_flag_then_job_index_then_hostname_ordinal() {
        let all: &[(&str, &str)] = &[
            (SHARDS_VAR, "4"),
            (JOB_INDEX_VAR, "2"),
            (HOSTNAME_VAR, "dregsy-3"),
        ];
        assert_eq!(Shard::from_sources("1/2", env(all)), Shard::new(1, 2));
        assert_eq!(Shard::from_sources("", env(all)), Shard::new(2, 4));
        assert_eq!(
            Shard::from_sources("", env(&[(SHARDS_VAR, "4"), (HOSTNAME_VAR, "dregsy-3")])),
            Shard::new(3, 4)
        );
        // Without DREGSY_SHARDS a host name is just a host name.
        assert_eq!(
            Shard::from_sources("", env(&[(HOSTNAME_VAR, "web-1")])),
            Ok(Shard::WHOLE)
        );
        assert_eq!(Shard::from_sources("", env(&[])), Ok(Shard::WHOLE));
        // Empty variables count as unset.
        assert_eq!(
            Shard::from_sources("", env(&[(SHARDS_VAR, ""), (JOB_INDEX_VAR, "")])),
            Ok(Shard::WHOLE)
        );
    }

    #[test]
    fn bad_environments_name_their_source() {
        for (pairs, says) in [
            (
                &[(JOB_INDEX_VAR, "1")][..],
                "JOB_COMPLETION_INDEX=1 is set but DREGSY_SHARDS is not",
            ),
            (&[(SHARDS_VAR, "3")][..], "no shard index"),
            (
                &[(SHARDS_VAR, "3"), (HOSTNAME_VAR, "worker")][..],
                "HOSTNAME='worker' does not end in -<ordinal>",
            ),
            (
                &[(SHARDS_VAR, "3"), (HOSTNAME_VAR, "dregsy-3")][..],
                "the ordinal of HOSTNAME='dregsy-3' with DREGSY_SHARDS=3: shard index 3 is out of range",
            ),
            (
                &[(SHARDS_VAR, "three"), (JOB_INDEX_VAR, "0")][..],
                "DREGSY_SHARDS='three' is not a whole number",
            ),
            (&[(SHARDS_VAR, "0"), (JOB_INDEX_VAR, "0")][..], "at least 1"),
            (
                &[(SHARDS_VAR, "1001"), (JOB_INDEX_VAR, "0")][..],
                "JOB_COMPLETION_INDEX with DREGSY_SHARDS=1001: the shard count 1001 is above the maximum of 1000",
            ),
        ] {
            let error = Shard::from_sources("", env(pairs)).expect_err(says);
            assert!(error.contains(says), "{pairs:?}: {error}");
        }
        let error = Shard::from_sources("x/2", env(&[])).expect_err("x/2");
        assert!(error.starts_with("-shard: 'x/2'"), "{error}");
    }
}
