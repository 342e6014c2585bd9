//! Docker's event stream for MTP's cells, as typed values: a container died
//! (with its exit code), was OOM-killed, was killed from outside, started or
//! restarted. One subscription ends when the connection to the engine does;
//! reconnecting is the caller's business (`fleet::events`).

use std::collections::HashMap;

use bollard::query_parameters::EventsOptionsBuilder;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use crate::runtime::{Error, LABEL_MANAGED, LABEL_TENANT, Result, Runtime};
use crate::tenant::TenantId;

/// One thing Docker says happened to a cell's container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellEvent {
    pub tenant: TenantId,
    pub container_id: String,
    /// Unix seconds, as Docker stamped the event.
    pub at: i64,
    pub kind: CellEventKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CellEventKind {
    /// The container's main process ended (on its own, or after a kill).
    Died { exit_code: i64 },
    /// The kernel's OOM killer hit the container (a `Died` follows).
    Oom,
    /// Someone sent a signal through the Docker API (`docker stop`, `kill`,
    /// `restart`, `rm -f`): the `Died` that follows was asked for.
    Killed { signal: String },
    /// The container started (also after a restart by the restart policy).
    Started,
    /// `docker restart` finished.
    Restarted,
}

/// The actions asked of Docker: everything else is left out at the source.
const ACTIONS: [&str; 5] = ["die", "oom", "kill", "start", "restart"];

impl Runtime {
    /// Asks the engine whether it answers.
    ///
    /// # Errors
    ///
    /// `Unreachable` when it does not.
    pub async fn ping(&self) -> Result<()> {
        match self.docker().ping().await {
            Ok(_) => Ok(()),
            Err(err) => Err(Error::Unreachable {
                cause: err.to_string(),
            }),
        }
    }

    /// Subscribes to the events of containers labelled `mtp.managed=true`.
    /// The stream ends (or yields an error) when the connection to the engine
    /// drops; events of containers without a valid tenant label are skipped.
    pub fn cell_events(&self) -> BoxStream<'static, Result<CellEvent>> {
        let filters = HashMap::from([
            ("type", vec!["container".to_string()]),
            ("label", vec![format!("{LABEL_MANAGED}=true")]),
            ("event", ACTIONS.iter().map(|a| (*a).to_string()).collect()),
        ]);
        let options = EventsOptionsBuilder::new().filters(&filters).build();
        self.docker()
            .events(Some(options))
            .filter_map(|message| async move {
                match message {
                    Ok(message) => cell_event(message).map(Ok),
                    Err(err) => Some(Err(err.into())),
                }
            })
            .boxed()
    }
}

/// Converts one of Docker's event messages; `None` for what is not ours.
fn cell_event(message: bollard::models::EventMessage) -> Option<CellEvent> {
    let actor = message.actor?;
    let attributes = actor.attributes.unwrap_or_default();
    let tenant = attributes.get(LABEL_TENANT)?.parse::<TenantId>().ok()?;
    // Docker 20.10 writes `exec_start: …` and `health_status: …` with a suffix;
    // only the word before a colon names the action.
    let action = message.action?;
    let action = action.split(':').next().unwrap_or_default().trim();
    let kind = match action {
        "die" => CellEventKind::Died {
            exit_code: attributes
                .get("exitCode")
                .and_then(|code| code.parse().ok())
                .unwrap_or(-1),
        },
        "oom" => CellEventKind::Oom,
        "kill" => CellEventKind::Killed {
            signal: attributes.get("signal").cloned().unwrap_or_default(),
        },
        "start" => CellEventKind::Started,
        "restart" => CellEventKind::Restarted,
        _ => return None,
    };
    Some(CellEvent {
        tenant,
        container_id: actor.id.unwrap_or_default(),
        at: message
            .time
            .or(message.time_nano.map(|nanos| nanos / 1_000_000_000))
            .unwrap_or_default(),
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(action: &str, attributes: &[(&str, &str)]) -> bollard::models::EventMessage {
        bollard::models::EventMessage {
            action: Some(action.to_string()),
            actor: Some(bollard::models::EventActor {
                id: Some("abc".to_string()),
                attributes: Some(
                    attributes
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
            }),
            time: Some(1_700_000_000),
            ..Default::default()
        }
    }

    #[test]
    fn docker_messages_become_cell_events() {
        let died = cell_event(message(
            "die",
            &[("mtp.tenant", "acme"), ("exitCode", "137")],
        ))
        .unwrap();
        assert_eq!(died.kind, CellEventKind::Died { exit_code: 137 });
        assert_eq!(died.tenant.as_str(), "acme");
        assert_eq!(died.at, 1_700_000_000);
        assert_eq!(
            cell_event(message("kill", &[("mtp.tenant", "acme"), ("signal", "15")]))
                .unwrap()
                .kind,
            CellEventKind::Killed {
                signal: "15".into()
            }
        );
        // Not ours, or not an action we watch.
        assert_eq!(cell_event(message("die", &[("exitCode", "1")])), None);
        assert_eq!(
            cell_event(message("exec_start: sh", &[("mtp.tenant", "acme")])),
            None
        );
    }
}
