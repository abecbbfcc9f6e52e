//! The events bus: every state change publishes an [`Event`]; subscribers get the recent
//! backlog (for `since`) and then the live stream, with no gap and no duplicate between them.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::broadcast;

/// How many past events are kept for `since` (Docker keeps 256).
pub const BACKLOG: usize = 1024;

/// One event, in domain terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `container`, `image`, `volume`, `network`, `daemon`...
    pub kind: String,
    /// `create`, `destroy`, `mount`, `prune`...
    pub action: String,
    pub actor_id: String,
    pub attributes: BTreeMap<String, String>,
    /// `local` (or `swarm`, never here).
    pub scope: String,
    /// Nanoseconds since the Unix epoch.
    pub time_nano: i64,
}

impl Event {
    /// A local-scope event stamped now.
    pub fn now(
        kind: &str,
        action: &str,
        actor_id: &str,
        attributes: BTreeMap<String, String>,
    ) -> Self {
        let d = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            kind: kind.to_string(),
            action: action.to_string(),
            actor_id: actor_id.to_string(),
            attributes,
            scope: "local".to_string(),
            time_nano: i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        }
    }
}

struct Inner {
    backlog: VecDeque<Event>,
    tx: broadcast::Sender<Event>,
}

/// Cheap to clone; all clones share one bus.
#[derive(Clone)]
pub struct EventBus {
    inner: Arc<Mutex<Inner>>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(256);
        Self {
            inner: Arc::new(Mutex::new(Inner {
                backlog: VecDeque::with_capacity(64),
                tx,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock can only leave a consistent VecDeque behind.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn publish(&self, event: Event) {
        let mut g = self.lock();
        if g.backlog.len() == BACKLOG {
            g.backlog.pop_front();
        }
        g.backlog.push_back(event.clone());
        // No receivers is fine: nobody is listening.
        let _ = g.tx.send(event);
    }

    /// Past events at or after `since_nano` (none when `None`), and a receiver for everything
    /// published afterwards.
    pub fn subscribe(&self, since_nano: Option<i64>) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let g = self.lock();
        let past = match since_nano {
            Some(s) => g
                .backlog
                .iter()
                .filter(|e| e.time_nano >= s)
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        (past, g.tx.subscribe())
    }

    /// Live subscribers (`NEventsListener` in `/info`).
    pub fn listeners(&self) -> usize {
        self.lock().tx.receiver_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn backlog_then_live_without_gap() {
        let bus = EventBus::new();
        let mut a = Event::now("volume", "create", "a", BTreeMap::new());
        a.time_nano = 100;
        bus.publish(a.clone());
        let (past, mut rx) = bus.subscribe(Some(50));
        assert_eq!(past, vec![a]);
        let (none, _rx2) = bus.subscribe(Some(200));
        assert!(none.is_empty());
        assert_eq!(bus.listeners(), 2);
        let b = Event::now("volume", "destroy", "a", BTreeMap::new());
        bus.publish(b.clone());
        assert_eq!(rx.recv().await.unwrap(), b);
    }

    #[test]
    fn backlog_is_bounded() {
        let bus = EventBus::new();
        for i in 0..(BACKLOG + 10) {
            let mut e = Event::now("volume", "create", &i.to_string(), BTreeMap::new());
            e.time_nano = i64::try_from(i).unwrap();
            bus.publish(e);
        }
        let (past, _) = bus.subscribe(Some(0));
        assert_eq!(past.len(), BACKLOG);
        assert_eq!(past[0].actor_id, "10");
    }
}
