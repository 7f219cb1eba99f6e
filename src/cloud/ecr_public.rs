//! Public ECR (`[account[:region]@]public.ecr.aws`, docs/configuration.md#source-and-target):
//! registry tokens from the
//! `ecr-public` `GetAuthorizationToken`, target repositories created under the alias rule,
//! and the repository lister.
//!
//! Repository paths on public ECR start with the registry's alias
//! (`public.ecr.aws/<alias>/<name>`); the API knows the repository as `<name>`, so the first
//! path segment is stripped for its calls. Without `auth-refresh` (and without `auth`), pulls
//! from public ECR are anonymous, as Docker's are.

use std::sync::Arc;
use std::time::Duration;

use super::aws::Aws;
#[cfg(feature = "aws")]
use super::token::Fresh;
use super::token::TokenCache;
use crate::config::Location;
use crate::registry::{CredentialProvider, CredentialsFuture};

/// The region of the `ecr-public` API when the registry names none: it exists only there.
pub const DEFAULT_REGION: &str = "us-east-1";

/// The provider for a public ECR location with `auth-refresh`, with tokens from `aws`.
pub fn token_provider(aws: Arc<Aws>, location: &Location) -> Arc<dyn CredentialProvider> {
    let region = match &location.cloud {
        Some(super::CloudRegistry::EcrPublic { region, .. }) => region.clone(),
        _ => String::new(),
    };
    Arc::new(EcrPublicTokens {
        aws,
        region: api_region(&region).to_string(),
        interval: location.auth_refresh,
        cache: TokenCache::default(),
    })
}

/// The region for `ecr-public` calls: the registry's `:region`, else us-east-1.
fn api_region(region: &str) -> &str {
    if region.is_empty() {
        DEFAULT_REGION
    } else {
        region
    }
}

/// The repository name the `ecr-public` API knows: the path without its alias.
///
/// # Errors
///
/// When `path` has no `<alias>/` before a non-empty name.
pub fn api_repository_name(path: &str) -> Result<&str, String> {
    match path.split_once('/') {
        Some((_alias, name)) if !name.is_empty() => Ok(name),
        _ => Err(format!(
            "public ECR repository '{path}' has no alias: public ECR paths are \
             '<alias>/<name>' (public.ecr.aws/<alias>/<name>)"
        )),
    }
}

/// Public ECR registry tokens, renewed every `auth-refresh` and before they expire.
#[derive(Debug)]
pub struct EcrPublicTokens {
    aws: Arc<Aws>,
    region: String,
    interval: Option<Duration>,
    cache: TokenCache,
}

impl CredentialProvider for EcrPublicTokens {
    fn credentials(&self) -> CredentialsFuture<'_> {
        Box::pin(
            self.cache
                .get(self.interval, || fetch_token(&self.aws, &self.region)),
        )
    }

    fn invalidate(&self) {
        self.cache.invalidate();
    }

    fn username(&self) -> &str {
        super::ecr::USERNAME
    }
}

#[cfg(feature = "aws")]
async fn client(aws: &Aws, region: &str) -> Result<aws_sdk_ecrpublic::Client, String> {
    aws.ecr_public(api_region(region)).await
}

#[cfg(feature = "aws")]
async fn fetch_token(aws: &Aws, region: &str) -> Result<Fresh, String> {
    let output = client(aws, region)
        .await?
        .get_authorization_token()
        .send()
        .await
        .map_err(|e| super::aws::error_text("ECR public GetAuthorizationToken", &e))?;
    let data = output.authorization_data().ok_or("no authorization data")?;
    super::ecr::parse_token(
        data.authorization_token(),
        data.expires_at().map(|t| t.secs()),
    )
}

/// Creates the public repository for the target path `<alias>/<name>` unless it exists.
///
/// # Errors
///
/// When the path has no alias, or the `ecr-public` API cannot be reached or refuses.
#[cfg(feature = "aws")]
pub async fn ensure_repository(
    aws: &Aws,
    account: &str,
    region: &str,
    path: &str,
) -> Result<(), String> {
    let name = api_repository_name(path)?;
    let client = client(aws, region).await?;
    let context = |e: String| format!("public ECR target repository '{name}': {e}");
    let mut describe = client.describe_repositories().repository_names(name);
    if !account.is_empty() {
        describe = describe.registry_id(account);
    }
    match describe.send().await {
        Ok(_) => {
            tracing::info!(repository = %name, "ECR target already exists");
            Ok(())
        }
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_repository_not_found_exception()) =>
        {
            tracing::info!(repository = %name, "creating ECR target");
            match client
                .create_repository()
                .repository_name(name)
                .send()
                .await
            {
                Ok(_) => Ok(()),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_repository_already_exists_exception()) =>
                {
                    Ok(())
                }
                Err(e) => Err(context(super::aws::error_text(
                    "ECR public CreateRepository",
                    &e,
                ))),
            }
        }
        Err(e) => Err(context(super::aws::error_text(
            "ECR public DescribeRepositories",
            &e,
        ))),
    }
}

/// The repository names of a public registry, page by page, until `max_items` are reached
/// (`None`: all). As in the original, the last page is not cut.
///
/// # Errors
///
/// When the `ecr-public` API cannot be reached or refuses the listing.
#[cfg(feature = "aws")]
pub async fn list_repositories(
    aws: &Aws,
    account: &str,
    region: &str,
    max_items: Option<usize>,
) -> Result<Vec<String>, String> {
    let client = client(aws, region).await?;
    super::aws::collect_pages(max_items, |token| {
        let mut request = client
            .describe_repositories()
            .max_results(super::aws::PAGE_SIZE);
        if !account.is_empty() {
            request = request.registry_id(account);
        }
        if let Some(token) = token {
            request = request.next_token(token);
        }
        async move {
            let page = request
                .send()
                .await
                .map_err(|e| super::aws::error_text("ECR public DescribeRepositories", &e))?;
            let names = page
                .repositories()
                .iter()
                .filter_map(|r| r.repository_name().map(str::to_string))
                .collect();
            Ok((names, page.next_token().map(str::to_string)))
        }
    })
    .await
}

#[cfg(not(feature = "aws"))]
pub use without_sdk::*;

#[cfg(not(feature = "aws"))]
mod without_sdk {
    use super::Aws;

    pub(super) async fn fetch_token(
        _aws: &Aws,
        _region: &str,
    ) -> Result<super::super::token::Fresh, String> {
        Err(super::super::NO_AWS.into())
    }

    /// Not available: this build has no AWS SDK.
    pub async fn ensure_repository(_aws: &Aws, _a: &str, _r: &str, _p: &str) -> Result<(), String> {
        Err(super::super::NO_AWS.into())
    }

    /// Not available: this build has no AWS SDK.
    pub async fn list_repositories(
        _aws: &Aws,
        _a: &str,
        _r: &str,
        _m: Option<usize>,
    ) -> Result<Vec<String>, String> {
        Err(super::super::NO_AWS.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_rule() {
        assert_eq!(api_repository_name("myalias/busybox"), Ok("busybox"));
        assert_eq!(api_repository_name("myalias/a/b"), Ok("a/b"));
        assert!(api_repository_name("busybox").is_err());
        assert_eq!(api_region(""), "us-east-1");
        assert_eq!(api_region("eu-west-1"), "eu-west-1");
    }
}
