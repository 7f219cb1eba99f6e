//! Signatures in the sigstore bundle format, cosign 3's default: an OCI 1.1 referrer whose
//! `artifactType` and only layer are [`BUNDLE_MEDIA_TYPE`], the layer a sigstore bundle in JSON
//! (cosign's "Cosign Bundle Specification"; sigstore protobuf-specs, `sigstore_bundle.proto`).
//!
//! `cosign sign --key` puts a DSSE envelope in the bundle (`dsseEnvelope`): its payload is an
//! in-toto statement whose `predicateType` is [`SIGN_PREDICATE_TYPE`] and whose `subject` lists
//! the image digest; the signature is over the envelope's pre-authentication encoding (DSSE
//! protocol, "PAE"), not the payload alone. A bundle may instead hold a `messageSignature`: a
//! signature over the signed bytes themselves, which for an image are its manifest, and the
//! `messageDigest` of those bytes (SHA-256, or SHA-512 when the key signs Ed25519ph).
//!
//! With an Ed25519 key cosign 3 signs both forms as Ed25519ph: the DSSE signature is over the
//! SHA-512 of the PAE, a message signature over the SHA-512 of the message, both with an empty
//! context (sigstore-go's `DSSEData`/`PlainData` signed by cosign's Ed25519ph keypair). Those
//! and pure Ed25519 signatures are both accepted ([`PublicKey::verifies`]).
//!
//! Only the signature made with the configured key is checked. What else a bundle may carry is
//! not: transparency log entries and timestamps (checking them needs Rekor's and the timestamp
//! authority's keys from sigstore's trust root on the internet), and certificates of keyless
//! signatures (Fulcio), which are refused.

use std::collections::BTreeMap;

use base64::Engine as _;
use ed25519_dalek::{Digest as _, Sha512};
use serde::Deserialize;

use super::{PublicKey, Rejection};
use crate::registry::{Digest, lower_hex};

/// The media type of a sigstore bundle (v0.3), as cosign 3 writes it: the referrer's
/// `artifactType` and its layer's media type.
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The prefix every sigstore bundle media type shares (v0.1 and v0.2 wrote
/// `application/vnd.dev.sigstore.bundle+json;version=0.x`).
const BUNDLE_MEDIA_TYPE_PREFIX: &str = "application/vnd.dev.sigstore.bundle";
/// The DSSE payload type of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The in-toto predicate type of a cosign image signature (`cosign sign`); attestations
/// (`cosign attest`) carry others.
pub const SIGN_PREDICATE_TYPE: &str = "https://sigstore.dev/cosign/sign/v1";
/// The in-toto statement types read.
const STATEMENT_TYPES: [&str; 2] = [
    "https://in-toto.io/Statement/v1",
    "https://in-toto.io/Statement/v0.1",
];

/// Whether `media_type` is a sigstore bundle's (any version).
pub fn is_bundle_media_type(media_type: &str) -> bool {
    media_type.starts_with(BUNDLE_MEDIA_TYPE_PREFIX)
}

/// The DSSE pre-authentication encoding of a payload: what a DSSE signature signs (DSSE
/// protocol v1: `DSSEv1 SP len(type) SP type SP len(body) SP body`, lengths in ASCII decimal).
pub fn pre_authentication_encoding(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut pae = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    pae.extend_from_slice(payload);
    pae
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBundle {
    #[serde(default)]
    media_type: String,
    #[serde(default)]
    verification_material: RawMaterial,
    dsse_envelope: Option<RawEnvelope>,
    message_signature: Option<RawMessageSignature>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawMaterial {
    public_key: Option<serde_json::Value>,
    certificate: Option<serde_json::Value>,
    x509_certificate_chain: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEnvelope {
    payload: String,
    payload_type: String,
    #[serde(default)]
    signatures: Vec<RawDsseSignature>,
}

#[derive(Deserialize)]
struct RawDsseSignature {
    sig: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMessageSignature {
    message_digest: Option<RawHash>,
    signature: String,
}

#[derive(Deserialize)]
struct RawHash {
    algorithm: String,
    digest: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Statement {
    #[serde(rename = "_type")]
    kind: String,
    #[serde(default)]
    subject: Vec<StatementSubject>,
    #[serde(default)]
    predicate_type: String,
}

#[derive(Deserialize)]
struct StatementSubject {
    #[serde(default)]
    digest: BTreeMap<String, String>,
}

fn base64_of(text: &str) -> Result<Vec<u8>, Rejection> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| Rejection::NotBase64)
}

/// Checks that `bundle` (a sigstore bundle's JSON) holds `key`'s signature of `subject`.
/// `subject_manifest` is the subject's manifest, which a `messageSignature` signs; without it
/// such a bundle is answered [`Rejection::NeedsSubjectManifest`], so the caller reads the
/// manifest only for them.
///
/// # Errors
/// The [`Rejection`] saying why the bundle does not vouch for `subject`: not a bundle, a
/// keyless one, a bad signature, an attestation rather than a signature, or a signature of
/// another manifest.
pub fn verify_bundle(
    key: &PublicKey,
    bundle: &[u8],
    subject: &Digest,
    subject_manifest: Option<&[u8]>,
) -> Result<(), Rejection> {
    let raw: RawBundle = serde_json::from_slice(bundle)
        .map_err(|e| Rejection::NotBundle(format!("not JSON of a bundle ({e})")))?;
    if !is_bundle_media_type(&raw.media_type) {
        return Err(Rejection::NotBundle(format!(
            "its mediaType is '{}'",
            crate::registry::truncate(&raw.media_type, 80)
        )));
    }
    let material = &raw.verification_material;
    if material.public_key.is_none()
        && (material.certificate.is_some() || material.x509_certificate_chain.is_some())
    {
        return Err(Rejection::Keyless);
    }
    match (raw.dsse_envelope, raw.message_signature) {
        (Some(envelope), _) => verify_envelope(key, &envelope, subject),
        (None, Some(message)) => verify_message(key, &message, subject, subject_manifest),
        (None, None) => Err(Rejection::NotBundle(
            "it holds neither a dsseEnvelope nor a messageSignature".into(),
        )),
    }
}

/// A DSSE envelope: one of its signatures over the PAE verifies, and its statement is a cosign
/// signature naming `subject`.
fn verify_envelope(
    key: &PublicKey,
    envelope: &RawEnvelope,
    subject: &Digest,
) -> Result<(), Rejection> {
    let payload = base64_of(&envelope.payload)?;
    let pae = pre_authentication_encoding(&envelope.payload_type, &payload);
    let mut signed = false;
    for signature in &envelope.signatures {
        signed |= key.verifies(&pae, &base64_of(&signature.sig)?);
    }
    if !signed {
        return Err(Rejection::BadSignature);
    }
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(Rejection::NotSignature(format!(
            "its payload type is '{}', not '{IN_TOTO_PAYLOAD_TYPE}'",
            crate::registry::truncate(&envelope.payload_type, 80)
        )));
    }
    let statement: Statement = serde_json::from_slice(&payload).map_err(|e| {
        Rejection::NotSignature(format!("its payload is not an in-toto statement ({e})"))
    })?;
    if !STATEMENT_TYPES.contains(&statement.kind.as_str()) {
        return Err(Rejection::NotSignature(format!(
            "its payload's _type is '{}', not an in-toto statement",
            crate::registry::truncate(&statement.kind, 80)
        )));
    }
    if statement.predicate_type != SIGN_PREDICATE_TYPE {
        return Err(Rejection::NotSignature(format!(
            "it is an attestation of predicate type '{}', not a signature ('{SIGN_PREDICATE_TYPE}')",
            crate::registry::truncate(&statement.predicate_type, 120)
        )));
    }
    let hex = subject.hex();
    let named: Vec<&str> = statement
        .subject
        .iter()
        .filter_map(|s| s.digest.get("sha256").map(String::as_str))
        .collect();
    if named.contains(&hex) {
        return Ok(());
    }
    Err(Rejection::OtherDigest(named.first().map_or_else(
        || "none named".to_string(),
        |n| format!("sha256:{}", crate::registry::truncate(n, 80)),
    )))
}

/// A message signature: its digest is `subject`'s manifest's and its signature over that
/// manifest verifies. A SHA-256 `messageDigest` is the subject digest itself and is compared
/// before the manifest is needed; a SHA-512 one (Ed25519ph) is compared with the manifest's.
fn verify_message(
    key: &PublicKey,
    message: &RawMessageSignature,
    subject: &Digest,
    subject_manifest: Option<&[u8]>,
) -> Result<(), Rejection> {
    let Some(hash) = &message.message_digest else {
        return Err(Rejection::NotBundle(
            "its messageSignature has no messageDigest".into(),
        ));
    };
    let named = lower_hex(&base64_of(&hash.digest)?);
    let sha512 = match hash.algorithm.as_str() {
        "SHA2_256" => false,
        "SHA2_512" => true,
        other => {
            return Err(Rejection::OtherDigest(format!(
                "a {} digest",
                crate::registry::truncate(other, 40)
            )));
        }
    };
    if !sha512 && named != subject.hex() {
        return Err(Rejection::OtherDigest(format!(
            "sha256:{}",
            crate::registry::truncate(&named, 80)
        )));
    }
    let Some(manifest) = subject_manifest else {
        return Err(Rejection::NeedsSubjectManifest);
    };
    if Digest::of(manifest) != *subject {
        return Err(Rejection::OtherDigest(Digest::of(manifest).to_string()));
    }
    if sha512 && named != lower_hex(&Sha512::digest(manifest)) {
        return Err(Rejection::OtherDigest(format!(
            "sha512:{}",
            crate::registry::truncate(&named, 128)
        )));
    }
    if key.verifies(manifest, &base64_of(&message.signature)?) {
        Ok(())
    } else {
        Err(Rejection::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pre_authentication_encoding_is_dsse_v1() {
        // The DSSE protocol's own example.
        assert_eq!(
            pre_authentication_encoding("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
        assert_eq!(
            pre_authentication_encoding("", b""),
            b"DSSEv1 0  0 ".to_vec()
        );
    }

    #[test]
    fn bundle_media_types() {
        assert!(is_bundle_media_type(BUNDLE_MEDIA_TYPE));
        assert!(is_bundle_media_type(
            "application/vnd.dev.sigstore.bundle+json;version=0.2"
        ));
        assert!(!is_bundle_media_type(
            "application/vnd.dev.cosign.artifact.sig.v1+json"
        ));
    }

    #[test]
    fn malformed_bundles_are_refused_before_any_key_is_used() {
        let key = PublicKey::from_pem(
            rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
                .expect("key")
                .public_key_pem()
                .as_bytes(),
        )
        .expect("pem");
        let subject = Digest::of(b"m");
        let cases: [(&[u8], &str); 5] = [
            (b"not json", "not JSON of a bundle"),
            (br#"{"mediaType":"text/plain"}"#, "its mediaType is 'text/plain'"),
            (
                br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}"#,
                "neither a dsseEnvelope nor a messageSignature",
            ),
            (
                br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"certificate":{"rawBytes":"AA=="}},"dsseEnvelope":{"payload":"","payloadType":"x","signatures":[]}}"#,
                "keyless",
            ),
            (
                br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","dsseEnvelope":{"payload":"%%","payloadType":"x","signatures":[]}}"#,
                "not base64",
            ),
        ];
        for (bytes, expected) in cases {
            let err = verify_bundle(&key, bytes, &subject, None).expect_err("refused");
            assert!(err.to_string().contains(expected), "{err}");
        }
    }
}
