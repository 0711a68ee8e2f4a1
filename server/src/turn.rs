//! TURN credentials for direct sessions, in coturn's REST scheme (`use-auth-secret`): the
//! username is `<expiry unix time>:<tag>` and the password is base64(HMAC-SHA1(secret,
//! username)). The TURN server checks both with the shared secret and refuses after the expiry,
//! so a credential a viewer saw cannot be reused for long, and this server keeps no TURN state.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use crate::config::TurnSecret;

/// A username and password valid until `expires_unix` for `tag` (an opaque session tag: no
/// account name goes to the TURN server or to the peers).
pub(crate) fn credential(secret: &TurnSecret, tag: &str, expires_unix: u64) -> (String, String) {
    let username = format!("{expires_unix}:{tag}");
    // HMAC takes keys of any length.
    let mut mac = match Hmac::<Sha1>::new_from_slice(secret.expose().as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts any key length"),
    };
    mac.update(username.as_bytes());
    let password = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_coturn_s_rest_scheme() {
        // printf '%s' '1764892800:s1' | openssl dgst -sha1 -hmac 'north-wind' -binary | base64
        let (username, password) = credential(&TurnSecret::new("north-wind"), "s1", 1_764_892_800);
        assert_eq!(username, "1764892800:s1");
        assert_eq!(password, EXPECTED);
    }

    const EXPECTED: &str = "u/3j60KyXpl/FVE68hy0CUiyQOQ=";

    #[test]
    fn the_secret_stays_out_of_debug_output() {
        let config = format!("{:?}", TurnSecret::new("north-wind"));
        assert!(!config.contains("north"), "{config}");
    }
}
