//! The one STUN exchange the server answers (RFC 8489 Binding): an agent or a viewer asks "what
//! address do you see me at?" on the server's UDP port and learns its server-reflexive address
//! for ICE, without any STUN server outside the deployment. Sans-IO: bytes in, bytes out.
//!
//! Only a well-formed Binding *request* gets an answer, so the port cannot be made to talk to
//! another STUN speaker in a loop, and the answer (32 bytes for IPv4, 44 for IPv6) is barely
//! larger than the smallest request (20 bytes), so it is no use for amplification.

use std::net::{IpAddr, SocketAddr};

/// Every STUN message since RFC 5389 carries this in bytes 4..8.
const MAGIC_COOKIE: u32 = 0x2112_A442;
const HEADER_LEN: usize = 20;
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const XOR_MAPPED_ADDRESS: u16 = 0x0020;
/// A datagram larger than this is not a Binding request anyone sends.
pub const MAX_REQUEST_LEN: usize = 548;

/// The 96-bit id that pairs a response with its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransactionId(pub [u8; 12]);

/// Why a datagram gets no answer (worth a debug line at most: UDP ports see noise).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StunError {
    #[error("{0} bytes: shorter than a STUN header")]
    TooShort(usize),
    #[error("{0} bytes: longer than a Binding request")]
    TooLong(usize),
    #[error("not STUN (top bits or magic cookie)")]
    NotStun,
    #[error("STUN message type {0:#06x} is not a Binding request")]
    NotBindingRequest(u16),
    #[error("the length field disagrees with the datagram or the attributes")]
    BadLength,
}

/// Reads a Binding request and returns its transaction id. Attributes are walked for
/// well-formedness but otherwise ignored (a Binding request needs none).
pub fn parse_binding_request(datagram: &[u8]) -> Result<TransactionId, StunError> {
    if datagram.len() < HEADER_LEN {
        return Err(StunError::TooShort(datagram.len()));
    }
    if datagram.len() > MAX_REQUEST_LEN {
        return Err(StunError::TooLong(datagram.len()));
    }
    let message_type = u16::from_be_bytes([datagram[0], datagram[1]]);
    let length = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    let cookie = u32::from_be_bytes([datagram[4], datagram[5], datagram[6], datagram[7]]);
    if message_type & 0xC000 != 0 || cookie != MAGIC_COOKIE {
        return Err(StunError::NotStun);
    }
    if message_type != BINDING_REQUEST {
        return Err(StunError::NotBindingRequest(message_type));
    }
    if length % 4 != 0 || HEADER_LEN + length != datagram.len() {
        return Err(StunError::BadLength);
    }
    let mut attributes = &datagram[HEADER_LEN..];
    while !attributes.is_empty() {
        if attributes.len() < 4 {
            return Err(StunError::BadLength);
        }
        let value_len = usize::from(u16::from_be_bytes([attributes[2], attributes[3]]));
        let padded = 4 + value_len.div_ceil(4) * 4;
        if padded > attributes.len() {
            return Err(StunError::BadLength);
        }
        attributes = &attributes[padded..];
    }
    let mut id = [0u8; 12];
    id.copy_from_slice(&datagram[8..HEADER_LEN]);
    Ok(TransactionId(id))
}

/// The Binding success response telling the sender it was seen at `seen_from`.
pub fn binding_success(id: TransactionId, seen_from: SocketAddr) -> Vec<u8> {
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let (family, address): (u8, Vec<u8>) = match seen_from.ip() {
        IpAddr::V4(ip) => (
            0x01,
            ip.octets()
                .iter()
                .zip(cookie)
                .map(|(byte, mask)| byte ^ mask)
                .collect(),
        ),
        IpAddr::V6(ip) => {
            let mask = cookie.iter().chain(id.0.iter());
            (
                0x02,
                ip.octets()
                    .iter()
                    .zip(mask)
                    .map(|(byte, mask)| byte ^ mask)
                    .collect(),
            )
        }
    };
    let port = seen_from.port() ^ (MAGIC_COOKIE >> 16) as u16;
    let value_len = 4 + address.len();
    let mut message = Vec::with_capacity(HEADER_LEN + 4 + value_len);
    message.extend_from_slice(&BINDING_SUCCESS.to_be_bytes());
    // Fits: 4 + 4 + 16 at most.
    message.extend_from_slice(&((4 + value_len) as u16).to_be_bytes());
    message.extend_from_slice(&cookie);
    message.extend_from_slice(&id.0);
    message.extend_from_slice(&XOR_MAPPED_ADDRESS.to_be_bytes());
    message.extend_from_slice(&(value_len as u16).to_be_bytes());
    message.extend_from_slice(&[0, family]);
    message.extend_from_slice(&port.to_be_bytes());
    message.extend_from_slice(&address);
    message
}

/// A Binding request without attributes (the client side: agents and tests asking the server's
/// STUN port where they are seen from). `id` must be random per request (RFC 8489 §6).
pub fn binding_request(id: TransactionId) -> Vec<u8> {
    let mut message = Vec::with_capacity(HEADER_LEN);
    message.extend_from_slice(&BINDING_REQUEST.to_be_bytes());
    message.extend_from_slice(&0u16.to_be_bytes());
    message.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    message.extend_from_slice(&id.0);
    message
}

/// Reads the XOR-MAPPED-ADDRESS of a Binding success response to the request `id`: the client
/// side, for tests and for agents that ask the server where they are seen from.
pub fn parse_binding_success(datagram: &[u8], id: TransactionId) -> Option<SocketAddr> {
    if datagram.len() < HEADER_LEN
        || datagram[0..2] != BINDING_SUCCESS.to_be_bytes()
        || datagram[4..8] != MAGIC_COOKIE.to_be_bytes()
        || datagram[8..HEADER_LEN] != id.0
    {
        return None;
    }
    let mut attributes = datagram.get(HEADER_LEN..)?;
    while attributes.len() >= 4 {
        let kind = u16::from_be_bytes([attributes[0], attributes[1]]);
        let len = usize::from(u16::from_be_bytes([attributes[2], attributes[3]]));
        let value = attributes.get(4..4 + len)?;
        if kind == XOR_MAPPED_ADDRESS {
            return xor_mapped(value, id);
        }
        attributes = attributes.get(4 + len.div_ceil(4) * 4..)?;
    }
    None
}

fn xor_mapped(value: &[u8], id: TransactionId) -> Option<SocketAddr> {
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let port = u16::from_be_bytes([*value.get(2)?, *value.get(3)?]) ^ (MAGIC_COOKIE >> 16) as u16;
    let ip = match (value.get(1)?, value.len()) {
        (0x01, 8) => {
            let mut octets = [0u8; 4];
            for (i, octet) in octets.iter_mut().enumerate() {
                *octet = value[4 + i] ^ cookie[i];
            }
            IpAddr::from(octets)
        }
        (0x02, 20) => {
            let mask: Vec<u8> = cookie.iter().chain(id.0.iter()).copied().collect();
            let mut octets = [0u8; 16];
            for (i, octet) in octets.iter_mut().enumerate() {
                *octet = value[4 + i] ^ mask[i];
            }
            IpAddr::from(octets)
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5769 §2.1's sample request (with its SOFTWARE, PRIORITY, ICE-CONTROLLED, USERNAME,
    /// MESSAGE-INTEGRITY and FINGERPRINT attributes): a real client's request must be accepted.
    const RFC5769_REQUEST: &str = "000100582112a442b7e7a701bc34d686fa87dfae802200105354554e207465737420636c69656e74002400046e0001ff80290008932ff9b151263b36000600096576746a3a68367659202020000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a280280004e57a3bcf";

    /// RFC 5769 §2.2's sample response maps 192.0.2.1:32853 with this transaction id.
    const RFC5769_ID: [u8; 12] = [
        0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
    ];

    #[test]
    fn accepts_the_rfc_sample_request() {
        let request = hex::decode(RFC5769_REQUEST).unwrap();
        assert_eq!(
            parse_binding_request(&request),
            Ok(TransactionId(RFC5769_ID))
        );
    }

    #[test]
    fn encodes_xor_mapped_address_as_the_rfc_sample_does() {
        let response = binding_success(
            TransactionId(RFC5769_ID),
            "192.0.2.1:32853".parse().unwrap(),
        );
        // RFC 5769 §2.2: XOR-MAPPED-ADDRESS 0020 0008 0001 a147 e112a643.
        assert_eq!(hex::encode(&response[20..]), "002000080001a147e112a643");
        assert_eq!(hex::encode(&response[..4]), "0101000c");
    }

    #[test]
    fn our_own_request_is_a_valid_binding_request() {
        let id = TransactionId([9; 12]);
        let request = binding_request(id);
        assert_eq!(request.len(), 20);
        assert_eq!(parse_binding_request(&request), Ok(id));
    }

    #[test]
    fn round_trips_v4_and_v6() {
        let id = TransactionId([7; 12]);
        for addr in ["203.0.113.9:4000", "[2001:db8::1]:65535", "[::1]:1"] {
            let addr: SocketAddr = addr.parse().unwrap();
            let response = binding_success(id, addr);
            assert_eq!(parse_binding_success(&response, id), Some(addr));
            assert_eq!(
                parse_binding_success(&response, TransactionId([8; 12])),
                None
            );
        }
    }

    #[test]
    fn refuses_what_is_not_a_binding_request() {
        let mut request = hex::decode(RFC5769_REQUEST).unwrap();
        assert_eq!(
            parse_binding_request(&request[..19]),
            Err(StunError::TooShort(19))
        );
        request[0] = 0x01; // a Binding success: never answered, so no answer loops
        assert_eq!(
            parse_binding_request(&request),
            Err(StunError::NotBindingRequest(0x0101))
        );
        request[0] = 0x40;
        assert_eq!(parse_binding_request(&request), Err(StunError::NotStun));
        let mut request = hex::decode(RFC5769_REQUEST).unwrap();
        request.push(0);
        assert_eq!(parse_binding_request(&request), Err(StunError::BadLength));
        let mut request = hex::decode(RFC5769_REQUEST).unwrap();
        request[23] = 0xff; // the first attribute claims more than there is
        assert_eq!(parse_binding_request(&request), Err(StunError::BadLength));
        assert_eq!(
            parse_binding_request(&[0; MAX_REQUEST_LEN + 1]),
            Err(StunError::TooLong(MAX_REQUEST_LEN + 1))
        );
    }
}
