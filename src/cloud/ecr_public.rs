//! What is particular to public ECR (`[account[:region]@]public.ecr.aws`,
//! docs/configuration.md#source-and-target): its API's region, the alias rule, and its SDK
//! crate's calls behind `RepositoryApi`. Tokens, target repositories and the
//! lister are the flows of [`super::ecr`], with [`super::ecr::EcrApi::Public`].
//!
//! Repository paths on public ECR start with the registry's alias
//! (`public.ecr.aws/<alias>/<name>`); the API knows the repository as `<name>`, so the first
//! path segment is stripped for its calls. Without `auth-refresh` (and without `auth`), pulls
//! from public ECR are anonymous, as Docker's are.

/// The region of the `ecr-public` API when the registry names none: it exists only there.
pub const DEFAULT_REGION: &str = "us-east-1";

/// The region for `ecr-public` calls: the registry's `:region`, else us-east-1.
#[cfg_attr(not(feature = "aws"), allow(dead_code))]
pub(crate) fn api_region(region: &str) -> &str {
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

#[cfg(feature = "aws")]
mod sdk {
    use super::super::ecr::{Answer, Page, RepositoryApi, answer};
    use super::super::{aws, refused};
    use crate::registry::{Error, ErrorKind};

    impl RepositoryApi for aws_sdk_ecrpublic::Client {
        async fn authorization_token(&self) -> Result<(Option<String>, Option<i64>), Error> {
            let output = self.get_authorization_token().send().await;
            let output = output.map_err(|e| {
                aws::failed(
                    "ECR public GetAuthorizationToken",
                    &e,
                    ErrorKind::Unauthorized,
                )
            })?;
            let data = output.authorization_data();
            let data = data.ok_or_else(|| refused("no authorization data"))?;
            let expires_at = data.expires_at().map(|t| t.secs());
            Ok((data.authorization_token().map(str::to_owned), expires_at))
        }

        async fn describe(&self, account: Option<&str>, name: &str) -> Answer {
            let request = self.describe_repositories().repository_names(name);
            let request = request.set_registry_id(account.map(str::to_owned));
            answer(
                request.send().await,
                "ECR public DescribeRepositories",
                |e| e.is_repository_not_found_exception(),
            )
        }

        /// The public API creates repositories in the caller's own registry only.
        async fn create(&self, _account: Option<&str>, name: &str) -> Answer {
            let sent = self.create_repository().repository_name(name).send().await;
            answer(sent, "ECR public CreateRepository", |e| {
                e.is_repository_already_exists_exception()
            })
        }

        async fn page(&self, account: Option<&str>, token: Option<String>) -> Result<Page, Error> {
            let request = self.describe_repositories().max_results(aws::PAGE_SIZE);
            let request = request.set_registry_id(account.map(str::to_owned));
            let sent = request.set_next_token(token).send().await;
            let page = sent.map_err(|e| {
                aws::failed("ECR public DescribeRepositories", &e, ErrorKind::Registry)
            })?;
            let names = page.repositories().iter().map(|r| r.repository_name());
            Ok(aws::page_of(names, page.next_token()))
        }
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
