//! Session events within the process: one broadcast channel for the whole store, each
//! subscriber keeping the events of its key.

use std::sync::Arc;

use async_trait::async_trait;
use pci_vault::EventSubscription;
use tokio::sync::broadcast;

/// Events a subscriber may fall behind by before its subscription is lost (it then
/// subscribes again and reads the entry).
const BACKLOG: usize = 1024;

/// A published event: the key it was published on and its bytes.
pub(crate) type Published = (Arc<str>, Arc<[u8]>);

pub(crate) fn channel() -> broadcast::Sender<Published> {
    broadcast::channel(BACKLOG).0
}

/// The events of one key.
pub(crate) struct MemorySubscription {
    pub(crate) key: Arc<str>,
    pub(crate) receiver: broadcast::Receiver<Published>,
}

impl std::fmt::Debug for MemorySubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemorySubscription").finish_non_exhaustive()
    }
}

#[async_trait]
impl EventSubscription for MemorySubscription {
    async fn next(&mut self) -> Option<Vec<u8>> {
        loop {
            match self.receiver.recv().await {
                Ok((key, event)) if key == self.key => return Some(event.to_vec()),
                Ok(_) => {}
                // Fell behind, or the store is gone: the subscription is lost.
                Err(_) => return None,
            }
        }
    }
}
