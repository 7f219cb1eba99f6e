//! The integration-test harness: real registries on loopback, a token issuer, test
//! certificates, an independent image pusher and a fault-injecting proxy.
//!
//! Each integration test binary includes it with `mod support;` and uses a part of it, hence
//! `dead_code` (and `unused_imports`, for the re-exports below) is allowed. The API is
//! synchronous: async work runs on threads with their own runtimes, so it works from plain
//! `#[test]`s and from `#[tokio::test]`s alike.
#![allow(dead_code, unused_imports)]

/// Test CA and leaf certificates.
pub mod certs;
/// Stand-ins for cloud APIs: moto for ECR, ecr-public, Google token and metadata servers.
pub mod cloud;
/// Config files built from a small typed builder.
pub mod config;
/// Running the dregsy binary under test.
pub mod dregsy;
/// Runtimes, clients and background servers shared by the rest.
pub mod http;
/// The independent image pusher and readers.
pub mod images;
/// OCI image layouts: the tools that read them, and the images a round trip starts from.
pub mod layouts;
/// podman's Docker-compatible API, for the docker relay.
pub mod podman;
/// A real Prometheus server and promtool.
pub mod prometheus;
/// The fault-injecting proxy and its blob host.
pub mod proxy;
/// A referrers-API front for a real registry.
pub mod referrers;
/// Real `docker-registry` processes.
pub mod registry;
/// Cosign-format signatures made with test keys.
pub mod signing;
/// The bearer-token issuer.
pub mod token;

/// Seeding and reading registries: what most tests need, at `support::` level.
pub use images::{
    Format, ImageOptions, Manifest, Pushed, PushedIndex, blob_exists, catalog, delete_manifest,
    get_blob, get_manifest, list_tags, manifest_digest, push_blob, push_image, push_index,
    put_manifest, tag,
};
/// A Docker Engine API on a private socket.
pub use podman::Podman;
/// Fault injection between the code under test and a registry.
pub use proxy::{BlobHostRequest, FaultProxy, ProxyRequest, Rule};
/// The registry under test and its configuration.
pub use registry::{Endpoint, Registry, RegistryBuilder, Request, auth_b64};
/// Token-auth configuration and what the issuer saw.
pub use token::{Permission, TokenFields, TokenOptions, TokenRequest};
