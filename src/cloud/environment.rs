//! What the cloud code takes from the process environment, read once where the process starts
//! and handed down: the API endpoints and where credentials come from. Nothing below this
//! reads a variable of its own, so tests give each case its own environment, and two runs in
//! one process cannot see each other's.

use std::fmt;
use std::path::PathBuf;

/// The host of the GCE metadata server when `GCE_METADATA_HOST` names none.
pub const DEFAULT_METADATA_HOST: &str = "metadata.google.internal";

/// The cloud settings of the environment (README.md, "Cloud registries").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudEnvironment {
    /// The AWS APIs (ECR and ECR public).
    pub aws: AwsEnvironment,
    /// Google's token sources (GCR and Artifact Registry).
    pub google: GoogleEnvironment,
}

/// Where the ECR APIs are and where AWS credentials come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsEnvironment {
    /// The ECR API endpoint, `AWS_ENDPOINT_URL_ECR`, else `AWS_ENDPOINT_URL`; `None`: AWS's
    /// own (or the profile's `endpoint_url`, which the SDK reads).
    pub ecr_endpoint: Option<String>,
    /// The ECR public API endpoint, `AWS_ENDPOINT_URL_ECR_PUBLIC`, else `AWS_ENDPOINT_URL`;
    /// `None` as for [`AwsEnvironment::ecr_endpoint`].
    pub ecr_public_endpoint: Option<String>,
    /// Where AWS credentials come from.
    pub credentials: AwsCredentials,
}

/// Where AWS credentials come from.
#[derive(Clone, PartialEq, Eq)]
pub enum AwsCredentials {
    /// The SDK's default chain ([`super::aws::CREDENTIAL_SOURCES`]), which reads its own
    /// settings (access keys, profile, web identity, container and instance metadata, and
    /// `AWS_EC2_METADATA_DISABLED`) when a token is first needed.
    DefaultChain,
    /// These access keys; the chain is not consulted.
    Keys {
        /// The access key ID.
        access_key_id: String,
        /// The secret access key (never shown by `Debug`).
        secret_access_key: String,
        /// The session token of temporary keys.
        session_token: Option<String>,
    },
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AwsCredentials::DefaultChain => f.write_str("DefaultChain"),
            AwsCredentials::Keys { access_key_id, .. } => f
                .debug_struct("Keys")
                .field("access_key_id", access_key_id)
                .finish_non_exhaustive(),
        }
    }
}

/// Where Google access tokens come from, in the original's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoogleEnvironment {
    /// `GOOGLE_APPLICATION_CREDENTIALS`: a service account key or `authorized_user` file.
    pub application_credentials: Option<PathBuf>,
    /// The GCE metadata server, `GCE_METADATA_HOST` as Google's own libraries honour it, else
    /// [`DEFAULT_METADATA_HOST`]; `host[:port]`.
    pub metadata_host: String,
}

impl CloudEnvironment {
    /// The settings of this process's environment.
    pub fn from_process() -> CloudEnvironment {
        CloudEnvironment::from_vars(|name| std::env::var(name).ok())
    }

    /// The settings from the variables `var` gives (`None`: unset); empty values count as
    /// unset. `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true` ignores the endpoint variables, as
    /// the SDK does.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> CloudEnvironment {
        let var = |name: &str| var(name).filter(|v| !v.is_empty());
        let ignore_endpoints = var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let endpoint = |service: &str| {
            if ignore_endpoints {
                return None;
            }
            var(&format!("AWS_ENDPOINT_URL_{service}")).or_else(|| var("AWS_ENDPOINT_URL"))
        };
        CloudEnvironment {
            aws: AwsEnvironment {
                ecr_endpoint: endpoint("ECR"),
                ecr_public_endpoint: endpoint("ECR_PUBLIC"),
                credentials: AwsCredentials::DefaultChain,
            },
            google: GoogleEnvironment {
                application_credentials: var("GOOGLE_APPLICATION_CREDENTIALS").map(PathBuf::from),
                metadata_host: var("GCE_METADATA_HOST")
                    .unwrap_or_else(|| DEFAULT_METADATA_HOST.to_string()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(pairs: &[(&str, &str)]) -> CloudEnvironment {
        CloudEnvironment::from_vars(|name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn endpoints_service_specific_first() {
        let env = from(&[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
            ("AWS_ENDPOINT_URL_ECR_PUBLIC", "http://127.0.0.1:2"),
        ]);
        assert_eq!(env.aws.ecr_endpoint.as_deref(), Some("http://127.0.0.1:1"));
        assert_eq!(
            env.aws.ecr_public_endpoint.as_deref(),
            Some("http://127.0.0.1:2")
        );
        let ignored = from(&[
            ("AWS_ENDPOINT_URL_ECR", "http://127.0.0.1:1"),
            ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"),
        ]);
        assert_eq!(ignored.aws.ecr_endpoint, None);
    }

    #[test]
    fn google_defaults_and_empty_values() {
        let env = from(&[
            ("GOOGLE_APPLICATION_CREDENTIALS", ""),
            ("GCE_METADATA_HOST", ""),
        ]);
        assert_eq!(env.google.application_credentials, None);
        assert_eq!(env.google.metadata_host, DEFAULT_METADATA_HOST);
        let env = from(&[
            ("GOOGLE_APPLICATION_CREDENTIALS", "/k.json"),
            ("GCE_METADATA_HOST", "127.0.0.1:9"),
        ]);
        assert_eq!(
            env.google.application_credentials,
            Some(PathBuf::from("/k.json"))
        );
        assert_eq!(env.google.metadata_host, "127.0.0.1:9");
    }

    #[test]
    fn keys_are_not_shown() {
        let keys = AwsCredentials::Keys {
            access_key_id: "AKID".into(),
            secret_access_key: "very-secret".into(),
            session_token: Some("session-secret".into()),
        };
        let shown = format!("{keys:?}");
        assert!(
            shown.contains("AKID") && !shown.contains("secret"),
            "{shown}"
        );
    }
}
