//! Membership: the JetStream key-value bucket members register in, and the
//! live view of it a client keeps.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use async_nats::jetstream::{self, kv};
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{membership_bucket, ClusterError, FORGET_AFTER};

/// How long a new client waits for the bucket's current entries.
const SYNC_TIMEOUT: Duration = Duration::from_secs(3);

/// Opens the cluster's bucket, creating it if it does not exist yet.
pub(crate) async fn open_bucket(
    nats: &async_nats::Client,
    cluster: &str,
) -> Result<kv::Store, ClusterError> {
    let js = jetstream::new(nats.clone());
    let bucket = membership_bucket(cluster);
    if let Ok(store) = js.get_key_value(&bucket).await {
        return Ok(store);
    }
    // The bucket's stream is made here as `create_key_value` would make it:
    // that call first reads account fields that servers before 2.10 (such
    // as Debian's nats-server 2.9) do not send.
    let config = jetstream::stream::Config {
        name: format!("KV_{bucket}"),
        description: Some(format!("session-filter members of cluster {cluster}")),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        // The broker forgets a member that stopped refreshing.
        max_age: FORGET_AFTER,
        // Membership is soft state that members rewrite every second; it
        // need not survive a restart of the broker.
        storage: jetstream::stream::StorageType::Memory,
        max_message_size: 1024,
        duplicate_window: Duration::from_secs(1),
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: jetstream::stream::DiscardPolicy::New,
        num_replicas: 1,
        ..Default::default()
    };
    let created = js.create_stream(config).await;
    // Another member may have created it meanwhile; either way, open it.
    js.get_key_value(&bucket)
        .await
        .map_err(|open| match created {
            Err(create) => ClusterError::broker(
                "create the membership bucket (is JetStream on? run nats-server with -js)",
                create,
            ),
            Ok(_) => ClusterError::broker("open the membership bucket", open),
        })
}

/// The members a client knows of, each with when it was last heard from.
#[derive(Default)]
struct Roster {
    heard: BTreeMap<String, SystemTime>,
}

/// A client's live view of a cluster's membership, fed by a watch on the
/// bucket.
pub(crate) struct Membership {
    roster: Arc<Mutex<Roster>>,
    watcher: JoinHandle<()>,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

impl Membership {
    /// Starts watching the bucket and waits until the entries it held when
    /// the watch started have arrived.
    pub(crate) async fn watch(bucket: kv::Store) -> Result<Membership, ClusterError> {
        let empty = match bucket.status().await {
            Ok(status) => status.values() == 0,
            Err(_) => false,
        };
        let mut entries = bucket
            .watch_with_history(">")
            .await
            .map_err(|e| ClusterError::broker("watch the membership bucket", e))?;
        let roster = Arc::new(Mutex::new(Roster::default()));
        let (synced_tx, mut synced_rx) = watch::channel(empty);
        let feed = Arc::clone(&roster);
        let watcher = tokio::spawn(async move {
            while let Some(entry) = entries.next().await {
                let entry = match entry {
                    Ok(entry) => entry,
                    Err(e) => {
                        tracing::warn!("membership watch: {e}");
                        continue;
                    }
                };
                {
                    let mut roster = feed.lock().unwrap_or_else(PoisonError::into_inner);
                    match entry.operation {
                        kv::Operation::Put => {
                            let nanos = u64::try_from(entry.created.unix_timestamp_nanos());
                            let at =
                                SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos.unwrap_or(0));
                            roster.heard.insert(entry.key, at);
                        }
                        kv::Operation::Delete | kv::Operation::Purge => {
                            roster.heard.remove(&entry.key);
                        }
                    }
                }
                if entry.seen_current || entry.delta == 0 {
                    synced_tx.send_replace(true);
                }
            }
        });
        // Entries may expire between the status and the watch, so that the
        // one with delta 0 never comes: then the wait ends at the timeout.
        let _ = tokio::time::timeout(SYNC_TIMEOUT, synced_rx.wait_for(|&synced| synced)).await;
        Ok(Membership { roster, watcher })
    }

    /// The members heard from within [`FORGET_AFTER`], by name.
    pub(crate) fn expected(&self) -> Vec<String> {
        let now = SystemTime::now();
        let roster = self.roster.lock().unwrap_or_else(PoisonError::into_inner);
        roster
            .heard
            .iter()
            .filter(|(_, &at)| {
                now.duration_since(at)
                    .map_or(true, |age| age < FORGET_AFTER)
            })
            .map(|(name, _)| name.clone())
            .collect()
    }
}
