//! The integration-test harness: real registries on loopback, a token issuer, test
//! certificates, an independent image pusher and a fault-injecting proxy.
//!
//! Each integration test binary includes it with `mod support;` and uses a part of it, hence
//! `dead_code` is allowed. The API is synchronous: async work runs on threads with their own
//! runtimes, so it works from plain `#[test]`s and from `#[tokio::test]`s alike.
#![allow(dead_code, unused_imports)]

pub mod certs;
pub mod http;
pub mod images;
pub mod proxy;
pub mod registry;
pub mod token;

pub use images::{
    Format, ImageOptions, Manifest, Pushed, PushedIndex, blob_exists, catalog, delete_manifest,
    get_blob, get_manifest, list_tags, manifest_digest, push_image, push_index, tag,
};
pub use proxy::{BlobHostRequest, FaultProxy, ProxyRequest, Rule};
pub use registry::{Endpoint, Registry, RegistryBuilder, Request, auth_b64};
pub use token::{Permission, TokenFields, TokenOptions, TokenRequest};
