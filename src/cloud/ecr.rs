//! Private ECR (`<account>.dkr.ecr.<region>.amazonaws.com`,
//! docs/configuration.md#source-and-target): registry tokens from `GetAuthorizationToken`, target
//! repositories created when missing, and the repository lister for regex mappings
//! (`DescribeRepositories`, paged).
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

/// The registry user of ECR tokens.
pub const USERNAME: &str = "AWS";

/// The provider for a private ECR location with `auth-refresh`, with tokens from `aws`.
pub fn token_provider(aws: Arc<Aws>, location: &Location) -> Arc<dyn CredentialProvider> {
    let region = match &location.cloud {
        Some(super::CloudRegistry::Ecr { region, .. }) => region.clone(),
        _ => String::new(),
    };
    Arc::new(EcrTokens {
        aws,
        region,
        interval: location.auth_refresh,
        cache: TokenCache::default(),
    })
}

/// ECR registry tokens of one region, renewed every `auth-refresh` and before they expire.
#[derive(Debug)]
pub struct EcrTokens {
    aws: Arc<Aws>,
    region: String,
    interval: Option<Duration>,
    cache: TokenCache,
}

impl CredentialProvider for EcrTokens {
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
        USERNAME
    }
}

/// Turns an ECR authorization token (base64 of `AWS:<password>`) into credentials. Shared
/// with public ECR, whose tokens have the same form.
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
async fn fetch_token(aws: &Aws, region: &str) -> Result<Fresh, String> {
    let client = aws.ecr(region).await?;
    let output = client
        .get_authorization_token()
        .send()
        .await
        .map_err(|e| super::aws::error_text("ECR GetAuthorizationToken", &e))?;
    let data = output
        .authorization_data()
        .first()
        .ok_or("no authorization data")?;
    parse_token(
        data.authorization_token(),
        data.expires_at().map(|t| t.secs()),
    )
}

/// Creates the repository `name` of the ECR registry `account` unless it exists (the
/// original's `ensureTargetExists`).
///
/// # Errors
///
/// When the AWS API cannot be reached or refuses to describe or create the repository; the
/// message names the repository.
#[cfg(feature = "aws")]
pub async fn ensure_repository(
    aws: &Aws,
    account: &str,
    region: &str,
    name: &str,
) -> Result<(), String> {
    let client = aws.ecr(region).await?;
    let context = |e: String| format!("ECR target repository '{name}': {e}");
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
            let mut create = client.create_repository().repository_name(name);
            if !account.is_empty() {
                create = create.registry_id(account);
            }
            match create.send().await {
                Ok(_) => Ok(()),
                // Created by someone else in the meantime: what we wanted.
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_repository_already_exists_exception()) =>
                {
                    Ok(())
                }
                Err(e) => Err(context(super::aws::error_text("ECR CreateRepository", &e))),
            }
        }
        Err(e) => Err(context(super::aws::error_text(
            "ECR DescribeRepositories",
            &e,
        ))),
    }
}

/// The repository names of the ECR registry `account` in `region`, page by page, until
/// `max_items` are reached (`None`: all). As in the original, the last page is not cut.
///
/// # Errors
///
/// When the AWS API cannot be reached or refuses the listing.
#[cfg(feature = "aws")]
pub async fn list_repositories(
    aws: &Aws,
    account: &str,
    region: &str,
    max_items: Option<usize>,
) -> Result<Vec<String>, String> {
    let client = aws.ecr(region).await?;
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
                .map_err(|e| super::aws::error_text("ECR DescribeRepositories", &e))?;
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

    pub(super) async fn fetch_token(_aws: &Aws, _region: &str) -> Result<super::Fresh, String> {
        Err(super::super::NO_AWS.into())
    }

    /// Not available: this build has no AWS SDK.
    pub async fn ensure_repository(_aws: &Aws, _a: &str, _r: &str, _n: &str) -> Result<(), String> {
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
