//! The life of a client session (SPEC 11.3): its states, its outbound
//! queue, and what it owns (listeners, handlers).

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;
use tokio::task::AbortHandle;

use crate::outbound::Outbound;

/// Why a session closed (SPEC 11.3), as sent in `closed {"reason"}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CloseReason {
    /// The client called `close`.
    ClosedByClient,
    /// A controller closed it (`clients.close`).
    ClosedByController,
    /// Its reconnect window passed while it was disconnected (or its server
    /// died).
    ConnectionLost,
    /// Its outbound queue overflowed.
    MessageQueueLimitReached,
    /// It sent a binary message.
    InvalidInboundMessage,
    /// It sent a message over `max_message_bytes`.
    MessageTooLarge,
    /// The server is shutting down.
    ServerClosing,
}

impl CloseReason {
    /// Every reason, for the metrics.
    pub const ALL: [CloseReason; 7] = [
        CloseReason::ClosedByClient,
        CloseReason::ClosedByController,
        CloseReason::ConnectionLost,
        CloseReason::MessageQueueLimitReached,
        CloseReason::InvalidInboundMessage,
        CloseReason::MessageTooLarge,
        CloseReason::ServerClosing,
    ];

    /// Its name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            CloseReason::ClosedByClient => "CLOSED_BY_CLIENT",
            CloseReason::ClosedByController => "CLOSED_BY_CONTROLLER",
            CloseReason::ConnectionLost => "CONNECTION_LOST",
            CloseReason::MessageQueueLimitReached => "MESSAGE_QUEUE_LIMIT_REACHED",
            CloseReason::InvalidInboundMessage => "INVALID_INBOUND_MESSAGE",
            CloseReason::MessageTooLarge => "MESSAGE_TOO_LARGE",
            CloseReason::ServerClosing => "SERVER_CLOSING",
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a session is in its life.
#[derive(Debug)]
pub(crate) enum State {
    /// Its connection `conn` is up; notifying `kick` drops that connection
    /// at once (a take-over, or a client that stopped reading).
    Active { conn: u64, kick: Arc<Notify> },
    /// Its connection `conn` was lost; it waits for a reconnect.
    Disconnected { conn: u64 },
    /// It is gone.
    Closed,
}

/// A session opened over the protocol.
pub(crate) struct Client {
    pub(crate) id: Arc<str>,
    pub(crate) token: String,
    pub(crate) outbound: Outbound,
    state: Mutex<State>,
    /// Its listeners, by listener id: the tasks that forward their events.
    pub(crate) listeners: Mutex<HashMap<String, AbortHandle>>,
    /// The message paths it handles.
    pub(crate) handlers: Mutex<BTreeSet<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Client {
    pub(crate) fn new(id: Arc<str>, token: String, queue_limit: usize, state: State) -> Client {
        Client {
            id,
            token,
            outbound: Outbound::new(queue_limit),
            state: Mutex::new(state),
            listeners: Mutex::new(HashMap::new()),
            handlers: Mutex::new(BTreeSet::new()),
        }
    }

    /// The state, locked: transitions happen under it.
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// `active`, `disconnected` or `closed`, as listeners see it.
    pub(crate) fn state_name(&self) -> &'static str {
        match *self.state() {
            State::Active { .. } => "active",
            State::Disconnected { .. } => "disconnected",
            State::Closed => "closed",
        }
    }

    /// True while connection `conn` is the session's live one.
    pub(crate) fn is_on(&self, conn: u64) -> bool {
        matches!(*self.state(), State::Active { conn: c, .. } if c == conn)
    }

    /// True while the session has not closed.
    pub(crate) fn is_open(&self) -> bool {
        !matches!(*self.state(), State::Closed)
    }

    /// Ends every listener of the session.
    pub(crate) fn end_listeners(&self) {
        for (_, task) in lock(&self.listeners).drain() {
            task.abort();
        }
    }

    pub(crate) fn handlers(&self) -> MutexGuard<'_, BTreeSet<String>> {
        lock(&self.handlers)
    }

    pub(crate) fn listeners(&self) -> MutexGuard<'_, HashMap<String, AbortHandle>> {
        lock(&self.listeners)
    }
}
