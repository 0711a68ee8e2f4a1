//! The server as a library: `tether_server::run` serves listeners its caller bound, and stops
//! cleanly when the caller's shutdown future resolves.

mod common;

use std::time::Duration;

use common::TestServer;
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[tokio::test]
async fn stopping_closes_open_consoles_with_a_close_frame_and_run_returns() {
    let mut server = TestServer::in_process().await;
    server.create_admin("admin", "admin password 1").await;
    let cookie = server.login("admin", "admin password 1").await;
    let mut console = server
        .try_control(Some(&cookie))
        .await
        .expect("open /control")
        .into_socket();

    let stopping = server.stop();
    let closed = async {
        loop {
            match console.next().await {
                Some(Ok(Message::Close(frame))) => break frame,
                Some(Ok(_)) => continue,
                other => panic!("the socket ended without a close frame: {other:?}"),
            }
        }
    };
    let (status, frame) = tokio::join!(stopping, closed);
    assert!(status.success(), "run returned an error");
    let frame = frame.expect("a close frame with a code");
    assert_eq!(frame.code, CloseCode::Away);
    assert_eq!(frame.reason.as_str(), "server stopping");
    assert!(!server.is_running());
    // The port is free again: nothing is left listening.
    let refused = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(("127.0.0.1", server.port)),
    )
    .await
    .expect("connect returns at once");
    assert!(refused.is_err(), "something still listens on the port");
}

#[tokio::test]
async fn an_in_process_server_restarts_on_its_port_with_its_data() {
    let mut server = TestServer::in_process().await;
    server.create_admin("admin", "admin password 1").await;
    let port = server.port;
    server.restart().await;
    assert_eq!(server.port, port);
    // The account survived: the data folder and the database were reused.
    let _cookie = server.login("admin", "admin password 1").await;
}
