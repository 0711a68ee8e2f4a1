//! Making the server's certificates with rcgen (design paper §6.1): a self-signed root that issues
//! the web, agent-server and MPS certificates. All RSA, all signed with SHA-384, as MeshCentral does.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_RSA_SHA384, PublicKeyData, RsaKeySize, SerialNumber,
};
use sha2::{Digest, Sha384};

/// MeshCentral's fixed end of validity; our certificates live as long as the installation.
const NOT_AFTER: (i32, u8, u8) = (2049, 12, 31);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Root,
    Web,
    Agent,
    Mps,
}

impl Role {
    /// The MeshCentral file-name stem.
    pub(super) fn file_stem(self) -> &'static str {
        match self {
            Role::Root => "root",
            Role::Web => "webserver",
            Role::Agent => "agentserver",
            Role::Mps => "mpsserver",
        }
    }

    pub(super) fn key_size(self, fastcert: bool, mps_key_bits: u32) -> RsaKeySize {
        match self {
            // Older Intel AMT firmware rejects anything larger (design paper §7.2); newer takes
            // 3072 when configured so.
            Role::Mps if mps_key_bits == 3072 => RsaKeySize::_3072,
            Role::Mps => RsaKeySize::_2048,
            _ if fastcert => RsaKeySize::_2048,
            _ => RsaKeySize::_3072,
        }
    }
}

/// Generates the keys in parallel: RSA generation dominates first start and is single-threaded.
pub(super) fn generate_keys(sizes: &[RsaKeySize]) -> Result<Vec<KeyPair>, rcgen::Error> {
    std::thread::scope(|scope| {
        let workers: Vec<_> = sizes
            .iter()
            .map(|&size| scope.spawn(move || KeyPair::generate_rsa_for(&PKCS_RSA_SHA384, size)))
            .collect();
        workers
            .into_iter()
            .map(|worker| {
                worker
                    .join()
                    .unwrap_or(Err(rcgen::Error::KeyGenerationUnavailable))
            })
            .collect()
    })
}

/// Loads a stored key (PKCS#8) so it can sign; only RSA roots are supported, as MeshCentral makes.
pub(super) fn signing_key(pkcs8_der: &[u8]) -> Result<KeyPair, rcgen::Error> {
    KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8_der.to_vec().into(), &PKCS_RSA_SHA384)
}

/// A new self-signed root, `CN=TetherRoot-<6 hex of its key hash>`.
///
/// Path length 0: it signs the server's own certificates and never another CA, so whoever
/// trusts it (installers pin it, `tetherctl --trust-root`) cannot be handed a sub-CA. No name
/// constraints: the root outlives the server's names (`--cert` may change, and must then get a new
/// web certificate under the same root), so constraining it to today's names would break that; the
/// README says not to put it into system or browser trust stores.
pub(super) fn self_signed_root(key: &KeyPair) -> Result<rcgen::Certificate, rcgen::Error> {
    let mut params = base_params(&format!("TetherRoot-{}", short_key_hash(key)));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.self_signed(key)
}

/// Issues a web, agent-server or MPS certificate for `subject_key` (a fresh key, or the key of an
/// existing certificate being re-issued, which keeps e.g. the agents' ServerID unchanged).
pub(super) fn issue(
    role: Role,
    server_name: &str,
    subject_key: &impl PublicKeyData,
    issuer: &Issuer<'_, KeyPair>,
) -> Result<rcgen::Certificate, rcgen::Error> {
    let mut params = match role {
        Role::Web => {
            let mut names = vec![server_name.to_owned()];
            for extra in ["localhost", "127.0.0.1"] {
                if !names.iter().any(|n| n.eq_ignore_ascii_case(extra)) {
                    names.push(extra.to_owned());
                }
            }
            server_params(server_name, names)?
        }
        Role::Mps => server_params(server_name, vec![server_name.to_owned()])?,
        Role::Agent => {
            let mut params = base_params(&format!(
                "TetherAgentServer-{}",
                short_key_hash(subject_key)
            ));
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params
        }
        Role::Root => unreachable!("the root is self-signed, not issued"),
    };
    params.use_authority_key_identifier_extension = true;
    params.signed_by(subject_key, issuer)
}

fn server_params(server_name: &str, names: Vec<String>) -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(names)?;
    let base = base_params(server_name);
    params.distinguished_name = base.distinguished_name;
    params.serial_number = base.serial_number;
    params.not_before = base.not_before;
    params.not_after = base.not_after;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    Ok(params)
}

fn base_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    params.distinguished_name = name;
    // 128 random bits, top bit clear so the DER INTEGER stays positive without padding.
    let mut serial: [u8; 16] = rand::random();
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    // A day of slack for clients whose clock is behind.
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    params.not_after = rcgen::date_time_ymd(NOT_AFTER.0, NOT_AFTER.1, NOT_AFTER.2);
    params
}

/// First 6 hex digits of SHA-384 over the public key (PKCS#1 for RSA), like MeshCentral's names.
fn short_key_hash(key: &impl PublicKeyData) -> String {
    hex::encode(&Sha384::digest(key.der_bytes())[..3])
}
