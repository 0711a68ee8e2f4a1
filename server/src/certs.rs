//! The server's own certificate authority (design paper §6.1). STUB: being written.

pub struct ServerCerts {}
