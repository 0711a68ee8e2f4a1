//! redb backend. STUB: being written.
