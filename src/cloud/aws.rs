//! The AWS side the ECR modules share: one SDK config per region and run, with the credentials
//! and API endpoints of the run's [`AwsEnvironment`], our TLS stack (rustls on ring), bounded
//! timeouts and retries.
//!
//! Endpoints come from the environment the run was given (`AWS_ENDPOINT_URL_ECR`,
//! `AWS_ENDPOINT_URL_ECR_PUBLIC` or `AWS_ENDPOINT_URL`, read once where the process starts);
//! with the default credential chain, the SDK reads the rest of its standard settings itself:
//! `AWS_PROFILE`, `AWS_REGION`, `AWS_EC2_METADATA_DISABLED`, …

use super::environment::AwsEnvironment;

/// The credential sources of the SDK's default chain, in order, for messages.
pub const CREDENTIAL_SOURCES: &str = "the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), \
     the profile (AWS_PROFILE, default 'default') in ~/.aws/config and ~/.aws/credentials, \
     web identity (AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN, as EKS IRSA sets them), \
     ECS container credentials, and EC2 instance metadata";

/// The AWS side of one run: its environment and, with the SDK, the configs loaded so far,
/// one per region (two ECR registries in different regions never share one).
pub struct Aws {
    environment: AwsEnvironment,
    /// Loaded configs by region: loading reads files and the credential chain caches its
    /// answer (instance metadata, web identity), so both are done once per region and run.
    #[cfg(feature = "aws")]
    configs: tokio::sync::Mutex<Vec<(String, aws_config::SdkConfig)>>,
}

impl std::fmt::Debug for Aws {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aws")
            .field("environment", &self.environment)
            .finish_non_exhaustive()
    }
}

impl Aws {
    /// The AWS side for `environment`; nothing is loaded until a call needs it.
    pub fn new(environment: AwsEnvironment) -> Aws {
        Aws {
            environment,
            #[cfg(feature = "aws")]
            configs: Default::default(),
        }
    }

    /// The environment this side was made with.
    pub fn environment(&self) -> &AwsEnvironment {
        &self.environment
    }
}

#[cfg(feature = "aws")]
pub(crate) use sdk::{PAGE_SIZE, collect_pages, failed, page_of};

#[cfg(feature = "aws")]
mod sdk {
    use std::time::Duration;

    use aws_config::retry::RetryConfig;
    use aws_config::timeout::TimeoutConfig;
    use aws_config::{BehaviorVersion, Region, SdkConfig};
    use aws_sdk_ecr::config::ProvideCredentials;
    use aws_sdk_ecr::config::http::HttpResponse;
    use aws_sdk_ecr::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};

    use super::super::environment::AwsCredentials;
    use super::super::refused;
    use super::{Aws, CREDENTIAL_SOURCES};
    use crate::registry::{Error, ErrorKind};

    impl Aws {
        /// An ECR client for `region`, at the environment's ECR endpoint.
        pub(crate) async fn ecr(&self, region: &str) -> Result<aws_sdk_ecr::Client, Error> {
            let config = self.config(region).await?;
            let mut builder = aws_sdk_ecr::config::Builder::from(&config);
            if let Some(endpoint) = &self.environment.ecr_endpoint {
                builder = builder.endpoint_url(endpoint);
            }
            Ok(aws_sdk_ecr::Client::from_conf(builder.build()))
        }

        /// An ECR public client for `region`, at the environment's ECR public endpoint.
        pub(crate) async fn ecr_public(
            &self,
            region: &str,
        ) -> Result<aws_sdk_ecrpublic::Client, Error> {
            let config = self.config(region).await?;
            let mut builder = aws_sdk_ecrpublic::config::Builder::from(&config);
            if let Some(endpoint) = &self.environment.ecr_public_endpoint {
                builder = builder.endpoint_url(endpoint);
            }
            Ok(aws_sdk_ecrpublic::Client::from_conf(builder.build()))
        }

        /// The SDK config for `region` (empty: the region of the environment or profile),
        /// with its credentials checked, so a missing credential fails with a message that
        /// says which sources were tried.
        async fn config(&self, region: &str) -> Result<SdkConfig, Error> {
            let mut configs = self.configs.lock().await;
            if let Some((_, config)) = configs.iter().find(|(r, _)| r == region) {
                return Ok(config.clone());
            }
            let config = load(region, &self.environment.credentials).await?;
            configs.push((region.to_string(), config.clone()));
            Ok(config)
        }
    }

    /// Loads the SDK config of `region` with `credentials`, and checks that they give keys.
    async fn load(region: &str, credentials: &AwsCredentials) -> Result<SdkConfig, Error> {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(10))
            .operation_attempt_timeout(Duration::from_secs(30))
            .operation_timeout(Duration::from_secs(90))
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http)
            .timeout_config(timeouts)
            .retry_config(RetryConfig::standard().with_max_attempts(3));
        if !region.is_empty() {
            loader = loader.region(Region::new(region.to_string()));
        }
        if let AwsCredentials::Keys {
            access_key_id,
            secret_access_key,
            session_token,
        } = credentials
        {
            loader = loader.credentials_provider(aws_sdk_ecr::config::Credentials::new(
                access_key_id,
                secret_access_key,
                session_token.clone(),
                None,
                "dregsy",
            ));
        }
        let config = loader.load().await;
        if config.region().is_none() {
            return Err(Error::new(
                ErrorKind::Invalid,
                "no AWS region: set AWS_REGION, or a region in the AWS profile (for public \
                 ECR also possible as 'account:region@public.ecr.aws')",
            ));
        }
        let Some(credentials) = config.credentials_provider() else {
            return Err(refused(format!(
                "no AWS credentials; tried {CREDENTIAL_SOURCES}"
            )));
        };
        credentials.provide_credentials().await.map_err(|e| {
            refused(format!(
                "no AWS credentials found; tried {CREDENTIAL_SOURCES} ({})",
                crate::cloud::innermost_cause(&e)
            ))
        })?;
        Ok(config)
    }

    /// The most repositories asked for per `DescribeRepositories` page (the API's limit, in
    /// ECR and in ECR public).
    pub(crate) const PAGE_SIZE: i32 = 100;

    /// A bound on pages, so a looping `nextToken` cannot keep us busy forever.
    const MAX_PAGES: usize = 10_000;

    /// Collects the names of a paged listing until `max_items` are reached (`None`: all); as
    /// in the original, the last page is not cut. `page(next_token)` fetches one page: its
    /// names and the token of the next page, if any.
    pub(crate) async fn collect_pages<F, Fut>(
        max_items: Option<usize>,
        mut page: F,
    ) -> Result<Vec<String>, Error>
    where
        F: FnMut(Option<String>) -> Fut,
        Fut: std::future::Future<Output = Result<(Vec<String>, Option<String>), Error>>,
    {
        let mut names = Vec::new();
        let mut next = None;
        for _ in 0..MAX_PAGES {
            let (found, token) = page(next.take()).await?;
            names.extend(found);
            next = token;
            if next.is_none() || max_items.is_some_and(|max| names.len() >= max) {
                return Ok(names);
            }
        }
        Err(Error::new(
            ErrorKind::Protocol,
            format!("more than {MAX_PAGES} pages of repositories; the listing seems to loop"),
        ))
    }

    /// A listing page from the repository names an SDK page holds and its next token.
    pub(crate) fn page_of<'a>(
        names: impl Iterator<Item = Option<&'a str>>,
        next_token: Option<&str>,
    ) -> (Vec<String>, Option<String>) {
        let names = names.flatten().map(str::to_owned).collect();
        (names, next_token.map(str::to_owned))
    }

    /// An SDK error as one line, with its causes (`AWS <operation> failed: …`), of the kind
    /// the answer tells: refused credentials `Unauthorized`, a denied operation `Forbidden`, a
    /// missing repository or registry `NotFound`, throttling `RateLimited`, a connection that
    /// failed or timed out a network kind; otherwise `otherwise`.
    pub(crate) fn failed<E>(
        operation: &str,
        error: &SdkError<E, HttpResponse>,
        otherwise: ErrorKind,
    ) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let text = format!("AWS {operation} failed: {}", DisplayErrorContext(error));
        let kind = match error {
            SdkError::TimeoutError(_) => ErrorKind::Timeout,
            SdkError::DispatchFailure(failure) if failure.is_timeout() => ErrorKind::Timeout,
            SdkError::DispatchFailure(failure) if failure.is_io() => ErrorKind::Unreachable,
            SdkError::DispatchFailure(_) => ErrorKind::Network,
            SdkError::ServiceError(_) => kind_of_answer(
                error.code(),
                error.raw_response().map(|r| r.status().as_u16()),
            )
            .unwrap_or(otherwise),
            _ => otherwise,
        };
        Error::new(kind, text)
    }

    /// The kind an AWS error answer tells, by its code, else by its HTTP status.
    fn kind_of_answer(code: Option<&str>, status: Option<u16>) -> Option<ErrorKind> {
        let by_code = code.and_then(|code| match code {
            "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "IncompleteSignature"
            | "InvalidClientTokenId"
            | "MissingAuthenticationToken"
            | "ExpiredTokenException" => Some(ErrorKind::Unauthorized),
            "AccessDeniedException" | "AccessDenied" => Some(ErrorKind::Forbidden),
            "RepositoryNotFoundException" | "RegistryNotFoundException" => {
                Some(ErrorKind::NotFound)
            }
            "ThrottlingException" | "TooManyRequestsException" => Some(ErrorKind::RateLimited),
            _ => None,
        });
        by_code.or(match status? {
            401 => Some(ErrorKind::Unauthorized),
            403 => Some(ErrorKind::Forbidden),
            404 => Some(ErrorKind::NotFound),
            429 => Some(ErrorKind::RateLimited),
            _ => None,
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn answers_by_code_then_status() {
            let kind = kind_of_answer;
            let cases = [
                (
                    Some("UnrecognizedClientException"),
                    Some(400),
                    Some(ErrorKind::Unauthorized),
                ),
                (
                    Some("AccessDeniedException"),
                    Some(400),
                    Some(ErrorKind::Forbidden),
                ),
                (
                    Some("RepositoryNotFoundException"),
                    Some(400),
                    Some(ErrorKind::NotFound),
                ),
                (
                    Some("ThrottlingException"),
                    Some(400),
                    Some(ErrorKind::RateLimited),
                ),
                (Some("ServerException"), Some(500), None),
                (Some("SomethingNew"), Some(403), Some(ErrorKind::Forbidden)),
                (None, Some(401), Some(ErrorKind::Unauthorized)),
                (None, None, None),
            ];
            for (code, status, expected) in cases {
                assert_eq!(kind(code, status), expected, "{code:?} {status:?}");
            }
        }
    }
}
