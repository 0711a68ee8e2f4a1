//! The clipboard between two of our own X clients on a private Xvfb: one sets, the other reads
//! and hears the change. Skipped, saying so, where Xvfb is not installed (but not under CI).

use std::time::{Duration, Instant};

use xprobe::{DEADLINE, Xvfb};

use super::clipboard::{self, ClipboardHandle, MAX_TEXT};

/// `get` until it returns `wanted` (the other thread takes ownership asynchronously).
async fn read_until(clipboard: &ClipboardHandle, wanted: &str) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let text = clipboard.get().await;
        if text.as_deref() == Some(wanted) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the clipboard holds {:?}, not the {} bytes expected",
            text.map(|t| t.chars().take(40).collect::<String>()),
            wanted.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn next_change(changes: &mut tokio::sync::mpsc::Receiver<String>) -> String {
    tokio::time::timeout(DEADLINE, changes.recv())
        .await
        .expect("a change within the deadline")
        .expect("the clipboard thread runs")
}

#[tokio::test]
async fn text_set_by_one_client_is_read_and_announced_to_another() {
    let Some(xvfb) = Xvfb::start(320, 240) else {
        return;
    };
    let (ours, mut our_changes) = clipboard::spawn(&xvfb.display).unwrap();
    let (theirs, mut their_changes) = clipboard::spawn(&xvfb.display).unwrap();
    assert_eq!(theirs.get().await, None, "nobody owns the clipboard yet");

    ours.set("héllo ✓ from the viewer".into());
    read_until(&theirs, "héllo ✓ from the viewer").await;
    assert_eq!(ours.get().await.as_deref(), Some("héllo ✓ from the viewer"));
    assert_eq!(
        next_change(&mut their_changes).await,
        "héllo ✓ from the viewer"
    );

    theirs.set("copied on the remote machine".into());
    assert_eq!(
        next_change(&mut our_changes).await,
        "copied on the remote machine"
    );
    read_until(&ours, "copied on the remote machine").await;
    // Our own `set` was never announced back to us.
    assert!(our_changes.try_recv().is_err());
}

#[tokio::test]
async fn large_texts_pass_whole_up_to_the_cap() {
    let Some(xvfb) = Xvfb::start(320, 240) else {
        return;
    };
    let (ours, _our_changes) = clipboard::spawn(&xvfb.display).unwrap();
    let (theirs, _their_changes) = clipboard::spawn(&xvfb.display).unwrap();
    let big: String = "0123456789abcdeф".repeat(300 * 1024 / 17);
    ours.set(big.clone());
    read_until(&theirs, &big).await;

    let huge = "x".repeat(MAX_TEXT + 5000);
    ours.set(huge);
    read_until(&theirs, &"x".repeat(MAX_TEXT)).await;
}

#[tokio::test]
async fn the_thread_ends_with_its_last_handle() {
    let Some(xvfb) = Xvfb::start(320, 240) else {
        return;
    };
    let (ours, mut our_changes) = clipboard::spawn(&xvfb.display).unwrap();
    let copy = ours.clone();
    drop(ours);
    copy.set("still here".into());
    assert_eq!(copy.get().await.as_deref(), Some("still here"));
    drop(copy);
    // The thread dropped its end of the change channel as it stopped.
    let closed = tokio::time::timeout(DEADLINE, our_changes.recv()).await;
    assert_eq!(closed, Ok(None));
}
