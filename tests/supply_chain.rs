//! Signatures, referrers and image age against real registries (README.md, "Signatures, SBOMs
//! and trust"): cosign-format signatures made with test keys are found where cosign stores them
//! (legacy `.sig` tag and fallback tag on CNCF Distribution, which has no referrers API; the
//! referrers API through a test front that implements it) and checked; tampered, foreign and
//! misdirected signatures are refused with a reason.

mod support;

use std::path::Path;

use base64::Engine as _;
use dregsy::config::Verify;
use dregsy::cosign::bundle::verify_bundle;
use dregsy::cosign::{KeyAlgorithm, PublicKey, Rejection, SignatureLayer, payload_for, verify};
use dregsy::registry::{Digest, Registry, RegistryHost, RegistryOptions, Repository};
use dregsy::relay::trust::check_signed;
use serde_json::json;
use support::dregsy::{log_lines, run_dregsy, text};
use support::referrers::ReferrersRegistry;
use support::signing::{
    self, BundleSignature, Signature, Store, TestKey, attach_bundle, bundle, message_bundle,
    message_bundle_naming,
};
use support::{Format, ImageOptions, Pushed, manifest_digest, push_image, push_index};

fn subject() -> Digest {
    Digest::of(b"the image manifest")
}

fn layer(payload: &[u8], signature: String) -> SignatureLayer {
    SignatureLayer {
        payload_digest: Digest::of(payload),
        payload_size: payload.len() as u64,
        signature,
    }
}

#[test]
fn the_verifier_refuses_changed_payloads_other_keys_and_other_digests() {
    for (key_signer, expected) in [
        (TestKey::ecdsa(), KeyAlgorithm::EcdsaP256),
        (TestKey::ed25519(), KeyAlgorithm::Ed25519),
        // cosign 3 signs simple-signing payloads with Ed25519 keys as Ed25519ph too.
        (TestKey::ed25519ph(), KeyAlgorithm::Ed25519),
    ] {
        let key = PublicKey::from_pem(key_signer.public_pem.as_bytes()).expect("key");
        assert_eq!(key.algorithm(), expected);
        let payload = payload_for("127.0.0.1:5000/app", &subject());
        let good = layer(&payload, key_signer.sign(&payload));
        assert_eq!(verify(&key, &good, &payload, &subject()), Ok(()));

        // A tampered payload (its layer digest updated too, so only the signature can tell).
        let tampered = String::from_utf8(payload.clone())
            .expect("utf-8")
            .replace("127.0.0.1:5000/app", "127.0.0.1:5000/evil")
            .into_bytes();
        let tampered_layer = SignatureLayer {
            payload_digest: Digest::of(&tampered),
            ..good.clone()
        };
        assert_eq!(
            verify(&key, &tampered_layer, &tampered, &subject()),
            Err(Rejection::BadSignature)
        );
        // The same tampered bytes under the original layer: the blob does not match.
        assert!(matches!(
            verify(&key, &good, &tampered, &subject()),
            Err(Rejection::PayloadDigest { .. })
        ));

        // Another key's signature.
        let other = key_signer.another();
        let foreign = layer(&payload, other.sign(&payload));
        assert_eq!(
            verify(&key, &foreign, &payload, &subject()),
            Err(Rejection::BadSignature)
        );

        // A good signature of another digest.
        let other_digest = Digest::of(b"another manifest");
        let elsewhere = payload_for("127.0.0.1:5000/app", &other_digest);
        let elsewhere_layer = layer(&elsewhere, key_signer.sign(&elsewhere));
        assert_eq!(
            verify(&key, &elsewhere_layer, &elsewhere, &subject()),
            Err(Rejection::OtherDigest(other_digest.to_string()))
        );

        // Not base64.
        let garbled = layer(&payload, "not base64 at all!".into());
        assert_eq!(
            verify(&key, &garbled, &payload, &subject()),
            Err(Rejection::NotBase64)
        );

        // Signed, but not a simple-signing payload of an image signature.
        let odd =
            br#"{"critical":{"image":{"docker-manifest-digest":"x"},"type":"something else"}}"#;
        let odd_layer = layer(odd, key_signer.sign(odd));
        assert!(matches!(
            verify(&key, &odd_layer, odd, &subject()),
            Err(Rejection::NotSimpleSigning(_))
        ));
        let text = b"just text";
        let text_layer = layer(text, key_signer.sign(text));
        assert!(matches!(
            verify(&key, &text_layer, text, &subject()),
            Err(Rejection::NotSimpleSigning(_))
        ));
    }
}

/// cosign 3's sigstore bundles: a DSSE envelope of an in-toto statement, or a message
/// signature of the manifest itself; with an Ed25519 key cosign 3 signs either as Ed25519ph.
#[test]
fn the_bundle_verifier_refuses_changed_payloads_other_keys_other_digests_and_attestations() {
    for signer in [TestKey::ecdsa(), TestKey::ed25519(), TestKey::ed25519ph()] {
        let bad = Rejection::BadSignature;
        let key = PublicKey::from_pem(signer.public_pem.as_bytes()).expect("key");
        let digest = subject();
        let of = || BundleSignature::of(&signer, digest.as_str());
        assert_eq!(verify_bundle(&key, &bundle(&of()), &digest, None), Ok(()));

        // A tampered statement: it names another image, the signature is the original's.
        let evil = Digest::of(b"an evil manifest");
        let statement = json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"digest": {"sha256": evil.hex()}}],
            "predicateType": signing::SIGN_PREDICATE,
            "predicate": {},
        });
        let tampered = BundleSignature {
            tamper: Some(serde_json::to_vec(&statement).expect("json")),
            ..of()
        };
        assert_eq!(
            verify_bundle(&key, &bundle(&tampered), &evil, None),
            Err(bad.clone())
        );

        // Another key's signature.
        let other = signer.another();
        let foreign = BundleSignature::of(&other, digest.as_str());
        assert_eq!(
            verify_bundle(&key, &bundle(&foreign), &digest, None),
            Err(bad.clone())
        );

        // A good signature of another digest.
        let other_digest = Digest::of(b"another manifest");
        let elsewhere = BundleSignature::of(&signer, other_digest.as_str());
        assert_eq!(
            verify_bundle(&key, &bundle(&elsewhere), &digest, None),
            Err(Rejection::OtherDigest(other_digest.to_string()))
        );

        // Signed with the key, but an attestation, not a signature.
        let attestation = BundleSignature {
            predicate_type: "https://slsa.dev/provenance/v1".into(),
            ..of()
        };
        let refused = verify_bundle(&key, &bundle(&attestation), &digest, None).expect_err("no");
        assert!(
            matches!(&refused, Rejection::NotSignature(why) if why.contains("slsa.dev/provenance")),
            "{refused}"
        );

        // Keyless: a certificate instead of a key.
        let keyless = BundleSignature {
            keyless: true,
            ..of()
        };
        assert_eq!(
            verify_bundle(&key, &bundle(&keyless), &digest, None),
            Err(Rejection::Keyless)
        );

        // A message signature signs the manifest's bytes.
        let manifest = br#"{"schemaVersion":2,"layers":[]}"#;
        let manifest_digest = Digest::of(manifest);
        let message = message_bundle(&signer, manifest);
        assert_eq!(
            verify_bundle(&key, &message, &manifest_digest, None),
            Err(Rejection::NeedsSubjectManifest)
        );
        assert_eq!(
            verify_bundle(&key, &message, &manifest_digest, Some(manifest)),
            Ok(())
        );
        // Another image: a SHA-256 message digest is told apart at once, a SHA-512 one
        // (Ed25519ph) once that image's manifest is read.
        assert!(matches!(
            verify_bundle(&key, &message, &digest, Some(b"the image manifest")),
            Err(Rejection::OtherDigest(_))
        ));
        assert_eq!(
            verify_bundle(
                &key,
                &message_bundle(&other, manifest),
                &manifest_digest,
                Some(manifest)
            ),
            Err(bad.clone())
        );
        // A message signature whose digest names another manifest than the one signed.
        let another = br#"{"schemaVersion":2,"layers":[{}]}"#;
        assert!(matches!(
            verify_bundle(
                &key,
                &message_bundle_naming(&signer, manifest, another),
                &manifest_digest,
                Some(manifest)
            ),
            Err(Rejection::OtherDigest(_))
        ));
    }
}

/// Ed25519ph, cosign 3's scheme for Ed25519 keys, and pure Ed25519 with the same key are both
/// that key's signatures; neither verifies with another Ed25519 key, whichever scheme it uses.
#[test]
fn an_ed25519_key_verifies_both_of_its_schemes_and_only_its_own() {
    let prehashed = TestKey::ed25519ph();
    let key = PublicKey::from_pem(prehashed.public_pem.as_bytes()).expect("key");
    let payload = payload_for("127.0.0.1:5000/app", &subject());
    let signature = base64::engine::general_purpose::STANDARD
        .decode(prehashed.sign(&payload))
        .expect("base64");
    assert!(key.verifies(&payload, &signature));
    assert!(!key.verifies(b"another payload", &signature));
    for other in [TestKey::ed25519(), TestKey::ed25519ph()] {
        let other_key = PublicKey::from_pem(other.public_pem.as_bytes()).expect("key");
        assert!(!other_key.verifies(&payload, &signature));
    }
    let ecdsa = PublicKey::from_pem(TestKey::ecdsa().public_pem.as_bytes()).expect("key");
    assert!(!ecdsa.verifies(&payload, &signature));
}

fn client(url: &str) -> Registry {
    dregsy::http_client::install_crypto_provider();
    Registry::new(RegistryOptions::new(
        RegistryHost::parse(url).expect("valid host"),
    ))
    .expect("client")
}

fn repo(name: &str) -> Repository {
    Repository::parse(name).expect("valid repository")
}

fn verify_with(key: &TestKey, dir: &Path, name: &str) -> Verify {
    let key_file = key.write_public(dir, name);
    Verify {
        key: PublicKey::load(&key_file).expect("the test key loads"),
        key_file,
    }
}

/// What a signature's `subject` names: (digest, media type, size).
fn subject_of(image: &Pushed) -> (&str, &str, usize) {
    (&image.digest, &image.media_type, image.manifest.len())
}

fn check(client: &Registry, name: &str, digest: &str, verify: &Verify) -> Result<(), String> {
    let digest = Digest::parse(digest).expect("digest");
    let store = dregsy::store::ImageStore::Registry(client.clone());
    support::http::block_on(check_signed(&store, &repo(name), &digest, verify))
        .map_err(|e| e.to_string())
}

#[test]
fn signatures_are_found_and_verified_in_every_store() {
    let registry = support::Registry::start();
    let front = ReferrersRegistry::start(&registry);
    let dir = tempfile::tempdir().expect("tempdir");
    let endpoint = registry.endpoint();
    for (key, name) in [(TestKey::ecdsa(), "p256"), (TestKey::ed25519(), "ed25519")] {
        let verify = verify_with(&key, dir.path(), &format!("{name}.pub"));
        for store in [Store::LegacyTag, Store::FallbackTag] {
            let repo_name = format!("{name}/{store:?}").to_lowercase();
            let image = push_image(&registry, &repo_name, "v1", ImageOptions::default());
            let subject = subject_of(&image);
            let unsigned = check(&client(&registry.url()), &repo_name, &image.digest, &verify)
                .expect_err("not signed yet");
            assert!(
                unsigned.contains("no cosign signature") && unsigned.contains(".sig"),
                "{unsigned}"
            );
            signing::sign(
                &endpoint,
                &repo_name,
                subject,
                Signature::of(&key, &image.digest),
                store,
            );
            check(&client(&registry.url()), &repo_name, &image.digest, &verify)
                .unwrap_or_else(|e| panic!("{name} {store:?}: {e}"));
        }
        // The referrers API: only the front indexes the signature; Distribution alone has
        // neither the API nor a fallback tag for it.
        let repo_name = format!("{name}/api");
        let image = push_image(&registry, &repo_name, "v1", ImageOptions::default());
        let subject = subject_of(&image);
        signing::sign(
            &front.endpoint(),
            &repo_name,
            subject,
            Signature::of(&key, &image.digest),
            Store::ReferrersApi,
        );
        assert_eq!(front.referrers_of(&repo_name, &image.digest).len(), 1);
        front.clear_seen();
        check(
            &client(&format!("http://{}", front.host())),
            &repo_name,
            &image.digest,
            &verify,
        )
        .expect("verified through the referrers API");
        let asked: Vec<_> = front
            .seen()
            .into_iter()
            .filter(|s| s.path.contains("/referrers/"))
            .collect();
        assert!(
            asked.len() == 1 && asked[0].status == 200,
            "asked the referrers API once, for both kinds of signature: {asked:?}"
        );
        check(&client(&registry.url()), &repo_name, &image.digest, &verify)
            .expect_err("without the API the signature cannot be found");
    }
}

#[test]
fn wrong_signatures_are_refused_with_their_reason() {
    let registry = support::Registry::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let endpoint = registry.endpoint();
    let key = TestKey::ecdsa();
    let verify = verify_with(&key, dir.path(), "cosign.pub");
    let other_key = TestKey::ecdsa();
    let target = client(&registry.url());

    let zeros = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    let make = |name: &str, digest: &str| -> Signature<'_> {
        match name {
            "tampered" => Signature {
                tamper: Some(
                    String::from_utf8(signing::payload("x/y", digest))
                        .expect("utf-8")
                        .replace("x/y", "x/z")
                        .into_bytes(),
                ),
                ..Signature::of(&key, digest)
            },
            "other-key" => Signature::of(&other_key, digest),
            "other-digest" => Signature::of(&key, zeros),
            _ => Signature {
                annotation: Some("%%% not base64 %%%".into()),
                ..Signature::of(&key, digest)
            },
        }
    };
    let cases = [
        ("tampered", "does not verify with the configured key"),
        ("other-key", "does not verify with the configured key"),
        (
            "other-digest",
            "the signature is for another manifest (sha256:0000",
        ),
        ("not-base64", "annotation is not base64"),
    ];
    for (name, expected) in cases {
        for store in [Store::LegacyTag, Store::FallbackTag] {
            let repo_name = format!("bad/{name}-{store:?}").to_lowercase();
            let image = push_image(&registry, &repo_name, "v1", ImageOptions::default());
            let subject = subject_of(&image);
            signing::sign(
                &endpoint,
                &repo_name,
                subject,
                make(name, &image.digest),
                store,
            );
            let error = check(&target, &repo_name, &image.digest, &verify).expect_err(name);
            assert!(error.contains(expected), "{name} {store:?}: {error}");
            assert!(error.contains("cosign.pub"), "names the key: {error}");
        }
    }
}

/// Pushes `repo:v1` and, in its fallback tag, the bundle `make` writes for it; returns the image
/// and the bundle referrer's digest.
fn push_bundled(
    registry: &support::Registry,
    repo: &str,
    make: impl FnOnce(&Pushed) -> Vec<u8>,
) -> (Pushed, String) {
    let image = push_image(registry, repo, "v1", ImageOptions::default());
    let referrer = attach_bundle(
        &registry.endpoint(),
        repo,
        subject_of(&image),
        &make(&image),
        Store::FallbackTag,
    );
    (image, referrer)
}

/// Bundles of `key` that do not vouch for their image, each on an image `<prefix>-<case>:v1`,
/// are refused with their reason and name the key file.
fn wrong_bundles_are_refused(
    registry: &support::Registry,
    verify: &Verify,
    key: &TestKey,
    prefix: &str,
) {
    let direct = client(&registry.url());
    let zeros = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    let other_key = key.another();
    let cases = [
        ("tampered", "does not verify with the configured key"),
        ("other-key", "does not verify with the configured key"),
        (
            "other-digest",
            "the signature is for another manifest (sha256:0000",
        ),
        (
            "other-manifest",
            "the signature is for another manifest (sha",
        ),
        (
            "attestation",
            "not an image signature: it is an attestation",
        ),
        ("keyless", "keyless signature"),
    ];
    for (name, expected) in cases {
        let repo_name = format!("{prefix}-{name}");
        let (image, _) = push_bundled(registry, &repo_name, |image| {
            let of = BundleSignature::of(key, &image.digest);
            let signature = match name {
                "tampered" => BundleSignature {
                    tamper: Some(b"{\"_type\":\"https://in-toto.io/Statement/v1\"}".to_vec()),
                    ..of
                },
                "other-key" => BundleSignature::of(&other_key, &image.digest),
                "other-digest" => BundleSignature::of(key, zeros),
                "other-manifest" => {
                    return message_bundle_naming(key, &image.manifest, b"another manifest");
                }
                "attestation" => BundleSignature {
                    predicate_type: "https://slsa.dev/provenance/v1".into(),
                    ..of
                },
                _ => BundleSignature {
                    keyless: true,
                    ..of
                },
            };
            bundle(&signature)
        });
        let error = check(&direct, &repo_name, &image.digest, verify).expect_err(name);
        assert!(error.contains(expected), "{name}: {error}");
        assert!(error.contains("cosign.pub"), "names the key: {error}");
    }
}

/// cosign 3 stores its bundles as referrers: found through the fallback tag and the referrers
/// API, verified, copied with `referrers: true`; wrong ones are refused with their reason.
#[test]
fn bundle_signatures_are_verified_where_cosign_3_stores_them() {
    let registry = support::Registry::start();
    let target = support::Registry::start();
    let front = ReferrersRegistry::start(&registry);
    let dir = tempfile::tempdir().expect("tempdir");
    let key = TestKey::ecdsa();
    let verify = verify_with(&key, dir.path(), "cosign.pub");
    let direct = client(&registry.url());

    let (fallback, referrer) = push_bundled(&registry, "bundle/fallback", |image| {
        bundle(&BundleSignature::of(&key, &image.digest))
    });
    check(&direct, "bundle/fallback", &fallback.digest, &verify).expect("through the fallback tag");

    let api = push_image(&registry, "bundle/api", "v1", ImageOptions::default());
    attach_bundle(
        &front.endpoint(),
        "bundle/api",
        subject_of(&api),
        &bundle(&BundleSignature::of(&key, &api.digest)),
        Store::ReferrersApi,
    );
    let through_front = client(&format!("http://{}", front.host()));
    check(&through_front, "bundle/api", &api.digest, &verify).expect("through the referrers API");

    let (message, _) = push_bundled(&registry, "bundle/message", |image| {
        message_bundle(&key, &image.manifest)
    });
    check(&direct, "bundle/message", &message.digest, &verify).expect("a message signature");

    wrong_bundles_are_refused(&registry, &verify, &key, "bundle/bad");

    // A run copies the image with `verify`, and its bundle with `referrers: true`.
    let config = sync_config(
        &registry,
        &target,
        "",
        &format!(
            "  - from: bundle/fallback\n    tags: [v1]\n    referrers: true\n    verify: {{cosign-key: {}}}\n  - from: bundle/bad-other-key\n    tags: [v1]\n    verify: {{cosign-key: {}}}\n",
            verify.key_file.display(),
            verify.key_file.display()
        ),
    );
    let out = run_dregsy(&config, &[]);
    let copied = messages(&out, "image copied");
    assert_eq!(copied.len(), 1, "{}", text(&out));
    assert!(
        copied[0].ends_with(", with 1 referrer"),
        "the line names the bundle that travelled: {}",
        copied[0]
    );
    assert_eq!(messages(&out, "image failed").len(), 1, "{}", text(&out));
    assert_eq!(
        fallback_digests(&target, "bundle/fallback", &fallback.digest),
        [referrer]
    );
}

/// cosign 3 with an Ed25519 key signs Ed25519ph: DSSE bundles (over the SHA-512 of the PAE),
/// message signatures (with a SHA-512 `messageDigest`) and, with `--new-bundle-format=false`,
/// simple-signing payloads under `.sig`. All are verified against a real registry and their
/// images copied; a changed, foreign or misdirected one fails its image, which is not pushed.
#[test]
fn ed25519ph_signatures_as_cosign_3_writes_them_are_verified_and_copied() {
    let registry = support::Registry::start();
    let target = support::Registry::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let key = TestKey::ed25519ph();
    let verify = verify_with(&key, dir.path(), "cosign.pub");
    let direct = client(&registry.url());

    let (dsse, _) = push_bundled(&registry, "ph/dsse", |image| {
        bundle(&BundleSignature::of(&key, &image.digest))
    });
    check(&direct, "ph/dsse", &dsse.digest, &verify).expect("an Ed25519ph DSSE bundle");
    let (message, _) = push_bundled(&registry, "ph/message", |image| {
        message_bundle(&key, &image.manifest)
    });
    check(&direct, "ph/message", &message.digest, &verify).expect("an Ed25519ph message");
    let legacy = push_image(&registry, "ph/legacy", "v1", ImageOptions::default());
    signing::sign(
        &registry.endpoint(),
        "ph/legacy",
        subject_of(&legacy),
        Signature::of(&key, &legacy.digest),
        Store::LegacyTag,
    );
    check(&direct, "ph/legacy", &legacy.digest, &verify).expect("an Ed25519ph .sig");

    wrong_bundles_are_refused(&registry, &verify, &key, "ph/bad");

    let mappings: String = ["dsse", "message", "legacy", "bad-other-key"]
        .iter()
        .map(|name| {
            format!(
                "  - from: ph/{name}\n    tags: [v1]\n    verify: {{cosign-key: {}}}\n",
                verify.key_file.display()
            )
        })
        .collect();
    let out = run_dregsy(&sync_config(&registry, &target, "", &mappings), &[]);
    assert_eq!(messages(&out, "image copied").len(), 3, "{}", text(&out));
    assert_eq!(messages(&out, "image failed").len(), 1, "{}", text(&out));
    for (name, image) in [
        ("ph/dsse", &dsse),
        ("ph/message", &message),
        ("ph/legacy", &legacy),
    ] {
        assert_eq!(
            manifest_digest(&target, name, "v1").as_deref(),
            Some(image.digest.as_str()),
            "{name} was copied"
        );
    }
    assert!(manifest_digest(&target, "ph/bad-other-key", "v1").is_none());
}

#[test]
fn broken_referrer_lists_are_clear_errors() {
    let registry = support::Registry::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let key = TestKey::ecdsa();
    let verify = verify_with(&key, dir.path(), "cosign.pub");
    let target = client(&registry.url());

    // The fallback tag holds an image, not an index.
    let image = push_image(&registry, "odd/image", "v1", ImageOptions::default());
    let tag = format!("sha256-{}", image.digest.trim_start_matches("sha256:"));
    push_image(&registry, "odd/image", &tag, ImageOptions::default());
    let error = check(&target, "odd/image", &image.digest, &verify).expect_err("something else");
    assert!(error.contains("holds something else"), "{error}");

    // A referrers list naming a signature the repository does not hold (Distribution refuses
    // such an index in a fallback tag, so the referrers API serves it).
    let front = ReferrersRegistry::start(&registry);
    let through_front = client(&format!("http://{}", front.host()));
    let image = push_image(&registry, "odd/missing", "v1", ImageOptions::default());
    front.inject(
        "odd/missing",
        &image.digest,
        json!({
            "mediaType": signing::OCI_MANIFEST,
            "digest": "sha256:1111111111111111111111111111111111111111111111111111111111111111",
            "size": 100,
            "artifactType": signing::SIGNATURE_ARTIFACT_TYPE,
        }),
    );
    let error = check(&through_front, "odd/missing", &image.digest, &verify).expect_err("missing");
    assert!(
        error.contains("which the repository does not hold"),
        "{error}"
    );

    // A referrers list entry that is not a descriptor.
    let image = push_image(&registry, "odd/entry", "v1", ImageOptions::default());
    front.inject(
        "odd/entry",
        &image.digest,
        json!({"size": "big", "artifactType": signing::SIGNATURE_ARTIFACT_TYPE}),
    );
    let error = check(&through_front, "odd/entry", &image.digest, &verify).expect_err("malformed");
    assert!(error.contains("entry is malformed"), "{error}");
}

fn sync_config(
    source: &support::Registry,
    target: &support::Registry,
    top: &str,
    mappings: &str,
) -> String {
    format!(
        "{top}tasks:\n- name: supply\n  source:\n    registry: {}\n    skip-tls-verify: true\n  target:\n    registry: {}\n    skip-tls-verify: true\n  mappings:\n{mappings}",
        source.host(),
        target.host()
    )
}

fn messages(out: &std::process::Output, prefix: &str) -> Vec<String> {
    log_lines(out, prefix)
        .iter()
        .map(|line| line["msg"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn platform_subsets_keep_the_listed_children_byte_for_byte_and_a_second_run_copies_nothing() {
    let source = support::Registry::builder().access_log().start();
    let target = support::Registry::builder().access_log().start();
    let pushed = push_index(
        &source,
        "multi/app",
        "",
        &["linux/amd64", "linux/arm64/v8", "linux/s390x"],
        Format::Oci,
    );
    // BuildKit-style attestation manifests for amd64 and s390x.
    let child = |platform: &str| {
        pushed
            .children
            .iter()
            .find(|(p, _)| p == platform)
            .map(|(_, d)| d.clone())
            .expect("child")
    };
    let mut index = serde_json::from_slice::<serde_json::Value>(&pushed.manifest).expect("json");
    let mut attestations = Vec::new();
    for about in ["linux/amd64", "linux/s390x"] {
        let attestation = push_image(&source, "multi/app", "", ImageOptions::default());
        index["manifests"]
            .as_array_mut()
            .expect("list")
            .push(json!({
                "mediaType": attestation.media_type,
                "digest": attestation.digest,
                "size": attestation.manifest.len(),
                "platform": {"os": "unknown", "architecture": "unknown"},
                "annotations": {
                    "vnd.docker.reference.digest": child(about),
                    "vnd.docker.reference.type": "attestation-manifest",
                },
            }));
        attestations.push(attestation.digest);
    }
    let index_bytes = serde_json::to_vec(&index).expect("serialize");
    let source_digest =
        support::put_manifest(&source, "multi/app", "v1", signing::OCI_INDEX, &index_bytes);

    let config = sync_config(
        &source,
        &target,
        "",
        "  - from: multi/app\n    platform: [linux/amd64, linux/arm64, linux/riscv64]\n  - from: multi/app\n    to: multi/none\n    platform: [windows/amd64]\n",
    );
    let cache = tempfile::tempdir().expect("tempdir");
    let env = [("XDG_CACHE_HOME", cache.path().to_str().expect("utf-8 path"))];
    let out = run_dregsy(&config, &env);
    assert_eq!(messages(&out, "image copied").len(), 1, "{}", text(&out));
    let failed = messages(&out, "image failed");
    assert_eq!(failed.len(), 1, "{}", text(&out));
    assert!(
        failed[0].contains("has none of the platforms windows/amd64"),
        "{}",
        failed[0]
    );
    assert!(
        text(&out).contains("no manifest for the platform(s) linux/riscv64"),
        "a warning names the missing platform: {}",
        text(&out)
    );
    assert!(
        !messages(&out, "copying the platforms").is_empty(),
        "the log says the index was rewritten: {}",
        text(&out)
    );
    let copied = support::get_manifest(&target, "multi/app", "v1").expect("the target has v1");
    assert_ne!(copied.digest, source_digest, "the index is rewritten");
    let listed: Vec<String> = copied.json()["manifests"]
        .as_array()
        .expect("list")
        .iter()
        .map(|e| e["digest"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        listed,
        [
            child("linux/amd64"),
            child("linux/arm64/v8"),
            attestations[0].clone()
        ]
    );
    for digest in &listed {
        assert_eq!(
            manifest_digest(&target, "multi/app", digest).as_deref(),
            Some(digest.as_str()),
            "children keep their digests"
        );
    }
    assert!(manifest_digest(&target, "multi/app", &child("linux/s390x")).is_none());
    assert!(manifest_digest(&target, "multi/none", "v1").is_none());

    // The mapping that failed reads the index again on every run to say so: left out here.
    let config = sync_config(
        &source,
        &target,
        "",
        "  - from: multi/app\n    platform: [linux/amd64, linux/arm64, linux/riscv64]\n",
    );
    source.clear_requests();
    target.clear_requests();
    let again = run_dregsy(&config, &env);
    assert_eq!(
        messages(&again, "image copied").len(),
        0,
        "{}",
        text(&again)
    );
    assert_no_op(&again, &target);
    // The rewrite's digest comes from the manifest cache: the source sees only HEADs.
    let seen = source.requests();
    assert!(
        seen.iter()
            .filter(|r| r.path.contains("/manifests/"))
            .all(|r| r.method == "HEAD"),
        "no manifest GET on a no-op run: {seen:?}"
    );
    assert!(
        text(&again).contains("no manifest for the platform(s) linux/riscv64"),
        "the warning stays: {}",
        text(&again)
    );
    // Without the cache (a first run on another machine), the index is read and nothing copied.
    target.clear_requests();
    let fresh = run_dregsy(&config, &[]);
    assert_no_op(&fresh, &target);
}

/// A run that found its one image up to date and wrote nothing to `target`.
fn assert_no_op(out: &std::process::Output, target: &support::Registry) {
    assert_eq!(messages(out, "image up to date").len(), 1, "{}", text(out));
    let writes: Vec<_> = target
        .requests()
        .into_iter()
        .filter(|r| matches!(r.method.as_str(), "PUT" | "POST" | "PATCH" | "DELETE"))
        .collect();
    assert!(writes.is_empty(), "no writes on a no-op run: {writes:?}");
}

/// Pushes an image whose config says `created` and whose manifest carries `annotations`.
fn push_dated(
    registry: &support::Registry,
    repo: &str,
    tag: &str,
    created: &str,
    annotations: serde_json::Value,
) -> String {
    let endpoint = registry.endpoint();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux", "created": created,
        "rootfs": {"type": "layers", "diff_ids": []},
    }))
    .expect("config");
    let config_digest = support::images::push_blob_at(&endpoint, repo, &config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": signing::OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [],
        "annotations": annotations,
    }))
    .expect("manifest");
    support::put_manifest(registry, repo, tag, signing::OCI_MANIFEST, &manifest)
}

#[test]
fn min_age_leaves_young_images_out_as_skipped_and_plan_shows_it() {
    let source = support::Registry::start();
    let target = support::Registry::start();
    let now = chrono::Utc::now();
    push_dated(
        &source,
        "aged/app",
        "old",
        "2020-01-01T00:00:00Z",
        json!({}),
    );
    push_dated(
        &source,
        "aged/app",
        "future",
        "2099-01-01T00:00:00Z",
        json!({}),
    );
    // Built long ago by its config, but the annotation, which wins, says an hour ago.
    let hour_ago = (now - chrono::Duration::hours(1)).to_rfc3339();
    push_dated(
        &source,
        "aged/app",
        "annotated",
        "2020-01-01T00:00:00Z",
        json!({"org.opencontainers.image.created": hour_ago}),
    );
    push_dated(&source, "aged/app", "undated", "not a time", json!({}));
    let config = sync_config(
        &source,
        &target,
        "min-age: 72h\n",
        "  - from: aged/app\n    tags: [old, future, annotated, undated]\n",
    );

    let plan = support::dregsy::Dregsy::with_config(&config)
        .args(&["plan"])
        .output();
    let plan_text = String::from_utf8_lossy(&plan.stdout).to_string();
    assert!(
        plan_text.contains("skip") && plan_text.contains("too young, 71 h left"),
        "{plan_text}"
    );
    assert!(plan_text.contains("2 skipped"), "{plan_text}");

    let out = run_dregsy(&config, &[]);
    assert_eq!(messages(&out, "image copied").len(), 1, "{}", text(&out));
    let skipped = messages(&out, "image skipped");
    assert_eq!(skipped.len(), 2, "{}", text(&out));
    assert!(
        skipped.iter().any(|m| m.contains("too young, 71 h left")),
        "{skipped:?}"
    );
    assert!(
        skipped
            .iter()
            .any(|m| m.contains("too young, ") && m.contains(" h left")),
        "{skipped:?}"
    );
    let failed = messages(&out, "image failed");
    assert_eq!(failed.len(), 1, "{}", text(&out));
    assert!(failed[0].contains("not an RFC 3339 time"), "{}", failed[0]);
    assert!(
        messages(&out, "task done")
            .iter()
            .any(|m| m.contains("1 copied")
                && m.contains("2 skipped")
                && m.contains("1 image failed")),
        "{}",
        text(&out)
    );
    assert!(manifest_digest(&target, "aged/app", "old").is_some());
    for tag in ["future", "annotated", "undated"] {
        assert!(
            manifest_digest(&target, "aged/app", tag).is_none(),
            "{tag} is not copied"
        );
    }
}

#[test]
fn verify_copies_signed_images_and_pushes_nothing_of_the_others() {
    let source = support::Registry::start();
    let target = support::Registry::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let key = TestKey::ecdsa();
    let key_file = key.write_public(dir.path(), "cosign.pub");
    let signed = push_image(&source, "trust/app", "signed", ImageOptions::default());
    signing::sign(
        &source.endpoint(),
        "trust/app",
        subject_of(&signed),
        Signature::of(&key, &signed.digest),
        Store::LegacyTag,
    );
    let unsigned = push_image(&source, "trust/app", "unsigned", ImageOptions::default());
    let foreign = push_image(&source, "trust/app", "foreign", ImageOptions::default());
    signing::sign(
        &source.endpoint(),
        "trust/app",
        subject_of(&foreign),
        Signature::of(&TestKey::ecdsa(), &foreign.digest),
        Store::FallbackTag,
    );
    let config = sync_config(
        &source,
        &target,
        "",
        &format!(
            "  - from: trust/app\n    tags: [signed, unsigned, foreign]\n    verify: {{cosign-key: {}}}\n",
            key_file.display()
        ),
    );
    // plan checks the signatures as the copy would, and pushes nothing.
    let plan = support::dregsy::Dregsy::with_config(&config)
        .args(&["plan"])
        .output();
    let plan_text = String::from_utf8_lossy(&plan.stdout).to_string();
    assert!(
        plan_text.contains("1 image(s) to copy, 0 up to date, 2 failed"),
        "{plan_text}{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    assert!(
        plan_text.contains("no cosign signature") && plan_text.contains("does not verify"),
        "{plan_text}"
    );
    assert!(manifest_digest(&target, "trust/app", &signed.digest).is_none());
    let out = run_dregsy(&config, &[]);
    assert_eq!(messages(&out, "image copied").len(), 1, "{}", text(&out));
    let failed = messages(&out, "image failed");
    assert_eq!(failed.len(), 2, "{}", text(&out));
    assert!(
        failed
            .iter()
            .any(|m| m.contains("trust/app:unsigned") && m.contains("no cosign signature")),
        "{failed:?}"
    );
    assert!(
        failed
            .iter()
            .any(|m| m.contains("trust/app:foreign") && m.contains("does not verify")),
        "{failed:?}"
    );
    assert_eq!(
        manifest_digest(&target, "trust/app", "signed").as_deref(),
        Some(signed.digest.as_str())
    );
    for image in [&unsigned, &foreign] {
        assert!(manifest_digest(&target, "trust/app", &image.digest).is_none());
        for (blob, _) in &image.blobs {
            assert!(
                !support::blob_exists(&target, "trust/app", blob),
                "no blob of a refused image"
            );
        }
    }
}

/// Pushes an SBOM-like referrer of `subject` (artifact type `application/spdx+json`) and lists
/// it in the fallback tag; returns its manifest digest and size.
fn push_sbom(
    endpoint: &support::Endpoint,
    repo: &str,
    subject: (&str, &str, usize),
) -> (String, usize) {
    let sbom = br#"{"spdxVersion":"SPDX-2.3"}"#;
    let sbom_digest = support::images::push_blob_at(endpoint, repo, sbom);
    let empty_digest = support::images::push_blob_at(endpoint, repo, b"{}");
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": signing::OCI_MANIFEST,
        "artifactType": "application/spdx+json",
        "config": {"mediaType": signing::EMPTY_CONFIG, "digest": empty_digest, "size": 2},
        "layers": [{"mediaType": "application/spdx+json", "digest": sbom_digest, "size": sbom.len()}],
        "subject": {"mediaType": subject.1, "digest": subject.0, "size": subject.2},
    }))
    .expect("manifest");
    let digest =
        support::images::put_manifest_at(endpoint, repo, "", signing::OCI_MANIFEST, &manifest);
    signing::add_to_fallback_tag(
        endpoint,
        repo,
        subject.0,
        json!({"mediaType": signing::OCI_MANIFEST, "digest": digest, "size": manifest.len(), "artifactType": "application/spdx+json"}),
    );
    (digest, manifest.len())
}

fn fallback_digests(registry: &support::Registry, repo: &str, subject: &str) -> Vec<String> {
    let tag = format!("sha256-{}", subject.trim_start_matches("sha256:"));
    support::get_manifest(registry, repo, &tag)
        .map(|m| {
            m.json()["manifests"]
                .as_array()
                .map(|list| {
                    list.iter()
                        .map(|e| e["digest"].as_str().unwrap_or_default().to_string())
                        .collect()
                })
                .unwrap_or_default()
        })
        .unwrap_or_default()
}

#[test]
fn referrers_and_legacy_tags_travel_through_fallback_tags_and_merge_with_the_target() {
    let source = support::Registry::start();
    let target = support::Registry::builder().access_log().start();
    let endpoint = source.endpoint();
    let key = TestKey::ecdsa();
    let image = push_image(&source, "signed/app", "v1", ImageOptions::default());
    let subject = subject_of(&image);
    let legacy = signing::sign(
        &endpoint,
        "signed/app",
        subject,
        Signature::of(&key, &image.digest),
        Store::LegacyTag,
    );
    let signature = signing::sign(
        &endpoint,
        "signed/app",
        subject,
        Signature::of(&key, &image.digest),
        Store::FallbackTag,
    );
    let (sbom, sbom_size) = push_sbom(&endpoint, "signed/app", subject);
    // A signature of the SBOM: a referrer of a referrer.
    let sbom_signature = signing::sign(
        &endpoint,
        "signed/app",
        (&sbom, signing::OCI_MANIFEST, sbom_size),
        Signature::of(&key, &sbom),
        Store::FallbackTag,
    );
    // The target already lists a referrer of its own for the image: it must stay.
    let own = push_image(&target, "signed/app", "", ImageOptions::default());
    signing::add_to_fallback_tag(
        &target.endpoint(),
        "signed/app",
        &image.digest,
        json!({"mediaType": own.media_type, "digest": own.digest, "size": own.manifest.len(), "artifactType": "application/x-own"}),
    );

    let config = sync_config(
        &source,
        &target,
        "referrers: true\n",
        "  - from: signed/app\n    tags: [v1]\n",
    );
    let out = run_dregsy(&config, &[]);
    assert_eq!(messages(&out, "image copied").len(), 1, "{}", text(&out));
    let legacy_tag = format!("sha256-{}.sig", image.digest.trim_start_matches("sha256:"));
    assert_eq!(
        manifest_digest(&target, "signed/app", &legacy_tag).as_deref(),
        Some(legacy.as_str())
    );
    let listed = fallback_digests(&target, "signed/app", &image.digest);
    assert_eq!(
        listed[0], own.digest,
        "what the target listed stays first: {listed:?}"
    );
    for digest in [&signature, &sbom] {
        assert!(listed.contains(digest), "{digest} listed: {listed:?}");
        assert_eq!(
            manifest_digest(&target, "signed/app", digest).as_deref(),
            Some(digest.as_str())
        );
    }
    assert_eq!(
        fallback_digests(&target, "signed/app", &sbom),
        std::slice::from_ref(&sbom_signature)
    );
    // The copied signature verifies at the target as at the source.
    let dir = tempfile::tempdir().expect("tempdir");
    let verify = verify_with(&key, dir.path(), "cosign.pub");
    check(&client(&target.url()), "signed/app", &image.digest, &verify)
        .expect("verifies at the target");

    // Nothing new: nothing written.
    target.clear_requests();
    let again = run_dregsy(&config, &[]);
    assert_no_op(&again, &target);

    // A signature added later travels on the next run, though the image is up to date.
    let late = signing::sign(
        &endpoint,
        "signed/app",
        subject,
        Signature::of(&TestKey::ed25519(), &image.digest),
        Store::FallbackTag,
    );
    let third = run_dregsy(&config, &[]);
    assert_eq!(
        messages(&third, "image up to date; 1 referrer copied").len(),
        1,
        "{}",
        text(&third)
    );
    assert_eq!(
        messages(&third, "image copied").len(),
        0,
        "{}",
        text(&third)
    );
    assert!(fallback_digests(&target, "signed/app", &image.digest).contains(&late));
}

#[test]
fn referrers_travel_through_the_referrers_api_when_both_sides_have_it() {
    let source_registry = support::Registry::start();
    let target_registry = support::Registry::start();
    let source = ReferrersRegistry::start(&source_registry);
    let target = ReferrersRegistry::start(&target_registry);
    let key = TestKey::ecdsa();
    let image = push_image(&source_registry, "api/app", "v1", ImageOptions::default());
    push_image(&source_registry, "api/app", "v2", ImageOptions::default());
    let signature = signing::sign(
        &source.endpoint(),
        "api/app",
        subject_of(&image),
        Signature::of(&key, &image.digest),
        Store::ReferrersApi,
    );
    let config = format!(
        "referrers: true\ntasks:\n- name: api\n  source:\n    registry: {}\n    skip-tls-verify: true\n  target:\n    registry: {}\n    skip-tls-verify: true\n  mappings:\n  - from: api/app\n    tags: [v1, v2]\n",
        source.host(),
        target.host()
    );
    let out = run_dregsy(&config, &[]);
    assert_eq!(messages(&out, "image copied").len(), 2, "{}", text(&out));
    let indexed = target.referrers_of("api/app", &image.digest);
    assert_eq!(indexed.len(), 1, "pushed with its subject: {indexed:?}");
    assert_eq!(indexed[0]["digest"], signature.as_str());
    let tag = format!("sha256-{}", image.digest.trim_start_matches("sha256:"));
    assert!(
        manifest_digest(&target_registry, "api/app", &tag).is_none(),
        "no fallback tag where the target indexes referrers itself"
    );
    // A no-op run: one HEAD per tag, one tag list of the repository (for legacy tags), and one
    // referrers request per copied manifest: the two images, and v1's signature (its
    // referrers are followed).
    source.clear_seen();
    target.clear_seen();
    let again = run_dregsy(&config, &[]);
    assert_eq!(
        messages(&again, "image up to date").len(),
        2,
        "{}",
        text(&again)
    );
    let mut asked: Vec<String> = source
        .seen()
        .iter()
        .filter(|s| s.path != "/v2/")
        .map(|s| {
            let kind = s.path.split('/').nth(4).unwrap_or_default();
            format!("{} {kind}", s.method)
        })
        .collect();
    asked.sort();
    assert_eq!(
        asked,
        [
            "GET referrers",
            "GET referrers",
            "GET referrers",
            "GET tags",
            "HEAD manifests",
            "HEAD manifests",
        ],
        "{:?}",
        source.seen()
    );
    assert!(
        target
            .seen()
            .iter()
            .all(|s| s.method == "GET" || s.method == "HEAD"),
        "no writes: {:?}",
        target.seen()
    );
}

#[test]
fn broken_referrer_data_fails_the_image_with_a_reason() {
    let source_registry = support::Registry::start();
    let target = support::Registry::start();
    let front = ReferrersRegistry::start(&source_registry);
    // A fallback tag holding an image, on a registry without the API.
    let odd = push_image(&source_registry, "odd/app", "v1", ImageOptions::default());
    let tag = format!("sha256-{}", odd.digest.trim_start_matches("sha256:"));
    push_image(&source_registry, "odd/app", &tag, ImageOptions::default());
    let config = sync_config(
        &source_registry,
        &target,
        "referrers: true\n",
        "  - from: odd/app\n    tags: [v1]\n",
    );
    let out = run_dregsy(&config, &[]);
    let failed = messages(&out, "image failed");
    assert_eq!(failed.len(), 1, "{}", text(&out));
    assert!(failed[0].contains("holds something else"), "{}", failed[0]);
    // A referrers list naming a manifest the source does not hold.
    let image = push_image(&source_registry, "gone/app", "v1", ImageOptions::default());
    front.inject(
        "gone/app",
        &image.digest,
        json!({"mediaType": signing::OCI_MANIFEST, "digest": "sha256:2222222222222222222222222222222222222222222222222222222222222222", "size": 10, "artifactType": "x"}),
    );
    let config = format!(
        "referrers: true\ntasks:\n- name: gone\n  source:\n    registry: {}\n    skip-tls-verify: true\n  target:\n    registry: {}\n    skip-tls-verify: true\n  mappings:\n  - from: gone/app\n    tags: [v1]\n",
        front.host(),
        target.host()
    );
    let out = run_dregsy(&config, &[]);
    let failed = messages(&out, "image failed");
    assert_eq!(failed.len(), 1, "{}", text(&out));
    assert!(failed[0].contains("does not hold"), "{}", failed[0]);
}

#[test]
fn multi_platform_images_carry_their_childrens_referrers_and_are_verified_by_the_index_signature() {
    let source = support::Registry::start();
    let target = support::Registry::start();
    let endpoint = source.endpoint();
    let dir = tempfile::tempdir().expect("tempdir");
    let key = TestKey::ecdsa();
    let key_file = key.write_public(dir.path(), "cosign.pub");
    let pushed = push_index(
        &source,
        "multi/signed",
        "v1",
        &["linux/amd64", "linux/arm64/v8"],
        Format::Oci,
    );
    let index_subject = (
        pushed.digest.as_str(),
        pushed.media_type.as_str(),
        pushed.manifest.len(),
    );
    signing::sign(
        &endpoint,
        "multi/signed",
        index_subject,
        Signature::of(&key, &pushed.digest),
        Store::LegacyTag,
    );
    let arm = &pushed.images[1];
    let (sbom, _) = push_sbom(&endpoint, "multi/signed", subject_of(arm));
    let config = sync_config(
        &source,
        &target,
        "referrers: true\n",
        &format!(
            "  - from: multi/signed\n    platform: [linux/arm64]\n    verify: {{cosign-key: {key}}}\n  - from: multi/signed\n    to: multi/all\n    platform: all\n    verify: {{cosign-key: {key}}}\n",
            key = key_file.display()
        ),
    );
    let out = run_dregsy(&config, &[]);
    assert_eq!(messages(&out, "image copied").len(), 2, "{}", text(&out));
    let index_sig = format!("sha256-{}.sig", pushed.digest.trim_start_matches("sha256:"));
    // The subset: the kept child's SBOM travels; the index signature names the source's index,
    // which the target does not hold, so it stays behind.
    assert_eq!(
        fallback_digests(&target, "multi/signed", &arm.digest),
        std::slice::from_ref(&sbom)
    );
    assert!(manifest_digest(&target, "multi/signed", &index_sig).is_none());
    // The log says so, once, for the subset only.
    let left = log_lines(&out, "referrers of the source index not copied");
    assert_eq!(left.len(), 1, "{}", text(&out));
    assert_eq!(left[0]["digest"], pushed.digest.as_str(), "{}", left[0]);
    assert_eq!(left[0]["legacy_tags"], 1, "{}", left[0]);
    assert_eq!(left[0]["referrers"], 0, "{}", left[0]);
    assert!(
        left[0]["target"]
            .as_str()
            .is_some_and(|t| t.ends_with("multi/signed:v1")),
        "{}",
        left[0]
    );
    // The whole index: its signature and the child's SBOM travel.
    assert!(manifest_digest(&target, "multi/all", &index_sig).is_some());
    assert_eq!(fallback_digests(&target, "multi/all", &arm.digest), [sbom]);
    assert_eq!(
        manifest_digest(&target, "multi/all", "v1").as_deref(),
        Some(pushed.digest.as_str())
    );
}

/// `dregsy plan` shows, for a mapping with `referrers: true`, what would travel with each image:
/// the referrers found through fallback tags (with their artifact types) and the legacy tags;
/// for a platform list, what of the source index stays behind; unreadable referrers fail the
/// image as the sync would. Nothing is written.
#[test]
fn plan_shows_what_travels_with_each_image() {
    let source = support::Registry::start();
    let target = support::Registry::start();
    let endpoint = source.endpoint();
    let key = TestKey::ecdsa();
    let one = push_image(&source, "pl/one", "v1", ImageOptions::default());
    let sig = signing::sign(
        &endpoint,
        "pl/one",
        subject_of(&one),
        Signature::of(&key, &one.digest),
        Store::FallbackTag,
    );
    let (sbom, _) = push_sbom(&endpoint, "pl/one", subject_of(&one));
    signing::sign(
        &endpoint,
        "pl/one",
        subject_of(&one),
        Signature::of(&key, &one.digest),
        Store::LegacyTag,
    );
    let legacy = format!("{}.sig", fallback_tag_of(&one.digest));
    let multi = push_index(
        &source,
        "pl/multi",
        "v1",
        &["linux/amd64", "linux/arm64/v8"],
        Format::Oci,
    );
    signing::sign(
        &endpoint,
        "pl/multi",
        (
            multi.digest.as_str(),
            multi.media_type.as_str(),
            multi.manifest.len(),
        ),
        Signature::of(&key, &multi.digest),
        Store::LegacyTag,
    );
    let (arm_sbom, _) = push_sbom(&endpoint, "pl/multi", subject_of(&multi.images[1]));
    push_image(&source, "pl/bare", "v1", ImageOptions::default());
    let broken = push_image(&source, "pl/broken", "v1", ImageOptions::default());
    push_image(
        &source,
        "pl/broken",
        &fallback_tag_of(&broken.digest),
        ImageOptions::default(),
    );
    let config = sync_config(
        &source,
        &target,
        "referrers: true\n",
        "  - from: pl/one\n    tags: [v1]\n  - from: pl/multi\n    tags: ['regex: ^v1$']\n    platform: [linux/arm64]\n  - from: pl/bare\n    tags: [v1]\n  - from: pl/broken\n    tags: [v1]\n  - from: pl/bare\n    to: pl/plain\n    tags: [v1]\n    referrers: false\n",
    );
    let plan = support::dregsy::Dregsy::with_config(&config)
        .args(&["plan"])
        .output();
    let plan_text = String::from_utf8_lossy(&plan.stdout).to_string();
    let all = format!("{plan_text}{}", String::from_utf8_lossy(&plan.stderr));
    assert_eq!(
        plan_text
            .matches(
                "    referrers: true (signatures, SBOMs and attestations travel with each image)\n"
            )
            .count(),
        4,
        "{all}"
    );
    let with: Vec<&str> = plan_text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("with "))
        .collect();
    let one_line = format!(
        "2 referrer(s) (1 application/spdx+json, 1 {}), legacy tag(s) {legacy}",
        signing::SIGNATURE_ARTIFACT_TYPE
    );
    assert_eq!(
        with,
        [
            one_line.as_str(),
            "1 referrer(s) (1 application/spdx+json); 1 referrer(s) and legacy tag(s) of the source index stay behind (the platform list rewrites it)",
            "no referrers",
        ],
        "{all}"
    );
    // Unreadable referrers fail their image, as the sync would.
    assert!(
        plan_text
            .lines()
            .any(|l| l.trim_start().starts_with("failed")
                && l.contains("pl/broken:v1: referrers: the fallback tag")
                && l.contains("holds something else")),
        "{all}"
    );
    assert!(
        plan_text.contains("4 image(s) to copy, 0 up to date, 1 failed"),
        "{all}"
    );
    assert_eq!(plan.status.code(), Some(1), "{all}");

    let json_out = support::dregsy::Dregsy::with_config(&config)
        .args(&["plan", "--json"])
        .output();
    let doc: serde_json::Value = serde_json::from_slice(&json_out.stdout).expect("JSON");
    let mappings = &doc["tasks"][0]["mappings"];
    let image = |m: usize| mappings[m]["repositories"][0]["images"][0]["referrers"].clone();
    assert_eq!(mappings[0]["referrers"], true);
    let one_referrers = image(0);
    assert_eq!(one_referrers["count"], 2, "{one_referrers}");
    let mut digests: Vec<String> =
        serde_json::from_value(one_referrers["digests"].clone()).expect("digests");
    digests.sort();
    let mut expected = vec![sig, sbom];
    expected.sort();
    assert_eq!(digests, expected);
    assert_eq!(one_referrers["legacy_tags"], json!([legacy]));
    assert_eq!(image(1)["digests"], json!([arm_sbom]));
    assert_eq!(image(1)["left_behind"], 1);
    assert_eq!(image(2)["count"], 0);
    assert!(image(3).is_null(), "{}", image(3));
    assert_eq!(
        mappings[3]["repositories"][0]["images"][0]["status"],
        "failed"
    );
    assert_eq!(mappings[4]["referrers"], false);
    assert!(image(4).is_null(), "{}", image(4));
    // Nothing was written.
    assert!(manifest_digest(&target, "pl/one", "v1").is_none());
}

/// The requests a registry's access log shows for `repo`, as "METHOD kind reference" (kind:
/// manifests, tags, referrers, blobs), sorted.
fn asked_of(requests: &[support::Request], repo: &str) -> Vec<String> {
    let prefix = format!("/v2/{repo}/");
    let mut asked: Vec<String> = requests
        .iter()
        .filter_map(|r| {
            let rest = r.path.strip_prefix(&prefix)?;
            let rest = rest.split('?').next().unwrap_or_default();
            let (kind, reference) = rest.split_once('/').unwrap_or((rest, ""));
            Some(format!("{} {kind} {reference}", r.method))
        })
        .collect();
    asked.sort();
    asked
}

fn fallback_tag_of(digest: &str) -> String {
    format!("sha256-{}", digest.trim_start_matches("sha256:"))
}

/// One-off runs that share a manifest cache (as cron runs of one machine do): a run with
/// nothing new checks referrers with one request per subject at the source (a HEAD of each
/// fallback or legacy tag the repository's tag list shows), and none at the target. The tag
/// list is the planner's where it listed the repository (a regex tag filter), else one per
/// repository for mappings that name their tags; an index's children and a platform list's rewrite come from the cache, so no
/// manifest is downloaded. A signature added later still travels.
#[test]
fn a_no_op_run_checks_referrers_once_per_subject_through_fallback_tags() {
    let source = support::Registry::builder().access_log().start();
    let mut target = support::Registry::builder().access_log().start();
    let endpoint = source.endpoint();
    let key = TestKey::ecdsa();
    // A single image with a signature in its fallback tag.
    let one = push_image(&source, "fb/one", "v1", ImageOptions::default());
    signing::sign(
        &endpoint,
        "fb/one",
        subject_of(&one),
        Signature::of(&key, &one.digest),
        Store::FallbackTag,
    );
    // An index with a legacy signature, and an SBOM of its arm64 child.
    let multi = push_index(
        &source,
        "fb/multi",
        "v1",
        &["linux/amd64", "linux/arm64/v8"],
        Format::Oci,
    );
    signing::sign(
        &endpoint,
        "fb/multi",
        (
            multi.digest.as_str(),
            multi.media_type.as_str(),
            multi.manifest.len(),
        ),
        Signature::of(&key, &multi.digest),
        Store::LegacyTag,
    );
    let arm = &multi.images[1];
    push_sbom(&endpoint, "fb/multi", subject_of(arm));
    let config = sync_config(
        &source,
        &target,
        "referrers: true\n",
        "  - from: fb/one\n    tags: ['regex: ^v1$']\n  - from: fb/multi\n    tags: [v1]\n    platform: all\n  - from: fb/multi\n    to: fb/arm\n    tags: [v1]\n    platform: [linux/arm64]\n",
    );
    let cache = tempfile::tempdir().expect("tempdir");
    let env = [("XDG_CACHE_HOME", cache.path().to_str().expect("utf-8 path"))];
    let out = run_dregsy(&config, &env);
    assert_eq!(messages(&out, "image copied").len(), 3, "{}", text(&out));

    source.clear_requests();
    target.clear_requests();
    let again = run_dregsy(&config, &env);
    assert_eq!(
        messages(&again, "image up to date").len(),
        3,
        "{}",
        text(&again)
    );
    let seen = source.requests();
    // fb/one: two subjects (the image, its signature); the planner's tag list is the only one.
    let mut expected = vec![
        format!("HEAD manifests {}", fallback_tag_of(&one.digest)),
        "HEAD manifests v1".to_string(),
        "GET tags list".to_string(),
    ];
    expected.sort();
    assert_eq!(asked_of(&seen, "fb/one"), expected, "{seen:?}");
    // fb/multi, both mappings: subjects index, two children and the SBOM for `all`; the arm64
    // child and the SBOM for the list. One tag list serves both.
    let mut expected = vec![
        format!("HEAD manifests {}.sig", fallback_tag_of(&multi.digest)),
        format!("HEAD manifests {}", fallback_tag_of(&arm.digest)),
        format!("HEAD manifests {}", fallback_tag_of(&arm.digest)),
        "HEAD manifests v1".to_string(),
        "HEAD manifests v1".to_string(),
        "GET tags list".to_string(),
    ];
    expected.sort();
    assert_eq!(asked_of(&seen, "fb/multi"), expected, "{seen:?}");
    let at_target: Vec<String> = target
        .requests()
        .iter()
        .filter(|r| r.path != "/v2/")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(at_target.len(), 3, "the tags' HEADs only: {at_target:?}");
    assert!(
        at_target
            .iter()
            .all(|r| r.starts_with("HEAD ") && r.ends_with("/manifests/v1")),
        "{at_target:?}"
    );

    // A signature added later travels, for the single image and an index's child.
    let late = signing::sign(
        &endpoint,
        "fb/one",
        subject_of(&one),
        Signature::of(&TestKey::ed25519(), &one.digest),
        Store::FallbackTag,
    );
    let (late_sbom, _) = push_sbom(&endpoint, "fb/multi", subject_of(&multi.images[0]));
    let third = run_dregsy(&config, &env);
    assert_eq!(
        messages(&third, "image up to date; 1 referrer copied").len(),
        2,
        "fb/one and fb/multi (all): {}",
        text(&third)
    );
    assert!(fallback_digests(&target, "fb/one", &one.digest).contains(&late));
    assert!(fallback_digests(&target, "fb/multi", &multi.images[0].digest).contains(&late_sbom));

    // A target repository emptied behind dregsy's back: the image is copied again, and so are
    // its referrers, whatever the cache recorded about that repository.
    target.stop();
    let repo_dir = target
        .storage_dir()
        .join("docker/registry/v2/repositories/fb/one");
    std::fs::remove_dir_all(&repo_dir).expect("the repository's directory");
    target.restart();
    let fourth = run_dregsy(&config, &env);
    assert_eq!(
        messages(&fourth, "image copied").len(),
        1,
        "{}",
        text(&fourth)
    );
    let listed = fallback_digests(&target, "fb/one", &one.digest);
    assert!(listed.contains(&late), "{listed:?}");
    assert_eq!(listed.len(), 2, "{listed:?}");
}

/// As above through the referrers API on both sides: one referrers request per subject at the
/// source and none at the target, for a single image and for `platform: all`.
#[test]
fn a_no_op_run_checks_referrers_once_per_subject_through_the_referrers_api() {
    let source_registry = support::Registry::start();
    let target_registry = support::Registry::start();
    let source = ReferrersRegistry::start(&source_registry);
    let target = ReferrersRegistry::start(&target_registry);
    let key = TestKey::ecdsa();
    let image = push_image(&source_registry, "api/one", "v1", ImageOptions::default());
    signing::sign(
        &source.endpoint(),
        "api/one",
        subject_of(&image),
        Signature::of(&key, &image.digest),
        Store::ReferrersApi,
    );
    let multi = push_index(
        &source_registry,
        "api/multi",
        "v1",
        &["linux/amd64", "linux/arm64/v8"],
        Format::Oci,
    );
    signing::sign(
        &source.endpoint(),
        "api/multi",
        subject_of(&multi.images[1]),
        Signature::of(&key, &multi.images[1].digest),
        Store::ReferrersApi,
    );
    let config = format!(
        "referrers: true\ntasks:\n- name: api\n  source:\n    registry: {}\n    skip-tls-verify: true\n  target:\n    registry: {}\n    skip-tls-verify: true\n  mappings:\n  - from: api/one\n    tags: [v1]\n  - from: api/multi\n    tags: [v1]\n    platform: all\n",
        source.host(),
        target.host()
    );
    let cache = tempfile::tempdir().expect("tempdir");
    let env = [("XDG_CACHE_HOME", cache.path().to_str().expect("utf-8 path"))];
    let out = run_dregsy(&config, &env);
    assert_eq!(messages(&out, "image copied").len(), 2, "{}", text(&out));
    assert_eq!(
        target
            .referrers_of("api/multi", &multi.images[1].digest)
            .len(),
        1
    );

    source.clear_seen();
    target.clear_seen();
    let again = run_dregsy(&config, &env);
    assert_eq!(
        messages(&again, "image up to date").len(),
        2,
        "{}",
        text(&again)
    );
    let kinds = |seen: Vec<support::referrers::Seen>, repo: &str| {
        let prefix = format!("/v2/{repo}/");
        let mut kinds: Vec<String> = seen
            .iter()
            .filter_map(|s| {
                let rest = s.path.strip_prefix(&prefix)?;
                Some(format!(
                    "{} {}",
                    s.method,
                    rest.split('/').next().unwrap_or_default()
                ))
            })
            .collect();
        kinds.sort();
        kinds
    };
    // api/one: the image and its signature; api/multi: the index, two children, the signature.
    assert_eq!(
        kinds(source.seen(), "api/one"),
        [
            "GET referrers",
            "GET referrers",
            "GET tags",
            "HEAD manifests"
        ],
        "{:?}",
        source.seen()
    );
    assert_eq!(
        kinds(source.seen(), "api/multi"),
        [
            "GET referrers",
            "GET referrers",
            "GET referrers",
            "GET referrers",
            "GET tags",
            "HEAD manifests"
        ],
        "no GET of the index: {:?}",
        source.seen()
    );
    let at_target: Vec<String> = target
        .seen()
        .iter()
        .filter(|s| s.path != "/v2/")
        .map(|s| format!("{} {}", s.method, s.path))
        .collect();
    assert_eq!(at_target.len(), 2, "the tags' HEADs only: {at_target:?}");
    assert!(
        at_target
            .iter()
            .all(|r| r.starts_with("HEAD ") && r.ends_with("/manifests/v1")),
        "{at_target:?}"
    );
    // A signature added later travels.
    signing::sign(
        &source.endpoint(),
        "api/one",
        subject_of(&image),
        Signature::of(&TestKey::ed25519(), &image.digest),
        Store::ReferrersApi,
    );
    let third = run_dregsy(&config, &env);
    assert_eq!(
        messages(&third, "image up to date; 1 referrer copied").len(),
        1,
        "{}",
        text(&third)
    );
    assert_eq!(target.referrers_of("api/one", &image.digest).len(), 2);
}

#[test]
fn signatures_cross_an_oci_layout_and_verify_on_the_other_side() {
    let source = support::Registry::start();
    let inside = support::Registry::start();
    let key = TestKey::ecdsa();
    let image = push_image(&source, "signed/app", "v1", ImageOptions::default());
    let signature = signing::sign(
        &source.endpoint(),
        "signed/app",
        subject_of(&image),
        Signature::of(&key, &image.digest),
        Store::FallbackTag,
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let mirror = dir.path().join("mirror");
    let layout = format!("{{registry: 'oci:{}'}}", mirror.display());
    let side = |registry: &support::Registry| {
        format!("{{registry: {}, skip-tls-verify: true}}", registry.host())
    };
    let carry = |from: String, to: String| {
        format!(
            "referrers: true\ntasks:\n- name: carry\n  source: {from}\n  target: {to}\n  \
             mappings:\n  - from: signed/app\n    tags: [v1]\n"
        )
    };
    let out = run_dregsy(&carry(side(&source), layout.clone()), &[]);
    assert_eq!(messages(&out, "image copied").len(), 1, "{}", text(&out));
    // The layout keeps the signature as the referrers tag schema says: in the fallback tag.
    let fallback = format!("sha256-{}", image.digest.trim_start_matches("sha256:"));
    let index = std::fs::read_to_string(mirror.join("signed/app/index.json")).expect("index");
    assert!(index.contains(&fallback), "{index}");

    let out = run_dregsy(&carry(layout, side(&inside)), &[]);
    assert_eq!(messages(&out, "image copied").len(), 1, "{}", text(&out));
    assert_eq!(
        manifest_digest(&inside, "signed/app", &signature).as_deref(),
        Some(signature.as_str())
    );
    let verify = verify_with(&key, dir.path(), "cosign.pub");
    check(&client(&inside.url()), "signed/app", &image.digest, &verify).expect("verifies inside");
}

/// `team/app:v1`, signed with `key` in a legacy `.sig` tag and in the fallback tag: the image
/// and the two signature manifests' digests (legacy, fallback).
fn signed_app(source: &support::Registry, key: &TestKey) -> (Pushed, String, String) {
    let endpoint = source.endpoint();
    let image = push_image(source, "team/app", "v1", ImageOptions::default());
    let [legacy, fallback] = [Store::LegacyTag, Store::FallbackTag].map(|store| {
        signing::sign(
            &endpoint,
            "team/app",
            subject_of(&image),
            Signature::of(key, &image.digest),
            store,
        )
    });
    (image, legacy, fallback)
}

/// README "Air-gapped mirrors", step 1 with signed images: a mapping without `tags` lists
/// cosign's tags too. With `referrers: true` they are no images of their own: they travel with
/// their subject, and only when it is selected; `plan` says why they are left out.
#[test]
fn tag_less_mappings_leave_referrer_tags_to_their_subjects() {
    let source = support::Registry::start();
    let target = support::Registry::start();
    let endpoint = source.endpoint();
    let key = TestKey::ecdsa();
    let (image, _, signature) = signed_app(&source, &key);
    // A signed image no tag names: not selected, so its referrers stay behind.
    let unnamed = push_image(&source, "team/app", "", ImageOptions::default());
    signing::sign(
        &endpoint,
        "team/app",
        subject_of(&unnamed),
        Signature::of(&key, &unnamed.digest),
        Store::FallbackTag,
    );
    let config = sync_config(
        &source,
        &target,
        "referrers: true\n",
        "  - from: 'regex:team/.*'\n    platform: linux/amd64\n",
    );
    let plan = support::dregsy::Dregsy::with_config(&config)
        .args(&["plan"])
        .output();
    let plan_text = String::from_utf8_lossy(&plan.stdout).to_string();
    assert_eq!(plan.status.code(), Some(0), "{plan_text}");
    assert!(
        plan_text.contains("1 image(s) to copy, 0 up to date, 0 failed; 3 tag(s) dropped"),
        "{plan_text}"
    );
    assert_eq!(
        plan_text
            .matches("referrers: true (a referrer tag: it travels with its subject)")
            .count(),
        3,
        "{plan_text}"
    );

    let out = run_dregsy(&config, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(messages(&out, "image copied").len(), 1, "{}", text(&out));
    let fallback = fallback_tag_of(&image.digest);
    let mut tags = support::list_tags(&target, "team/app");
    tags.sort();
    let mut expected = vec![fallback.clone(), format!("{fallback}.sig"), "v1".into()];
    expected.sort();
    assert_eq!(tags, expected, "only v1 and what travels with it");
    assert_eq!(
        fallback_digests(&target, "team/app", &image.digest),
        [signature]
    );
}

/// Without `referrers: true`, a tag-less mapping selects cosign's tags as images, as the
/// original does. The fallback tag holds an index none of whose entries declares a platform:
/// no multi-platform image, so the platform choice does not apply and it is copied whole,
/// digest preserved, by the native relay and by skopeo (docs/behaviour.md#platform-choice).
#[test]
fn an_index_of_artifacts_is_copied_whole_whatever_the_platform_choice() {
    let source = support::Registry::start();
    let (image, legacy, _) = signed_app(&source, &TestKey::ecdsa());
    let fallback = fallback_tag_of(&image.digest);
    let index = manifest_digest(&source, "team/app", &fallback).expect("fallback tag");
    for (relay, platform) in [
        ("native", "linux/amd64"),
        ("native", "[linux/amd64, linux/arm64]"),
        ("skopeo", "linux/amd64"),
    ] {
        let target = support::Registry::start();
        let config = sync_config(
            &source,
            &target,
            &format!("relay: {relay}\n"),
            &format!("  - from: 'regex:team/.*'\n    platform: {platform}\n"),
        );
        let out = run_dregsy(&config, &[]);
        let all = text(&out);
        assert_eq!(out.status.code(), Some(0), "{relay} {platform}: {all}");
        assert!(!all.contains("has no manifest for platform"), "{all}");
        assert_eq!(
            fallback_digests(&target, "team/app", &image.digest),
            fallback_digests(&source, "team/app", &image.digest),
            "{relay} {platform}: the whole index of artifacts: {all}"
        );
        if relay == "skopeo" {
            // skopeo 1.9 writes the index anew without its entries' artifactType, so the
            // digest differs and the next run copies it again (docs/compatibility.md).
            continue;
        }
        assert_eq!(
            manifest_digest(&target, "team/app", &fallback).as_deref(),
            Some(index.as_str()),
            "{relay} {platform}: the index of artifacts keeps its digest: {all}"
        );
        // The legacy tag is an ordinary image manifest: copied as such.
        let sig = manifest_digest(&target, "team/app", &format!("{fallback}.sig"));
        assert_eq!(sig.as_deref(), Some(legacy.as_str()), "{all}");
        // Up to date on the next run: the decision is the same without a download.
        let again = run_dregsy(&config, &[]);
        assert_eq!(
            messages(&again, "image copied").len(),
            0,
            "{relay} {platform}: {}",
            text(&again)
        );
    }
}
