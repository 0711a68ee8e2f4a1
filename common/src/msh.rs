//! MeshCentral's agent install policy, the `.msh` file: `Key=Value` lines.
//!
//! ```text
//! MeshName=Office
//! MeshType=2
//! MeshID=0x<96 hex digits: 48 bytes naming the group; a Tether server hands out an enrolment key>
//! ServerID=<96 hex digits: SHA-384 of the agent-server certificate's public key>
//! MeshServer=wss://tether.example.com:443/agent.ashx
//! ```
//!
//! Keys we do not interpret (`Tag`, `InstallFlags`, `WebProxy`, branding, …) are kept in order and
//! written back, so a file survives a round trip through Tether unchanged in meaning.

use std::fmt;

use crate::handshake::HASH_LEN;

/// MeshCentral's group type for software agents; the only one Tether serves.
pub const MESH_TYPE_AGENT: u32 = 2;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msh {
    pub mesh_name: String,
    pub mesh_type: u32,
    /// `MeshID`: what the agent presents to join a group (in MeshCentral the group id, from a
    /// Tether server a secret enrolment key that maps to the group).
    pub mesh_id: [u8; HASH_LEN],
    /// The server identity the agent pins (`ServerID`).
    pub server_id: [u8; HASH_LEN],
    /// `MeshServer`: one `wss://` URL, or several separated by commas.
    pub mesh_server: String,
    /// Every other `Key=Value` line, in file order.
    pub extra: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MshError {
    #[error("line {line}: expected Key=Value")]
    NotKeyValue { line: usize },
    #[error("missing {0}")]
    Missing(&'static str),
    #[error("{key} is not 48 bytes of hex")]
    BadHash { key: &'static str },
    #[error("MeshType is not a number")]
    BadMeshType,
    #[error("{0} is given twice")]
    Duplicate(&'static str),
}

const KNOWN: [&str; 5] = ["MeshName", "MeshType", "MeshID", "ServerID", "MeshServer"];

impl Msh {
    pub fn parse(text: &str) -> Result<Msh, MshError> {
        let mut known: [Option<String>; 5] = Default::default();
        let mut extra = Vec::new();
        // Files written on Windows carry a BOM and CRLF line ends.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .ok_or(MshError::NotKeyValue { line: index + 1 })?;
            let (key, value) = (key.trim(), value.trim());
            match KNOWN.iter().position(|k| k.eq_ignore_ascii_case(key)) {
                Some(slot) if known[slot].is_some() => {
                    return Err(MshError::Duplicate(KNOWN[slot]));
                }
                Some(slot) => known[slot] = Some(value.to_owned()),
                None => extra.push((key.to_owned(), value.to_owned())),
            }
        }
        let [name, mesh_type, mesh_id, server_id, server] = known;
        Ok(Msh {
            mesh_name: name.unwrap_or_default(),
            mesh_type: match mesh_type {
                Some(t) => t.parse().map_err(|_| MshError::BadMeshType)?,
                None => MESH_TYPE_AGENT,
            },
            mesh_id: parse_hash(&mesh_id.ok_or(MshError::Missing("MeshID"))?, "MeshID")?,
            server_id: parse_hash(&server_id.ok_or(MshError::Missing("ServerID"))?, "ServerID")?,
            mesh_server: server
                .filter(|s| !s.is_empty())
                .ok_or(MshError::Missing("MeshServer"))?,
            extra,
        })
    }

    /// The `MeshServer` URLs in the order the agent should try them.
    pub fn servers(&self) -> impl Iterator<Item = &str> {
        self.mesh_server
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }

    /// The value of an uninterpreted key (case-insensitive).
    pub fn extra(&self, key: &str) -> Option<&str> {
        self.extra
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

/// Hex of 48 bytes, with or without MeshCentral's `0x` prefix, any case.
fn parse_hash(text: &str, key: &'static str) -> Result<[u8; HASH_LEN], MshError> {
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    let bytes = hex::decode(digits).map_err(|_| MshError::BadHash { key })?;
    bytes.try_into().map_err(|_| MshError::BadHash { key })
}

/// Writes the file as MeshCentral does: CRLF line ends, upper-case hex, `0x` before the MeshID.
impl fmt::Display for Msh {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MeshName={}\r\n", self.mesh_name)?;
        write!(f, "MeshType={}\r\n", self.mesh_type)?;
        write!(f, "MeshID=0x{}\r\n", hex::encode_upper(self.mesh_id))?;
        write!(f, "ServerID={}\r\n", hex::encode_upper(self.server_id))?;
        write!(f, "MeshServer={}\r\n", self.mesh_server)?;
        for (key, value) in &self.extra {
            write!(f, "{key}={value}\r\n")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Msh {
        Msh {
            mesh_name: "Office PCs".into(),
            mesh_type: 2,
            mesh_id: [0xA5; 48],
            server_id: [0x0F; 48],
            mesh_server: "wss://tether.example:8443/agent.ashx".into(),
            extra: vec![
                ("Tag".into(), "rack=3".into()),
                ("InstallFlags".into(), "0".into()),
            ],
        }
    }

    #[test]
    fn writes_meshcentral_layout() {
        let text = sample().to_string();
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines[0], "MeshName=Office PCs");
        assert_eq!(lines[1], "MeshType=2");
        assert_eq!(lines[2], format!("MeshID=0x{}", "A5".repeat(48)));
        assert_eq!(lines[3], format!("ServerID={}", "0F".repeat(48)));
        assert_eq!(lines[4], "MeshServer=wss://tether.example:8443/agent.ashx");
        assert_eq!(lines[5], "Tag=rack=3", "a value may itself contain '='");
        assert_eq!(Msh::parse(&text).unwrap(), sample());
    }

    #[test]
    fn reads_a_meshcentral_file() {
        // As served by MeshCentral's /meshsettings, with a BOM, odd case and a comment added.
        let text = format!(
            "\u{feff}MeshName=Lab\nMeshType=2\nmeshid=0x{}\nServerID={}\n# note\nMeshServer=wss://a:443/agent.ashx,wss://b:443/agent.ashx\nWebProxy=http://proxy:3128\n",
            "ab".repeat(48),
            "CD".repeat(48)
        );
        let msh = Msh::parse(&text).unwrap();
        assert_eq!(msh.mesh_name, "Lab");
        assert_eq!(msh.mesh_id, [0xAB; 48]);
        assert_eq!(msh.server_id, [0xCD; 48]);
        assert_eq!(
            msh.servers().collect::<Vec<_>>(),
            ["wss://a:443/agent.ashx", "wss://b:443/agent.ashx"]
        );
        assert_eq!(msh.extra("webproxy"), Some("http://proxy:3128"));
    }

    #[test]
    fn rejects_broken_files() {
        let good = sample().to_string();
        assert_eq!(
            Msh::parse(&good.replace("MeshID", "X")),
            Err(MshError::Missing("MeshID"))
        );
        assert_eq!(
            Msh::parse(&good.replace("ServerID=0F", "ServerID=")),
            Err(MshError::BadHash { key: "ServerID" })
        );
        assert_eq!(
            Msh::parse("MeshName=a\nnonsense\n"),
            Err(MshError::NotKeyValue { line: 2 })
        );
        assert_eq!(
            Msh::parse(&format!("{good}MeshServer=wss://x/\r\n")),
            Err(MshError::Duplicate("MeshServer"))
        );
        assert_eq!(
            Msh::parse(&good.replace("MeshType=2", "MeshType=two")),
            Err(MshError::BadMeshType)
        );
        // A legacy 32-byte MeshID is not something Tether can serve.
        let legacy = good.replace(&"A5".repeat(48), &"A5".repeat(32));
        assert_eq!(
            Msh::parse(&legacy),
            Err(MshError::BadHash { key: "MeshID" })
        );
    }
}
