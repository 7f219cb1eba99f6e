//! ECR, private (`<account>.dkr.ecr.<region>.amazonaws.com`) and public
//! (`[account[:region]@]public.ecr.aws`), docs/configuration.md#source-and-target: registry
//! tokens from `GetAuthorizationToken`, target repositories created when missing, and the
//! repository lister for regex mappings (`DescribeRepositories`, paged).
//!
//! The two APIs make the same calls, but the SDK has a crate of its own for each, with types
//! of their own. Each crate's client implements the small `RepositoryApi` (the private one
//! here, the public one in [`super::ecr_public`]), and every flow (a token, a repository made
//! sure of, a listing) is written once over it. [`EcrApi`] says which of the two a call is for.
//!
//! AWS credentials come from the run's [`Aws`] side (by default the SDK's chain), never from
//! the config's `auth`.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;

use super::aws::Aws;
use super::token::{Fresh, TokenCache};
use crate::config::Location;
use crate::registry::{CredentialProvider, Credentials, CredentialsFuture};

/// The registry user of ECR tokens, private and public.
pub const USERNAME: &str = "AWS";

/// Which of the two ECR APIs a call goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcrApi {
    /// Private ECR (`ecr`), one registry per account and region.
    Private,
    /// Public ECR (`ecr-public`), whose repository paths start with the registry's alias
    /// ([`super::ecr_public`]).
    Public,
}

#[cfg(feature = "aws")]
impl EcrApi {
    /// How messages name the registry's target repositories: `ECR` or `public ECR`.
    fn target_label(self) -> &'static str {
        match self {
            EcrApi::Private => "ECR",
            EcrApi::Public => "public ECR",
        }
    }
}

/// The provider for an ECR location (private or public) with `auth-refresh`, with tokens from
/// `aws`.
pub fn token_provider(aws: Arc<Aws>, location: &Location) -> Arc<dyn CredentialProvider> {
    let (api, region) = match &location.cloud {
        Some(super::CloudRegistry::EcrPublic { region, .. }) => (EcrApi::Public, region.clone()),
        Some(super::CloudRegistry::Ecr { region, .. }) => (EcrApi::Private, region.clone()),
        _ => (EcrApi::Private, String::new()),
    };
    Arc::new(EcrTokens {
        api,
        aws,
        region,
        interval: location.auth_refresh,
        cache: TokenCache::default(),
    })
}

/// ECR registry tokens of one API and region, renewed every `auth-refresh` and before they
/// expire.
#[derive(Debug)]
pub struct EcrTokens {
    api: EcrApi,
    aws: Arc<Aws>,
    region: String,
    interval: Option<Duration>,
    cache: TokenCache,
}

impl CredentialProvider for EcrTokens {
    fn credentials(&self) -> CredentialsFuture<'_> {
        Box::pin(self.cache.get(self.interval, || {
            fetch_token(self.api, &self.aws, &self.region)
        }))
    }

    fn invalidate(&self) {
        self.cache.invalidate();
    }

    fn username(&self) -> &str {
        USERNAME
    }
}

/// Turns an ECR authorization token (base64 of `AWS:<password>`, in both APIs) into
/// credentials.
#[cfg_attr(not(feature = "aws"), allow(dead_code))]
pub(crate) fn parse_token(token: Option<&str>, expires_at: Option<i64>) -> Result<Fresh, String> {
    let token = token.ok_or("no authorization data")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or("failed to parse credentials")?;
    let parts: Vec<&str> = decoded.split(':').collect();
    let [user, password] = parts.as_slice() else {
        return Err("failed to parse credentials".into());
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    Ok(Fresh {
        credentials: Credentials::new(*user, *password),
        // An expiry in the past (as some stand-ins send) counts as unknown.
        valid_for: expires_at
            .filter(|at| *at > now)
            .map(|at| Duration::from_secs((at - now) as u64)),
    })
}

#[cfg(feature = "aws")]
use sdk::fetch_token;
#[cfg(feature = "aws")]
pub(crate) use sdk::{Answer, Page, RepositoryApi, answer};
#[cfg(feature = "aws")]
pub use sdk::{ensure_repository, list_repositories};

#[cfg(feature = "aws")]
mod sdk {
    use std::future::Future;

    use aws_sdk_ecr::config::http::HttpResponse;
    use aws_sdk_ecr::error::{ProvideErrorMetadata, SdkError};

    use super::super::aws::{self, Aws};
    use super::super::token::Fresh;
    use super::super::{ecr_public, refused};
    use super::{EcrApi, parse_token};
    use crate::registry::{Error, ErrorKind};

    /// One page of a repository listing: its names, and the token of the next page if any.
    pub(crate) type Page = (Vec<String>, Option<String>);

    /// What a call that may meet an expected refusal answered.
    pub(crate) enum Answer {
        /// It did what was asked.
        Done,
        /// The refusal the flow expects: `DescribeRepositories` found no such repository,
        /// `CreateRepository` found it already there.
        Expected,
        /// Any other failure.
        Failed(Error),
    }

    /// The calls dregsy makes to an ECR API, over the SDK crate's own types. `account` is the
    /// registry ID (`None`: the caller's own).
    pub(crate) trait RepositoryApi {
        /// `GetAuthorizationToken`: the token and when it expires (seconds since the epoch).
        fn authorization_token(
            &self,
        ) -> impl Future<Output = Result<(Option<String>, Option<i64>), Error>> + Send;

        /// `DescribeRepositories` of one repository; [`Answer::Expected`] when it does not
        /// exist.
        fn describe(
            &self,
            account: Option<&str>,
            name: &str,
        ) -> impl Future<Output = Answer> + Send;

        /// `CreateRepository`; [`Answer::Expected`] when it exists already.
        fn create(&self, account: Option<&str>, name: &str) -> impl Future<Output = Answer> + Send;

        /// One page of `DescribeRepositories`, after the page `token` names (`None`: the first).
        fn page(
            &self,
            account: Option<&str>,
            token: Option<String>,
        ) -> impl Future<Output = Result<Page, Error>> + Send;
    }

    /// The [`Answer`] of a call: `expected` tells the refusal the flow expects.
    pub(crate) fn answer<O, E>(
        sent: Result<O, SdkError<E, HttpResponse>>,
        operation: &str,
        expected: impl Fn(&E) -> bool,
    ) -> Answer
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        match sent {
            Ok(_) => Answer::Done,
            Err(e) if e.as_service_error().is_some_and(expected) => Answer::Expected,
            Err(e) => Answer::Failed(aws::failed(operation, &e, ErrorKind::Registry)),
        }
    }

    /// The account as the API takes it: none for the caller's own.
    fn registry_id(account: &str) -> Option<&str> {
        Some(account).filter(|a| !a.is_empty())
    }

    /// A registry token of `api` in `region`. A failure the answer does not name otherwise is
    /// a credential failure: no token could be had.
    pub(super) async fn fetch_token(api: EcrApi, aws: &Aws, region: &str) -> Result<Fresh, Error> {
        let (token, expires_at) = match api {
            EcrApi::Private => aws.ecr(region).await?.authorization_token().await?,
            EcrApi::Public => {
                let client = aws.ecr_public(ecr_public::api_region(region)).await?;
                client.authorization_token().await?
            }
        };
        parse_token(token.as_deref(), expires_at).map_err(refused)
    }

    /// Creates the repository `name` of the registry `account` in `region` unless it exists
    /// (the original's `ensureTargetExists`). For public ECR, `name` is the target path
    /// `<alias>/<name>`, and `account` and `region` may be empty.
    ///
    /// # Errors
    ///
    /// When a public path has no alias, or the AWS API cannot be reached or refuses to describe
    /// or create the repository; the message names the repository.
    pub async fn ensure_repository(
        api: EcrApi,
        aws: &Aws,
        account: &str,
        region: &str,
        name: &str,
    ) -> Result<(), Error> {
        match api {
            EcrApi::Private => ensure(api, &aws.ecr(region).await?, account, name).await,
            EcrApi::Public => {
                let name = ecr_public::api_repository_name(name)
                    .map_err(|e| Error::new(ErrorKind::Invalid, e))?;
                let client = aws.ecr_public(ecr_public::api_region(region)).await?;
                ensure(api, &client, account, name).await
            }
        }
    }

    async fn ensure(
        api: EcrApi,
        client: &impl RepositoryApi,
        account: &str,
        name: &str,
    ) -> Result<(), Error> {
        let account = registry_id(account);
        let failed = |e: Error| {
            Err(e.within(format_args!(
                "{} target repository '{name}'",
                api.target_label()
            )))
        };
        match client.describe(account, name).await {
            Answer::Done => {
                tracing::info!(repository = %name, "ECR target already exists");
                Ok(())
            }
            Answer::Expected => {
                tracing::info!(repository = %name, "creating ECR target");
                match client.create(account, name).await {
                    // Created by someone else in the meantime: what we wanted.
                    Answer::Done | Answer::Expected => Ok(()),
                    Answer::Failed(e) => failed(e),
                }
            }
            Answer::Failed(e) => failed(e),
        }
    }

    /// The repository names of the registry `account` in `region` (for public ECR both may be
    /// empty), page by page, until `max_items` are reached (`None`: all). As in the original,
    /// the last page is not cut.
    ///
    /// # Errors
    ///
    /// When the AWS API cannot be reached or refuses the listing.
    pub async fn list_repositories(
        api: EcrApi,
        aws: &Aws,
        account: &str,
        region: &str,
        max_items: Option<usize>,
    ) -> Result<Vec<String>, Error> {
        match api {
            EcrApi::Private => list(&aws.ecr(region).await?, account, max_items).await,
            EcrApi::Public => {
                let client = aws.ecr_public(ecr_public::api_region(region)).await?;
                list(&client, account, max_items).await
            }
        }
    }

    async fn list(
        client: &impl RepositoryApi,
        account: &str,
        max_items: Option<usize>,
    ) -> Result<Vec<String>, Error> {
        let account = registry_id(account);
        aws::collect_pages(max_items, |token| client.page(account, token)).await
    }

    impl RepositoryApi for aws_sdk_ecr::Client {
        async fn authorization_token(&self) -> Result<(Option<String>, Option<i64>), Error> {
            let output = self.get_authorization_token().send().await.map_err(|e| {
                aws::failed("ECR GetAuthorizationToken", &e, ErrorKind::Unauthorized)
            })?;
            let data = output.authorization_data().first();
            let data = data.ok_or_else(|| refused("no authorization data"))?;
            let token = data.authorization_token().map(str::to_owned);
            Ok((token, data.expires_at().map(|t| t.secs())))
        }

        async fn describe(&self, account: Option<&str>, name: &str) -> Answer {
            let request = self.describe_repositories().repository_names(name);
            let sent = request
                .set_registry_id(account.map(str::to_owned))
                .send()
                .await;
            answer(sent, "ECR DescribeRepositories", |e| {
                e.is_repository_not_found_exception()
            })
        }

        async fn create(&self, account: Option<&str>, name: &str) -> Answer {
            let request = self.create_repository().repository_name(name);
            let sent = request
                .set_registry_id(account.map(str::to_owned))
                .send()
                .await;
            answer(sent, "ECR CreateRepository", |e| {
                e.is_repository_already_exists_exception()
            })
        }

        async fn page(&self, account: Option<&str>, token: Option<String>) -> Result<Page, Error> {
            let request = self.describe_repositories().max_results(aws::PAGE_SIZE);
            let request = request.set_registry_id(account.map(str::to_owned));
            let page = request.set_next_token(token).send().await;
            let page =
                page.map_err(|e| aws::failed("ECR DescribeRepositories", &e, ErrorKind::Registry))?;
            let names = page.repositories().iter().map(|r| r.repository_name());
            Ok(aws::page_of(names, page.next_token()))
        }
    }
}

#[cfg(not(feature = "aws"))]
use without_sdk::fetch_token;
#[cfg(not(feature = "aws"))]
pub use without_sdk::{ensure_repository, list_repositories};

#[cfg(not(feature = "aws"))]
mod without_sdk {
    use super::super::no_aws;
    use super::super::token::Fresh;
    use super::{Aws, EcrApi};
    use crate::registry::Error;

    pub(super) async fn fetch_token(_: EcrApi, _: &Aws, _region: &str) -> Result<Fresh, Error> {
        Err(no_aws())
    }

    /// Not available: this build has no AWS SDK.
    pub async fn ensure_repository(
        _: EcrApi,
        _: &Aws,
        _account: &str,
        _region: &str,
        _name: &str,
    ) -> Result<(), Error> {
        Err(no_aws())
    }

    /// Not available: this build has no AWS SDK.
    pub async fn list_repositories(
        _: EcrApi,
        _: &Aws,
        _account: &str,
        _region: &str,
        _max_items: Option<usize>,
    ) -> Result<Vec<String>, Error> {
        Err(no_aws())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_forms() {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let fresh = parse_token(Some(&b64("AWS:secret-token")), Some(4_102_444_800)).expect("ok");
        assert_eq!(fresh.credentials, Credentials::new("AWS", "secret-token"));
        assert!(fresh.valid_for.is_some());
        // An expiry in the past is treated as unknown.
        let fresh = parse_token(Some(&b64("AWS:x")), Some(1_420_070_400)).expect("ok");
        assert_eq!(fresh.valid_for, None);
        for bad in [b64("no-colon"), b64("a:b:c"), "!!".to_string()] {
            assert_eq!(
                parse_token(Some(&bad), None).err().as_deref(),
                Some("failed to parse credentials")
            );
        }
        assert_eq!(
            parse_token(None, None).err().as_deref(),
            Some("no authorization data")
        );
    }
}
