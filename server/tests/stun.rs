//! The server's STUN port, against the real binary over UDP on loopback: a Binding request is
//! answered with the address the client sent from; anything else gets no answer and does not
//! stop the port answering the next request.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use tether_common::stun::{TransactionId, binding_request, parse_binding_success};
use tokio::net::UdpSocket;
use tokio::time::timeout;

use common::TestServer;

/// Longer than any answer on loopback can take; only reached when the test fails.
const ANSWER_DEADLINE: Duration = Duration::from_secs(10);

async fn client() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.expect("a UDP socket")
}

/// Sends a Binding request with `id` and returns the address the answer reports.
async fn ask(socket: &UdpSocket, server: SocketAddr, id: TransactionId) -> SocketAddr {
    socket
        .send_to(&binding_request(id), server)
        .await
        .expect("send");
    let mut answer = [0u8; 1500];
    let (len, from) = timeout(ANSWER_DEADLINE, socket.recv_from(&mut answer))
        .await
        .expect("the STUN port did not answer")
        .expect("receive");
    assert_eq!(from, server, "answered from another address");
    parse_binding_success(&answer[..len], id)
        .unwrap_or_else(|| panic!("not a Binding success for {id:?}: {:02x?}", &answer[..len]))
}

#[tokio::test]
async fn the_https_port_number_answers_binding_requests_with_the_senders_address() {
    let server = TestServer::start().await;
    // By default the STUN port is the HTTPS port's number, over UDP.
    let stun: SocketAddr = ([127, 0, 0, 1], server.port).into();
    let socket = client().await;
    let seen = ask(&socket, stun, TransactionId([7; 12])).await;
    assert_eq!(seen, socket.local_addr().unwrap());
    assert!(
        server
            .startup_output
            .iter()
            .any(|line| line.contains(&format!("answering STUN on udp://{stun}"))),
        "{:?}",
        server.startup_output
    );
}

#[tokio::test]
async fn malformed_datagrams_get_no_answer_and_the_port_keeps_answering() {
    let server = TestServer::start().await;
    let stun: SocketAddr = ([127, 0, 0, 1], server.port).into();
    let socket = client().await;
    let answered = TransactionId([1; 12]);
    let mut not_a_request = binding_request(TransactionId([2; 12]));
    not_a_request[1] = 0x11; // a Binding indication
    let mut too_long = binding_request(TransactionId([3; 12]));
    too_long.resize(2000, 0);
    let hostile: [&[u8]; 4] = [
        b"GET / HTTP/1.1\r\n\r\n",
        &[0u8; 19],
        &not_a_request,
        &too_long,
    ];
    for datagram in hostile {
        socket.send_to(datagram, stun).await.expect("send");
    }
    // The first answer that arrives is the one to the valid request sent after them: none of the
    // datagrams above was answered.
    assert_eq!(
        ask(&socket, stun, answered).await,
        socket.local_addr().unwrap()
    );
    // And the port still works for someone else.
    let other = client().await;
    assert_eq!(
        ask(&other, stun, TransactionId([4; 12])).await,
        other.local_addr().unwrap()
    );
}

#[tokio::test]
async fn stunport_zero_turns_it_off_and_a_taken_port_is_refused_clearly() {
    let server = TestServer::start_with(&["--stunport", "0"]).await;
    assert!(
        !server
            .startup_output
            .iter()
            .any(|line| line.contains("answering STUN")),
        "{:?}",
        server.startup_output
    );
    drop(server);

    let taken = client().await;
    let port = taken.local_addr().unwrap().port().to_string();
    let Err(error) = TestServer::try_start_with(&["--stunport", &port]).await else {
        panic!("started on a taken STUN port");
    };
    assert!(
        error.contains(&format!(
            "UDP port {port} is already in use; choose another with --stunport"
        )),
        "{error}"
    );
}
