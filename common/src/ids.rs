//! Typed identifiers. Their text forms follow MeshCentral's so that ids can be compared across a
//! migration: 48-byte values are base64 with `+`→`@` and `/`→`$`.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha384};

/// MeshCentral's base64 alphabet variant: standard base64 with `@` for `+` and `$` for `/`, so the
/// ids are safe inside its `node/<domain>/<id>` keys and URLs.
pub fn mesh_base64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes).replace('+', "@").replace('/', "$")
}

/// Inverse of [`mesh_base64`]; also accepts plain standard base64.
pub fn mesh_base64_decode(text: &str) -> Option<Vec<u8>> {
    STANDARD
        .decode(text.replace('@', "+").replace('$', "/"))
        .ok()
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        #[cfg_attr(test, derive(ts_rs::TS))]
        pub struct $name(pub String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }
    };
}

string_id!(
    /// A user account: the lower-cased login name, as MeshCentral keys users.
    UserId
);
string_id!(
    /// A device group ("mesh"): 48 random bytes in [`mesh_base64`]. Not secret, and not what
    /// agents present to join: their `MeshID` is the group's enrolment key.
    GroupId
);
string_id!(
    /// A device ("node"): [`mesh_base64`] of the SHA-384 of the agent's RSA public key (PKCS#1 DER).
    DeviceId
);

impl UserId {
    /// User names are case-insensitive; the id is the lower-cased name.
    pub fn from_name(name: &str) -> Self {
        Self(name.trim().to_lowercase())
    }
}

impl GroupId {
    pub fn from_bytes(bytes: &[u8; 48]) -> Self {
        Self(mesh_base64(bytes))
    }

    /// The 48 raw bytes, as carried in `.msh` files and the agent's AuthInfo.
    pub fn to_bytes(&self) -> Option<[u8; 48]> {
        mesh_base64_decode(&self.0)?.try_into().ok()
    }
}

impl DeviceId {
    /// The id of the agent whose RSA public key is `public_key_pkcs1_der`.
    pub fn from_public_key(public_key_pkcs1_der: &[u8]) -> Self {
        Self(mesh_base64(&Sha384::digest(public_key_pkcs1_der)))
    }

    /// The id of an Intel AMT machine known only by its UUID (as AMT sends it in APF): the 16
    /// bytes three times over, so that it has the length of an agent's id, as MeshCentral makes
    /// it.
    pub fn from_amt_uuid(uuid: &[u8; 16]) -> Self {
        Self(mesh_base64(&uuid.repeat(3)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mesh_base64_swaps_plus_and_slash() {
        assert_eq!(mesh_base64(&[0xfb, 0xff]), "@$8=");
        assert_eq!(mesh_base64_decode("@$8=").unwrap(), vec![0xfb, 0xff]);
    }

    #[test]
    fn group_id_round_trips_48_bytes() {
        let bytes = [7u8; 48];
        let id = GroupId::from_bytes(&bytes);
        assert_eq!(id.to_bytes(), Some(bytes));
        assert_eq!(GroupId::from("short").to_bytes(), None);
    }

    #[test]
    fn amt_ids_repeat_the_uuid() {
        let id = DeviceId::from_amt_uuid(&[0xfb; 16]);
        assert_eq!(id.as_str().len(), 64, "as long as an agent's id");
        assert_eq!(mesh_base64_decode(id.as_str()).unwrap(), vec![0xfb; 48]);
    }

    #[test]
    fn user_ids_ignore_case() {
        assert_eq!(UserId::from_name(" Admin "), UserId::from("admin"));
    }
}
