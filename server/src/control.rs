//! `WSS /control`. STUB: being written.
