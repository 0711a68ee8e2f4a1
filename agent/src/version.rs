//! This agent's version, and the marker that lets a server read it from the binary's bytes
//! (`tether_common::agent_update::version_in_binary`) without running it.

/// The package version, or the build's `TETHER_AGENT_VERSION` (see `build.rs`).
pub(crate) const VERSION: &str = env!("TETHER_AGENT_VERSION");

const MARKER_TEXT: &str = concat!("tether-agent-version:", env!("TETHER_AGENT_VERSION"), ";");

/// Kept in the binary (`#[used]`) although nothing reads it at run time.
#[used]
static MARKER: [u8; MARKER_TEXT.len()] = bytes_of(MARKER_TEXT);

const fn bytes_of<const N: usize>(text: &str) -> [u8; N] {
    let bytes = text.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_marker_names_this_version() {
        assert_eq!(
            tether_common::agent_update::version_in_binary(&super::MARKER).as_deref(),
            Some(super::VERSION)
        );
    }
}
