//! rustls configuration for the HTTPS port. STUB: being written.
