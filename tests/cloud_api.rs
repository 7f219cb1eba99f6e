//! The cloud side against local stand-ins: ECR tokens, repository creation and listing
//! against moto; public ECR against a local `ecr-public` API; Google tokens from a service
//! account key and from a metadata server; and the messages when credentials are missing.
//!
//! Each test gives the code its own [`CloudEnvironment`] (endpoints, keys, token sources)
//! instead of the process environment, so the tests run side by side and never reach a cloud
//! or its metadata addresses. Missing AWS credentials, which only the SDK's own chain can
//! report, are checked through the binary in `tests/cloud_sync.rs`.

mod support;

use std::path::Path;

use dregsy::cloud::aws::Aws;
use dregsy::cloud::ecr::{self, EcrApi};
use dregsy::cloud::{AwsCredentials, Cloud, CloudEnvironment};
use dregsy::config::{self, Location, Task};
use dregsy::failure::FailureKind;
use dregsy::registry::{Credentials, Repository};
use support::cloud::{
    DENIED_KEY, ECR_PUBLIC_PASSWORD, EcrPublicApi, GoogleApi, MISSING_REGISTRY, Moto, UNKNOWN_KEY,
    closed_environment,
};

const ECR: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
const ACCOUNT: &str = "123456789012";

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

/// A cloud side whose ECR API is `moto`.
fn with_moto(moto: &Moto) -> CloudEnvironment {
    let mut environment = closed_environment();
    environment.aws.ecr_endpoint = Some(moto.url());
    environment
}

fn repositories(names: &[&str]) -> Vec<Repository> {
    names
        .iter()
        .map(|r| Repository::parse(r).expect("repo"))
        .collect()
}

#[tokio::test]
async fn ecr_tokens_come_from_get_authorization_token_with_auth_refresh() {
    let moto = Moto::start();
    let cloud = Cloud::new(with_moto(&moto));
    // Private ECR: the token of GetAuthorizationToken, as user AWS.
    let ecr_target = target(&format!("    registry: {ECR}\n    auth-refresh: 1h\n"));
    let (identity, provider) = cloud.provider(&ecr_target).expect("ECR has a provider");
    assert_eq!(identity, "ecr:123456789012:us-east-1");
    assert_eq!(
        provider.credentials().await.expect("ECR token"),
        Credentials::new("AWS", "123456789012-auth-token")
    );
    assert!(!format!("{provider:?}").contains("auth-token"));
    // Without auth-refresh the config's auth is used, as in the original.
    let static_target = target(&format!("    registry: {ECR}\n"));
    assert!(cloud.provider(&static_target).is_none());
}

#[tokio::test]
async fn ecr_target_repositories_are_created_once_and_listed() {
    let moto = Moto::start();
    let cloud = Cloud::new(with_moto(&moto));
    let ecr_target = target(&format!("    registry: {ECR}\n    auth-refresh: 1h\n"));
    // Repository creation: created when missing, found when present, once per run.
    let repos = repositories(&["mirror/busybox", "mirror/alpine"]);
    cloud
        .ensure_repositories(&ecr_target, &repos)
        .await
        .expect("created");
    cloud
        .ensure_repositories(&ecr_target, &repos)
        .await
        .expect("cached");
    ecr::ensure_repository(
        EcrApi::Private,
        cloud.aws(),
        ACCOUNT,
        "us-east-1",
        "mirror/busybox",
    )
    .await
    .expect("exists");
    let source = task(
        &format!("    registry: {ECR}\n"),
        "    registry: 127.0.0.1:5000\n",
    )
    .source;
    let mut listed = cloud
        .list_ecr_repositories(&source, None)
        .await
        .expect("an ECR source has the ECR lister")
        .expect("listed");
    listed.sort();
    assert_eq!(listed, ["mirror/alpine", "mirror/busybox"]);

    // moto answers DescribeRepositories in one page; paging is checked against the
    // ecr-public stand-in, which pages as AWS does.
    for i in 0..3 {
        ecr::ensure_repository(
            EcrApi::Private,
            cloud.aws(),
            ACCOUNT,
            "us-east-1",
            &format!("many/r{i}"),
        )
        .await
        .expect("created");
    }
    let all = ecr::list_repositories(EcrApi::Private, cloud.aws(), ACCOUNT, "us-east-1", Some(1))
        .await
        .expect("all");
    assert_eq!(all.len(), 5);
    assert!(
        cloud
            .list_ecr_repositories(&target("    registry: gcr.io\n"), None)
            .await
            .is_none()
    );
}

#[tokio::test]
async fn ecr_registries_in_two_regions_each_use_their_own_region() {
    // moto keeps repositories per region, as AWS does: a repository created through the
    // us-east-1 registry must not show in eu-west-1's listing, which it would if both
    // regions shared one SDK config.
    let moto = Moto::start();
    let aws = Aws::new(with_moto(&moto).aws);
    ecr::ensure_repository(EcrApi::Private, &aws, ACCOUNT, "us-east-1", "east/only")
        .await
        .expect("created in us-east-1");
    ecr::ensure_repository(EcrApi::Private, &aws, ACCOUNT, "eu-west-1", "west/only")
        .await
        .expect("created in eu-west-1");
    let east = ecr::list_repositories(EcrApi::Private, &aws, ACCOUNT, "us-east-1", None)
        .await
        .expect("us-east-1 listed");
    let west = ecr::list_repositories(EcrApi::Private, &aws, ACCOUNT, "eu-west-1", None)
        .await
        .expect("eu-west-1 listed");
    assert_eq!(east, ["east/only"]);
    assert_eq!(west, ["west/only"]);
}

#[tokio::test]
async fn public_ecr_tokens_repositories_and_paging() {
    let public = EcrPublicApi::start();
    let mut environment = closed_environment();
    environment.aws.ecr_public_endpoint = Some(public.url());
    let cloud = Cloud::new(environment);
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
        ecr::list_repositories(EcrApi::Public, cloud.aws(), ACCOUNT, "us-east-1", None)
            .await
            .expect("public list"),
        ["tools/busybox"]
    );
    // Paging: 150 repositories come in pages of 100; a limit stops after the page that
    // reaches it, without cutting it (as the original).
    for i in 0..149 {
        ecr::ensure_repository(
            EcrApi::Public,
            cloud.aws(),
            "",
            "",
            &format!("myalias/many/r{i:03}"),
        )
        .await
        .expect("created");
    }
    let all = ecr::list_repositories(EcrApi::Public, cloud.aws(), "", "", None)
        .await
        .expect("all");
    assert_eq!(all.len(), 150);
    let limited = ecr::list_repositories(EcrApi::Public, cloud.aws(), "", "", Some(50))
        .await
        .expect("limited");
    assert_eq!(limited.len(), 100);
    // A public pull needs no token: no provider without auth-refresh.
    assert!(
        cloud
            .provider(&target("    registry: public.ecr.aws\n"))
            .is_none()
    );
}

#[tokio::test]
async fn google_tokens_from_the_metadata_server_are_cached_until_refused() {
    let google = GoogleApi::start("ya29.test-access-token", 3600);
    let mut environment = closed_environment();
    environment.google.metadata_host = google.host();
    let cloud = Cloud::new(environment);
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
}

#[tokio::test]
async fn google_tokens_from_a_service_account_key() {
    let google = GoogleApi::start("ya29.test-access-token", 3600);
    let dir = tempfile::tempdir().expect("tempdir");
    let key_path = dir.path().join("key.json");
    std::fs::write(
        &key_path,
        google.key_file("sync@test-project.iam.gserviceaccount.com"),
    )
    .expect("key file");
    let mut environment = closed_environment();
    environment.google.application_credentials = Some(key_path);
    let cloud = Cloud::new(environment);
    let gar = target("    registry: europe-docker.pkg.dev\n");
    let (_, provider) = cloud.provider(&gar).expect("GAR provider");
    let token = Credentials::new("oauth2accesstoken", "ya29.test-access-token");
    assert_eq!(provider.credentials().await.expect("key token"), token);
    assert_eq!(google.token_requests(), 1);
    assert_eq!(google.metadata_requests(), 0);
}

#[tokio::test]
async fn missing_google_credentials_say_what_was_tried() {
    let gar = target("    registry: europe-docker.pkg.dev\n");
    // No key file, and nothing answers at the metadata host.
    let err = Cloud::new(closed_environment())
        .refresh(&gar)
        .await
        .expect_err("no Google credentials");
    assert!(
        err.to_string()
            .contains("neither GOOGLE_APPLICATION_CREDENTIALS set, nor a GCE instance"),
        "{err}"
    );
    assert_eq!(err.kind(), FailureKind::Auth, "{err}");
    // A key file that is not one.
    let dir = tempfile::tempdir().expect("tempdir");
    let key_path = dir.path().join("key.json");
    std::fs::write(&key_path, "{not json").expect("broken key");
    let mut environment = closed_environment();
    environment.google.application_credentials = Some(key_path);
    let err = Cloud::new(environment)
        .refresh(&gar)
        .await
        .expect_err("broken key file");
    assert!(
        err.to_string().contains("GOOGLE_APPLICATION_CREDENTIALS"),
        "{err}"
    );
    assert_eq!(err.kind(), FailureKind::Auth, "{err}");
}

#[tokio::test]
async fn a_google_token_service_that_does_not_answer_is_a_network_failure() {
    let google = GoogleApi::start("ya29.test-access-token", 3600);
    let closed = format!("http://127.0.0.1:{}/token", support::http::free_port());
    let mut key: serde_json::Value =
        serde_json::from_str(&google.key_file("sync@test-project.iam.gserviceaccount.com"))
            .expect("key JSON");
    key["token_uri"] = closed.clone().into();
    let dir = tempfile::tempdir().expect("tempdir");
    let key_path = dir.path().join("key.json");
    std::fs::write(&key_path, key.to_string()).expect("key file");
    let mut environment = closed_environment();
    environment.google.application_credentials = Some(key_path);
    let gar = target("    registry: europe-docker.pkg.dev\n");
    let err = Cloud::new(environment)
        .refresh(&gar)
        .await
        .expect_err("nothing answers at the token URI");
    assert_eq!(err.kind(), FailureKind::Network, "{err}");
    assert!(
        err.to_string()
            .contains(&format!("the token service at {closed} did not answer")),
        "{err}"
    );
}

/// A cloud side whose public ECR API is `public`, signing with the access key `key`.
fn public_ecr_with_key(public: &EcrPublicApi, key: &str) -> Cloud {
    let mut environment = closed_environment();
    environment.aws.ecr_public_endpoint = Some(public.url());
    environment.aws.credentials = AwsCredentials::Keys {
        access_key_id: key.into(),
        secret_access_key: "testing".into(),
        session_token: None,
    };
    Cloud::new(environment)
}

#[tokio::test]
async fn aws_failures_count_by_what_the_answer_tells() {
    let public = EcrPublicApi::start();
    let public_target = target(
        "    registry: public.ecr.aws
    auth-refresh: 1h
",
    );
    let public_source = |registry: &str| {
        task(
            &format!("    registry: {registry}\n"),
            "    registry: 127.0.0.1:5000\n",
        )
        .source
    };
    let repo = Repository::parse("myalias/app").expect("repo");
    // Keys AWS does not know: the token, the repository and the listing fail as auth.
    let unknown = public_ecr_with_key(&public, UNKNOWN_KEY);
    let token = unknown
        .refresh(&public_target)
        .await
        .expect_err("unknown key");
    assert_eq!(token.kind(), FailureKind::Auth, "{token}");
    assert!(
        token.to_string().starts_with(
            "cannot get credentials for public.ecr.aws: AWS ECR public GetAuthorizationToken \
             failed: service error"
        ) && token.to_string().contains("UnrecognizedClientException"),
        "{token}"
    );
    let created = unknown
        .ensure_repositories(&public_target, [&repo])
        .await
        .expect_err("unknown key");
    assert_eq!(created.kind(), FailureKind::Auth, "{created}");
    assert!(
        created
            .to_string()
            .starts_with("public ECR target repository 'app': AWS ECR public"),
        "{created}"
    );
    // Keys AWS knows, but that are denied the operation: auth as well.
    let denied = public_ecr_with_key(&public, DENIED_KEY);
    let listed = denied
        .list_ecr_repositories(&public_source("public.ecr.aws"), None)
        .await
        .expect("a public ECR source has the ECR lister")
        .expect_err("denied");
    assert_eq!(listed.kind(), FailureKind::Auth, "{listed}");
    // A registry that does not exist: not found.
    let missing = public_ecr_with_key(&public, "testing")
        .list_ecr_repositories(
            &public_source(&format!("{MISSING_REGISTRY}@public.ecr.aws")),
            None,
        )
        .await
        .expect("a public ECR source has the ECR lister")
        .expect_err("no such registry");
    assert_eq!(missing.kind(), FailureKind::NotFound, "{missing}");
    assert!(
        missing.to_string().starts_with(
            "listing repositories of public.ecr.aws: AWS ECR public DescribeRepositories failed"
        ),
        "{missing}"
    );
    // Nothing answers at the ECR endpoint: network, for tokens, repositories and listings.
    let closed = Cloud::new(closed_environment());
    let ecr_target = target(&format!("    registry: {ECR}\n    auth-refresh: 1h\n"));
    let token = closed.refresh(&ecr_target).await.expect_err("closed port");
    assert_eq!(token.kind(), FailureKind::Network, "{token}");
    let created = closed
        .ensure_repositories(&ecr_target, [&repo])
        .await
        .expect_err("closed port");
    assert_eq!(created.kind(), FailureKind::Network, "{created}");
    let listed = closed
        .list_ecr_repositories(&public_source(ECR), None)
        .await
        .expect("an ECR source has the ECR lister")
        .expect_err("closed port");
    assert_eq!(listed.kind(), FailureKind::Network, "{listed}");
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
