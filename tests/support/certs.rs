//! Test certificates: one CA per registry, and the leaves signed by it (server, client, token
//! signer), generated in memory with rcgen so no test depends on files or openssl.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A certificate and its private key, in the encodings the registry, skopeo and ring want.
#[derive(Clone, Debug)]
pub struct Leaf {
    /// PEM of the certificate (what the registry's config and certs.d directories take).
    pub cert_pem: String,
    /// DER of the certificate (what a JWT's `x5c` header carries, base64-encoded).
    pub cert_der: Vec<u8>,
    /// PEM (PKCS#8) of the private key.
    pub key_pem: String,
    /// DER (PKCS#8) of the private key (what ring loads to sign tokens).
    pub key_der: Vec<u8>,
}

/// A throwaway certificate authority: TLS tests trust it explicitly, and an unknown-CA test
/// proves the code under test does not trust everything.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

impl TestCa {
    /// Generates a new CA with a P-256 key.
    pub fn generate(name: &str) -> TestCa {
        let key = KeyPair::generate().expect("generate the test CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("test CA parameters");
        params.distinguished_name.push(DnType::CommonName, name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "dregsy tests");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("self-sign the test CA");
        TestCa {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// PEM of the CA certificate.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A server certificate for the loopback registry: SAN IP:127.0.0.1 and DNS:localhost.
    pub fn server_cert(&self) -> Leaf {
        self.leaf(
            "127.0.0.1",
            vec!["127.0.0.1".to_string(), "localhost".to_string()],
            vec![ExtendedKeyUsagePurpose::ServerAuth],
            vec![KeyUsagePurpose::DigitalSignature],
        )
    }

    /// A client certificate for mTLS (extended key usage clientAuth).
    pub fn client_cert(&self) -> Leaf {
        self.leaf(
            "dregsy-test-client",
            Vec::new(),
            vec![ExtendedKeyUsagePurpose::ClientAuth],
            vec![KeyUsagePurpose::DigitalSignature],
        )
    }

    /// The certificate whose key signs registry tokens; its DER goes into each JWT's `x5c`.
    pub fn token_signing_cert(&self) -> Leaf {
        self.leaf(
            "dregsy-test-token-issuer",
            Vec::new(),
            Vec::new(),
            vec![KeyUsagePurpose::DigitalSignature],
        )
    }

    fn leaf(
        &self,
        common_name: &str,
        subject_alt_names: Vec<String>,
        extended: Vec<ExtendedKeyUsagePurpose>,
        usages: Vec<KeyUsagePurpose>,
    ) -> Leaf {
        let key = KeyPair::generate().expect("generate a test leaf key");
        let mut params = CertificateParams::new(subject_alt_names).expect("test leaf parameters");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = extended;
        params.key_usages = usages;
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign a test leaf with the test CA");
        Leaf {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
        }
    }
}
