//! The bot's dialogue state as fleet keeps it: opaque bytes per chat, in the
//! store's dialogue table. The bot encodes and versions them; fleet never reads
//! them. This is the one door `bot/`'s teloxide `Storage` adapter goes through.

use crate::fleet::App;
use crate::store::Store;

/// The dialogue table: raw bytes keyed by chat id. Cheap to clone.
#[derive(Clone)]
pub struct DialogueStore {
    store: Store,
}

/// The dialogue table of `app`'s store.
#[must_use]
pub fn dialogues(app: &App) -> DialogueStore {
    DialogueStore {
        store: app.store.clone(),
    }
}

impl DialogueStore {
    /// The stored dialogue of `chat`, if any.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub fn get(&self, chat: i64) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(self.store.dialogue(chat)?)
    }

    /// Stores the dialogue of `chat`, replacing what was there.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub fn put(&self, chat: i64, bytes: &[u8]) -> anyhow::Result<()> {
        Ok(self.store.put_dialogue(chat, bytes)?)
    }

    /// Forgets the dialogue of `chat` (nothing stored is fine).
    ///
    /// # Errors
    ///
    /// A store failure.
    pub fn remove(&self, chat: i64) -> anyhow::Result<()> {
        Ok(self.store.remove_dialogue(chat)?)
    }

    /// Every stored dialogue, by chat id.
    ///
    /// # Errors
    ///
    /// A store failure.
    pub fn all(&self) -> anyhow::Result<Vec<(i64, Vec<u8>)>> {
        Ok(self.store.dialogues()?)
    }
}
