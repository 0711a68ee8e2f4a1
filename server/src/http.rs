//! The HTTP surface (router). STUB: being written.
