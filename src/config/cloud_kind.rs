//! Which cloud registry a config `registry` value names, detected once when the config is
//! loaded: the cloud code ([`crate::cloud`]) gets its tokens by this kind.

/// Which cloud registry a location is, with what its tokens need to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloudRegistry {
    /// Private ECR: `<account>.dkr.ecr.<region>.amazonaws.com[.cn]`.
    Ecr {
        /// The AWS account id.
        account: String,
        /// The AWS region, e.g. `eu-central-1`.
        region: String,
    },
    /// Public ECR: `[account[:region]@]public.ecr.aws`. Both parts may be empty.
    EcrPublic {
        /// The AWS account id (the registry id); empty: the caller's own.
        account: String,
        /// The region of the `ecr-public` API; empty: `us-east-1`, the only one it has.
        region: String,
    },
    /// `gcr.io`, `*.gcr.io`, `*-docker.pkg.dev`.
    Gcp,
}

impl CloudRegistry {
    /// Detects a cloud registry from a config `registry` value. Returns the registry with a
    /// public-ECR `account[:region]@` prefix removed, as the original stores it.
    ///
    /// Private ECR is recognised as the original does (six or seven dot-separated parts, no
    /// port); an explicit `http://` or `https://` and a path after the host are allowed.
    pub fn detect(registry: &str) -> (String, Option<CloudRegistry>) {
        if let Some((prefix, rest)) = registry.split_once('@')
            && host_of(rest).ends_with("public.ecr.aws")
        {
            let (account, region) = prefix.split_once(':').unwrap_or((prefix, ""));
            let cloud = CloudRegistry::EcrPublic {
                account: account.to_string(),
                region: region.to_string(),
            };
            return (rest.to_string(), Some(cloud));
        }
        let host = host_of(registry);
        let cloud = if host.ends_with("public.ecr.aws") {
            Some(CloudRegistry::EcrPublic {
                account: String::new(),
                region: String::new(),
            })
        } else if let Some((account, region)) = private_ecr(host) {
            Some(CloudRegistry::Ecr { account, region })
        } else if host == "gcr.io" || host.ends_with(".gcr.io") || host.ends_with("-docker.pkg.dev")
        {
            Some(CloudRegistry::Gcp)
        } else {
            None
        };
        (registry.to_string(), cloud)
    }

    /// Whether this is ECR, private or public (where `auth-refresh` is allowed).
    pub fn is_ecr(&self) -> bool {
        matches!(
            self,
            CloudRegistry::Ecr { .. } | CloudRegistry::EcrPublic { .. }
        )
    }
}

/// The host of a registry string: without scheme, path or port.
fn host_of(registry: &str) -> &str {
    let rest = registry
        .strip_prefix("http://")
        .or_else(|| registry.strip_prefix("https://"))
        .unwrap_or(registry);
    rest.split('/').next().unwrap_or_default()
}

/// `<account>.dkr.ecr.<region>.amazonaws.com[.cn]` → account and region.
fn private_ecr(host: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = host.split('.').collect();
    let shape = (parts.len() == 6 || parts.len() == 7)
        && parts[1] == "dkr"
        && parts[2] == "ecr"
        && parts[4] == "amazonaws"
        && parts[5] == "com"
        && (parts.len() == 6 || parts[6] == "cn");
    shape.then(|| (parts[0].to_string(), parts[3].to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detect(r: &str) -> (String, Option<CloudRegistry>) {
        CloudRegistry::detect(r)
    }

    #[test]
    fn private_ecr_hosts() {
        let ecr = |a: &str, r: &str| {
            Some(CloudRegistry::Ecr {
                account: a.into(),
                region: r.into(),
            })
        };
        assert_eq!(
            detect("123456789012.dkr.ecr.eu-central-1.amazonaws.com").1,
            ecr("123456789012", "eu-central-1")
        );
        assert_eq!(
            detect("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/mirror").1,
            ecr("123456789012", "cn-north-1")
        );
        assert_eq!(
            detect("http://1.dkr.ecr.us-east-1.amazonaws.com").1,
            ecr("1", "us-east-1")
        );
        // With a port, or a FIPS host, it is not detected (as in the original).
        assert_eq!(detect("1.dkr.ecr.us-east-1.amazonaws.com:443").1, None);
        assert_eq!(detect("1.dkr.ecr-fips.us-east-1.amazonaws.com").1, None);
        assert_eq!(detect("registry.example.com").1, None);
    }

    #[test]
    fn public_ecr_with_account_and_region() {
        assert_eq!(
            detect("123456789012:us-east-1@public.ecr.aws"),
            (
                "public.ecr.aws".to_string(),
                Some(CloudRegistry::EcrPublic {
                    account: "123456789012".into(),
                    region: "us-east-1".into()
                })
            )
        );
        assert_eq!(
            detect("123456789012@public.ecr.aws").1,
            Some(CloudRegistry::EcrPublic {
                account: "123456789012".into(),
                region: "".into()
            })
        );
        assert_eq!(
            detect("public.ecr.aws"),
            (
                "public.ecr.aws".to_string(),
                Some(CloudRegistry::EcrPublic {
                    account: "".into(),
                    region: "".into()
                })
            )
        );
        assert!(detect("public.ecr.aws").1.is_some_and(|c| c.is_ecr()));
    }

    #[test]
    fn google_hosts() {
        for r in [
            "gcr.io",
            "eu.gcr.io/project",
            "europe-west3-docker.pkg.dev",
            "http://us-docker.pkg.dev/p/r",
        ] {
            assert_eq!(detect(r).1, Some(CloudRegistry::Gcp), "{r}");
        }
        for r in ["notgcr.io", "docker.pkg.dev", "ghcr.io"] {
            assert_eq!(detect(r).1, None, "{r}");
        }
        assert!(!CloudRegistry::Gcp.is_ecr());
    }
}
