//! Repository listers and regex mappings, end to end: the dregsy binary against real
//! registries (CNCF Distribution) and a local server that speaks the Docker Hub API (login,
//! repositories) and v1 search.

mod support;

use std::collections::BTreeSet;
use std::process::Output;
use std::sync::{Arc, Mutex};

use http_body_util::BodyExt;
use hyper::{Request, StatusCode};
use support::dregsy::{Dregsy, assert_success, log_lines, text};
use support::http::{Server, parse_query, respond};
use support::{ImageOptions, Registry, catalog, list_tags, push_image, tag};

/// Runs dregsy with `args` before `-config=<file>` (e.g. `plan`), the config in a temp file.
fn run(args: &[&str], config: &str, env: &[(&str, &str)]) -> Output {
    Dregsy::with_config(config).args(args).envs(env).output()
}

fn sync(config: &str, env: &[(&str, &str)]) -> Output {
    run(&[], config, env)
}

fn plan_json(config: &str, env: &[(&str, &str)]) -> (Output, serde_json::Value) {
    let out = run(&["plan", "--json"], config, env);
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "plan --json prints JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (out, json)
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn tags_of(registry: &Registry, repo: &str) -> BTreeSet<String> {
    list_tags(registry, repo).into_iter().collect()
}

/// A location block for a plain-HTTP harness registry.
fn location(registry: &Registry) -> String {
    format!(
        "    registry: {}\n    skip-tls-verify: true\n",
        registry.host()
    )
}

fn task(name: &str, source: &str, target: &str, mappings: &str) -> String {
    format!("- name: {name}\n  source:\n{source}  target:\n{target}  mappings:\n{mappings}")
}

#[test]
fn catalog_lists_past_a_page_and_max_items_is_exact_with_a_warning() {
    let source = Registry::builder().access_log().start();
    let target = Registry::start();
    for i in 0..120 {
        push_image(
            &source,
            &format!("many/r{i:03}"),
            "1",
            ImageOptions::default(),
        );
    }
    push_image(&source, "other/x", "1", ImageOptions::default());
    let mappings = "  - from: regex:many/.*\n    tags: ['1']\n";
    let config = |lister: &str| {
        format!(
            "{lister}tasks:\n{}",
            task("t", &location(&source), &location(&target), mappings)
        )
    };

    source.clear_requests();
    let (out, plan) = plan_json(&config("lister:\n  maxItems: -1\n"), &[]);
    assert_success(&out);
    let mapping = &plan["tasks"][0]["mappings"][0];
    assert_eq!(mapping["listed_repositories"], 121, "{mapping}");
    assert_eq!(mapping["repositories"].as_array().map(Vec::len), Some(120));
    assert_eq!(mapping["warnings"], serde_json::json!([]));
    let catalog_requests: Vec<_> = source
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/v2/_catalog"))
        .collect();
    assert!(!catalog_requests.is_empty());

    // The default maxItems (100): exactly 100 listed, and a warning instead of silence.
    let (out, plan) = plan_json(&config(""), &[]);
    assert_success(&out);
    let mapping = &plan["tasks"][0]["mappings"][0];
    assert_eq!(mapping["listed_repositories"], 100, "{mapping}");
    let warning = mapping["warnings"][0].as_str().unwrap_or_default();
    assert!(warning.contains("maxItems (100)"), "{warning}");
    assert_eq!(log_lines(&out, "the source has more than").len(), 1);

    // A small maxItems during a real sync: 5 copied, the warning logged, exit 0.
    let out = sync(&config("lister:\n  maxItems: 5\n"), &[]);
    assert_success(&out);
    assert_eq!(catalog(&target).len(), 5, "{}", text(&out));
    let warnings = log_lines(&out, "the source has more than lister.maxItems (5)");
    assert_eq!(warnings.len(), 1, "{}", text(&out));
    assert_eq!(warnings[0]["level"], "warning");
}

#[test]
fn catalog_follows_link_pages_when_the_registry_caps_the_page_size() {
    // Distribution answers `n` as asked; a proxy that rewrites `n` is what a capping registry
    // looks like. Here: the real registry behind a server that forces pages of 7.
    let source = Registry::start();
    for i in 0..20 {
        push_image(
            &source,
            &format!("paged/r{i:02}"),
            "1",
            ImageOptions::default(),
        );
    }
    let upstream = source.url();
    let client = dregsy::http_client::builder()
        .build()
        .expect("an HTTP client");
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = seen.clone();
    let proxy = Server::start(
        "capping-proxy",
        move |request: Request<hyper::body::Incoming>| {
            let client = client.clone();
            let upstream = upstream.clone();
            let log = log.clone();
            async move {
                let path = request.uri().path().to_string();
                let mut pairs = parse_query(request.uri().query().unwrap_or_default());
                if path == "/v2/_catalog" {
                    log.lock().unwrap().push(request.uri().to_string());
                    pairs.retain(|(k, _)| k != "n");
                    pairs.push(("n".into(), "7".into()));
                }
                let mut url = reqwest::Url::parse(&format!("{upstream}{path}")).unwrap();
                if !pairs.is_empty() {
                    url.query_pairs_mut().extend_pairs(pairs);
                }
                let answer = client.get(url).send().await.unwrap();
                let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
                let link = answer
                    .headers()
                    .get("link")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let body = answer.bytes().await.unwrap();
                let mut response = respond(status, "application/json", body);
                if let Some(link) = link {
                    response.headers_mut().insert("link", link.parse().unwrap());
                }
                response
            }
        },
    );
    let config = format!(
        "lister:\n  maxItems: -1\ntasks:\n{}",
        task(
            "t",
            &format!(
                "    registry: {}\n    skip-tls-verify: true\n",
                proxy.addr()
            ),
            &location(&source),
            "  - from: regex:paged/.*\n    tags: ['1']\n"
        )
    );
    let (out, plan) = plan_json(&config, &[]);
    let mapping = &plan["tasks"][0]["mappings"][0];
    assert_eq!(mapping["listed_repositories"], 20, "{}", text(&out));
    let pages = seen.lock().unwrap().len();
    assert_eq!(
        pages,
        3,
        "20 names in pages of 7: {:?}",
        seen.lock().unwrap()
    );
}

#[test]
fn regex_mappings_with_the_catalog_lister_sync_end_to_end() {
    let source = Registry::builder().access_log().start();
    let target = Registry::start();
    for repo in ["team/api", "team/web", "team/web/assets", "other/tool"] {
        push_image(&source, repo, "1.0", ImageOptions::default());
        tag(&source, repo, "1.0", &["1.1", "latest"]);
    }
    let src = location(&source);
    let dst = location(&target);
    let tasks = [
        task(
            "prefix",
            &src,
            &dst,
            "  - from: regex:team/[a-z]+\n    to: mirror\n    tags: ['semver: >=1.1.0']\n",
        ),
        task(
            "rewrite",
            &src,
            &dst,
            "  - from: regex:other/.*\n    to: regex:^/other/(.*),/tools/$1\n\
             \x20 - from: regex:nothing/.*\n\
             \x20 - from: team/api\n    to: plain/api\n    tags: ['latest']\n",
        ),
    ];
    let config = format!("tasks:\n{}", tasks.concat());
    source.clear_requests();
    let out = sync(&config, &[]);
    // The mapping whose regex matches nothing fails the run; the others still sync.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(tags_of(&target, "mirror/team/api"), set(&["1.1"]));
    assert_eq!(tags_of(&target, "mirror/team/web"), set(&["1.1"]));
    assert_eq!(
        tags_of(&target, "tools/tool"),
        set(&["1.0", "1.1", "latest"])
    );
    assert_eq!(tags_of(&target, "plain/api"), set(&["latest"]));
    assert_eq!(
        catalog(&target).into_iter().collect::<BTreeSet<_>>(),
        set(&[
            "mirror/team/api",
            "mirror/team/web",
            "plain/api",
            "tools/tool"
        ]),
        "team/web/assets is not matched by team/[a-z]+ (whole-name match)"
    );
    // A regex that matches nothing: a warning with the numbers, and that mapping fails,
    // since it was asked for something and did nothing.
    let warnings = log_lines(
        &out,
        "'regex:nothing/.*' matches none of the 4 repositories",
    );
    assert_eq!(warnings.len(), 1, "{}", text(&out));
    assert_eq!(warnings[0]["level"], "warning");
    let failed = log_lines(&out, "mapping failed");
    assert_eq!(failed.len(), 1, "{}", text(&out));
    assert_eq!(
        failed[0]["msg"],
        "mapping failed: it selected no image: 'regex:nothing/.*' matched none of the 4 \
         repositories listed on the source"
    );
    // Both tasks list the same source with the same credentials: one catalog fetch.
    let catalog_fetches = source
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/v2/_catalog"))
        .count();
    assert_eq!(catalog_fetches, 1, "the list is cached across tasks");

    // With the cache off, every mapping that needs the list fetches it.
    source.clear_requests();
    let out = sync(&format!("lister:\n  cacheDuration: -1\n{config}"), &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the regex matching nothing still fails"
    );
    let catalog_fetches = source
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/v2/_catalog"))
        .count();
    assert_eq!(catalog_fetches, 3);
}

#[test]
fn a_lister_failure_fails_only_its_mapping() {
    let source = Registry::start();
    let target = Registry::start();
    push_image(&source, "ok/app", "1", ImageOptions::default());
    // Distribution has no v1 search: the index lister fails; the plain mapping still syncs.
    let src = format!(
        "    registry: {}\n    skip-tls-verify: true\n    lister:\n      type: index\n      search: app\n",
        source.host()
    );
    let config = format!(
        "tasks:\n{}",
        task(
            "t",
            &src,
            &location(&target),
            "  - from: regex:ok/.*\n    to: listed\n  - from: ok/app\n"
        )
    );
    let out = sync(&config, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let failed = log_lines(&out, "mapping failed");
    assert_eq!(failed.len(), 1, "{}", text(&out));
    let message = failed[0]["msg"].as_str().unwrap_or_default();
    assert!(message.contains("index lister"), "{message}");
    assert!(message.contains("HTTP 404"), "{message}");
    assert_eq!(tags_of(&target, "ok/app"), set(&["1"]));
}

#[test]
fn ecr_sources_use_the_ecr_lister() {
    // moto stands in for the ECR API; the account has no repositories yet, so the regex
    // matches nothing (its mapping fails, saying so) and the plain mapping still syncs.
    let moto = support::cloud::Moto::start();
    let source = Registry::start();
    push_image(&source, "ok/app", "1", ImageOptions::default());
    let target = Registry::start();
    let config = format!(
        "tasks:\n{}{}",
        task(
            "ecr",
            "    registry: 123456789012.dkr.ecr.us-east-1.amazonaws.com\n",
            &location(&target),
            "  - from: regex:kubika/.*\n"
        ),
        task(
            "plain",
            &location(&source),
            &location(&target),
            "  - from: ok/app\n"
        )
    );
    let vars = support::cloud::aws_env(&moto.url());
    let env: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let out = sync(&config, &env);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        log_lines(
            &out,
            "mapping failed: it selected no image: 'regex:kubika/.*' matched none of the 0"
        )
        .len(),
        1,
        "{}",
        text(&out)
    );
    assert_eq!(
        log_lines(
            &out,
            "using dedicated ECR lister instead of standard catalog"
        )
        .len(),
        1,
        "{}",
        text(&out)
    );
    assert_eq!(
        log_lines(&out, "mapping failed").len(),
        1,
        "only the empty one: {}",
        text(&out)
    );
    assert_eq!(tags_of(&target, "ok/app"), set(&["1"]));
}

/// What the local Docker Hub API saw.
#[derive(Default)]
struct HubLog {
    logins: Vec<Vec<(String, String)>>,
    repository_requests: Vec<(String, Option<String>)>,
    searches: Vec<Vec<(String, String)>>,
}

/// A local server speaking Docker Hub's API: `POST /v2/users/login/` (user `hubuser`,
/// password `hubpass`), `GET /v2/repositories/hubuser/` in two pages (with one non-image
/// entry), and `GET /v1/search` over `names`, paged by `n` and `page`. Any other request is
/// forwarded to `registry` (if any), so the server can also be the source registry itself.
fn hub_server(names: Vec<String>, registry: Option<String>) -> (Server, Arc<Mutex<HubLog>>) {
    let log = Arc::new(Mutex::new(HubLog::default()));
    let seen = log.clone();
    let client = dregsy::http_client::builder()
        .build()
        .expect("an HTTP client");
    let server = Server::start("hub-api", move |request: Request<hyper::body::Incoming>| {
        let seen = seen.clone();
        let names = names.clone();
        let registry = registry.clone();
        let client = client.clone();
        async move {
            let method = request.method().clone();
            let path = request.uri().path().to_string();
            let query = request.uri().query().unwrap_or_default().to_string();
            let auth = request
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let headers = request.headers().clone();
            let body = request
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let json = |status: StatusCode, value: serde_json::Value| {
                respond(status, "application/json", value.to_string())
            };
            match (method.as_str(), path.as_str()) {
                ("POST", "/v2/users/login/") => {
                    let form = parse_query(&String::from_utf8_lossy(&body));
                    seen.lock().unwrap().logins.push(form.clone());
                    let ok = form.contains(&("username".into(), "hubuser".into()))
                        && form.contains(&("password".into(), "hub pass&%".into()));
                    if ok {
                        // A JWT whose payload says it expires far in the future.
                        let token = "eyJhbGciOiJub25lIn0.eyJleHAiOjQxMDI0NDQ4MDB9.x";
                        json(StatusCode::OK, serde_json::json!({"token": token}))
                    } else {
                        json(
                            StatusCode::UNAUTHORIZED,
                            serde_json::json!({"detail": "Incorrect authentication credentials"}),
                        )
                    }
                }
                ("GET", "/v2/repositories/hubuser/") => {
                    seen.lock()
                        .unwrap()
                        .repository_requests
                        .push((query.clone(), auth.clone()));
                    if auth.as_deref() != Some("JWT eyJhbGciOiJub25lIn0.eyJleHAiOjQxMDI0NDQ4MDB9.x")
                    {
                        return json(
                            StatusCode::UNAUTHORIZED,
                            serde_json::json!({"detail": "no"}),
                        );
                    }
                    let entry = |name: &str, kind: &str| serde_json::json!({"name": name, "namespace": "hubuser", "repository_type": kind});
                    if query.contains("page=2") {
                        json(
                            StatusCode::OK,
                            serde_json::json!({"count": 3, "next": null, "results": [entry("dummy-private", "image")]}),
                        )
                    } else {
                        json(
                            StatusCode::OK,
                            serde_json::json!({
                                "count": 3,
                                "next": "/v2/repositories/hubuser/?page=2&page_size=100",
                                "results": [entry("dummy-public", "image"), entry("a-plugin", "plugin")],
                            }),
                        )
                    }
                }
                ("GET", "/v1/search") => {
                    let pairs = parse_query(&query);
                    seen.lock().unwrap().searches.push(pairs.clone());
                    let get = |k: &str| {
                        pairs
                            .iter()
                            .find(|(key, _)| key == k)
                            .and_then(|(_, v)| v.parse::<usize>().ok())
                    };
                    let n = get("n").unwrap_or(25);
                    let page = get("page").unwrap_or(1);
                    let results: Vec<serde_json::Value> = names
                        .iter()
                        .skip((page - 1) * n)
                        .take(n)
                        .map(|name| serde_json::json!({"name": name, "description": ""}))
                        .collect();
                    json(
                        StatusCode::OK,
                        serde_json::json!({
                            "num_results": names.len(),
                            "num_pages": names.len().div_ceil(n),
                            "page": page,
                            "page_size": n,
                            "query": "",
                            "results": results,
                        }),
                    )
                }
                _ => match registry {
                    Some(upstream) => {
                        let url = format!("{upstream}{path}?{query}");
                        let mut forward = client.request(method, url).body(body);
                        for (name, value) in &headers {
                            if name != "host" {
                                forward = forward.header(name, value);
                            }
                        }
                        let answer = forward.send().await.unwrap();
                        let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
                        let answer_headers = answer.headers().clone();
                        let bytes = answer.bytes().await.unwrap();
                        let mut response = respond(status, "", bytes);
                        for (name, value) in &answer_headers {
                            if name != "content-length" && name != "transfer-encoding" {
                                response.headers_mut().insert(name, value.clone());
                            }
                        }
                        response
                    }
                    None => respond(StatusCode::NOT_FOUND, "text/plain", "not found"),
                },
            }
        }
    });
    (server, log)
}

#[test]
fn dockerhub_lister_logs_in_and_lists_the_users_image_repositories() {
    let source = Registry::start();
    let target = Registry::start();
    for repo in ["hubuser/dummy-public", "hubuser/dummy-private"] {
        push_image(&source, repo, "latest", ImageOptions::default());
    }
    let (hub, log) = hub_server(Vec::new(), None);
    let src = |password: &str| {
        format!(
            "    registry: {}\n    skip-tls-verify: true\n    auth: {}\n    lister:\n      type: dockerhub\n",
            source.host(),
            support::auth_b64("hubuser", password)
        )
    };
    let config = |password: &str| {
        format!(
            "lister:\n  maxItems: -1\n  cacheDuration: -1\ntasks:\n{}",
            task(
                "hub",
                &src(password),
                &location(&target),
                "  - from: regex:hubuser/dummy-.*\n    to: regex:^/hubuser/,/mapping/dh/hubuser/\n\
                 \x20 - from: regex:hubuser/.*\n    to: again\n    tags: ['latest']\n"
            )
        )
    };
    let env = [("DREGSY_DOCKERHUB_API", hub.url())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = sync(&config("hub pass&%"), &env);
    assert_success(&out);
    for name in ["dummy-public", "dummy-private"] {
        assert_eq!(
            tags_of(&target, &format!("mapping/dh/hubuser/{name}")),
            set(&["latest"])
        );
        assert_eq!(
            tags_of(&target, &format!("again/hubuser/{name}")),
            set(&["latest"])
        );
    }
    assert!(
        !catalog(&target).iter().any(|r| r.contains("plugin")),
        "non-image repositories are skipped"
    );
    {
        let log = log.lock().unwrap();
        // The cache is off: two mappings list twice, but the login token is reused.
        assert_eq!(log.logins.len(), 1, "one login");
        assert_eq!(log.repository_requests.len(), 4, "two pages, twice");
        assert!(log.repository_requests[0].0.contains("page_size=100"));
    }

    // A wrong password: the login's 401 fails the mappings with the API's explanation.
    let out = sync(&config("Wr0ngPassw0rd"), &env);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let failed = log_lines(&out, "mapping failed");
    assert_eq!(failed.len(), 2, "{}", text(&out));
    let message = failed[0]["msg"].as_str().unwrap_or_default();
    assert!(message.contains("HTTP 401"), "{message}");
    assert!(
        message.contains("Incorrect authentication credentials"),
        "{message}"
    );
    assert!(
        !text(&out).contains("Wr0ngPassw0rd"),
        "no password in the output"
    );
}

#[test]
fn index_lister_searches_in_pages_and_honours_max_items() {
    let source = Registry::start();
    let target = Registry::start();
    push_image(
        &source,
        "jenkins/jnlp-slave",
        "latest",
        ImageOptions::default(),
    );
    push_image(&source, "jenkins/other", "latest", ImageOptions::default());
    let mut names: Vec<String> = (0..230).map(|i| format!("jenkins/filler-{i:03}")).collect();
    names.insert(150, "jenkins/jnlp-slave".into());
    // The hub server is also the source registry: search answers here, the rest is forwarded.
    let (hub, log) = hub_server(names, Some(source.url()));
    let src = format!(
        "    registry: {}\n    skip-tls-verify: true\n    lister:\n      type: index\n      search: jenkins\n",
        hub.addr()
    );
    let config = |lister: &str| {
        format!(
            "{lister}tasks:\n{}",
            task(
                "search",
                &src,
                &location(&target),
                "  - from: regex:jenkins/jnlp-s.*\n    to: regex:jenkins/,mapping/dh/other-jenkins/\n    tags: ['latest']\n"
            )
        )
    };
    // maxItems -1 (which broke the original's index lister): every page, 100 at a time.
    let out = sync(&config("lister:\n  maxItems: -1\n"), &[]);
    assert_success(&out);
    assert_eq!(
        tags_of(&target, "mapping/dh/other-jenkins/jnlp-slave"),
        set(&["latest"])
    );
    {
        let mut log = log.lock().unwrap();
        let pages: Vec<(String, String)> = log
            .searches
            .iter()
            .map(|q| {
                let get = |k: &str| {
                    q.iter()
                        .find(|(key, _)| key == k)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                };
                assert_eq!(get("q"), "jenkins");
                (get("n"), get("page"))
            })
            .collect();
        assert_eq!(
            pages,
            vec![
                ("100".into(), "1".into()),
                ("100".into(), "2".into()),
                ("100".into(), "3".into())
            ]
        );
        log.searches.clear();
    }
    // maxItems 120: the match at position 151 is beyond it; the warning says so, and the
    // mapping, which selects nothing, fails.
    let (out, plan) = plan_json(&config("lister:\n  maxItems: 120\n"), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let mapping = &plan["tasks"][0]["mappings"][0];
    assert_eq!(
        mapping["error"],
        "it selected no image: 'regex:jenkins/jnlp-s.*' matched none of the 120 repositories \
         listed on the source",
        "{mapping}"
    );
    let warnings = mapping["warnings"].to_string();
    assert!(warnings.contains("maxItems (120)"), "{warnings}");
    assert!(warnings.contains("matches none"), "{warnings}");
}

#[test]
fn index_lister_on_docker_hub_asks_the_hub_index() {
    let names: Vec<String> = vec!["library/ubuntu".into(), "someone/ubuntu-tools".into()];
    let (hub, log) = hub_server(names, None);
    let target = Registry::start();
    // A regex that matches nothing: the plan stops after listing, nothing reaches Docker Hub.
    let config = format!(
        "tasks:\n{}",
        task(
            "hub-search",
            "    registry: docker.io\n    lister:\n      type: index\n      search: ubuntu\n",
            &location(&target),
            "  - from: regex:nobody/.*\n"
        )
    );
    let (out, plan) = plan_json(&config, &[("DREGSY_DOCKERHUB_INDEX", &hub.url())]);
    // Selecting nothing fails the mapping; the message counts what the index listed.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let mapping = &plan["tasks"][0]["mappings"][0];
    assert_eq!(
        mapping["error"],
        "it selected no image: 'regex:nobody/.*' matched none of the 2 repositories listed on \
         the source",
        "{mapping}"
    );
    let log = log.lock().unwrap();
    assert_eq!(log.searches.len(), 1);
    assert!(log.searches[0].contains(&("q".into(), "ubuntu".into())));
    assert!(log.searches[0].contains(&("n".into(), "100".into())));
}

/// The new user's config: a `to` regex anchored on `team/` never matches, because a `to` regex
/// sees `/team/api`. The original copied every image onto its source path and exited 0; the
/// mapping fails instead, in plan and sync, naming the regex, the paths and the fix, and no
/// tag is even listed.
#[test]
fn a_to_regex_that_matches_no_source_path_fails_the_mapping() {
    let source = Registry::builder().access_log().start();
    let target = Registry::start();
    for repo in ["team/api", "team/web"] {
        push_image(&source, repo, "1.0", ImageOptions::default());
    }
    let config = format!(
        "tasks:\n{}",
        task(
            "mirror-team",
            &location(&source),
            &location(&target),
            "  - from: regex:team/.*\n    to: 'regex:^team/(.*),mirror2/$1'\n",
        )
    );
    let want = "task 'mirror-team', mapping #1: the 'to' regex '^team/(.*)' matches none of \
                the 2 source paths it was given ('/team/api', '/team/web'), so every image \
                would keep its source path; a 'to' regex sees the path with its leading '/' \
                (a 'from' regex sees the name without it): did you mean '^/team/(.*)'?";
    source.clear_requests();
    let out = sync(&config, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let failed = log_lines(&out, "mapping failed");
    assert_eq!(failed.len(), 1, "{}", text(&out));
    assert_eq!(failed[0]["msg"], format!("mapping failed: {want}"));
    assert!(
        catalog(&target).is_empty(),
        "nothing copied: {:?}",
        catalog(&target)
    );
    let tag_listings: Vec<String> = source
        .requests()
        .into_iter()
        .map(|r| r.path)
        .filter(|p| p.contains("/tags/list"))
        .collect();
    assert!(tag_listings.is_empty(), "no tags listed: {tag_listings:?}");

    let (out, plan) = plan_json(&config, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(plan["tasks"][0]["mappings"][0]["error"], want, "{plan}");
    let out = run(&["plan"], &config, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains(&format!("    failed: {want}\n")),
        "{printed}"
    );
}

/// Without a `^`, the hint comes from trying the paths without their `/`; a plain `from` is
/// judged on its one path. And with the fix, the same mapping copies where it says.
#[test]
fn a_to_regex_that_needs_the_leading_slash_says_so_and_the_fix_copies() {
    let source = Registry::start();
    let target = Registry::start();
    push_image(&source, "team/api", "1.0", ImageOptions::default());
    let mappings = |to: &str| {
        format!(
            "tasks:\n{}",
            task(
                "t",
                &location(&source),
                &location(&target),
                &format!("  - from: team/api\n    to: '{to}'\n    tags: ['1.0']\n"),
            )
        )
    };
    let out = sync(&mappings(r"regex:\Ateam/(.*),mirror2/$1"), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let failed = log_lines(&out, "mapping failed");
    assert_eq!(
        failed[0]["msg"],
        "mapping failed: task 't', mapping #1: the 'to' regex '\\Ateam/(.*)' does not match the \
         source path it was given ('/team/api'), so every image would keep its source path; a 'to' regex sees the path with its leading '/' (a 'from' regex sees the name \
         without it): it matches 'team/api' but is given '/team/api'",
        "{}",
        text(&out)
    );
    // A regex that matches nothing for another reason gets no hint about the `/`.
    let out = sync(&mappings("regex:^/staff/(.*),/mirror2/$1"), &[]);
    let failed = log_lines(&out, "mapping failed");
    assert_eq!(failed.len(), 1, "{}", text(&out));
    let msg = failed[0]["msg"].as_str().unwrap_or_default();
    assert!(
        msg.ends_with("so every image would keep its source path"),
        "{msg}"
    );
    assert!(catalog(&target).is_empty(), "{:?}", catalog(&target));

    let out = sync(&mappings("regex:^/team/(.*),/mirror2/$1"), &[]);
    assert_success(&out);
    assert_eq!(catalog(&target), vec!["mirror2/api".to_string()]);
}

/// Some source paths matched, some not: the original's rule (those keep their path) holds,
/// with one warning per mapping that counts and names them, in the sync's log and the plan.
#[test]
fn a_to_regex_that_misses_some_paths_warns_once_and_keeps_their_path() {
    let source = Registry::start();
    let target = Registry::start();
    for repo in ["team/api", "team/web", "team/worker"] {
        push_image(&source, repo, "1.0", ImageOptions::default());
    }
    let config = format!(
        "tasks:\n{}",
        task(
            "t",
            &location(&source),
            &location(&target),
            "  - from: regex:team/.*\n    to: 'regex:^/team/(api),/mirror2/$1'\n",
        )
    );
    let want = "the 'to' regex '^/team/(api)' matches 1 of the 3 source paths; 2 keep their \
                source path: '/team/web', '/team/worker'";
    let out = sync(&config, &[]);
    assert_success(&out);
    let warnings = log_lines(&out, "the 'to' regex");
    assert_eq!(warnings.len(), 1, "{}", text(&out));
    assert_eq!(warnings[0]["msg"], want);
    assert_eq!(warnings[0]["level"], "warning");
    assert_eq!(warnings[0]["task"], "t");
    assert_eq!(
        catalog(&target).into_iter().collect::<BTreeSet<_>>(),
        set(&["mirror2/api", "team/web", "team/worker"])
    );
    let out = run(&["plan"], &config, &[]);
    assert_success(&out);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains(&format!("    warning: {want}\n")),
        "{printed}"
    );
}
