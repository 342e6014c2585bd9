//! Causes behind a failure that the operator can remove (Docker down, an image
//! missing, the admin not paired, the admin without the right to hand files to
//! the cell), as facts. Adapters say what to do about them, each in its own
//! words: the CLI names commands, the bot its dialogue texts.

use std::path::PathBuf;

use crate::runtime;
use crate::tenant::TenantId;

/// A cause the operator can remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Obstacle {
    /// The Docker engine cannot be reached.
    DockerUnreachable,
    /// The image is not on the Docker host (MTP never pulls).
    ImageMissing { image: String },
    /// The admin is not paired with the tenant's gateway.
    NotPaired { tenant: TenantId },
    /// The tenant sleeps: its gateway runs again once it is woken.
    Asleep { tenant: TenantId },
    /// The admin may not hand files to the cell's user (uid `uid`): it runs
    /// as neither root nor that uid.
    CellUser { uid: u32 },
}

/// The obstacle behind `err`, if it is one fleet knows (anywhere in its chain).
#[must_use]
pub fn obstacle(err: &anyhow::Error) -> Option<Obstacle> {
    if let Some(runtime_err) = err.downcast_ref::<runtime::Error>() {
        match runtime_err {
            runtime::Error::Unreachable { .. } => return Some(Obstacle::DockerUnreachable),
            runtime::Error::NoImage { image } => {
                return Some(Obstacle::ImageMissing {
                    image: image.clone(),
                });
            }
            _ => {}
        }
    }
    if let Some(not_paired) = err.downcast_ref::<NotPaired>() {
        return Some(Obstacle::NotPaired {
            tenant: not_paired.tenant.clone(),
        });
    }
    if let Some(asleep) = err.downcast_ref::<Asleep>() {
        return Some(Obstacle::Asleep {
            tenant: asleep.tenant.clone(),
        });
    }
    if let Some(cell_user) = err.downcast_ref::<CellUser>() {
        return Some(Obstacle::CellUser { uid: cell_user.uid });
    }
    None
}

/// The admin has no device token for the tenant's gateway.
#[derive(Debug, thiserror::Error)]
#[error("the admin is not paired with {tenant}")]
pub(crate) struct NotPaired {
    pub(crate) tenant: TenantId,
}

/// The tenant sleeps (idle, its container stopped): no gateway to call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{tenant} is asleep (idle, its container stopped); its next message or a wake starts it")]
pub(crate) struct Asleep {
    pub(crate) tenant: TenantId,
}

/// Handing a path to the cell's user failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot give {} to uid {uid} (the cell's user)", path.display())]
pub(crate) struct CellUser {
    pub(crate) path: PathBuf,
    pub(crate) uid: u32,
}
