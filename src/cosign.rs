//! Cosign signatures made with a key: public keys, signature manifests and the simple-signing
//! payload (README.md, "Signatures, SBOMs and trust"; docs/configuration.md#verify).
//!
//! A cosign signature of an image is an image manifest whose layers are simple-signing payloads
//! (media type [`SIMPLE_SIGNING_MEDIA_TYPE`]), each with its signature, base64, in the layer's
//! [`SIGNATURE_ANNOTATION`]. The payload is JSON naming the signed manifest's digest in
//! `critical.image.docker-manifest-digest`; the signature is over the payload's exact bytes.
//! The format is sigstore's "Simple Signing" and cosign's signature specification.
//!
//! cosign 3 writes signatures as sigstore bundles instead by default: those are [`bundle`]'s.
//!
//! Only key-based verification is here: keyless signatures (Fulcio certificates, Rekor
//! transparency log entries) need those services on the internet and are out of scope.
//! Cryptography is *ring*'s, reached through webpki, which also parses the key's
//! SubjectPublicKeyInfo; the PEM armour is read by rustls-pki-types. Ed25519ph, which ring does
//! not offer, is ed25519-dalek's.
//!
//! An Ed25519 key signs two ways (RFC 8032 §5.1): pure Ed25519 over the message, and Ed25519ph
//! over the message's SHA-512 with an empty context. cosign 3 loads Ed25519 keys as Ed25519ph by
//! default (its `GetDefaultLoadOptions`, sigstore's `ED25519phSigner`), for bundles and
//! simple-signing payloads alike; older cosign signed pure Ed25519. Both are accepted: the two
//! schemes are domain-separated, so a signature of one is never a signature of the other.

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use ed25519_dalek::{Digest as _, Sha512};
use rustls_pki_types::SubjectPublicKeyInfoDer;
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;
use webpki::RawPublicKeyEntity;

use crate::registry::Digest;

pub mod bundle;

/// Media type of a layer holding a simple-signing payload.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the payload's signature, base64 (standard alphabet, padded).
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The `artifactType` of a cosign signature stored as an OCI 1.1 referrer.
pub const SIGNATURE_ARTIFACT_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
/// The `critical.type` of an image signature payload.
pub const PAYLOAD_TYPE: &str = "cosign container image signature";
/// Key files larger than this are not public keys (a PEM P-256 key is 178 bytes).
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// The signature algorithms of the keys we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// ECDSA on the P-256 curve with SHA-256, ASN.1 DER signatures (cosign's default keys).
    EcdsaP256,
    /// Ed25519: pure over the signed bytes, or Ed25519ph over their SHA-512 (empty context).
    Ed25519,
}

impl KeyAlgorithm {
    fn verifier(self) -> &'static dyn rustls_pki_types::SignatureVerificationAlgorithm {
        match self {
            KeyAlgorithm::EcdsaP256 => webpki::ring::ECDSA_P256_SHA256,
            KeyAlgorithm::Ed25519 => webpki::ring::ED25519,
        }
    }

    /// The name used in messages and docs.
    pub fn name(self) -> &'static str {
        match self {
            KeyAlgorithm::EcdsaP256 => "ECDSA P-256",
            KeyAlgorithm::Ed25519 => "Ed25519",
        }
    }
}

/// A cosign public key: a PEM `PUBLIC KEY` (SubjectPublicKeyInfo), ECDSA P-256 or Ed25519.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    algorithm: KeyAlgorithm,
    spki: Vec<u8>,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.algorithm.name())
    }
}

impl PublicKey {
    /// Reads a key file, as `cosign generate-key-pair` writes `cosign.pub`.
    ///
    /// # Errors
    /// The file cannot be read, is too large to be a key, or is not a supported public key;
    /// the message names the file and says what it expected.
    pub fn load(path: &Path) -> Result<PublicKey, String> {
        let name = path.display();
        let size = std::fs::metadata(path)
            .map_err(|e| format!("cannot read cosign public key '{name}': {e}"))?
            .len();
        if size > MAX_KEY_FILE_BYTES {
            return Err(format!(
                "'{name}' is not a cosign public key: {size} bytes is far too large for one"
            ));
        }
        let bytes = std::fs::read(path)
            .map_err(|e| format!("cannot read cosign public key '{name}': {e}"))?;
        PublicKey::from_pem(&bytes)
            .map_err(|e| format!("'{name}' is not a usable cosign public key: {e}"))
    }

    /// Parses a PEM `PUBLIC KEY` block.
    ///
    /// # Errors
    /// No `PUBLIC KEY` block (a private key, a certificate or other text), a malformed one, or
    /// a key of another algorithm than ECDSA P-256 and Ed25519.
    pub fn from_pem(pem: &[u8]) -> Result<PublicKey, String> {
        let spki = SubjectPublicKeyInfoDer::from_pem_slice(pem).map_err(|e| match e {
            rustls_pki_types::pem::Error::NoItemsFound => {
                "it holds no '-----BEGIN PUBLIC KEY-----' block (expected the public key, e.g. \
                 cosign.pub, not a private key or a certificate)"
                    .to_string()
            }
            other => format!("its PEM armour is malformed ({other:?})"),
        })?;
        let entity = RawPublicKeyEntity::try_from(&spki)
            .map_err(|e| format!("its PUBLIC KEY block is not a SubjectPublicKeyInfo ({e})"))?;
        // webpki compares the key's algorithm identifier before it verifies anything: an
        // empty signature tells the key's algorithm apart from a wrong signature.
        let algorithm = [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Ed25519]
            .into_iter()
            .find(|alg| {
                !matches!(
                    entity.verify_signature(alg.verifier(), b"", b""),
                    Err(webpki::Error::UnsupportedSignatureAlgorithmForPublicKeyContext(_))
                )
            })
            .ok_or_else(|| {
                "the key's algorithm is not supported: cosign keys must be ECDSA P-256 or Ed25519"
                    .to_string()
            })?;
        Ok(PublicKey {
            algorithm,
            spki: spki.as_ref().to_vec(),
        })
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// Whether `signature` is this key's signature of `message`; for an Ed25519 key, a pure
    /// Ed25519 signature of `message` or an Ed25519ph one of its SHA-512 (see the module docs).
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        let spki = SubjectPublicKeyInfoDer::from(self.spki.as_slice());
        let pure = RawPublicKeyEntity::try_from(&spki).is_ok_and(|entity| {
            entity
                .verify_signature(self.algorithm.verifier(), message, signature)
                .is_ok()
        });
        pure || self.verifies_ed25519ph(message, signature)
    }

    /// Whether `signature` is this Ed25519 key's Ed25519ph signature of `message`: over its
    /// SHA-512, with an empty context (RFC 8032 §5.1; Go's `ed25519.Options{Hash: SHA512}`,
    /// which sigstore's `ED25519phVerifier` uses). False for other keys.
    fn verifies_ed25519ph(&self, message: &[u8], signature: &[u8]) -> bool {
        let (Some(key), Ok(signature)) = (
            self.ed25519_key(),
            ed25519_dalek::Signature::from_slice(signature),
        ) else {
            return false;
        };
        // Strict: no small-order keys or non-canonical points, which no signer produces.
        key.verify_prehashed_strict(Sha512::new().chain_update(message), None, &signature)
            .is_ok()
    }

    /// The raw Ed25519 key of an Ed25519 SubjectPublicKeyInfo, whose DER is fixed: a 12-byte
    /// header and the 32-byte key (RFC 8410 §4).
    fn ed25519_key(&self) -> Option<ed25519_dalek::VerifyingKey> {
        const HEADER: [u8; 12] = [
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        if self.algorithm != KeyAlgorithm::Ed25519 {
            return None;
        }
        let raw: &[u8; 32] = self.spki.strip_prefix(&HEADER)?.try_into().ok()?;
        ed25519_dalek::VerifyingKey::from_bytes(raw).ok()
    }
}

/// One signature of a signature manifest: the payload blob it signs and the signature text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureLayer {
    /// The payload blob's digest.
    pub payload_digest: Digest,
    /// The payload blob's size in bytes.
    pub payload_size: u64,
    /// The [`SIGNATURE_ANNOTATION`] as written (base64).
    pub signature: String,
}

/// Why a signature does not vouch for an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The payload's bytes do not hash to the digest its layer declares.
    PayloadDigest {
        /// The digest the layer declares.
        declared: Digest,
        /// The digest of the bytes received.
        actual: Digest,
    },
    /// The signature annotation is not base64.
    NotBase64,
    /// The signature does not verify with the configured key (another key, or a changed payload).
    BadSignature,
    /// The payload is not a simple-signing payload of an image signature.
    NotSimpleSigning(String),
    /// The payload vouches for another manifest.
    OtherDigest(String),
    /// A sigstore bundle layer that is not a bundle, or lacks what one must hold.
    NotBundle(String),
    /// A keyless signature (a Fulcio certificate instead of a key).
    Keyless,
    /// A correctly signed bundle that is not an image signature (an attestation).
    NotSignature(String),
    /// A `messageSignature` bundle, which signs the subject's manifest: the caller must pass
    /// the manifest (see [`bundle::verify_bundle`]).
    NeedsSubjectManifest,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::PayloadDigest { declared, actual } => write!(
                f,
                "the payload blob does not match its digest (declared {declared}, got {actual})"
            ),
            Rejection::NotBase64 => {
                write!(f, "the '{SIGNATURE_ANNOTATION}' annotation is not base64")
            }
            Rejection::BadSignature => write!(
                f,
                "the signature does not verify with the configured key (signed with another key, or the payload was changed)"
            ),
            Rejection::NotSimpleSigning(why) => {
                write!(
                    f,
                    "the payload is not a cosign simple-signing payload ({why})"
                )
            }
            Rejection::OtherDigest(digest) => {
                write!(f, "the signature is for another manifest ({digest})")
            }
            Rejection::NotBundle(why) => write!(f, "the sigstore bundle is malformed: {why}"),
            Rejection::Keyless => write!(
                f,
                "it is a keyless signature (a Fulcio certificate): checking it needs Fulcio's and \
                 Rekor's trust roots on the internet, which dregsy does not support"
            ),
            Rejection::NotSignature(why) => write!(f, "not an image signature: {why}"),
            Rejection::NeedsSubjectManifest => {
                write!(
                    f,
                    "the message signature needs the signed manifest to be checked"
                )
            }
        }
    }
}

#[derive(Deserialize)]
struct RawSignatureManifest {
    #[serde(default)]
    layers: Vec<RawLayer>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLayer {
    #[serde(default)]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

/// A sigstore bundle layer of a signature manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleLayer {
    /// The bundle blob's digest.
    pub digest: Digest,
    /// The bundle blob's size in bytes.
    pub size: u64,
}

/// The sigstore bundle layers of a signature manifest (cosign 3's format).
///
/// # Errors
/// The manifest is not JSON of an image manifest's shape, or a layer's digest is malformed.
pub fn bundle_layers(manifest: &[u8]) -> Result<Vec<BundleLayer>, String> {
    let raw: RawSignatureManifest = serde_json::from_slice(manifest)
        .map_err(|e| format!("the signature manifest is not a valid image manifest ({e})"))?;
    raw.layers
        .into_iter()
        .filter(|l| bundle::is_bundle_media_type(&l.media_type))
        .map(|l| {
            Digest::parse(&l.digest)
                .map(|digest| BundleLayer {
                    digest,
                    size: l.size,
                })
                .map_err(|e| format!("a bundle layer has a malformed digest ({e})"))
        })
        .collect()
}

/// The signatures of a cosign signature manifest: its simple-signing layers that carry a
/// signature annotation. Other layers (attestations, bundles) are left out.
///
/// # Errors
/// The manifest is not JSON of an image manifest's shape, or a layer's digest is malformed.
pub fn signature_layers(manifest: &[u8]) -> Result<Vec<SignatureLayer>, String> {
    let raw: RawSignatureManifest = serde_json::from_slice(manifest)
        .map_err(|e| format!("the signature manifest is not a valid image manifest ({e})"))?;
    raw.layers
        .into_iter()
        .filter(|l| l.media_type == SIMPLE_SIGNING_MEDIA_TYPE)
        .filter_map(|l| {
            let signature = l.annotations.get(SIGNATURE_ANNOTATION)?.clone();
            Some(
                Digest::parse(&l.digest)
                    .map(|payload_digest| SignatureLayer {
                        payload_digest,
                        payload_size: l.size,
                        signature,
                    })
                    .map_err(|e| format!("a signature layer has a malformed digest ({e})")),
            )
        })
        .collect()
}

#[derive(Deserialize)]
struct Payload {
    critical: Critical,
}

#[derive(Deserialize)]
struct Critical {
    image: PayloadImage,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct PayloadImage {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// Checks that `layer`, whose payload blob is `payload`, is `key`'s signature of `subject`.
///
/// The signature is checked before the payload is read, so an unsigned payload's content
/// never matters; then the payload must be an image signature naming `subject`.
///
/// # Errors
/// The [`Rejection`] saying why the signature does not vouch for `subject`.
pub fn verify(
    key: &PublicKey,
    layer: &SignatureLayer,
    payload: &[u8],
    subject: &Digest,
) -> Result<(), Rejection> {
    let actual = Digest::of(payload);
    if actual != layer.payload_digest {
        return Err(Rejection::PayloadDigest {
            declared: layer.payload_digest.clone(),
            actual,
        });
    }
    let signature = base64::engine::general_purpose::STANDARD
        .decode(layer.signature.trim())
        .map_err(|_| Rejection::NotBase64)?;
    if !key.verifies(payload, &signature) {
        return Err(Rejection::BadSignature);
    }
    let parsed: Payload =
        serde_json::from_slice(payload).map_err(|e| Rejection::NotSimpleSigning(e.to_string()))?;
    if !parsed.critical.kind.eq_ignore_ascii_case(PAYLOAD_TYPE) {
        return Err(Rejection::NotSimpleSigning(format!(
            "its type is '{}', not '{PAYLOAD_TYPE}'",
            crate::registry::truncate(&parsed.critical.kind, 80)
        )));
    }
    let named = parsed.critical.image.docker_manifest_digest;
    if named != subject.as_str() {
        return Err(Rejection::OtherDigest(crate::registry::truncate(
            &named, 80,
        )));
    }
    Ok(())
}

/// The simple-signing payload cosign writes for `digest` of `repository` (for tests and for
/// documentation of the format; dregsy itself never signs).
pub fn payload_for(repository: &str, digest: &Digest) -> Vec<u8> {
    serde_json::json!({
        "critical": {
            "identity": {"docker-reference": repository},
            "image": {"docker-manifest-digest": digest.as_str()},
            "type": PAYLOAD_TYPE,
        },
        "optional": null,
    })
    .to_string()
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
            .collect()
    }

    /// RFC 8032 §7.3, the Ed25519ph test vector ("abc"): the public key as a cosign.pub.
    #[test]
    fn ed25519ph_signatures_verify_as_rfc_8032_specifies() {
        let mut spki = unhex("302a300506032b6570032100");
        spki.extend(unhex(
            "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
        ));
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(&spki)
        );
        let key = PublicKey::from_pem(pem.as_bytes()).expect("an Ed25519 key");
        assert_eq!(key.algorithm(), KeyAlgorithm::Ed25519);
        let signature = unhex(
            "98a70222f0b8121aa9d30f813d683f809e462b469c7ff87639499bb94e6dae41\
             31f85042463c2a355a2003d062adf5aaa10b8c61e636062aaad11c2a26083406",
        );
        assert!(key.verifies(b"abc", &signature));
        assert!(!key.verifies(b"abd", &signature));
        let mut changed = signature.clone();
        changed[0] ^= 1;
        assert!(!key.verifies(b"abc", &changed));
        assert!(!key.verifies(b"abc", &signature[..63]));
    }

    #[test]
    fn key_files_that_are_not_usable_keys_are_refused() {
        let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)
            .expect("p384")
            .public_key_pem();
        let cases: [(&[u8], &str); 5] = [
            (b"hello", "no '-----BEGIN PUBLIC KEY-----' block"),
            (b"", "no '-----BEGIN PUBLIC KEY-----' block"),
            (
                b"-----BEGIN PUBLIC KEY-----\nnot base64!\n-----END PUBLIC KEY-----\n",
                "malformed",
            ),
            (
                b"-----BEGIN PUBLIC KEY-----\naGVsbG8=\n-----END PUBLIC KEY-----\n",
                "not a SubjectPublicKeyInfo",
            ),
            (p384.as_bytes(), "ECDSA P-256 or Ed25519"),
        ];
        for (pem, expected) in cases {
            let err = PublicKey::from_pem(pem).expect_err("refused");
            assert!(err.contains(expected), "{err}");
        }
        let private = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .expect("p256")
            .serialize_pem();
        let err = PublicKey::from_pem(private.as_bytes()).expect_err("a private key");
        assert!(err.contains("not a private key"), "{err}");
    }

    #[test]
    fn loading_names_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("missing.pub");
        let err = PublicKey::load(&missing).expect_err("missing");
        assert!(err.contains("missing.pub"), "{err}");
        let junk = dir.path().join("junk.pub");
        std::fs::write(&junk, "junk").expect("write");
        let err = PublicKey::load(&junk).expect_err("junk");
        assert!(
            err.contains("junk.pub") && err.contains("not a usable"),
            "{err}"
        );
    }

    #[test]
    fn signature_layers_keep_only_signed_simple_signing_layers() {
        let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let manifest = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":2}},
              "layers":[
                {{"mediaType":"{SIMPLE_SIGNING_MEDIA_TYPE}","digest":"{}","size":9,"annotations":{{"{SIGNATURE_ANNOTATION}":"c2ln"}}}},
                {{"mediaType":"{SIMPLE_SIGNING_MEDIA_TYPE}","digest":"{}","size":9}},
                {{"mediaType":"application/vnd.dsse.envelope.v1+json","digest":"{}","size":9,"annotations":{{"{SIGNATURE_ANNOTATION}":"c2ln"}}}}
              ]}}"#,
            d('0'),
            d('1'),
            d('2'),
            d('3')
        );
        let layers = signature_layers(manifest.as_bytes()).expect("layers");
        assert_eq!(layers.len(), 1);
        assert_eq!(layers[0].payload_digest.as_str(), d('1'));
        assert_eq!(layers[0].signature, "c2ln");
        assert!(signature_layers(b"[1,2]").is_err());
        let bad_digest = format!(
            r#"{{"layers":[{{"mediaType":"{SIMPLE_SIGNING_MEDIA_TYPE}","digest":"md5:x","size":1,"annotations":{{"{SIGNATURE_ANNOTATION}":"c2ln"}}}}]}}"#
        );
        assert!(signature_layers(bad_digest.as_bytes()).is_err());
    }
}
