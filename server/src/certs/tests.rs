use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
use x509_parser::public_key::PublicKey;

use super::*;

fn config(dir: &Path, fastcert: bool) -> Config {
    Config {
        datapath: dir.to_owned(),
        fastcert,
        cert: "localhost".into(),
        ..Config::default()
    }
}

fn parse(der: &[u8]) -> X509Certificate<'_> {
    X509Certificate::from_der(der).expect("parses").1
}

fn common_name(der: &[u8]) -> String {
    let cert = parse(der);
    cert.subject()
        .iter_common_name()
        .next()
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}

fn rsa_bits(der: &[u8]) -> usize {
    match parse(der).public_key().parsed().unwrap() {
        PublicKey::RSA(rsa) => rsa.key_size(),
        other => panic!("not RSA: {other:?}"),
    }
}

fn issued_by(child: &[u8], root: &[u8]) -> bool {
    let (child, root) = (parse(child), parse(root));
    child.issuer().as_raw() == root.subject().as_raw()
        && child.verify_signature(Some(root.public_key())).is_ok()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

const SHA384_WITH_RSA: &str = "1.2.840.113549.1.1.12";

#[test]
fn first_start_makes_four_certificates_under_one_root() {
    let dir = tempfile::tempdir().unwrap();
    let certs = ServerCerts::load_or_create(&config(dir.path(), true)).unwrap();

    for stem in ["root", "webserver", "agentserver", "mpsserver"] {
        assert!(
            files::cert_path(dir.path(), stem).is_file(),
            "{stem} certificate written"
        );
        assert!(
            files::key_path(dir.path(), stem).is_file(),
            "{stem} key written"
        );
    }
    assert!(common_name(&certs.root.cert_der).starts_with("TetherRoot-"));
    let constraints = parse(&certs.root.cert_der)
        .basic_constraints()
        .unwrap()
        .unwrap()
        .value
        .clone();
    assert!(constraints.ca);
    assert_eq!(
        constraints.path_len_constraint,
        Some(0),
        "the root signs no other CA"
    );
    assert!(
        issued_by(&certs.root.cert_der, &certs.root.cert_der),
        "root is self-signed"
    );
    for child in [&certs.web, &certs.agent, &certs.mps] {
        assert!(issued_by(&child.cert_der, &certs.root.cert_der));
        assert_eq!(
            parse(&child.cert_der)
                .signature_algorithm
                .algorithm
                .to_id_string(),
            SHA384_WITH_RSA
        );
    }
    assert_eq!(common_name(&certs.web.cert_der), "localhost");
    let web = parse(&certs.web.cert_der);
    let names: Vec<String> = web
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .map(|name| match name {
            GeneralName::DNSName(dns) => dns.to_string(),
            GeneralName::IPAddress(ip) => format!("{ip:?}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert!(names.contains(&"localhost".to_owned()), "{names:?}");
    assert!(names.contains(&"[127, 0, 0, 1]".to_owned()), "{names:?}");
    assert!(web.extended_key_usage().unwrap().unwrap().value.server_auth);

    // The agent-server name carries the start of the ServerID, as MeshCentral's does.
    let agent_cn = common_name(&certs.agent.cert_der);
    assert_eq!(
        agent_cn,
        format!(
            "TetherAgentServer-{}",
            &hex::encode(certs.agent_server_id())[..6]
        )
    );
    assert_eq!(
        certs.web_cert_hash().to_vec(),
        Sha384::digest(&certs.web.cert_der).to_vec()
    );
    assert!(certs.web_chain.is_empty());
    assert!(
        format!("{:?}", certs.web).contains("[secret]"),
        "keys never reach Debug output"
    );
}

#[test]
fn agent_server_id_hashes_the_pkcs1_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let certs = ServerCerts::load_or_create(&config(dir.path(), true)).unwrap();
    // Independently: the PKCS#1 RSAPublicKey of the agent key, as aws-lc-rs reports it.
    let key = aws_lc_rs::rsa::KeyPair::from_pkcs8(&certs.agent.key_pkcs8_der).unwrap();
    let public = aws_lc_rs::signature::KeyPair::public_key(&key);
    assert_eq!(
        certs.agent_server_id().to_vec(),
        Sha384::digest(public.as_ref()).to_vec()
    );
}

#[test]
fn later_starts_reuse_the_stored_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let first = ServerCerts::load_or_create(&config(dir.path(), true)).unwrap();
    let second = ServerCerts::load_or_create(&config(dir.path(), true)).unwrap();
    assert_eq!(first.root.cert_der, second.root.cert_der);
    assert_eq!(first.web.cert_der, second.web.cert_der);
    assert_eq!(first.mps.cert_der, second.mps.cert_der);
    assert_eq!(first.agent.key_pkcs8_der, second.agent.key_pkcs8_der);
    assert_eq!(first.agent_server_id(), second.agent_server_id());
    assert_eq!(first.web_cert_hash(), second.web_cert_hash());
}

#[test]
fn key_sizes_follow_fastcert_and_mps_is_2048_unless_configured() {
    let fast_dir = tempfile::tempdir().unwrap();
    let fast = ServerCerts::load_or_create(&config(fast_dir.path(), true)).unwrap();
    for cert in [&fast.root, &fast.web, &fast.agent, &fast.mps] {
        assert_eq!(rsa_bits(&cert.cert_der), 2048);
    }
    let full_dir = tempfile::tempdir().unwrap();
    let full = ServerCerts::load_or_create(&config(full_dir.path(), false)).unwrap();
    for cert in [&full.root, &full.web, &full.agent] {
        assert_eq!(rsa_bits(&cert.cert_der), 3072);
    }
    assert_eq!(
        rsa_bits(&full.mps.cert_der),
        2048,
        "old AMT firmware cannot take more"
    );
    // Unless told to: newer firmware takes 3072.
    let strong_dir = tempfile::tempdir().unwrap();
    let strong = ServerCerts::load_or_create(&Config {
        mps_key_bits: 3072,
        ..config(strong_dir.path(), true)
    })
    .unwrap();
    assert_eq!(rsa_bits(&strong.mps.cert_der), 3072);
    assert_eq!(rsa_bits(&strong.web.cert_der), 2048);
}

#[test]
fn keys_are_0600_and_the_folder_0700() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    ServerCerts::load_or_create(&config(&dir, true)).unwrap();
    assert_eq!(mode(&dir), 0o700, "an existing folder is tightened");
    for stem in ["root", "webserver", "agentserver", "mpsserver"] {
        assert_eq!(mode(&files::key_path(&dir, stem)), 0o600, "{stem}");
    }
    // A key copied in world-readable is tightened on the next start.
    let agent_key = files::key_path(&dir, "agentserver");
    std::fs::set_permissions(&agent_key, std::fs::Permissions::from_mode(0o644)).unwrap();
    ServerCerts::load_or_create(&config(&dir, true)).unwrap();
    assert_eq!(mode(&agent_key), 0o600);
}

#[test]
fn a_dropped_in_web_certificate_with_its_chain_is_served_as_is() {
    let dir = tempfile::tempdir().unwrap();
    // Someone else's CA (ECDSA, to show any key type works) and a leaf it issued.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let ca = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["tether.example".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    std::fs::create_dir_all(dir.path()).unwrap();
    let cert_file = files::cert_path(dir.path(), "webserver");
    std::fs::write(&cert_file, format!("{}{}", leaf.pem(), ca_cert.pem())).unwrap();
    std::fs::write(
        files::key_path(dir.path(), "webserver"),
        leaf_key.serialize_pem(),
    )
    .unwrap();

    let certs = ServerCerts::load_or_create(&config(dir.path(), true)).unwrap();
    assert_eq!(certs.web.cert_der, leaf.der().to_vec());
    assert_eq!(certs.web_chain, vec![ca_cert.der().to_vec()]);
    assert_eq!(certs.web_chain_der().len(), 2);
    assert_eq!(
        certs.web_cert_hash().to_vec(),
        Sha384::digest(leaf.der()).to_vec()
    );
    assert_eq!(
        std::fs::read_to_string(&cert_file).unwrap(),
        format!("{}{}", leaf.pem(), ca_cert.pem()),
        "untouched"
    );
    assert!(
        issued_by(&certs.agent.cert_der, &certs.root.cert_der),
        "the rest is still made"
    );
}

/// MeshCentral (node-forge) writes PKCS#1 "RSA PRIVATE KEY" files; its root must be able to sign.
#[test]
fn a_pkcs1_root_key_loads_and_signs() {
    let dir = tempfile::tempdir().unwrap();
    let first = ServerCerts::load_or_create(&config(dir.path(), true)).unwrap();
    let pkcs1 = pkcs8_to_pkcs1(&first.root.key_pkcs8_der);
    std::fs::write(
        files::key_path(dir.path(), "root"),
        files::pem("RSA PRIVATE KEY", &pkcs1),
    )
    .unwrap();
    std::fs::remove_file(files::cert_path(dir.path(), "mpsserver")).unwrap();
    std::fs::remove_file(files::key_path(dir.path(), "mpsserver")).unwrap();

    let second = ServerCerts::load_or_create(&config(dir.path(), true)).unwrap();
    assert_eq!(second.root.cert_der, first.root.cert_der);
    assert_ne!(
        second.mps.cert_der, first.mps.cert_der,
        "a new MPS certificate was made"
    );
    assert!(issued_by(&second.mps.cert_der, &second.root.cert_der));
    let reloaded = aws_lc_rs::rsa::KeyPair::from_pkcs8(&second.root.key_pkcs8_der)
        .expect("handed out as PKCS#8");
    assert_eq!(reloaded.public_modulus_len(), 256);
}

#[test]
fn a_lost_root_is_replaced_and_the_agent_identity_survives() {
    let dir = tempfile::tempdir().unwrap();
    let first = ServerCerts::load_or_create(&config(dir.path(), true)).unwrap();
    std::fs::remove_file(files::cert_path(dir.path(), "root")).unwrap();
    std::fs::remove_file(files::key_path(dir.path(), "root")).unwrap();

    let second = ServerCerts::load_or_create(&config(dir.path(), true)).unwrap();
    assert_ne!(second.root.cert_der, first.root.cert_der);
    for child in [&second.web, &second.agent, &second.mps] {
        assert!(
            issued_by(&child.cert_der, &second.root.cert_der),
            "re-issued under the new root"
        );
    }
    assert_eq!(
        second.agent_server_id(),
        first.agent_server_id(),
        "agents keep trusting this server"
    );
    assert_eq!(second.web.key_pkcs8_der, first.web.key_pkcs8_der);
}

#[test]
fn a_new_cert_name_reissues_the_web_certificate_only() {
    let dir = tempfile::tempdir().unwrap();
    let first = ServerCerts::load_or_create(&config(dir.path(), true)).unwrap();
    let renamed = Config {
        cert: "tether.example".into(),
        ..config(dir.path(), true)
    };
    let second = ServerCerts::load_or_create(&renamed).unwrap();
    assert_eq!(common_name(&second.web.cert_der), "tether.example");
    assert_eq!(second.web.key_pkcs8_der, first.web.key_pkcs8_der);
    assert_eq!(second.root.cert_der, first.root.cert_der);
    assert_eq!(second.agent.cert_der, first.agent.cert_der);
}

#[test]
fn a_half_pair_or_a_foreign_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    ServerCerts::load_or_create(&config(dir.path(), true)).unwrap();
    let web_key = files::key_path(dir.path(), "webserver");
    let mps_key = std::fs::read(files::key_path(dir.path(), "mpsserver")).unwrap();
    std::fs::write(&web_key, mps_key).unwrap();
    let err = ServerCerts::load_or_create(&config(dir.path(), true)).unwrap_err();
    assert!(
        err.to_string()
            .contains("does not fit webserver-cert-public.crt"),
        "{err}"
    );

    std::fs::remove_file(&web_key).unwrap();
    let err = ServerCerts::load_or_create(&config(dir.path(), true)).unwrap_err();
    assert!(matches!(err, CertError::HalfPair { .. }), "{err}");
}

/// PrivateKeyInfo ::= SEQUENCE { version, algorithm, privateKey OCTET STRING (the PKCS#1 key) }.
fn pkcs8_to_pkcs1(pkcs8: &[u8]) -> Vec<u8> {
    let (_, info) = x509_parser::der_parser::parse_der(pkcs8).unwrap();
    let fields = info.as_sequence().unwrap();
    fields[2].as_slice().unwrap().to_vec()
}
