//! The dialogue state of one operator's chat: an enum, one variant per flow,
//! carrying what was gathered so far. Persisted by `bot::storage`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::tenant::Secret;

/// Where an operator's chat is.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub enum State {
    #[default]
    Idle,
    /// The `/newclient` dialogue.
    NewClient(Draft),
    /// `/remove <id>` chose purge; the operator who chose it (`by`, a user id)
    /// must type the id. `stamp` is the tenant's as the purge was chosen: a
    /// tenant replaced meanwhile is not purged.
    ConfirmPurge {
        tenant: String,
        touched_at: i64,
        by: u64,
        stamp: String,
    },
    /// `/restore <id> <backup>` asked; the operator who asked (`by`) must type the id.
    ConfirmRestore {
        tenant: String,
        backup: String,
        /// The tenant existed when asked, and the operator was told its
        /// state would be replaced (backed up first).
        #[serde(default)]
        replace: bool,
        touched_at: i64,
        by: u64,
    },
    /// A stored state this binary cannot read (another version); never stored.
    #[serde(skip)]
    Unreadable,
}

/// The steps of `/newclient`, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    Id,
    Name,
    Token,
    Model,
    Key,
    Skills,
    Access,
    AllowlistIds,
    Confirm,
    Provisioning,
}

impl Step {
    /// The step Back goes to.
    #[must_use]
    pub fn previous(self) -> Step {
        match self {
            Step::Id | Step::Name => Step::Id,
            Step::Token => Step::Name,
            Step::Model => Step::Token,
            Step::Key => Step::Model,
            Step::Skills => Step::Key,
            Step::Access => Step::Skills,
            Step::AllowlistIds => Step::Access,
            Step::Confirm => Step::Access,
            Step::Provisioning => Step::Provisioning,
        }
    }
}

/// What `/newclient` has gathered so far.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Draft {
    pub step: Step,
    /// Unix seconds of the operator's last action; idle drafts expire.
    pub touched_at: i64,
    pub id: Option<String>,
    pub name: Option<String>,
    pub token: Option<Sealed>,
    pub bot_id: Option<u64>,
    pub username: Option<String>,
    pub model: Option<String>,
    pub key: KeyChoice,
    pub skills: Vec<String>,
    /// `None`: pairing; `Some(ids)`: allowlist.
    pub allowlist: Option<Vec<i64>>,
}

impl Draft {
    #[must_use]
    pub fn new(now: i64) -> Draft {
        Draft {
            step: Step::Id,
            touched_at: now,
            id: None,
            name: None,
            token: None,
            bot_id: None,
            username: None,
            model: None,
            key: KeyChoice::None,
            skills: Vec::new(),
            allowlist: None,
        }
    }
}

/// Which provider key the new tenant gets.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum KeyChoice {
    None,
    Shared,
    Own(Sealed),
}

/// A secret inside the dialogue state. It is serialized only into the store
/// (0600), and never printed.
#[derive(Clone)]
pub struct Sealed(pub Secret<String>);

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Sealed {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.expose())
    }
}

impl<'de> Deserialize<'de> for Sealed {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Sealed, D::Error> {
        Ok(Sealed(Secret::new(String::deserialize(deserializer)?)))
    }
}
