//! The `catalog` lister: the distribution API's `GET /v2/_catalog`, paged with `Link`, through
//! the run's registry client (same credentials, TLS settings, retries and token cache as the
//! copies).

use super::registry_location;
use crate::clients::Clients;
use crate::config::Location;
use crate::failure::Failure;

/// The repository names of the source registry, at most `max + 1` of them (see
/// [`super::limit`]).
pub(super) async fn list(
    location: &Location,
    clients: &Clients,
    max: Option<usize>,
) -> Result<Vec<String>, Failure> {
    let host = &registry_location(location)?.host;
    let client = clients.get(host, location).await?;
    Ok(client.catalog(super::fetch_limit(max)).await?)
}
