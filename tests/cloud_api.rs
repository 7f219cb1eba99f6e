//! The cloud side against local stand-ins: ECR tokens, repository creation and listing
//! against moto; public ECR against a local `ecr-public` API; Google tokens from a service
//! account key and from a metadata server; and the messages when credentials are missing.
//!
//! The SDKs read their settings from the environment, which is process-wide, so this binary
//! holds one test that sets it once and walks through everything in order (the other test
//! reads no environment).

mod support;

use std::path::Path;

use dregsy::cloud::{Cloud, ecr, ecr_public};
use dregsy::config::{self, Location, Task};
use dregsy::registry::{Credentials, Repository};
use support::cloud::{ECR_PUBLIC_PASSWORD, EcrPublicApi, GoogleApi, Moto, aws_env};

fn task(source: &str, target: &str) -> Task {
    let yaml = format!(
        "tasks:\n- name: t\n  source:\n{source}  target:\n{target}  mappings:\n  - from: a\n"
    );
    let (config, _) = config::load_str(Path::new("test.yaml"), &yaml).expect("config loads");
    config.tasks.into_iter().next().expect("one task")
}

fn target(block: &str) -> Location {
    task("    registry: 127.0.0.1:5000\n", block).target
}

fn set_env(key: &str, value: &str) {
    // SAFETY: this binary has a single test, and no thread of it reads the environment
    // while the test changes it (the stand-in servers never do).
    unsafe { std::env::set_var(key, value) }
}

fn remove_env(key: &str) {
    // SAFETY: as in `set_env`.
    unsafe { std::env::remove_var(key) }
}

#[test]
fn cloud_apis_against_local_stand_ins() {
    let moto = Moto::start();
    let public = EcrPublicApi::start();
    let google = GoogleApi::start("ya29.test-access-token", 3600);
    for (k, v) in aws_env("http://127.0.0.1:9") {
        set_env(&k, &v);
    }
    // Service-specific endpoints, as users set them: ECR to moto, ECR public to the stand-in.
    remove_env("AWS_ENDPOINT_URL");
    set_env("AWS_ENDPOINT_URL_ECR", &moto.url());
    set_env("AWS_ENDPOINT_URL_ECR_PUBLIC", &public.url());
    remove_env("GOOGLE_APPLICATION_CREDENTIALS");
    set_env("GCE_METADATA_HOST", &google.host());
    set_env("NO_PROXY", "127.0.0.1,localhost");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        // Private ECR: the token of GetAuthorizationToken, as user AWS.
        let ecr_target = target(
            "    registry: 123456789012.dkr.ecr.us-east-1.amazonaws.com\n    auth-refresh: 1h\n",
        );
        let cloud = Cloud::new();
        let (identity, provider) = cloud.provider(&ecr_target).expect("ECR has a provider");
        assert_eq!(identity, "ecr:123456789012:us-east-1");
        assert_eq!(
            provider.credentials().await.expect("ECR token"),
            Credentials::new("AWS", "123456789012-auth-token")
        );
        assert!(!format!("{provider:?}").contains("auth-token"));
        // Without auth-refresh the config's auth is used, as in the original.
        let static_target = target("    registry: 123456789012.dkr.ecr.us-east-1.amazonaws.com\n");
        assert!(cloud.provider(&static_target).is_none());

        // Repository creation: created when missing, found when present, once per run.
        let repos: Vec<Repository> = ["mirror/busybox", "mirror/alpine"]
            .iter()
            .map(|r| Repository::parse(r).expect("repo"))
            .collect();
        cloud
            .ensure_repositories(&ecr_target, &repos)
            .await
            .expect("created");
        cloud
            .ensure_repositories(&ecr_target, &repos)
            .await
            .expect("cached");
        ecr::ensure_repository("123456789012", "us-east-1", "mirror/busybox")
            .await
            .expect("exists");
        let source = task(
            "    registry: 123456789012.dkr.ecr.us-east-1.amazonaws.com\n",
            "    registry: 127.0.0.1:5000\n",
        )
        .source;
        let mut listed = dregsy::cloud::list_ecr_repositories(&source, None)
            .await
            .expect("an ECR source has the ECR lister")
            .expect("listed");
        listed.sort();
        assert_eq!(listed, ["mirror/alpine", "mirror/busybox"]);

        // moto answers DescribeRepositories in one page; paging is checked against the
        // ecr-public stand-in below, which pages as AWS does.
        for i in 0..3 {
            ecr::ensure_repository("123456789012", "us-east-1", &format!("many/r{i}"))
                .await
                .expect("created");
        }
        let all = ecr::list_repositories("123456789012", "us-east-1", Some(1))
            .await
            .expect("all");
        assert_eq!(all.len(), 5);

        // Public ECR: `account:region@` is parsed and stripped; the token comes from
        // ecr-public; the alias is not part of the API's repository name.
        let public_target =
            target("    registry: 123456789012:us-east-1@public.ecr.aws\n    auth-refresh: 2h\n");
        assert_eq!(public_target.registry, "public.ecr.aws");
        let (_, provider) = cloud.provider(&public_target).expect("public ECR provider");
        assert_eq!(
            provider.credentials().await.expect("public token"),
            Credentials::new("AWS", ECR_PUBLIC_PASSWORD)
        );
        let repo = Repository::parse("myalias/tools/busybox").expect("repo");
        cloud
            .ensure_repositories(&public_target, [&repo])
            .await
            .expect("public repository created");
        assert_eq!(public.repositories(), ["tools/busybox"]);
        assert_eq!(
            public.calls(),
            [
                "GetAuthorizationToken",
                "DescribeRepositories",
                "CreateRepository"
            ]
        );
        assert_eq!(
            ecr_public::list_repositories("123456789012", "us-east-1", None)
                .await
                .expect("public list"),
            ["tools/busybox"]
        );
        // Paging: 150 repositories come in pages of 100; a limit stops after the page that
        // reaches it, without cutting it (as the original).
        for i in 0..149 {
            ecr_public::ensure_repository("", "", &format!("myalias/many/r{i:03}"))
                .await
                .expect("created");
        }
        let all = ecr_public::list_repositories("", "", None)
            .await
            .expect("all");
        assert_eq!(all.len(), 150);
        let limited = ecr_public::list_repositories("", "", Some(50))
            .await
            .expect("limited");
        assert_eq!(limited.len(), 100);
        assert!(
            dregsy::cloud::list_ecr_repositories(&target("    registry: gcr.io\n"), None)
                .await
                .is_none()
        );
        // A public pull needs no token: no provider without auth-refresh.
        assert!(
            cloud
                .provider(&target("    registry: public.ecr.aws\n"))
                .is_none()
        );

        // Google, from the metadata server: fetched once, renewed after a refusal.
        let gar = target("    registry: europe-docker.pkg.dev\n");
        let (_, provider) = cloud.provider(&gar).expect("GAR provider");
        let token = Credentials::new("oauth2accesstoken", "ya29.test-access-token");
        assert_eq!(provider.credentials().await.expect("metadata token"), token);
        assert_eq!(provider.credentials().await.expect("cached"), token);
        assert_eq!(google.metadata_requests(), 1);
        provider.invalidate();
        assert_eq!(provider.credentials().await.expect("renewed"), token);
        assert_eq!(google.metadata_requests(), 2);
        // `auth: none` is anonymous; explicit credentials are used as given.
        assert!(
            cloud
                .provider(&target("    registry: gcr.io\n    auth: none\n"))
                .is_none()
        );
        let explicit = support::auth_b64("oauth2accesstoken", "given-token");
        assert!(
            cloud
                .provider(&target(&format!(
                    "    registry: gcr.io\n    auth: {explicit}\n"
                )))
                .is_none()
        );

        // Google, from a service account key whose token_uri is the stand-in.
        let dir = tempfile::tempdir().expect("tempdir");
        let key_path = dir.path().join("key.json");
        std::fs::write(
            &key_path,
            google.key_file("sync@test-project.iam.gserviceaccount.com"),
        )
        .expect("key file");
        set_env(
            "GOOGLE_APPLICATION_CREDENTIALS",
            &key_path.to_string_lossy(),
        );
        let fresh = Cloud::new();
        let (_, provider) = fresh.provider(&gar).expect("GAR provider");
        assert_eq!(provider.credentials().await.expect("key token"), token);
        assert_eq!(google.token_requests(), 1);

        // Missing credentials: the message says which sources were tried.
        remove_env("GOOGLE_APPLICATION_CREDENTIALS");
        set_env(
            "GCE_METADATA_HOST",
            &format!("127.0.0.1:{}", support::http::free_port()),
        );
        let err = Cloud::new()
            .refresh(&gar)
            .await
            .expect_err("no Google credentials");
        assert!(
            err.contains("neither GOOGLE_APPLICATION_CREDENTIALS set, nor a GCE instance"),
            "{err}"
        );
        std::fs::write(&key_path, "{not json").expect("broken key");
        set_env(
            "GOOGLE_APPLICATION_CREDENTIALS",
            &key_path.to_string_lossy(),
        );
        let err = Cloud::new()
            .refresh(&gar)
            .await
            .expect_err("broken key file");
        assert!(err.contains("GOOGLE_APPLICATION_CREDENTIALS"), "{err}");

        remove_env("AWS_ACCESS_KEY_ID");
        remove_env("AWS_SECRET_ACCESS_KEY");
        let other_region = target(
            "    registry: 123456789012.dkr.ecr.eu-west-1.amazonaws.com\n    auth-refresh: 1h\n",
        );
        let err = Cloud::new()
            .refresh(&other_region)
            .await
            .expect_err("no AWS credentials");
        assert!(err.contains("no AWS credentials found"), "{err}");
        assert!(err.contains("AWS_ACCESS_KEY_ID"), "{err}");
        assert!(err.contains("instance metadata"), "{err}");
    });
}

/// The cloud example loads, with each registry recognised (reads no environment).
#[test]
fn cloud_example_loads() {
    use dregsy::cloud::CloudRegistry;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/dockerhub-to-ecr-and-gar.yaml");
    let (config, _) = config::load(&path).expect("the example loads");
    let clouds: Vec<Option<CloudRegistry>> = config
        .tasks
        .iter()
        .map(|t| t.target.cloud.clone())
        .collect();
    assert_eq!(
        clouds,
        [
            Some(CloudRegistry::Ecr {
                account: "123456789012".into(),
                region: "eu-central-1".into()
            }),
            Some(CloudRegistry::Gcp),
            None
        ]
    );
    assert_eq!(
        config.tasks[2].source.cloud,
        Some(CloudRegistry::EcrPublic {
            account: String::new(),
            region: String::new()
        })
    );
}
