//! The clipboard thread: owns the selection while we hold text, answers other clients'
//! requests for it, and reads the text of others (for `get` and for change announcements).

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Instant;

use tokio::sync::oneshot;
use x11rb::connection::Connection;
use x11rb::errors::{ConnectionError, ReplyError};
use x11rb::protocol::Event;
use x11rb::protocol::xproto::{
    AtomEnum, ConnectionExt as _, EventMask, PropMode, SELECTION_NOTIFY_EVENT,
    SelectionNotifyEvent, SelectionRequestEvent, Window,
};
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;

use super::{Atoms, Command, GET_TIMEOUT, MAX_TEXT};

/// The thread's state.
pub(super) struct Owner {
    conn: Arc<RustConnection>,
    window: Window,
    atoms: Atoms,
    /// The text we serve while we own `CLIPBOARD`.
    text: Option<String>,
    /// `get` calls waiting for the owner's answer.
    waiting: Vec<oneshot::Sender<Option<String>>>,
    get_sent: Option<Instant>,
    changes: tokio::sync::mpsc::Sender<String>,
}

impl Owner {
    pub(super) fn new(
        conn: Arc<RustConnection>,
        window: Window,
        atoms: Atoms,
        changes: tokio::sync::mpsc::Sender<String>,
    ) -> Owner {
        Owner {
            conn,
            window,
            atoms,
            text: None,
            waiting: Vec::new(),
            get_sent: None,
            changes,
        }
    }

    pub(super) fn run(mut self, commands: mpsc::Receiver<Command>) {
        let result = self.serve(&commands);
        if let Err(e) = result {
            tracing::warn!("desktop clipboard: {e}; the clipboard stops");
        }
        let _ = self.conn.destroy_window(self.window);
        let _ = self.conn.flush();
    }

    fn serve(&mut self, commands: &mpsc::Receiver<Command>) -> Result<(), ReplyError> {
        loop {
            let event = self.conn.wait_for_event()?;
            self.handle_event(event)?;
            loop {
                match commands.try_recv() {
                    Ok(Command::Quit) | Err(mpsc::TryRecvError::Disconnected) => return Ok(()),
                    Ok(command) => self.handle_command(command)?,
                    Err(mpsc::TryRecvError::Empty) => break,
                }
            }
            self.conn.flush()?;
        }
    }

    fn handle_command(&mut self, command: Command) -> Result<(), ReplyError> {
        match command {
            Command::Set(mut text) => {
                if text.len() > MAX_TEXT {
                    let mut end = MAX_TEXT;
                    while !text.is_char_boundary(end) {
                        end -= 1;
                    }
                    tracing::info!("desktop clipboard: text cut to {end} bytes");
                    text.truncate(end);
                }
                self.text = Some(text);
                self.conn.set_selection_owner(
                    self.window,
                    self.atoms.clipboard,
                    x11rb::CURRENT_TIME,
                )?;
            }
            Command::Get(answer) => {
                if let Some(text) = &self.text {
                    let _ = answer.send(Some(text.clone()));
                    return Ok(());
                }
                self.waiting.retain(|waiting| !waiting.is_closed());
                self.waiting.push(answer);
                // One request in flight serves every waiting `get`; a lost one is asked again.
                let in_flight = self
                    .get_sent
                    .is_some_and(|sent| sent.elapsed() < GET_TIMEOUT);
                if !in_flight {
                    self.convert(self.atoms.utf8_string, self.atoms.get_property)?;
                    self.get_sent = Some(Instant::now());
                }
            }
            Command::Quit => {}
        }
        Ok(())
    }

    fn convert(&self, target: u32, property: u32) -> Result<(), ConnectionError> {
        self.conn.convert_selection(
            self.window,
            self.atoms.clipboard,
            target,
            property,
            x11rb::CURRENT_TIME,
        )?;
        Ok(())
    }

    fn handle_event(&mut self, event: Event) -> Result<(), ReplyError> {
        match event {
            Event::SelectionRequest(request) => self.answer(&request)?,
            Event::SelectionClear(clear) if clear.selection == self.atoms.clipboard => {
                self.text = None;
            }
            Event::SelectionNotify(notify) => self.received(&notify)?,
            Event::XfixesSelectionNotify(notify)
                if notify.selection == self.atoms.clipboard
                    && notify.owner != self.window
                    && notify.owner != x11rb::NONE =>
            {
                self.convert(self.atoms.utf8_string, self.atoms.watch_property)?;
            }
            Event::Error(error) => tracing::debug!("desktop clipboard: X error {error:?}"),
            _ => {}
        }
        Ok(())
    }

    /// Another client asks us for the clipboard in some form.
    fn answer(&self, request: &SelectionRequestEvent) -> Result<(), ReplyError> {
        let atoms = self.atoms;
        // Obsolete clients name no property: the target doubles as one (ICCCM).
        let property = if request.property == x11rb::NONE {
            request.target
        } else {
            request.property
        };
        let stored = match (&self.text, request.selection == atoms.clipboard) {
            (Some(text), true) => self.store(request, property, text)?,
            _ => false,
        };
        let notify = SelectionNotifyEvent {
            response_type: SELECTION_NOTIFY_EVENT,
            sequence: 0,
            time: request.time,
            requestor: request.requestor,
            selection: request.selection,
            target: request.target,
            property: if stored { property } else { x11rb::NONE },
        };
        self.conn
            .send_event(false, request.requestor, EventMask::NO_EVENT, notify)?;
        Ok(())
    }

    /// Writes `text` in the requested form; false if we do not offer that form.
    fn store(
        &self,
        request: &SelectionRequestEvent,
        property: u32,
        text: &str,
    ) -> Result<bool, ReplyError> {
        let atoms = self.atoms;
        let (conn, window, target) = (&self.conn, request.requestor, request.target);
        if target == atoms.targets {
            let offered = [
                atoms.targets,
                atoms.utf8_string,
                atoms.text,
                AtomEnum::STRING.into(),
            ];
            conn.change_property32(
                PropMode::REPLACE,
                window,
                property,
                AtomEnum::ATOM,
                &offered,
            )?;
        } else if target == atoms.utf8_string || target == atoms.text {
            conn.change_property8(
                PropMode::REPLACE,
                window,
                property,
                atoms.utf8_string,
                text.as_bytes(),
            )?;
        } else if target == u32::from(AtomEnum::STRING) {
            conn.change_property8(
                PropMode::REPLACE,
                window,
                property,
                AtomEnum::STRING,
                &to_latin1(text),
            )?;
        } else {
            return Ok(false);
        }
        Ok(true)
    }

    /// The owner answered one of our conversions.
    fn received(&mut self, notify: &SelectionNotifyEvent) -> Result<(), ReplyError> {
        let atoms = self.atoms;
        let wanted = notify.requestor == self.window && notify.selection == atoms.clipboard;
        if !wanted {
            return Ok(());
        }
        if notify.property == x11rb::NONE {
            // The owner refused UTF8_STRING: old clients may still offer STRING.
            if notify.target == atoms.utf8_string {
                let property = if self.get_sent.is_some() {
                    atoms.get_property
                } else {
                    atoms.watch_property
                };
                self.convert(AtomEnum::STRING.into(), property)?;
            } else if self.get_sent.is_some() {
                self.answer_waiting(None);
            }
            return Ok(());
        }
        let text = self.read_property(notify.property)?;
        if notify.property == atoms.get_property {
            self.answer_waiting(text);
        } else if notify.property == atoms.watch_property
            && let Some(text) = text
        {
            // A full queue means the session is not reading: keep the older texts.
            let _ = self.changes.try_send(text);
        }
        Ok(())
    }

    fn answer_waiting(&mut self, text: Option<String>) {
        self.get_sent = None;
        for waiting in self.waiting.drain(..) {
            let _ = waiting.send(text.clone());
        }
    }

    /// Reads and deletes the property the owner wrote the text into.
    fn read_property(&self, property: u32) -> Result<Option<String>, ReplyError> {
        let words = (MAX_TEXT / 4) as u32;
        let reply = self
            .conn
            .get_property(true, self.window, property, AtomEnum::ANY, 0, words)?
            .reply()?;
        if reply.type_ == self.atoms.incr {
            tracing::info!("desktop clipboard: the owner sends incrementally (INCR); not read");
            self.conn.delete_property(self.window, property)?;
            return Ok(None);
        }
        if reply.format != 8 {
            return Ok(None);
        }
        let text = if reply.type_ == u32::from(AtomEnum::STRING) {
            reply.value.iter().map(|&byte| char::from(byte)).collect()
        } else {
            String::from_utf8_lossy(&reply.value).into_owned()
        };
        Ok(Some(text))
    }
}

/// `STRING` is Latin-1: other characters become `?`.
fn to_latin1(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_keeps_what_it_can() {
        assert_eq!(to_latin1("aä€"), vec![b'a', 0xe4, b'?']);
    }
}
