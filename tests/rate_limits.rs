//! Registry rate limits (docs/behaviour.md, "Rate limits"): a 429 pauses the whole host, a
//! used-up budget or a 429 storm stops the host for the run with one error for the images
//! left, and the budget a registry announces is logged. Real registries behind the
//! fault-injecting proxy, which answers as Docker Hub does.

mod support;

use std::process::Output;
use std::time::Duration;

use dregsy::registry::{
    ErrorKind, Registry as Client, RegistryHost, RegistryOptions, Repository, RetryPolicy,
    TagOrDigest,
};
use support::dregsy::{log_lines, run_dregsy, text};
use support::{FaultProxy, ImageOptions, Registry, Rule, manifest_digest, push_image, tag};

/// A registry holding one small image under `tags` in `repo`.
fn source_with_tags(repo: &str, tags: &[&str]) -> (Registry, String) {
    let source = Registry::start();
    let image = push_image(&source, repo, tags[0], ImageOptions::default());
    tag(&source, repo, tags[0], &tags[1..]);
    (source, image.digest)
}

/// A one-task config: the proxy as source, `target` as target, one mapping of `repo` with
/// `tags`.
fn config(
    proxy: &FaultProxy,
    target: &Registry,
    repo: &str,
    tags: &[&str],
    native: &str,
) -> String {
    let tag_list: Vec<String> = tags.iter().map(|t| format!("'{t}'")).collect();
    format!(
        "native:\n{native}tasks:\n- name: limited\n  source:\n    registry: {}\n    skip-tls-verify: true\n  target:\n    registry: {}\n    skip-tls-verify: true\n  mappings:\n  - from: {repo}\n    tags: [{}]\n",
        proxy.host(),
        target.host(),
        tag_list.join(", ")
    )
}

fn tags(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("t{i}")).collect()
}

fn messages(out: &Output, prefix: &str) -> Vec<String> {
    log_lines(out, prefix)
        .iter()
        .map(|l| l["msg"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The one error for the images left on `proxy`'s host: asserts the run exited 1 with exactly
/// one such message, starting `rate limit of <host> exhausted; <left> images left for the next
/// run`, and no image reported as failed; returns that message.
fn the_one_left_message(out: &Output, proxy: &FaultProxy, left: usize) -> String {
    assert_eq!(out.status.code(), Some(1), "{}", text(out));
    let found: Vec<String> = messages(out, "rate limit of")
        .into_iter()
        .filter(|m| m.contains("images left"))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one error for all images left:\n{}",
        text(out)
    );
    assert!(
        found[0].starts_with(&format!(
            "rate limit of {} exhausted; {left} images left for the next run",
            proxy.host()
        )),
        "{}",
        found[0]
    );
    assert!(messages(out, "image failed").is_empty(), "{}", text(out));
    found[0].clone()
}

#[tokio::test]
async fn a_429_pauses_every_request_to_the_host_until_retry_after() {
    let (source, _) = source_with_tags("paused/app", &["a", "b"]);
    let proxy = FaultProxy::start(
        &source.url(),
        vec![
            Rule::fail("HEAD", "/manifests/a$", 1, 429)
                .retry_after(2)
                .with_header("ratelimit-remaining", "50"),
        ],
    );
    let mut options =
        RegistryOptions::new(RegistryHost::parse(&format!("http://{}", proxy.host())).unwrap());
    options.retry = RetryPolicy {
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(100),
        ..RetryPolicy::default()
    };
    let client = Client::new(options).unwrap();
    let repo = Repository::parse("paused/app").unwrap();
    let first = {
        let (client, repo) = (client.clone(), repo.clone());
        tokio::spawn(async move {
            client
                .head_manifest(&repo, &TagOrDigest::tag("a").unwrap())
                .await
        })
    };
    // The second request starts only once the client took in the first one's 429: it reads
    // the budget the 429 carries in the same step as it pauses the host.
    while client.rate_limit_budget().is_none() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let second = client
        .head_manifest(&repo, &TagOrDigest::tag("b").unwrap())
        .await;
    assert!(second.expect("b after the pause").is_some());
    assert!(first.await.unwrap().expect("a after its retry").is_some());

    let requests = proxy.requests();
    let refused = requests.iter().find(|r| r.status == 429).unwrap();
    let b = requests
        .iter()
        .find(|r| r.path.ends_with("/manifests/b"))
        .unwrap();
    // A lower bound only: the pause holds the other request at least as long as asked.
    assert!(
        b.arrived >= refused.answered + Duration::from_millis(1900),
        "the request for b went out {:?} after the 429, within its Retry-After of 2 s",
        b.arrived.saturating_duration_since(refused.answered)
    );
}

#[tokio::test]
async fn a_retry_after_of_a_year_stops_the_host_at_once() {
    let (source, _) = source_with_tags("year/app", &["a"]);
    let proxy = FaultProxy::start(
        &source.url(),
        vec![Rule::fail("*", "/manifests/", 1000, 429).retry_after(365 * 24 * 3600)],
    );
    let options =
        RegistryOptions::new(RegistryHost::parse(&format!("http://{}", proxy.host())).unwrap());
    let client = Client::new(options).unwrap();
    let repo = Repository::parse("year/app").unwrap();
    let error = client
        .head_manifest(&repo, &TagOrDigest::tag("a").unwrap())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::RateLimited, "{error}");
    let host = proxy.host();
    assert_eq!(error.registry(), Some(host.as_str()));
    let text = error.to_string();
    assert!(
        text.contains(&format!("rate limit of {host} exhausted")),
        "{text}"
    );
    assert!(text.contains("asks to wait 31536000 s"), "{text}");
    // Nothing more goes to that host in this run.
    let again = client.list_tags(&repo).await.unwrap_err();
    assert_eq!(again.kind(), ErrorKind::RateLimited);
    assert_eq!(proxy.requests().len(), 1, "{:?}", proxy.requests());
    assert!(client.rate_limit_exhausted().is_some());
}

#[test]
fn a_used_up_budget_stops_the_host_and_leaves_the_rest_for_the_next_run() {
    let names = tags(5);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let (source, digest) = source_with_tags("hub/app", &names);
    let target = Registry::start();
    // Three manifest GETs left, as Docker Hub counts them.
    let proxy = FaultProxy::start(
        &source.url(),
        vec![Rule::rate_limit("/manifests/", 100, 3, 21600)],
    );
    let cfg = config(
        &proxy,
        &target,
        "hub/app",
        &names,
        "  parallel-images: 1\n  tries: 2\n",
    );
    let out = run_dregsy(&cfg, &[]);
    the_one_left_message(&out, &proxy, 2);
    assert_eq!(messages(&out, "image copied").len(), 3, "{}", text(&out));
    // Nothing was asked of the registry once its budget was 0: no 429 at all.
    let requests = proxy.requests();
    assert!(requests.iter().all(|r| r.status != 429), "{requests:?}");
    let gets = requests
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("/manifests/"))
        .count();
    assert_eq!(gets, 3, "{requests:?}");
    let copied = names
        .iter()
        .filter(|t| manifest_digest(&target, "hub/app", t).as_deref() == Some(digest.as_str()))
        .count();
    assert_eq!(copied, 3);
}

#[test]
fn a_429_storm_past_the_retries_is_one_error_not_one_per_image() {
    let names = tags(20);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let (source, _) = source_with_tags("storm/app", &names);
    let target = Registry::start();
    let proxy = FaultProxy::start(
        &source.url(),
        vec![Rule::fail("*", "/manifests/", 100_000, 429)],
    );
    // One copy slot: 16 image jobs in flight at once, so 4 wait for a slot.
    let cfg = config(
        &proxy,
        &target,
        "storm/app",
        &names,
        "  parallel-images: 1\n  tries: 2\n",
    );
    let out = run_dregsy(&cfg, &[]);
    let left = the_one_left_message(&out, &proxy, 20);
    assert!(
        left.contains("429 Too Many Requests to every one of 2 tries"),
        "{left}"
    );
    // The 4 jobs that waited for a slot sent nothing: at most 16 jobs × 2 tries (and the
    // scheme probe) reached the registry, not 20 × 2.
    let sent = proxy.requests().len();
    assert!(
        sent <= 16 * 2 + 1,
        "{sent} requests reached the rate-limited registry"
    );
}

#[test]
fn the_budget_is_logged_at_the_end_and_a_low_one_warned_about_once() {
    let (source, _) = source_with_tags("low/app", &["1", "2"]);
    let target = Registry::start();
    let proxy = FaultProxy::start(
        &source.url(),
        vec![Rule::rate_limit("/manifests/", 100, 9, 21600)],
    );
    let cfg = config(
        &proxy,
        &target,
        "low/app",
        &["1", "2"],
        "  parallel-images: 1\n",
    );
    let out = run_dregsy(&cfg, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let host = proxy.host();
    let lines = log_lines(&out, &format!("rate limit of {host}: "));
    let warnings: Vec<_> = lines.iter().filter(|l| l["level"] == "warning").collect();
    assert_eq!(warnings.len(), 1, "{}", text(&out));
    assert!(
        warnings[0]["msg"]
            .as_str()
            .unwrap()
            .contains("of 100 requests per 21600 s left"),
        "{}",
        warnings[0]
    );
    let last = lines.last().expect("the budget at the end of the run");
    assert_eq!(last["level"], "info", "{last}");
    assert_eq!(
        last["msg"],
        format!("rate limit of {host}: 7 of 100 requests per 21600 s left")
    );
}

#[test]
fn the_skopeo_relay_starts_no_copy_once_the_budget_is_used_up() {
    let names = tags(3);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let (source, _) = source_with_tags("relayed/app", &names);
    let target = Registry::start();
    // The first answer already says nothing is left.
    let proxy = FaultProxy::start(
        &source.url(),
        vec![Rule::rate_limit("/manifests/", 100, 0, 21600)],
    );
    let cfg = format!(
        "relay: skopeo\n{}",
        config(&proxy, &target, "relayed/app", &names, "  tries: 2\n")
    );
    let out = run_dregsy(&cfg, &[]);
    the_one_left_message(&out, &proxy, 3);
    // skopeo never ran: no manifest GET reached the registry.
    let requests = proxy.requests();
    assert!(
        !requests
            .iter()
            .any(|r| r.method == "GET" && r.path.contains("/manifests/")),
        "{requests:?}"
    );
}
