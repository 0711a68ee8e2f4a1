//! Byte layout of MeshCentral's authentication commands 1–5 (agentcore.h, meshagent.js).
//!
//! Every binary frame on `/agent.ashx` starts with a big-endian `u16` command id. Commands 0–9 are
//! the handshake; from 10 on they are post-authentication commands followed by a `u16` request id.

use super::{HASH_LEN, HandshakeError, NONCE_LEN};

/// Command ids (agentcore.h `MeshCommands_Binary`).
pub mod cmd {
    /// Web certificate hash + nonce (both directions).
    pub const AUTH_REQUEST: u16 = 1;
    /// Certificate + signature (both directions).
    pub const AUTH_VERIFY: u16 = 2;
    /// Agent information (agent → server).
    pub const AUTH_INFO: u16 = 3;
    /// Server → agent: "you are authenticated"; agent → server: "skip your signature".
    pub const AUTH_CONFIRM: u16 = 4;
    /// Agent → server: the server identity the agent expects.
    pub const SERVER_ID: u16 = 5;
    /// Set or clear the JavaScript core (server → agent).
    pub const CORE_MODULE: u16 = 10;
    /// Request / report the SHA-384 of the running core.
    pub const CORE_MODULE_HASH: u16 = 11;
    /// Request / report the SHA-384 of the agent binary.
    pub const AGENT_HASH: u16 = 12;
    /// Agent tag (agent → server).
    pub const AGENT_TAG: u16 = 15;
    /// "Your core is fine, no update" (server → agent).
    pub const CORE_OK: u16 = 16;
    /// Agent build date, sent by stock agents before authentication.
    pub const AGENT_COMMIT_DATE: u16 = 30;
    /// Agent OS/architecture text, sent by stock agents before authentication.
    pub const HOST_INFO: u16 = 31;
    /// Commands below this id belong to the handshake and are never valid after it.
    pub const FIRST_POST_AUTH: u16 = 10;
}

/// `[00 01][hash 48][nonce 48]`.
pub const AUTH_REQUEST_LEN: usize = 2 + HASH_LEN + NONCE_LEN;
/// `[00 05][server id 48]`.
pub const SERVER_ID_LEN: usize = 2 + HASH_LEN;
/// Fixed part of AuthInfo up to and including the hostname length (the hostname itself follows).
pub const AUTH_INFO_FIXED_LEN: usize = 72;
/// The shortest AuthInfo MeshCentral accepts (no hostname length field).
pub const AUTH_INFO_MIN_LEN: usize = 70;

/// The command id of a binary frame, if it has one.
pub fn command_id(frame: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*frame.first()?, *frame.get(1)?]))
}

pub fn encode_auth_request(hash: &[u8; HASH_LEN], nonce: &[u8; NONCE_LEN]) -> Vec<u8> {
    let mut out = Vec::with_capacity(AUTH_REQUEST_LEN);
    out.extend_from_slice(&cmd::AUTH_REQUEST.to_be_bytes());
    out.extend_from_slice(hash);
    out.extend_from_slice(nonce);
    out
}

/// Splits an AuthRequest into (hash, nonce). MeshCentral requires the exact length.
pub fn parse_auth_request(
    frame: &[u8],
) -> Result<([u8; HASH_LEN], [u8; NONCE_LEN]), HandshakeError> {
    if frame.len() != AUTH_REQUEST_LEN {
        return Err(HandshakeError::BadLength {
            command: cmd::AUTH_REQUEST,
            len: frame.len(),
        });
    }
    let mut hash = [0; HASH_LEN];
    let mut nonce = [0; NONCE_LEN];
    hash.copy_from_slice(&frame[2..2 + HASH_LEN]);
    nonce.copy_from_slice(&frame[2 + HASH_LEN..]);
    Ok((hash, nonce))
}

/// `[00 02][u16 certLen][cert DER][signature]`.
pub fn encode_auth_verify(cert_der: &[u8], signature: &[u8]) -> Result<Vec<u8>, HandshakeError> {
    let cert_len =
        u16::try_from(cert_der.len()).map_err(|_| HandshakeError::CertificateTooLarge)?;
    let mut out = Vec::with_capacity(4 + cert_der.len() + signature.len());
    out.extend_from_slice(&cmd::AUTH_VERIFY.to_be_bytes());
    out.extend_from_slice(&cert_len.to_be_bytes());
    out.extend_from_slice(cert_der);
    out.extend_from_slice(signature);
    Ok(out)
}

/// Splits an AuthVerify into (certificate DER, signature); both must be non-empty.
pub fn parse_auth_verify(frame: &[u8]) -> Result<(&[u8], &[u8]), HandshakeError> {
    let bad = || HandshakeError::BadLength {
        command: cmd::AUTH_VERIFY,
        len: frame.len(),
    };
    let header = frame.get(..4).ok_or_else(bad)?;
    let cert_len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let body = &frame[4..];
    if cert_len == 0 || body.len() <= cert_len {
        return Err(bad());
    }
    Ok(body.split_at(cert_len))
}

pub fn encode_server_id(server_id: &[u8; HASH_LEN]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SERVER_ID_LEN);
    out.extend_from_slice(&cmd::SERVER_ID.to_be_bytes());
    out.extend_from_slice(server_id);
    out
}

pub fn parse_server_id(frame: &[u8]) -> Result<[u8; HASH_LEN], HandshakeError> {
    frame
        .get(2..)
        .and_then(|id| <[u8; HASH_LEN]>::try_from(id).ok())
        .ok_or(HandshakeError::BadLength {
            command: cmd::SERVER_ID,
            len: frame.len(),
        })
}

/// `[00 04]`.
pub fn encode_auth_confirm() -> Vec<u8> {
    cmd::AUTH_CONFIRM.to_be_bytes().to_vec()
}

/// A post-auth command with a request id and an optional body: `[u16 cmd][u16 request][body]`.
pub fn encode_command(command: u16, request_id: u16, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&command.to_be_bytes());
    out.extend_from_slice(&request_id.to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// What the agent tells the server about itself in command 3 (struct
/// `MeshCommand_BinaryPacket_AuthInfo`: packed, big-endian).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthInfo {
    /// Always 1 so far.
    pub info_version: u32,
    /// MeshCentral architecture id (6 = Linux x86-64, 3/4 = Windows service x86/x64, …).
    pub agent_id: u32,
    pub agent_version: u32,
    /// 1 desktop, 2 laptop, 3 mobile, 4 server, 5 disk, 6 router, 7 Pi, 8 virtual.
    pub platform_type: u32,
    /// The device group the agent claims (its `.msh` MeshID).
    pub mesh_id: [u8; HASH_LEN],
    /// Capability bits, see [`capabilities`].
    pub capabilities: u32,
    pub hostname: String,
}

/// AuthInfo capability bits.
pub mod capabilities {
    pub const DESKTOP: u32 = 0x01;
    pub const TERMINAL: u32 = 0x02;
    pub const FILES: u32 = 0x04;
    pub const CONSOLE: u32 = 0x08;
    /// Runs a JavaScript core: the server negotiates one with command 11.
    pub const JAVASCRIPT: u32 = 0x10;
    pub const TEMPORARY: u32 = 0x20;
    pub const RECOVERY: u32 = 0x40;
    pub const COMPRESSION: u32 = 0x100;
}

impl AuthInfo {
    /// The hostname is cut at `u16::MAX` bytes (on a character boundary); real ones are short.
    pub fn encode(&self) -> Vec<u8> {
        let mut cut = self.hostname.len().min(usize::from(u16::MAX));
        while !self.hostname.is_char_boundary(cut) {
            cut -= 1;
        }
        let name = &self.hostname[..cut];
        let mut out = Vec::with_capacity(AUTH_INFO_FIXED_LEN + name.len());
        out.extend_from_slice(&cmd::AUTH_INFO.to_be_bytes());
        out.extend_from_slice(&self.info_version.to_be_bytes());
        out.extend_from_slice(&self.agent_id.to_be_bytes());
        out.extend_from_slice(&self.agent_version.to_be_bytes());
        out.extend_from_slice(&self.platform_type.to_be_bytes());
        out.extend_from_slice(&self.mesh_id);
        out.extend_from_slice(&self.capabilities.to_be_bytes());
        // Cut above to at most u16::MAX bytes.
        out.extend_from_slice(&(name.len() as u16).to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        out
    }

    /// Reads offsets 2..72 and the hostname as MeshCentral does: a frame of 70 or 71 bytes has no
    /// hostname, a hostname length past the end is cut at the end, invalid UTF-8 is replaced.
    pub fn parse(frame: &[u8]) -> Result<AuthInfo, HandshakeError> {
        if frame.len() < AUTH_INFO_MIN_LEN {
            return Err(HandshakeError::BadLength {
                command: cmd::AUTH_INFO,
                len: frame.len(),
            });
        }
        let u32_at = |at: usize| {
            u32::from_be_bytes([frame[at], frame[at + 1], frame[at + 2], frame[at + 3]])
        };
        let mut mesh_id = [0; HASH_LEN];
        mesh_id.copy_from_slice(&frame[18..66]);
        let hostname = if frame.len() >= AUTH_INFO_FIXED_LEN {
            let len = usize::from(u16::from_be_bytes([frame[70], frame[71]]));
            let end = frame.len().min(AUTH_INFO_FIXED_LEN + len);
            String::from_utf8_lossy(&frame[AUTH_INFO_FIXED_LEN..end]).into_owned()
        } else {
            String::new()
        };
        Ok(AuthInfo {
            info_version: u32_at(2),
            agent_id: u32_at(6),
            agent_version: u32_at(10),
            platform_type: u32_at(14),
            mesh_id,
            capabilities: u32_at(66),
            hostname,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_info() -> AuthInfo {
        AuthInfo {
            info_version: 1,
            agent_id: 6,
            agent_version: 0x0102_0304,
            platform_type: 4,
            mesh_id: [0xAB; HASH_LEN],
            capabilities: capabilities::TERMINAL | capabilities::FILES,
            hostname: "web-01".into(),
        }
    }

    #[test]
    fn auth_info_has_meshcentral_offsets() {
        let bytes = sample_info().encode();
        assert_eq!(bytes.len(), 72 + 6);
        assert_eq!(&bytes[0..2], &[0, 3]);
        assert_eq!(&bytes[2..6], &[0, 0, 0, 1]);
        assert_eq!(&bytes[6..10], &[0, 0, 0, 6]);
        assert_eq!(&bytes[10..14], &[1, 2, 3, 4]);
        assert_eq!(&bytes[14..18], &[0, 0, 0, 4]);
        assert_eq!(&bytes[18..66], &[0xAB; 48]);
        assert_eq!(&bytes[66..70], &[0, 0, 0, 6]);
        assert_eq!(&bytes[70..72], &[0, 6]);
        assert_eq!(&bytes[72..], b"web-01");
        assert_eq!(AuthInfo::parse(&bytes).unwrap(), sample_info());
    }

    #[test]
    fn auth_info_tolerates_what_meshcentral_tolerates() {
        let bytes = sample_info().encode();
        let short = AuthInfo::parse(&bytes[..70]).unwrap();
        assert_eq!(short.hostname, "");
        let cut = AuthInfo::parse(&bytes[..75]).unwrap();
        assert_eq!(cut.hostname, "web");
        assert!(matches!(
            AuthInfo::parse(&bytes[..69]),
            Err(HandshakeError::BadLength {
                command: 3,
                len: 69
            })
        ));
    }

    #[test]
    fn an_absurd_hostname_is_cut_on_a_character_boundary() {
        let info = AuthInfo {
            hostname: "é".repeat(40_000),
            ..sample_info()
        };
        let parsed = AuthInfo::parse(&info.encode()).unwrap();
        assert_eq!(parsed.hostname, "é".repeat(32_767));
    }

    #[test]
    fn auth_verify_splits_certificate_and_signature() {
        let frame = encode_auth_verify(b"cert", b"sig").unwrap();
        assert_eq!(frame, b"\x00\x02\x00\x04certsig");
        assert_eq!(
            parse_auth_verify(&frame).unwrap(),
            (&b"cert"[..], &b"sig"[..])
        );
        assert!(
            parse_auth_verify(b"\x00\x02\x00\x04cert").is_err(),
            "no signature"
        );
        assert!(
            parse_auth_verify(b"\x00\x02\x00\x09cert").is_err(),
            "length past the end"
        );
        assert!(parse_auth_verify(b"\x00\x02\x00").is_err());
    }

    #[test]
    fn fixed_size_commands() {
        let frame = encode_auth_request(&[1; 48], &[2; 48]);
        assert_eq!(frame.len(), 98);
        assert_eq!(parse_auth_request(&frame).unwrap(), ([1; 48], [2; 48]));
        assert!(parse_auth_request(&frame[..97]).is_err());
        let id = encode_server_id(&[9; 48]);
        assert_eq!((id.len(), &id[..2]), (50, &[0u8, 5][..]));
        assert_eq!(parse_server_id(&id).unwrap(), [9; 48]);
        assert_eq!(encode_auth_confirm(), vec![0, 4]);
        assert_eq!(encode_command(cmd::CORE_OK, 0, &[]), vec![0, 16, 0, 0]);
    }
}
