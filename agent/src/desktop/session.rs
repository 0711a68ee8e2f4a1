//! One viewer's desktop session on the relay socket: after `"c"` the console sends `start`; the
//! session joins the hub for that display, forwards what the hub sends (displays, stream,
//! pictures, cursor, pointer, snapshots), and handles the console's requests: settings, display,
//! key frame, acks, ping, snapshot, clipboard and input.
//!
//! Input and clipboard writes need REMOTE_CONTROL (`desktop::input_allowed`): a view-only viewer
//! gets pictures, and its first input message earns one `notice` (and a log line); the rest are
//! dropped quietly. The clipboard counts as control both ways (reading it could show what the
//! screen does not), so view-only sessions do not get it either. When the session ends, every key
//! and button it pressed is released.

use std::time::Duration;

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tether_common::relay::desktop::{
    self, AudioSource, DesktopEvent, DesktopRequest, DisplaySelection, EffectiveSettings,
    StreamSettings,
};
use tether_common::rights::Rights;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

use super::audio::{AudioOutput, AudioStream};
use super::clipboard::{self, ClipboardHandle};
use super::hub::{HubOutput, Hubs, PictureTiming, StreamInfo, Viewer};
use super::input::{self, InputCommand, InputHandle};
use super::track::{Track, TrackInput};
use crate::relay::RelaySocket;
use crate::screen_notice::Notice;

/// The console's `start` must come within this long after `"c"`.
const START_WAIT: Duration = Duration::from_secs(60);
/// A console that takes no frame for this long is gone.
const SEND_DEADLINE: Duration = Duration::from_secs(300);
pub(super) const NO_DISPLAY: &str = "no X display: start the agent with --x-display or DISPLAY";

type Sink = SplitSink<RelaySocket, Message>;

/// Serves one desktop session to its end.
pub(crate) async fn serve(
    socket: RelaySocket,
    display: Option<String>,
    hubs: Hubs,
    rights: Rights,
    user: &str,
    video: Option<tokio::sync::oneshot::Receiver<tether_rtc::VideoTrack>>,
    microphone_allowed: bool,
) -> anyhow::Result<()> {
    let (mut sink, mut stream) = socket.split();
    let start = match timeout(START_WAIT, next_request(&mut stream)).await {
        Ok(Some(DesktopRequest::Start(start))) => start,
        Ok(Some(_)) => return fail(&mut sink, "the first frame must be a desktop start").await,
        _ => return fail(&mut sink, "no desktop start from the console").await,
    };
    let Some(x_display) = display else {
        return fail(&mut sink, NO_DISPLAY).await;
    };
    let settings = start.settings.apply_to(StreamSettings::DEFAULT);
    let view_only = !desktop::input_allowed(rights);
    tracing::info!(user, %x_display, view_only, ?settings, "desktop: session started");
    let (events, event_inbox) = mpsc::unbounded_channel();
    let mut session = Session {
        viewer: hubs.join(&x_display, start.display, settings),
        hubs,
        display: x_display,
        user: user.to_owned(),
        selection: start.display,
        settings,
        stream: None,
        view_only,
        refusal_sent: false,
        input: None,
        clipboard: None,
        events,
        track: Track::new(video),
        estimated: false,
        timing: None,
        audio: None,
        audio_frames: None,
        microphone_allowed,
        microphone_notice: None,
    };
    let mut inputs = Inbox::default();
    if !view_only {
        session.start_control(&mut inputs);
    }
    let result = session
        .run(&mut sink, &mut stream, event_inbox, inputs)
        .await;
    if let Some(input) = &session.input {
        input.send(InputCommand::ReleaseAll);
    }
    tracing::info!(user, "desktop: session ended");
    result
}

/// Receivers of the input and clipboard threads (empty for view-only sessions).
#[derive(Default)]
struct Inbox {
    notices: Option<mpsc::UnboundedReceiver<String>>,
    clipboard: Option<mpsc::Receiver<String>>,
}

struct Session {
    hubs: Hubs,
    display: String,
    user: String,
    viewer: Viewer,
    selection: DisplaySelection,
    settings: EffectiveSettings,
    /// The stream as last announced: maps pointer positions between picture and screen.
    stream: Option<StreamInfo>,
    view_only: bool,
    refusal_sent: bool,
    input: Option<InputHandle>,
    clipboard: Option<ClipboardHandle>,
    /// Answers produced off the loop (clipboard reads).
    events: mpsc::UnboundedSender<DesktopEvent>,
    /// The direct path's video track, when the viewer negotiated one (`track.rs`).
    track: Track,
    /// A bandwidth estimate came (logged once).
    estimated: bool,
    /// What the latest picture cost the agent, for the next `pong`.
    timing: Option<PictureTiming>,
    /// The device's sound, while the viewer has the speaker on (`audio.rs`).
    audio: Option<AudioStream>,
    audio_frames: Option<mpsc::Receiver<AudioOutput>>,
    /// The device's group lets this viewer listen to the microphone.
    microphone_allowed: bool,
    /// Shown to the person at the device while the microphone is heard; its button stops it.
    microphone_notice: Option<Notice>,
}

enum Step {
    Continue,
    End,
}

impl Session {
    fn start_control(&mut self, inbox: &mut Inbox) {
        match input::spawn(&self.display) {
            Ok((handle, notices)) => {
                self.input = Some(handle);
                inbox.notices = Some(notices);
            }
            Err(e) => {
                tracing::warn!("desktop: no input on {}: {e}", self.display);
                let _ = self
                    .events
                    .send(notice(format!("input is unavailable: {e}")));
            }
        }
        match clipboard::spawn(&self.display) {
            Ok((handle, changes)) => {
                self.clipboard = Some(handle);
                inbox.clipboard = Some(changes);
            }
            Err(e) => {
                tracing::warn!("desktop: no clipboard on {}: {e}", self.display);
                let _ = self
                    .events
                    .send(notice(format!("the clipboard is unavailable: {e}")));
            }
        }
    }

    async fn run(
        &mut self,
        sink: &mut Sink,
        stream: &mut futures_util::stream::SplitStream<RelaySocket>,
        mut events: mpsc::UnboundedReceiver<DesktopEvent>,
        mut inbox: Inbox,
    ) -> anyhow::Result<()> {
        loop {
            let step = tokio::select! {
                output = self.viewer.output.recv() => match output {
                    Some(output) => self.forward(sink, output).await?,
                    None => {
                        fail(sink, "the screen capture stopped").await?;
                        Step::End
                    }
                },
                message = stream.next() => match message {
                    Some(Ok(Message::Text(text))) => match desktop::parse_request(&text) {
                        Some(request) => self.request(sink, request).await?,
                        None => {
                            tracing::debug!("desktop: ignoring a malformed request");
                            Step::Continue
                        }
                    },
                    Some(Ok(Message::Binary(_) | Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => Step::Continue,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => Step::End,
                },
                input = self.track.next() => {
                    self.on_track(sink, input).await?;
                    Step::Continue
                }
                Some(event) = events.recv() => {
                    send_event(sink, &event).await?;
                    Step::Continue
                }
                Some(message) = recv_some(&mut inbox.notices) => {
                    send_event(sink, &notice(message)).await?;
                    Step::Continue
                }
                Some(output) = recv_bounded(&mut self.audio_frames) => {
                    self.on_audio(sink, output).await?;
                    Step::Continue
                }
                () = pressed(&mut self.microphone_notice) => {
                    tracing::info!(user = %self.user, "desktop: the person at the device turned the microphone off");
                    self.stop_audio();
                    let why = "the person at the device turned the microphone off".to_owned();
                    send_event(sink, &audio_off(AudioSource::Microphone, Some(why))).await?;
                    Step::Continue
                }
                Some(text) = recv_bounded(&mut inbox.clipboard) => {
                    send_event(sink, &DesktopEvent::Clipboard { text }).await?;
                    Step::Continue
                }
            };
            if let Step::End = step {
                return Ok(());
            }
        }
    }

    /// Turns the device's sound (or microphone) on or off for this viewer, and says which it is
    /// now.
    async fn switch_audio(
        &mut self,
        sink: &mut Sink,
        on: bool,
        source: AudioSource,
    ) -> anyhow::Result<()> {
        self.stop_audio();
        let event = if !on {
            audio_off(source, None)
        } else {
            match self.start_audio(source).await {
                Ok(()) => DesktopEvent::Audio {
                    on: true,
                    source,
                    channels: Some(super::audio::CHANNELS as u8),
                    why: None,
                },
                Err(why) => {
                    tracing::info!(user = %self.user, ?source, "desktop: no sound: {why}");
                    audio_off(source, Some(why))
                }
            }
        };
        send_event(sink, &event).await
    }

    /// The microphone only where the group allows it, and never unseen: no notice, no microphone.
    async fn start_audio(&mut self, source: AudioSource) -> Result<(), String> {
        if source == AudioSource::Microphone {
            if !self.microphone_allowed {
                return Err(
                    "this device's group does not let viewers listen to its microphone".into(),
                );
            }
            let message = crate::screen_notice::Message {
                title: "Your microphone is being listened to".into(),
                lines: vec![
                    format!(
                        "{} hears this computer's microphone from a remote desktop session.",
                        tether_common::relay::consent::readable_name(&self.user, 64)
                    ),
                    "Disconnect turns the microphone off for them.".into(),
                ],
            };
            let notice = crate::screen_notice::Notice::show(Some(&self.display), message)
                .map_err(|e| format!("the person at the device cannot be shown that their microphone is heard: {e}"))?;
            self.microphone_notice = Some(notice);
        }
        match AudioStream::start(&self.display, source).await {
            Ok((stream, frames)) => {
                self.audio = Some(stream);
                self.audio_frames = Some(frames);
                Ok(())
            }
            Err(e) => {
                self.microphone_notice = None;
                Err(e.to_string())
            }
        }
    }

    fn stop_audio(&mut self) {
        self.audio = None;
        self.audio_frames = None;
        self.microphone_notice = None;
    }

    async fn on_audio(&mut self, sink: &mut Sink, output: AudioOutput) -> anyhow::Result<()> {
        match output {
            AudioOutput::Frame(frame) => send(sink, Message::binary(frame)).await,
            AudioOutput::Ended(why) => {
                let source = if self.microphone_notice.is_some() {
                    AudioSource::Microphone
                } else {
                    AudioSource::Output
                };
                self.stop_audio();
                send_event(sink, &audio_off(source, Some(why))).await
            }
        }
    }

    /// Sends what the hub produced to the console.
    async fn forward(&mut self, sink: &mut Sink, output: HubOutput) -> anyhow::Result<Step> {
        match output {
            HubOutput::Displays { displays, selected } => {
                send_event(sink, &DesktopEvent::Displays { displays, selected }).await?;
            }
            HubOutput::Stream(info) => {
                self.stream = Some(info);
                self.announce_stream(sink).await?;
            }
            HubOutput::Picture { messages, timing }
                if self
                    .stream
                    .as_ref()
                    .is_some_and(|stream| self.track.carries(stream.codec)) =>
            {
                self.timing = Some(timing);
                match self.track.send(&messages) {
                    // Nobody acknowledges RTP: what the path cannot take, the congestion
                    // controller's estimate keeps the encoder from making.
                    Some(seq) => self.viewer.ack(seq),
                    None => {
                        for message in messages {
                            send(sink, Message::binary(message)).await?;
                        }
                    }
                }
            }
            HubOutput::Picture { messages, timing } => {
                self.timing = Some(timing);
                for message in messages {
                    send(sink, Message::binary(message)).await?;
                }
            }
            HubOutput::Snapshot(messages) => {
                for message in messages {
                    send(sink, Message::binary(message)).await?;
                }
            }
            HubOutput::Cursor(frame) => send(sink, Message::binary(frame)).await?,
            HubOutput::Pointer { x, y } => {
                if let Some(stream) = &self.stream {
                    let (x, y) = screen_to_picture(stream, x, y);
                    send_event(sink, &DesktopEvent::Pointer { x, y }).await?;
                }
            }
            HubOutput::Notice(message) => send_event(sink, &notice(message)).await?,
            HubOutput::Failed(message) => {
                fail(sink, &message).await?;
                return Ok(Step::End);
            }
        }
        Ok(Step::Continue)
    }

    /// Tells the viewer the stream's parameters, and whether its pictures come on the track.
    async fn announce_stream(&mut self, sink: &mut Sink) -> anyhow::Result<()> {
        let Some(info) = &self.stream else {
            return Ok(());
        };
        let event = DesktopEvent::Stream {
            codec: info.codec,
            codec_string: info.codec_string.clone(),
            width: info.width,
            height: info.height,
            quality: info.quality,
            fps: info.fps,
            view_only: self.view_only,
            track: self.track.carries(info.codec),
        };
        send_event(sink, &event).await
    }

    async fn on_track(&mut self, sink: &mut Sink, input: TrackInput) -> anyhow::Result<()> {
        match input {
            // The pictures change path: the viewer hears of it first, and the first picture on
            // the new path must be a key frame.
            TrackInput::Ready | TrackInput::Gone => {
                self.announce_stream(sink).await?;
                self.viewer.keyframe();
            }
            TrackInput::Keyframe => self.viewer.keyframe(),
            TrackInput::Bitrate(bps) => {
                if !std::mem::replace(&mut self.estimated, true) {
                    tracing::info!(
                        kbps = bps / 1000,
                        "desktop: first bandwidth estimate of the direct path"
                    );
                }
                self.viewer.bitrate(bps);
            }
        }
        Ok(())
    }

    async fn request(&mut self, sink: &mut Sink, request: DesktopRequest) -> anyhow::Result<Step> {
        match request {
            DesktopRequest::Ack { seq } => self.viewer.ack(seq),
            DesktopRequest::Keyframe => self.viewer.keyframe(),
            DesktopRequest::Ping { t } => {
                let pong = DesktopEvent::Pong {
                    t,
                    capture_us: self.timing.map(|timing| timing.capture_us),
                    encode_us: self.timing.map(|timing| timing.encode_us),
                };
                send_event(sink, &pong).await?;
            }
            DesktopRequest::Snapshot => self.viewer.snapshot(),
            DesktopRequest::Audio { on, source } => self.switch_audio(sink, on, source).await?,
            DesktopRequest::Settings(change) => {
                self.settings = change.apply_to(self.settings);
                self.viewer.settings(self.settings);
            }
            DesktopRequest::Display { display } => {
                if display != self.selection {
                    self.selection = display;
                    self.stream = None;
                    // The old viewer leaves its hub when replaced (and that hub stops if it was
                    // the last); the new hub sends `displays` and a new `stream`.
                    self.viewer = self.hubs.join(&self.display, display, self.settings);
                }
            }
            DesktopRequest::ClipboardGet => {
                if self.control(sink, "read the clipboard").await?
                    && let Some(clipboard) = self.clipboard.clone()
                {
                    let events = self.events.clone();
                    tokio::spawn(async move {
                        let text = clipboard.get().await.unwrap_or_default();
                        let _ = events.send(DesktopEvent::Clipboard { text });
                    });
                }
            }
            DesktopRequest::ClipboardSet { text } => {
                if self.control(sink, "set the clipboard").await?
                    && let Some(clipboard) = &self.clipboard
                {
                    clipboard.set(text);
                }
            }
            DesktopRequest::Start(_) => tracing::debug!("desktop: ignoring a second start"),
            DesktopRequest::Unknown => tracing::debug!("desktop: ignoring an unknown request"),
            input => {
                if self.control(sink, "send input").await?
                    && let Some(command) = self.input_command(input)
                    && let Some(handle) = &self.input
                {
                    handle.send(command);
                }
            }
        }
        Ok(Step::Continue)
    }

    /// Whether this session may control the screen; the first refusal is told to the console.
    async fn control(&mut self, sink: &mut Sink, what: &str) -> anyhow::Result<bool> {
        if !self.view_only {
            return Ok(true);
        }
        if !self.refusal_sent {
            self.refusal_sent = true;
            tracing::info!(user = %self.user, "desktop: view-only session tried to {what}; ignored");
            let message =
                "this session is view-only: input and the clipboard are ignored".to_owned();
            send_event(sink, &notice(message)).await?;
        }
        Ok(false)
    }

    /// The input command for a request, pointer positions mapped from picture to screen.
    fn input_command(&self, request: DesktopRequest) -> Option<InputCommand> {
        Some(match request {
            DesktopRequest::MouseMove { x, y } => {
                let (x, y) = picture_to_screen(self.stream.as_ref()?, x, y);
                InputCommand::MouseMove { x, y }
            }
            DesktopRequest::MouseButton { button, down } => {
                InputCommand::MouseButton { button, down }
            }
            DesktopRequest::Wheel { dx, dy } => InputCommand::Wheel { dx, dy },
            DesktopRequest::Key { code, down } => InputCommand::Key { code, down },
            DesktopRequest::Text { text } => InputCommand::Text(text),
            DesktopRequest::Combo { codes } => InputCommand::Combo(codes),
            _ => return None,
        })
    }
}

/// A picture pixel → the screen pixel it shows.
pub(super) fn picture_to_screen(stream: &StreamInfo, x: u32, y: u32) -> (i32, i32) {
    let map = |value: u32, picture: u32, source: u32, origin: i32| {
        let value = u64::from(value.min(picture.saturating_sub(1)));
        origin + (value * u64::from(source) / u64::from(picture.max(1))) as i32
    };
    (
        map(x, stream.width, stream.source.width, stream.source.x),
        map(y, stream.height, stream.source.height, stream.source.y),
    )
}

/// A screen pixel → picture pixels (may lie outside the picture when the pointer is on another
/// monitor).
pub(super) fn screen_to_picture(stream: &StreamInfo, x: i32, y: i32) -> (i32, i32) {
    let map = |value: i32, origin: i32, source: u32, picture: u32| {
        (i64::from(value - origin) * i64::from(picture) / i64::from(source.max(1))) as i32
    };
    (
        map(x, stream.source.x, stream.source.width, stream.width),
        map(y, stream.source.y, stream.source.height, stream.height),
    )
}

fn notice(message: String) -> DesktopEvent {
    DesktopEvent::Notice { message }
}

async fn recv_some(receiver: &mut Option<mpsc::UnboundedReceiver<String>>) -> Option<String> {
    match receiver {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

/// The microphone is off (`why`: not by the viewer's choice).
fn audio_off(source: AudioSource, why: Option<String>) -> DesktopEvent {
    DesktopEvent::Audio {
        on: false,
        source,
        channels: None,
        why,
    }
}

/// Resolves when the person at the device presses the notice's button; pends without a notice.
async fn pressed(notice: &mut Option<Notice>) {
    match notice {
        Some(notice) => notice.disconnected().await,
        None => std::future::pending().await,
    }
}

async fn recv_bounded<T>(receiver: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match receiver {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

async fn next_request(
    stream: &mut futures_util::stream::SplitStream<RelaySocket>,
) -> Option<DesktopRequest> {
    loop {
        match stream.next().await? {
            Ok(Message::Text(text)) => return desktop::parse_request(&text),
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => continue,
            _ => return None,
        }
    }
}

async fn send(sink: &mut Sink, message: Message) -> anyhow::Result<()> {
    match timeout(SEND_DEADLINE, sink.send(message)).await {
        Ok(result) => Ok(result?),
        Err(_) => anyhow::bail!("the console took nothing for {SEND_DEADLINE:?}"),
    }
}

async fn send_event(sink: &mut Sink, event: &DesktopEvent) -> anyhow::Result<()> {
    send(sink, Message::text(desktop::to_json(event))).await
}

/// Sends an `error` event and closes: the session cannot go on.
async fn fail(sink: &mut Sink, message: &str) -> anyhow::Result<()> {
    tracing::warn!("desktop: {message}");
    let event = DesktopEvent::Error {
        message: message.to_owned(),
    };
    send_event(sink, &event).await?;
    let _ = timeout(Duration::from_secs(5), sink.close()).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desktop::frame::Rect;
    use tether_common::relay::desktop::Codec;

    fn stream(source: Rect, width: u32, height: u32) -> StreamInfo {
        StreamInfo {
            codec: Codec::H264,
            codec_string: "avc1.42c01f".into(),
            width,
            height,
            quality: 60,
            fps: 30,
            source,
        }
    }

    #[test]
    fn picture_positions_map_to_the_screen_and_back() {
        // The right monitor of two, shown at half size.
        let info = stream(Rect::new(1920, 0, 1920, 1080), 960, 540);
        assert_eq!(picture_to_screen(&info, 0, 0), (1920, 0));
        assert_eq!(picture_to_screen(&info, 480, 270), (2880, 540));
        // Past the picture's edge: clamped to its last pixel.
        assert_eq!(picture_to_screen(&info, 5000, 5000), (1920 + 1918, 1078));
        assert_eq!(screen_to_picture(&info, 2880, 540), (480, 270));
        assert_eq!(
            screen_to_picture(&info, 0, 0),
            (-960, 0),
            "on the other monitor"
        );
        let same = stream(Rect::new(0, 0, 800, 600), 800, 600);
        assert_eq!(picture_to_screen(&same, 799, 599), (799, 599));
    }
}
