//! Cosign-format signatures made in tests, as cosign writes them (sigstore's "Simple Signing"
//! payload, the signature base64 in the `dev.cosignproject.cosign/signature` layer annotation),
//! stored the three ways cosign stores them: the legacy `sha256-<hex>.sig` tag, an OCI 1.1
//! referrer listed in the `sha256-<hex>` fallback tag, or a referrer pushed to a registry with
//! the referrers API. Also cosign 3's sigstore bundles (cosign's "Cosign Bundle Specification":
//! a DSSE envelope of an in-toto statement, signed over the DSSE pre-authentication encoding),
//! stored as referrers. Keys are made by rcgen and signatures by ring, independent of dregsy's
//! code; Ed25519ph signatures (RFC 8032 §5.1, SHA-512 prehash, empty context), which cosign 3
//! makes with Ed25519 keys and ring cannot, by ed25519-dalek's signer (dregsy uses only its
//! verifier, whose agreement with RFC 8032's own test vector its unit tests check).

use std::path::{Path, PathBuf};

use base64::Engine as _;
use ed25519_dalek::{Digest as _, Sha512};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair};
use serde_json::{Value, json};

use super::images::{get_manifest_at, push_blob_at, put_manifest_at};
use super::registry::Endpoint;

pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
pub const SIGNATURE_ARTIFACT_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";
pub const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
pub const SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";

enum Signer {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    /// Ed25519ph, as cosign 3 signs with Ed25519 keys (sigstore's `ED25519phSigner`).
    Ed25519ph(ed25519_dalek::SigningKey),
}

/// A signing key and its public half as PEM.
pub struct TestKey {
    signer: Signer,
    pub public_pem: String,
    public_der: Vec<u8>,
}

impl TestKey {
    /// An ECDSA P-256 key, cosign's default.
    pub fn ecdsa() -> TestKey {
        TestKey::new(&rcgen::PKCS_ECDSA_P256_SHA256, false)
    }

    /// An Ed25519 key signing pure Ed25519, as cosign before version 3.
    pub fn ed25519() -> TestKey {
        TestKey::new(&rcgen::PKCS_ED25519, false)
    }

    /// An Ed25519 key signing Ed25519ph, as cosign 3 does by default.
    pub fn ed25519ph() -> TestKey {
        TestKey::new(&rcgen::PKCS_ED25519, true)
    }

    /// A new key of the same kind (another key's signature).
    pub fn another(&self) -> TestKey {
        match self.signer {
            Signer::Ecdsa(_) => TestKey::ecdsa(),
            Signer::Ed25519(_) => TestKey::ed25519(),
            Signer::Ed25519ph(_) => TestKey::ed25519ph(),
        }
    }

    /// Whether the key signs Ed25519ph (and so writes SHA-512 message digests).
    pub fn prehashed(&self) -> bool {
        matches!(self.signer, Signer::Ed25519ph(_))
    }

    fn new(alg: &'static rcgen::SignatureAlgorithm, prehashed: bool) -> TestKey {
        let pair = rcgen::KeyPair::generate_for(alg).expect("generate a test key");
        let pkcs8 = pair.serialize_der();
        let signer = if prehashed {
            Signer::Ed25519ph(ed25519_dalek::SigningKey::from_bytes(&ed25519_seed(&pkcs8)))
        } else if alg == &rcgen::PKCS_ED25519 {
            Signer::Ed25519(Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8).expect("ed25519"))
        } else {
            Signer::Ecdsa(
                EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                    &pkcs8,
                    &SystemRandom::new(),
                )
                .expect("ecdsa"),
            )
        };
        TestKey {
            signer,
            public_pem: pair.public_key_pem(),
            public_der: rcgen::PublicKeyData::subject_public_key_info(&pair),
        }
    }

    /// Writes the public key to `dir/name` (as `cosign.pub`); returns the path.
    pub fn write_public(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, &self.public_pem).expect("write the public key");
        path
    }

    /// The signature of `message`, base64 as cosign writes it.
    pub fn sign(&self, message: &[u8]) -> String {
        let bytes = match &self.signer {
            Signer::Ecdsa(k) => k
                .sign(&SystemRandom::new(), message)
                .expect("sign")
                .as_ref()
                .to_vec(),
            Signer::Ed25519(k) => k.sign(message).as_ref().to_vec(),
            Signer::Ed25519ph(k) => k
                .sign_prehashed(Sha512::new().chain_update(message), None)
                .expect("sign Ed25519ph")
                .to_bytes()
                .to_vec(),
        };
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }
}

/// The 32-byte seed of an Ed25519 PKCS#8 key (RFC 8410 §7: an OCTET STRING inside the
/// privateKey OCTET STRING, `04 22 04 20 <seed>`).
fn ed25519_seed(pkcs8: &[u8]) -> [u8; 32] {
    let at = pkcs8
        .windows(4)
        .position(|w| w == [0x04, 0x22, 0x04, 0x20])
        .expect("an Ed25519 PKCS#8 key holds its seed");
    pkcs8[at + 4..at + 36].try_into().expect("32 bytes")
}

/// cosign's simple-signing payload for `digest` of `reference`.
pub fn payload(reference: &str, digest: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "critical": {
            "identity": {"docker-reference": reference},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature",
        },
        "optional": null,
    }))
    .expect("serialize a payload")
}

/// Where a signature goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    /// `sha256-<hex>.sig`, as cosign before OCI 1.1.
    LegacyTag,
    /// A referrer (with `subject`), listed in the `sha256-<hex>` fallback tag index.
    FallbackTag,
    /// A referrer pushed to a registry that indexes it (the referrers API).
    ReferrersApi,
}

/// What goes into a signature, so that tests can break one part of it.
pub struct Signature<'a> {
    pub key: &'a TestKey,
    /// The digest the payload names.
    pub names: String,
    /// Replaces the payload after signing (a tampered payload).
    pub tamper: Option<Vec<u8>>,
    /// Replaces the signature annotation.
    pub annotation: Option<String>,
}

impl<'a> Signature<'a> {
    pub fn of(key: &'a TestKey, digest: &str) -> Signature<'a> {
        Signature {
            key,
            names: digest.to_string(),
            tamper: None,
            annotation: None,
        }
    }
}

/// Signs `subject` (a manifest digest in `repo`, of `subject_size` bytes and `subject_type`)
/// and stores the signature through `endpoint` the `store` way; returns the signature
/// manifest's digest.
pub fn sign(
    endpoint: &Endpoint,
    repo: &str,
    subject: (&str, &str, usize),
    signature: Signature<'_>,
    store: Store,
) -> String {
    let signed = payload(&format!("{}/{repo}", endpoint.host), &signature.names);
    let annotation = signature
        .annotation
        .unwrap_or_else(|| signature.key.sign(&signed));
    let stored_payload = signature.tamper.unwrap_or(signed);
    let payload_digest = push_blob_at(endpoint, repo, &stored_payload);
    let layer = json!({
        "mediaType": SIMPLE_SIGNING,
        "digest": payload_digest,
        "size": stored_payload.len(),
        "annotations": {SIGNATURE_ANNOTATION: annotation},
    });
    store_signature(
        endpoint,
        repo,
        subject,
        layer,
        SIGNATURE_ARTIFACT_TYPE,
        store,
    )
}

/// What goes into a sigstore bundle signature, so that tests can break one part of it.
pub struct BundleSignature<'a> {
    pub key: &'a TestKey,
    /// The digest the in-toto statement names.
    pub names: String,
    /// The statement's predicate type: cosign's signature type, or an attestation's.
    pub predicate_type: String,
    /// Replaces the payload after signing (a tampered payload).
    pub tamper: Option<Vec<u8>>,
    /// A Fulcio certificate instead of the key's hint (a keyless signature).
    pub keyless: bool,
}

impl<'a> BundleSignature<'a> {
    pub fn of(key: &'a TestKey, digest: &str) -> BundleSignature<'a> {
        BundleSignature {
            key,
            names: digest.to_string(),
            predicate_type: SIGN_PREDICATE.to_string(),
            tamper: None,
            keyless: false,
        }
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The verification material of a bundle: the key's hint (base64 of the SHA-256 of its
/// SubjectPublicKeyInfo, as cosign writes it), or a certificate for a keyless signature.
fn material(key: &TestKey, keyless: bool) -> Value {
    if keyless {
        json!({"certificate": {"rawBytes": b64(b"a Fulcio certificate")}, "tlogEntries": []})
    } else {
        let hint = ring::digest::digest(&ring::digest::SHA256, &key.public_der);
        json!({"publicKey": {"hint": b64(hint.as_ref())}, "tlogEntries": []})
    }
}

/// The sigstore bundle `cosign sign --key` writes (with `--tlog-upload=false`): a DSSE
/// envelope of an in-toto statement naming the digest, signed over the envelope's
/// pre-authentication encoding.
pub fn bundle(signature: &BundleSignature<'_>) -> Vec<u8> {
    let statement = serde_json::to_vec(&json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"digest": {"sha256": signature.names.trim_start_matches("sha256:")}}],
        "predicateType": signature.predicate_type,
        "predicate": {},
    }))
    .expect("serialize a statement");
    let payload_type = "application/vnd.in-toto+json";
    let mut pae = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        statement.len()
    )
    .into_bytes();
    pae.extend_from_slice(&statement);
    let sig = signature.key.sign(&pae);
    let stored = signature.tamper.clone().unwrap_or(statement);
    serde_json::to_vec(&json!({
        "mediaType": BUNDLE,
        "verificationMaterial": material(signature.key, signature.keyless),
        "dsseEnvelope": {
            "payload": b64(&stored),
            "payloadType": payload_type,
            "signatures": [{"sig": sig, "keyid": ""}],
        },
    }))
    .expect("serialize a bundle")
}

/// A bundle holding a message signature of `manifest` (the signed bytes themselves) and its
/// digest: SHA-256, or SHA-512 for an Ed25519ph key (sigstore-go's `PlainData` with the
/// keypair's hash).
pub fn message_bundle(key: &TestKey, manifest: &[u8]) -> Vec<u8> {
    message_bundle_naming(key, manifest, manifest)
}

/// A message signature of `manifest` whose `messageDigest` is `named`'s.
pub fn message_bundle_naming(key: &TestKey, manifest: &[u8], named: &[u8]) -> Vec<u8> {
    let (algorithm, digest) = if key.prehashed() {
        (
            "SHA2_512",
            ring::digest::digest(&ring::digest::SHA512, named),
        )
    } else {
        (
            "SHA2_256",
            ring::digest::digest(&ring::digest::SHA256, named),
        )
    };
    serde_json::to_vec(&json!({
        "mediaType": BUNDLE,
        "verificationMaterial": material(key, false),
        "messageSignature": {
            "messageDigest": {"algorithm": algorithm, "digest": b64(digest.as_ref())},
            "signature": key.sign(manifest),
        },
    }))
    .expect("serialize a bundle")
}

/// Stores `bundle` as cosign 3 does: a referrer of `subject` whose artifact type and only layer
/// are the bundle's media type, the `store` way (not a legacy tag: bundles have none); returns
/// the referrer manifest's digest.
pub fn attach_bundle(
    endpoint: &Endpoint,
    repo: &str,
    subject: (&str, &str, usize),
    bundle: &[u8],
    store: Store,
) -> String {
    assert_ne!(
        store,
        Store::LegacyTag,
        "cosign stores bundles as referrers"
    );
    let digest = push_blob_at(endpoint, repo, bundle);
    let title = format!("{}.sigstore.json", digest.replace(':', "-"));
    let layer = json!({
        "mediaType": BUNDLE,
        "digest": digest,
        "size": bundle.len(),
        "annotations": {"org.opencontainers.image.title": title},
    });
    store_signature(endpoint, repo, subject, layer, BUNDLE, store)
}

/// Stores a signature manifest of one `layer` for `subject` the `store` way; returns its digest.
fn store_signature(
    endpoint: &Endpoint,
    repo: &str,
    subject: (&str, &str, usize),
    layer: Value,
    artifact_type: &str,
    store: Store,
) -> String {
    let (subject_digest, subject_type, subject_size) = subject;
    let hex = subject_digest.trim_start_matches("sha256:");
    let manifest = match store {
        Store::LegacyTag => {
            let config = br#"{"architecture":"","os":"","config":{},"rootfs":{"type":"layers","diff_ids":[]}}"#;
            let config_digest = push_blob_at(endpoint, repo, config);
            json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
                "layers": [layer],
            })
        }
        Store::FallbackTag | Store::ReferrersApi => {
            let empty = b"{}";
            let empty_digest = push_blob_at(endpoint, repo, empty);
            json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "artifactType": artifact_type,
                "config": {"mediaType": EMPTY_CONFIG, "digest": empty_digest, "size": 2},
                "layers": [layer],
                "subject": {"mediaType": subject_type, "digest": subject_digest, "size": subject_size},
            })
        }
    };
    let bytes = serde_json::to_vec(&manifest).expect("serialize a signature manifest");
    match store {
        Store::LegacyTag => put_manifest_at(
            endpoint,
            repo,
            &format!("sha256-{hex}.sig"),
            OCI_MANIFEST,
            &bytes,
        ),
        Store::ReferrersApi => put_manifest_at(endpoint, repo, "", OCI_MANIFEST, &bytes),
        Store::FallbackTag => {
            let digest = put_manifest_at(endpoint, repo, "", OCI_MANIFEST, &bytes);
            let entry = json!({
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": bytes.len(),
                "artifactType": artifact_type,
            });
            add_to_fallback_tag(endpoint, repo, subject_digest, entry);
            digest
        }
    }
}

/// Adds `entry` to the `sha256-<hex>` fallback tag index of `subject`, creating it when missing.
pub fn add_to_fallback_tag(endpoint: &Endpoint, repo: &str, subject: &str, entry: Value) {
    let tag = format!("sha256-{}", subject.trim_start_matches("sha256:"));
    let mut index = get_manifest_at(endpoint, repo, &tag)
        .map(|m| m.json())
        .unwrap_or_else(|| json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}));
    index["manifests"]
        .as_array_mut()
        .expect("a fallback index lists manifests")
        .push(entry);
    let bytes = serde_json::to_vec(&index).expect("serialize");
    put_manifest_at(endpoint, repo, &tag, OCI_INDEX, &bytes);
}
