//! Tag lists and the catalog, following `Link: <…>; rel="next"` pagination.

use reqwest::header::LINK;
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;

use super::auth::Scope;
use super::client::{Registry, header_text, read_limited};
use super::error::{Error, ErrorKind, Result, truncate};
use super::reference::Repository;
use super::transport::Request;

/// A bound on pages, so a registry whose `Link` loops cannot keep us busy forever.
const MAX_PAGES: usize = 10_000;

/// A page of a list is small JSON; this bounds memory for a broken registry.
const MAX_PAGE_SIZE: usize = 16 * 1024 * 1024;

#[derive(Deserialize)]
struct TagsPage {
    /// `null` once all of a repository's manifests were deleted.
    tags: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct CatalogPage {
    repositories: Option<Vec<String>>,
}

impl Registry {
    /// Every tag of `repo`, in the registry's order (Distribution does not sort them).
    ///
    /// # Errors
    ///
    /// A registry [`Error`]: the repository is unknown, access is refused, or an answer is not a
    /// tag list.
    pub async fn list_tags(&self, repo: &Repository) -> Result<Vec<String>> {
        let context = format!("listing tags of {}/{repo}", self.host());
        let first = self
            .url(&format!("v2/{repo}/tags/list"))
            .await
            .map_err(|e| e.context(&context))?;
        let mut tags = Vec::new();
        self.paginate(
            first,
            &[Scope::pull(repo)],
            &context,
            "the repository",
            |bytes| {
                let page: TagsPage = parse_page(bytes)?;
                tags.extend(page.tags.unwrap_or_default());
                Ok(true)
            },
        )
        .await?;
        Ok(tags)
    }

    /// The repositories of the registry, at most `limit` of them (all with `None`). Docker Hub
    /// and many cloud registries do not offer the catalog.
    ///
    /// # Errors
    ///
    /// A registry [`Error`]: the catalog is not offered or refused, or an answer is not a
    /// repository list.
    pub async fn catalog(&self, limit: Option<usize>) -> Result<Vec<String>> {
        let context = format!("listing repositories of {}", self.host());
        let page_size = limit.unwrap_or(usize::MAX).clamp(1, self.inner.page_size);
        match self.catalog_pages(limit, page_size, &context).await {
            // A registry with a lower cap on `n` refuses the page size: ask for less.
            Err(e) if e.status() == Some(400) && page_size > 100 => {
                self.catalog_pages(limit, 100, &context).await
            }
            result => result,
        }
    }

    async fn catalog_pages(
        &self,
        limit: Option<usize>,
        page_size: usize,
        context: &str,
    ) -> Result<Vec<String>> {
        let mut first = self
            .url("v2/_catalog")
            .await
            .map_err(|e| e.context(context))?;
        first
            .query_pairs_mut()
            .append_pair("n", &page_size.to_string());
        let mut names = Vec::new();
        self.paginate(
            first,
            &[Scope::catalog()],
            context,
            "the catalog",
            |bytes| {
                let page: CatalogPage = parse_page(bytes)?;
                names.extend(page.repositories.unwrap_or_default());
                if let Some(limit) = limit
                    && names.len() >= limit
                {
                    names.truncate(limit);
                    return Ok(false);
                }
                Ok(true)
            },
        )
        .await?;
        Ok(names)
    }

    /// GETs `first` and every `next` page after it, giving each body to `page`, which says
    /// whether to go on.
    async fn paginate(
        &self,
        first: Url,
        scopes: &[Scope],
        context: &str,
        subject: &str,
        mut page: impl FnMut(&[u8]) -> Result<bool>,
    ) -> Result<()> {
        let mut next = Some(first);
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > MAX_PAGES {
                return Err(Error::new(
                    ErrorKind::Protocol,
                    format!("more than {MAX_PAGES} pages; the registry's pagination seems to loop"),
                )
                .context(context));
            }
            let response = self
                .execute(Request::new(Method::GET, url.clone()), scopes)
                .await
                .map_err(|e| e.context(context))?;
            if response.status() != StatusCode::OK {
                return Err(self.status_error(response, subject, context).await);
            }
            let link = header_text(response.headers(), LINK.as_str()).map(str::to_owned);
            let final_url = response.url().clone();
            let bytes = read_limited(response, MAX_PAGE_SIZE, "page")
                .await
                .map_err(|e| e.context(context))?;
            if !page(&bytes).map_err(|e| e.context(context))? {
                break;
            }
            next = next_page(&url, &final_url, link.as_deref()).map_err(|e| e.context(context))?;
        }
        Ok(())
    }
}

fn parse_page<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        Error::new(
            ErrorKind::Protocol,
            format!("the registry sent an invalid list ({e})"),
        )
    })
}

/// The next page named by a `Link` header, resolved against the page's final URL. Only a
/// page on the registry itself is followed (same host and port, never from HTTPS down to
/// HTTP): requests carry the registry's credentials.
///
/// # Errors
/// [`ErrorKind::Protocol`] when the link is not a URL or leads elsewhere.
pub(crate) fn next_page(
    requested: &Url,
    answered: &Url,
    link: Option<&str>,
) -> Result<Option<Url>> {
    let Some(target) = link.and_then(next_link) else {
        return Ok(None);
    };
    let shown = || truncate(target, 100);
    let next = answered.join(target).map_err(|e| {
        Error::new(
            ErrorKind::Protocol,
            format!(
                "the registry's Link header names an invalid URL '{}' ({e})",
                shown()
            ),
        )
    })?;
    let same_host = next.host_str() == requested.host_str()
        && next.port_or_known_default() == requested.port_or_known_default();
    let downgrade = requested.scheme() == "https" && next.scheme() != "https";
    if !same_host || downgrade || !matches!(next.scheme(), "http" | "https") {
        return Err(Error::new(
            ErrorKind::Protocol,
            format!(
                "the registry's Link header points to the next page at '{}', which is not on \
                 the registry ({}); not followed, so its credentials stay with it",
                shown(),
                requested.origin().ascii_serialization()
            ),
        ));
    }
    Ok(Some(next))
}

/// The target of the `rel="next"` link in a `Link` header (RFC 8288), which may hold
/// several comma-separated links.
pub(crate) fn next_link(header: &str) -> Option<&str> {
    let mut rest = header;
    loop {
        let start = rest.find('<')?;
        let end = start + rest[start..].find('>')?;
        let target = &rest[start + 1..end];
        let params_end = rest[end..].find('<').map_or(rest.len(), |i| end + i);
        let params = &rest[end + 1..params_end];
        let is_next = params.split(';').any(|p| {
            let p = p.trim().trim_end_matches(',').trim();
            p.split_once('=').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("rel")
                    && v.trim()
                        .trim_matches('"')
                        .split_whitespace()
                        .any(|r| r.eq_ignore_ascii_case("next"))
            })
        });
        if is_next {
            return Some(target);
        }
        rest = &rest[params_end..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_parsing() {
        assert_eq!(
            next_link(r#"</v2/_catalog?last=b&n=2>; rel="next""#),
            Some("/v2/_catalog?last=b&n=2")
        );
        assert_eq!(
            next_link(r#"<https://r.io/a?x=1>; rel="prev", <https://r.io/b?x=2>; rel=next"#),
            Some("https://r.io/b?x=2")
        );
        assert_eq!(next_link(r#"</a>;rel="prev next""#), Some("/a"));
        assert_eq!(next_link(r#"</a>; rel="prev""#), None);
        assert_eq!(next_link(""), None);
        assert_eq!(next_link("garbage"), None);
    }

    #[test]
    fn next_page_stays_on_the_registry() {
        let here = Url::parse("https://r.io:5000/v2/a/tags/list").unwrap();
        let next = |link: &str| next_page(&here, &here, Some(link));
        assert_eq!(
            next(r#"</v2/a/tags/list?last=x>; rel="next""#)
                .unwrap()
                .unwrap()
                .as_str(),
            "https://r.io:5000/v2/a/tags/list?last=x"
        );
        assert_eq!(
            next(r#"<https://r.io:5000/v2/a/tags/list?n=1&last=b>; rel="next""#)
                .unwrap()
                .unwrap()
                .as_str(),
            "https://r.io:5000/v2/a/tags/list?n=1&last=b"
        );
        for elsewhere in [
            r#"<https://evil.example/v2/a/tags/list>; rel="next""#,
            r#"<http://r.io:5000/v2/a/tags/list>; rel="next""#,
            r#"<https://r.io:5001/v2/a/tags/list>; rel="next""#,
            r#"<//evil.example/x>; rel="next""#,
            r#"<file:///etc/passwd>; rel="next""#,
        ] {
            let e = next(elsewhere).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Protocol, "{elsewhere}");
            assert!(e.to_string().contains("not on the registry"), "{e}");
        }
        assert_eq!(next(r#"</a>; rel="prev""#).unwrap(), None);
        assert_eq!(next_page(&here, &here, None).unwrap(), None);
    }

    #[test]
    fn null_tags_are_empty() {
        let page: TagsPage = parse_page(br#"{"name":"a","tags":null}"#).unwrap();
        assert!(page.tags.is_none());
    }
}
