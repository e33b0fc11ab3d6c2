//! A session's outbound queue (SPEC 11.3): everything the server sends a
//! session goes through it, connected or not, and it holds at most
//! `max_queued_messages`. A writer never waits: a message that does not fit
//! is refused, and the caller closes the session.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

/// One queued message.
#[derive(Debug)]
pub(crate) enum Out {
    /// A response to a request made on connection `conn`: dropped if that
    /// connection is gone.
    Response { conn: u64, text: String },
    /// A notification, delivered on whatever connection is up.
    Notification(String),
    /// Send `closed {"reason"}` (when it still can), then close the socket.
    Close(String),
}

/// The queue and the signal that wakes its connection's writer.
#[derive(Debug)]
pub(crate) struct Outbound {
    queue: Mutex<VecDeque<Out>>,
    pub(crate) wake: Notify,
    limit: usize,
}

/// The queue was full: the session must be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Overflow;

impl Outbound {
    pub(crate) fn new(limit: usize) -> Outbound {
        Outbound {
            queue: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            limit: limit.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Out>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a message, or refuses it when the queue is full.
    pub(crate) fn push(&self, out: Out) -> Result<(), Overflow> {
        {
            let mut q = self.lock();
            if q.len() >= self.limit {
                return Err(Overflow);
            }
            q.push_back(out);
            // Give back what a burst left behind, so an idle session holds
            // no buffer.
        }
        self.wake.notify_one();
        Ok(())
    }

    /// Queues the final close, past the limit (it is the last message).
    pub(crate) fn push_close(&self, reason: &str) {
        self.lock().push_back(Out::Close(reason.to_owned()));
        self.wake.notify_one();
    }

    /// Takes up to `max` messages from the front.
    pub(crate) fn take(&self, max: usize, into: &mut Vec<Out>) {
        let mut q = self.lock();
        let n = q.len().min(max);
        into.extend(q.drain(..n));
        if q.is_empty() && q.capacity() > 64 {
            q.shrink_to(0);
        }
    }

    /// Drops every queued message.
    pub(crate) fn clear(&self) {
        let mut q = self.lock();
        q.clear();
        q.shrink_to(0);
    }

    /// How many messages wait.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_ordered() {
        let o = Outbound::new(2);
        assert!(o.push(Out::Notification("a".into())).is_ok());
        assert!(o.push(Out::Notification("b".into())).is_ok());
        assert_eq!(o.push(Out::Notification("c".into())), Err(Overflow));
        o.push_close("X");
        let mut v = Vec::new();
        o.take(10, &mut v);
        let texts: Vec<String> = v
            .into_iter()
            .map(|m| match m {
                Out::Notification(t) | Out::Close(t) => t,
                Out::Response { text, .. } => text,
            })
            .collect();
        assert_eq!(texts, ["a", "b", "X"]);
        assert_eq!(o.len(), 0);
    }
}
