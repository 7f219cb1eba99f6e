//! Signatures, referrers and image age against real registries (README.md, "Signatures, SBOMs
//! and trust"): cosign-format signatures made with test keys are found where cosign stores them
//! (legacy `.sig` tag and fallback tag on CNCF Distribution, which has no referrers API; the
//! referrers API through a test front that implements it) and checked; tampered, foreign and
//! misdirected signatures are refused with a reason.

mod support;

use std::path::Path;

use dregsy::config::Verify;
use dregsy::cosign::{KeyAlgorithm, PublicKey, Rejection, SignatureLayer, payload_for, verify};
use dregsy::registry::{Digest, Registry, RegistryHost, RegistryOptions, Repository};
use dregsy::relay::trust::check_signed;
use serde_json::json;
use support::referrers::ReferrersRegistry;
use support::signing::{self, Signature, Store, TestKey};
use support::{ImageOptions, Pushed, push_image};

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
        let other = if expected == KeyAlgorithm::Ed25519 {
            TestKey::ed25519()
        } else {
            TestKey::ecdsa()
        };
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

fn client(url: &str) -> Registry {
    support::http::install_crypto_provider();
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
    support::http::block_on(check_signed(client, &repo(name), &digest, verify))
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
        assert!(
            front.seen().iter().any(|s| s.path.contains("/referrers/")
                && s.path
                    .contains("artifactType=application%2Fvnd.dev.cosign.artifact.sig.v1%2Bjson")
                && s.status == 200),
            "asked the referrers API with the artifact type: {:?}",
            front.seen()
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
