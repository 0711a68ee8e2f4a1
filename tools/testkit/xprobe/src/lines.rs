//! A child's output, line by line, on a channel fed by a thread of its own (so waiting for a line
//! can have a deadline).

use std::io::{BufRead, BufReader, Read};
use std::sync::mpsc::{self, Receiver};

pub(crate) fn read_lines(stream: impl Read + Send + 'static) -> Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    receiver
}
