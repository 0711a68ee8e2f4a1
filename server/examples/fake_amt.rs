//! A fake Intel AMT machine for trying the console by hand and for the console's end-to-end test
//! (`console/web/e2e/amt.test.mjs`): it logs in to a server's MPS port with a group's CIRA login,
//! forwards its WS-Management port, and answers power requests and a miniature of AMT's web UI
//! with Digest authentication, as the server's own tests do (the same code: `server/tests/mps/`).
//! Each power change it carries out is printed as `power N`.
//!
//! `cargo run -p tether-server --example fake_amt -- PORT ROOT_PEM CIRA_USER CIRA_PASSWORD AMT_USER AMT_PASSWORD [--name TLS_NAME] [--trace]`
//!
//! `--name` is the name the MPS certificate must carry (`localhost` by default); `--trace`
//! prints every APF message the server sends, which is how `tools/bench/scripts/cira-meshcentral.sh`
//! checks this simulator against MeshCentral's own MPS.

// Shared with the MPS tests, which use more of them than this tool does.
#[allow(dead_code)]
#[path = "../tests/mps/cira.rs"]
mod cira;
#[allow(dead_code)]
#[path = "../tests/mps/fake_amt.rs"]
mod fake_amt;

use std::sync::Arc;
use std::time::Duration;

use tether_common::apf::{AmtUuid, ApfMessage};

#[tokio::main]
async fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let trace = take_flag(&mut args, "--trace");
    let name = take_option(&mut args, "--name").unwrap_or_else(|| "localhost".into());
    let [port, root, cira_user, cira_password, amt_user, amt_password] = &args[..] else {
        eprintln!(
            "usage: fake_amt PORT ROOT_PEM CIRA_USER CIRA_PASSWORD AMT_USER AMT_PASSWORD [--name TLS_NAME] [--trace]"
        );
        std::process::exit(2);
    };
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let pem = std::fs::read(root).expect("the root certificate");
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.expect("a PEM certificate")).expect("a root");
    }
    let tls = Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let mut client = cira::CiraClient::connect_to(port.parse().expect("a port"), &name, tls).await;
    let uuid = AmtUuid(*b"\x0f\xa1\x7e\xa5fake-amt\x00\x01\x02\x03");
    match client.log_in(uuid, cira_user, cira_password).await {
        Some(ApfMessage::UserauthSuccess) => {}
        other => {
            eprintln!("the server refused the CIRA login: {other:?}");
            std::process::exit(1);
        }
    }
    client.forward(&[16992]).await;
    println!("fake AMT {uuid} connected");
    let machine = fake_amt::state(amt_user, amt_password);
    machine.lock().expect("the state").trace = trace;
    let reporter = machine.clone();
    tokio::spawn(async move {
        let mut reported = 0;
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let changes = reporter.lock().expect("the state").changes.clone();
            for change in &changes[reported..] {
                println!("power {change}");
            }
            reported = changes.len();
        }
    });
    fake_amt::serve(client, machine).await;
}

fn take_flag(args: &mut Vec<String>, flag: &str) -> bool {
    let before = args.len();
    args.retain(|a| a != flag);
    args.len() != before
}

fn take_option(args: &mut Vec<String>, option: &str) -> Option<String> {
    let at = args.iter().position(|a| a == option)?;
    let value = args.get(at + 1).cloned();
    args.drain(at..(at + 2).min(args.len()));
    value
}
