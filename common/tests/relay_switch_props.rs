//! Two peers, each with a [`PathSwitch`], joined by a relay and a data channel that open, deliver
//! and fail in random interleavings. Whatever the order:
//! - each side receives a gap-free, duplicate-free, in-order prefix of what the other sent;
//! - without a data-channel failure, everything arrives, both directions end up on the data
//!   channel, and no error is ever raised;
//! - with a failure, either a side reports `DirectLost` (the session ends and may be reopened) or
//!   everything still arrives over the relay;
//! - when a side closes the session at any point, the other passes the relay's close on to its
//!   session only after everything the closing side sent (`rtcEnd`, `peer_done`).

use std::collections::VecDeque;

use proptest::prelude::*;
use tether_common::relay::switch::{
    Path, PathSwitch, Payload, SwitchError, SwitchSignal, Transmit,
};

#[derive(Debug, Clone, Copy)]
enum Op {
    /// Side 0 or 1 sends its next numbered message.
    Send(usize),
    /// The oldest relay frame towards side 0 or 1 arrives.
    DeliverRelay(usize),
    /// The oldest data-channel message towards side 0 or 1 arrives.
    DeliverDirect(usize),
    /// Side 0 or 1 sees its data channel open.
    Open(usize),
    /// The data channel dies; in-flight messages are lost.
    Fail,
    /// Side 0 or 1 learns that the data channel died.
    Notice(usize),
    /// Side 0 or 1 closes the session: `finish`, then its relay close; it does nothing more.
    Close(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let side = 0..2usize;
    prop_oneof![
        6 => side.clone().prop_map(Op::Send),
        4 => side.clone().prop_map(Op::DeliverRelay),
        4 => side.clone().prop_map(Op::DeliverDirect),
        1 => side.clone().prop_map(Op::Open),
        1 => side.prop_map(Op::Notice),
    ]
}

/// A relay frame: a switch signal or session data.
#[derive(Debug)]
enum Frame {
    Signal(SwitchSignal),
    Data(Payload),
    Close,
}

struct World {
    sides: [PathSwitch; 2],
    sent: [u64; 2],
    received: [Vec<u64>; 2],
    /// Indexed by the receiving side.
    relay: [VecDeque<Frame>; 2],
    direct: [VecDeque<Payload>; 2],
    opened: [bool; 2],
    failed: bool,
    noticed: [bool; 2],
    /// The side closed the session and is gone.
    closed: [bool; 2],
    /// The side read the peer's relay close; `passed_on` once its switch let the close through.
    close_read: [bool; 2],
    passed_on: [bool; 2],
    error: Option<SwitchError>,
}

impl World {
    fn new() -> World {
        World {
            sides: [PathSwitch::default(), PathSwitch::default()],
            sent: [0; 2],
            received: [Vec::new(), Vec::new()],
            relay: [VecDeque::new(), VecDeque::new()],
            direct: [VecDeque::new(), VecDeque::new()],
            opened: [false; 2],
            failed: false,
            noticed: [false; 2],
            closed: [false; 2],
            close_read: [false; 2],
            passed_on: [false; 2],
            error: None,
        }
    }

    fn apply(&mut self, op: Op) {
        if self.error.is_some() {
            return;
        }
        let acting = match op {
            Op::Send(side) | Op::Open(side) | Op::Notice(side) | Op::Close(side) => Some(side),
            Op::DeliverRelay(to) | Op::DeliverDirect(to) => Some(to),
            Op::Fail => None,
        };
        if acting.is_some_and(|side| self.closed[side]) {
            return;
        }
        let result = match op {
            Op::Send(side) => {
                let n = self.sent[side];
                self.sent[side] += 1;
                self.sides[side].send(Payload::Binary(n.to_be_bytes().to_vec()));
                Ok(())
            }
            Op::DeliverRelay(to) => match self.relay[to].pop_front() {
                Some(Frame::Signal(signal)) => self.sides[to].relay_signal(signal),
                Some(Frame::Data(payload)) => self.sides[to].relay_data(payload),
                Some(Frame::Close) => {
                    self.close_read[to] = true;
                    Ok(())
                }
                None => Ok(()),
            },
            Op::DeliverDirect(to) => match self.direct[to].pop_front() {
                Some(payload) => self.sides[to].direct_data(payload),
                None => Ok(()),
            },
            Op::Open(side) => {
                if !self.failed && !self.opened[side] {
                    self.opened[side] = true;
                    self.sides[side].direct_opened();
                }
                Ok(())
            }
            Op::Fail => {
                self.failed = true;
                self.direct.iter_mut().for_each(VecDeque::clear);
                Ok(())
            }
            Op::Notice(side) => {
                if self.failed && !self.noticed[side] {
                    self.noticed[side] = true;
                    self.sides[side].direct_failed()
                } else {
                    Ok(())
                }
            }
            Op::Close(side) => {
                self.sides[side].finish();
                self.pump();
                self.relay[1 - side].push_back(Frame::Close);
                self.closed[side] = true;
                // Gone: nothing reaches it any more.
                self.relay[side].clear();
                self.direct[side].clear();
                Ok(())
            }
        };
        if let Err(error) = result {
            self.error = Some(error);
            return;
        }
        self.pump();
    }

    /// Moves everything both sides want to send onto the paths, and reads what they delivered.
    fn pump(&mut self) {
        for side in 0..2 {
            let to = 1 - side;
            if self.closed[to] {
                while self.sides[side].poll_transmit().is_some() {}
            }
            while let Some(transmit) = self.sides[side].poll_transmit() {
                match transmit {
                    Transmit::Signal(signal) => self.relay[to].push_back(Frame::Signal(signal)),
                    Transmit::Data {
                        path: Path::Relay,
                        payload,
                    } => self.relay[to].push_back(Frame::Data(payload)),
                    Transmit::Data {
                        path: Path::Direct,
                        payload,
                    } => {
                        assert!(
                            self.opened[side],
                            "side {side} used a channel it never saw open"
                        );
                        if !self.failed {
                            self.direct[to].push_back(payload);
                        }
                    }
                }
            }
            while let Some(payload) = self.sides[side].poll_deliver() {
                let Payload::Binary(bytes) = payload else {
                    panic!("only binary payloads were sent");
                };
                let n = u64::from_be_bytes(bytes.try_into().expect("8-byte payload"));
                self.received[side].push(n);
            }
            if self.close_read[side] && !self.passed_on[side] && self.sides[side].peer_done() {
                self.passed_on[side] = true;
                assert_eq!(
                    self.received[side].len() as u64,
                    self.sent[1 - side],
                    "side {side} passed the close on before the last of the peer's data"
                );
            }
        }
    }

    /// Each side has received exactly 0, 1, 2, … of what the other sent: no gap, no duplicate,
    /// no reordering.
    fn assert_prefixes(&self) {
        for side in 0..2 {
            let got = &self.received[side];
            assert!(got.len() as u64 <= self.sent[1 - side]);
            for (i, n) in got.iter().enumerate() {
                assert_eq!(*n, i as u64, "side {side} received {got:?}");
            }
        }
    }

    /// Lets the world run out: both sides learn of a failure or see the channel open, and every
    /// queued frame and message is delivered.
    fn settle(&mut self) {
        for side in 0..2 {
            self.apply(Op::Notice(side));
            self.apply(Op::Open(side));
        }
        self.pump();
        loop {
            let before = self.queued();
            for to in 0..2 {
                self.apply(Op::DeliverRelay(to));
                self.apply(Op::DeliverDirect(to));
            }
            if self.error.is_some() || (before == 0 && self.queued() == 0) {
                return;
            }
        }
    }

    fn queued(&self) -> usize {
        self.relay.iter().map(VecDeque::len).sum::<usize>()
            + self.direct.iter().map(VecDeque::len).sum::<usize>()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn without_failures_everything_arrives_once_in_order_and_both_sides_switch(
        ops in proptest::collection::vec(op(), 0..300),
    ) {
        let mut world = World::new();
        for op in ops {
            world.apply(op);
            world.assert_prefixes();
        }
        world.settle();
        prop_assert_eq!(&world.error, &None);
        world.assert_prefixes();
        for side in 0..2 {
            prop_assert_eq!(world.received[side].len() as u64, world.sent[1 - side]);
            prop_assert!(world.sides[side].is_switched());
        }
    }

    #[test]
    fn a_failed_channel_ends_the_session_or_loses_nothing(
        before in proptest::collection::vec(op(), 0..200),
        after in proptest::collection::vec(op(), 0..200),
    ) {
        let mut world = World::new();
        for op in before {
            world.apply(op);
            world.assert_prefixes();
        }
        world.apply(Op::Fail);
        for op in after {
            world.apply(op);
            world.assert_prefixes();
        }
        world.settle();
        world.assert_prefixes();
        match &world.error {
            Some(error) => prop_assert_eq!(error, &SwitchError::DirectLost),
            None => {
                for side in 0..2 {
                    prop_assert_eq!(world.received[side].len() as u64, world.sent[1 - side]);
                    prop_assert_eq!(world.sides[side].sending_path(), Path::Relay);
                }
            }
        }
    }

    #[test]
    fn a_close_reaches_the_other_session_only_after_all_the_data(
        before in proptest::collection::vec(op(), 0..200),
        closer in 0..2usize,
        after in proptest::collection::vec(op(), 0..100),
    ) {
        let mut world = World::new();
        for op in before {
            world.apply(op);
        }
        world.apply(Op::Close(closer));
        for op in after {
            world.apply(op);
            world.assert_prefixes();
        }
        world.settle();
        prop_assert_eq!(&world.error, &None);
        let other = 1 - closer;
        prop_assert!(world.close_read[other] && world.passed_on[other]);
        prop_assert_eq!(world.received[other].len() as u64, world.sent[closer]);
    }
}
