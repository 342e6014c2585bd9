//! teloxide's `Storage` for dialogue state, over fleet's dialogue table
//! (`fleet::dialogues`: raw bytes keyed by chat).
//! Encoding: JSON `{"v": 1, "state": …}`; an unknown version or a broken record
//! reads as `State::Unreadable`, which the handlers reset with a message.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use teloxide::dispatching::dialogue::Storage;
use teloxide::types::ChatId;

use crate::bot::state::State;
use crate::fleet::DialogueStore;

/// The encoding version of stored dialogue state.
const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Stored {
    v: u32,
    state: State,
}

/// Dialogue state in redb, keyed by chat.
pub struct DialogueStorage {
    store: DialogueStore,
}

impl DialogueStorage {
    #[must_use]
    pub fn new(store: DialogueStore) -> Arc<DialogueStorage> {
        Arc::new(DialogueStorage { store })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("dialogue storage: {0}")]
pub struct StorageError(String);

/// Decodes a stored record; anything unreadable is `State::Unreadable`.
#[must_use]
pub fn decode(bytes: &[u8]) -> State {
    match serde_json::from_slice::<Stored>(bytes) {
        Ok(stored) if stored.v == VERSION => stored.state,
        _ => State::Unreadable,
    }
}

pub fn encode(state: &State) -> Vec<u8> {
    // Serializing plain enums and strings to a Vec cannot fail.
    serde_json::to_vec(&Stored {
        v: VERSION,
        state: state.clone(),
    })
    .unwrap_or_default()
}

impl DialogueStorage {
    /// Every stored dialogue, decoded (for the idle sweep and the start-up check).
    pub async fn all(&self) -> Vec<(ChatId, State)> {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.all()).await {
            Ok(Ok(rows)) => rows
                .into_iter()
                .map(|(chat, bytes)| (ChatId(chat), decode(&bytes)))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Forgets one chat's dialogue; true when that worked.
    pub async fn forget(&self, chat: ChatId) -> bool {
        let store = self.store.clone();
        matches!(
            tokio::task::spawn_blocking(move || store.remove(chat.0)).await,
            Ok(Ok(()))
        )
    }
}

impl Storage<State> for DialogueStorage {
    type Error = StorageError;

    fn remove_dialogue(
        self: Arc<Self>,
        chat_id: ChatId,
    ) -> BoxFuture<'static, Result<(), StorageError>> {
        Box::pin(async move {
            let store = self.store.clone();
            blocking(move || store.remove(chat_id.0)).await
        })
    }

    fn update_dialogue(
        self: Arc<Self>,
        chat_id: ChatId,
        dialogue: State,
    ) -> BoxFuture<'static, Result<(), StorageError>> {
        Box::pin(async move {
            let store = self.store.clone();
            if matches!(dialogue, State::Idle | State::Unreadable) {
                return blocking(move || store.remove(chat_id.0)).await;
            }
            let bytes = encode(&dialogue);
            blocking(move || store.put(chat_id.0, &bytes)).await
        })
    }

    fn get_dialogue(
        self: Arc<Self>,
        chat_id: ChatId,
    ) -> BoxFuture<'static, Result<Option<State>, StorageError>> {
        Box::pin(async move {
            let store = self.store.clone();
            let bytes = blocking(move || store.get(chat_id.0)).await?;
            Ok(bytes.map(|bytes| decode(&bytes)))
        })
    }
}

/// Runs a store call off the async threads (redb commits fsync); a failed
/// call and a task that died both become a `StorageError`.
async fn blocking<T: Send + 'static>(
    call: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(call)
        .await
        .map_err(|err| StorageError(err.to_string()))?
        .map_err(|err| StorageError(err.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bot::state::{Draft, Step};

    #[test]
    fn state_round_trips_and_unknown_versions_are_unreadable() {
        let mut draft = Draft::new(5);
        draft.step = Step::Model;
        draft.id = Some("acme".into());
        let bytes = encode(&State::NewClient(draft));
        match decode(&bytes) {
            State::NewClient(draft) => assert_eq!(
                (draft.step, draft.id.as_deref()),
                (Step::Model, Some("acme"))
            ),
            other => panic!("got {other:?}"),
        }
        assert!(matches!(
            decode(br#"{"v":99,"state":"Idle"}"#),
            State::Unreadable
        ));
        assert!(matches!(decode(b"garbage"), State::Unreadable));
    }
}
