//! `tetherctl chat --device D [--text T]`: opens the messenger on the device for the person at
//! its screen and prints what happened (whom it opened for, or why it did not open).
//!
//! With `--text`, sends that message once the page has joined, then leaves. Without it, the chat
//! is interactive: each line of standard input is a message, and the other side's messages are
//! printed as `name: text` (escaped: they are the other side's words, not terminal commands),
//! until standard input ends or the other side leaves. Files the other side offers are declined.

use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use tether_common::control::{CreateSession, GetWhoAmI};
use tether_common::ids::DeviceId;
use tether_common::relay::SessionKind;
use tether_common::relay::chat::{ChatMessage, MAX_TEXT_CHARS, clean_name};
use tokio_tungstenite::tungstenite::Message;

use crate::connection::Control;
use crate::output::{print_json, printable};
use crate::relay::{close_reason, read_stdin, wait_for_peer};

/// How long the page on the device has to join once it opened (a browser's cold start).
const PAGE_WAIT: Duration = Duration::from_secs(55);

pub(crate) async fn run(
    control: &mut Control,
    device: &DeviceId,
    text: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let me = control.call(GetWhoAmI {}).await?.user;
    let ticket = control
        .call(CreateSession {
            device: device.clone(),
            kind: SessionKind::Chat,
        })
        .await?;
    let window = ticket
        .chat
        .clone()
        .context("the server opened no chat window (is it older than this tetherctl?)")?;
    if json {
        print_json(&window);
    } else {
        println!(
            "the chat window opened for {} on {}",
            printable(&window.user),
            printable(&window.display)
        );
    }
    let mut socket = control.open_relay(&ticket.url).await?;
    wait_for_peer(&mut socket, PAGE_WAIT)
        .await
        .context("the chat page did not connect")?;
    let name = match &me.email {
        Some(email) => format!("{} <{email}>", me.name),
        None => me.name.clone(),
    };
    let (mut sink, mut stream) = socket.split();
    let send = |message: ChatMessage| Message::text(message.to_json());
    sink.send(send(ChatMessage::Hello { name })).await?;
    if let Some(text) = text {
        let text: String = text.chars().take(MAX_TEXT_CHARS).collect();
        sink.send(send(ChatMessage::Text { id: 1, text })).await?;
        sink.send(send(ChatMessage::Bye)).await?;
        let _ = sink.close().await;
        if !json {
            eprintln!("sent");
        }
        return Ok(());
    }

    let mut input = read_stdin();
    let (mut pending, mut next_id, mut peer) = (Vec::<u8>::new(), 1u32, String::from("device"));
    loop {
        tokio::select! {
            chunk = input.recv() => match chunk {
                Some(bytes) => {
                    pending.extend_from_slice(&bytes);
                    while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = pending.drain(..=end).collect();
                        let text = String::from_utf8_lossy(&line).trim().to_owned();
                        if !text.is_empty() {
                            let text: String = text.chars().take(MAX_TEXT_CHARS).collect();
                            sink.send(send(ChatMessage::Text { id: next_id, text })).await?;
                            next_id += 1;
                        }
                    }
                }
                None => {
                    sink.send(send(ChatMessage::Bye)).await?;
                    let _ = sink.close().await;
                    return Ok(());
                }
            },
            message = stream.next() => match message {
                Some(Ok(Message::Text(frame))) => match ChatMessage::parse(&frame) {
                    Some(ChatMessage::Hello { name }) => {
                        peer = clean_name(&name);
                        eprintln!("{} joined the chat", printable(&peer));
                    }
                    Some(ChatMessage::Text { text, .. }) => {
                        println!("{}: {}", printable(&peer), printable(&text));
                    }
                    Some(ChatMessage::FileOffer { id, name, .. }) => {
                        eprintln!("declined the file {} (tetherctl does not receive files)", printable(&name));
                        sink.send(send(ChatMessage::FileDecline { id })).await?;
                    }
                    Some(ChatMessage::Bye) => {
                        eprintln!("{} left the chat", printable(&peer));
                        return Ok(());
                    }
                    _ => {}
                },
                Some(Ok(Message::Close(frame))) => {
                    let reason = frame.map(|f| f.reason.to_string()).unwrap_or_default();
                    eprintln!("the chat ended ({})", printable(&reason));
                    return Ok(());
                }
                Some(Ok(_)) => {}
                other => bail!("the chat ended ({})", close_reason(other)),
            },
        }
    }
}
