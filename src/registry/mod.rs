//! OCI distribution client (to be written)
