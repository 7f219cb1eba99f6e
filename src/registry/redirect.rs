//! The redirects every HTTP client of dregsy follows (docs/behaviour.md, "HTTP").

use reqwest::Url;

/// The most redirects one request follows.
const MAX_REDIRECTS: usize = 10;

/// The redirects every HTTP client of dregsy follows: at most 10, never from
/// HTTPS down to plain HTTP (docs/behaviour.md, "HTTP").
pub fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        match redirect_refusal(attempt.previous(), attempt.url()) {
            Some(why) => attempt.error(why),
            None => attempt.follow(),
        }
    })
}

/// Why a redirect to `next` must not be followed after the URLs `previous`, if it must not:
/// too many of them, or a step from HTTPS down to plain HTTP (which would expose the
/// request, and what a storage URL carries, on the network).
pub(crate) fn redirect_refusal(previous: &[Url], next: &Url) -> Option<String> {
    if previous.len() >= MAX_REDIRECTS {
        return Some(format!("more than {MAX_REDIRECTS} redirects"));
    }
    let from_https = previous.iter().any(|u| u.scheme() == "https");
    if from_https && next.scheme() != "https" {
        return Some(format!(
            "refused a redirect from HTTPS to {}://{}",
            next.scheme(),
            next.host_str().unwrap_or("")
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_never_leave_https() {
        let https = Url::parse("https://r.io/v2/a/blobs/x").unwrap();
        let http = Url::parse("http://cdn.io/x").unwrap();
        let cdn = Url::parse("https://cdn.io/x").unwrap();
        assert_eq!(redirect_refusal(std::slice::from_ref(&https), &cdn), None);
        assert!(
            redirect_refusal(std::slice::from_ref(&https), &http)
                .unwrap()
                .contains("HTTPS")
        );
        assert!(redirect_refusal(&[https.clone(), cdn.clone()], &http).is_some());
        assert_eq!(redirect_refusal(std::slice::from_ref(&http), &cdn), None);
        assert_eq!(redirect_refusal(std::slice::from_ref(&http), &http), None);
        let many = vec![cdn.clone(); MAX_REDIRECTS];
        assert!(redirect_refusal(&many, &cdn).unwrap().contains("redirects"));
    }
}
