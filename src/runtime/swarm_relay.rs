//! The relay container beside an admin that runs as a Swarm service (the
//! protocol and both ends are in `crate::relay`).
//!
//! Docker attaches a container to an attachable overlay after its start only
//! when Swarm does not manage it: an admin service's task is refused
//! ("network … not found" for an overlay with no task on its node). So such an
//! admin runs on its node's host network, and keeps `mtp-relay`, a plain
//! container of its own image, on a private bridge (`mtp-relay`, internal)
//! that the host reaches; the relay joins every tenant's overlay instead of
//! the admin, and dials gateways for it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, EndpointSettings, HostConfig,
    HostConfigLogConfig, NetworkCreateRequest, NetworkingConfig, RestartPolicy,
    RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, InspectNetworkOptions,
    ListNetworksOptionsBuilder, StartContainerOptions,
};

use super::{Error, LABEL_MANAGED, Result, Runtime};
use crate::relay::RELAY_PORT;

/// The relay container's name, and its bridge's.
pub const RELAY: &str = "mtp-relay";

/// The relay's and its bridge's label (`mtp.role=relay`); not `mtp.managed`,
/// which would make them cells and tenants' networks to reconcile and the
/// monitor.
const LABEL_ROLE: &str = "mtp.role";

/// The label Swarm puts on the containers of its tasks.
const SWARM_TASK_LABEL: &str = "com.docker.swarm.task.id";

/// The relay's memory limit: it only copies bytes.
const RELAY_MEMORY: i64 = 64 * 1024 * 1024;

fn is_status(err: &bollard::errors::Error, status: u16) -> bool {
    matches!(err, bollard::errors::Error::DockerResponseServerError { status_code, .. } if *status_code == status)
}

impl Runtime {
    /// Where the admin reaches cells through a relay: `Some(address)` when
    /// this process runs in a Swarm service's task (`own` is its container),
    /// after making sure the relay runs on this node; `None` for a plain
    /// container, which joins the overlays itself.
    ///
    /// # Errors
    ///
    /// The service is not on the host's network (it could not reach the
    /// relay's bridge), or Docker refuses.
    pub async fn relay_for(&self, own: &str) -> Result<Option<SocketAddr>> {
        let me = self
            .docker()
            .inspect_container(own, None::<InspectContainerOptions>)
            .await?;
        let managed = me
            .config
            .as_ref()
            .and_then(|config| config.labels.as_ref())
            .is_some_and(|labels| labels.contains_key(SWARM_TASK_LABEL));
        if !managed {
            return Ok(None);
        }
        let on_host = me
            .host_config
            .as_ref()
            .and_then(|host| host.network_mode.as_deref())
            == Some("host");
        if !on_host {
            return Err(Error::Other(
                "the admin runs as a Swarm service but not on its node's host network, so it can reach no cell: Swarm does not let a service's task join overlays, and the admin's relay listens on a bridge only the host reaches; deploy the service with the host network (stack.yml)".to_string(),
            ));
        }
        let host_side = self.relay_network().await?;
        let relay = match self.relay_container().await? {
            Some(relay) => relay,
            None => self.create_relay(&me, host_side).await?,
        };
        let running = relay
            .state
            .as_ref()
            .and_then(|state| state.running)
            .unwrap_or(false);
        let relay = if running {
            relay
        } else {
            match self
                .docker()
                .start_container(RELAY, None::<StartContainerOptions>)
                .await
            {
                Ok(()) => {}
                Err(err) if is_status(&err, 304) => {}
                Err(err) => return Err(err.into()),
            }
            self.relay_container()
                .await?
                .ok_or_else(|| Error::Other("the relay container vanished as it started".into()))?
        };
        let address = relay
            .network_settings
            .as_ref()
            .and_then(|settings| settings.networks.as_ref())
            .and_then(|networks| networks.get(RELAY))
            .and_then(|endpoint| endpoint.ip_address.as_deref())
            .and_then(|ip| ip.parse::<IpAddr>().ok())
            .ok_or_else(|| {
                Error::Other(format!(
                    "the relay container has no address on the {RELAY} network; remove it (docker rm -f {RELAY}) and the admin makes it again"
                ))
            })?;
        Ok(Some(SocketAddr::new(address, RELAY_PORT)))
    }

    /// The relay's bridge, made when missing: internal (no way out) and the
    /// host's address on it, the only peer the relay serves.
    async fn relay_network(&self) -> Result<IpAddr> {
        let inspected = self
            .docker()
            .inspect_network(RELAY, None::<InspectNetworkOptions>)
            .await;
        let network = match inspected {
            Ok(network) => network,
            Err(err) if is_status(&err, 404) => {
                let request = NetworkCreateRequest {
                    name: RELAY.to_string(),
                    driver: Some("bridge".to_string()),
                    internal: Some(true),
                    labels: Some(HashMap::from([(
                        LABEL_ROLE.to_string(),
                        "relay".to_string(),
                    )])),
                    ..Default::default()
                };
                match self.docker().create_network(request).await {
                    Ok(_) => {}
                    // Another admin process made it meanwhile.
                    Err(err) if is_status(&err, 409) => {}
                    Err(err) => return Err(err.into()),
                }
                self.docker()
                    .inspect_network(RELAY, None::<InspectNetworkOptions>)
                    .await?
            }
            Err(err) => return Err(err.into()),
        };
        if network.driver.as_deref() != Some("bridge")
            || network
                .labels
                .as_ref()
                .and_then(|labels| labels.get(LABEL_ROLE))
                .map(String::as_str)
                != Some("relay")
        {
            return Err(Error::Foreign {
                name: RELAY.to_string(),
            });
        }
        network
            .ipam
            .as_ref()
            .and_then(|ipam| ipam.config.as_ref())
            .and_then(|configs| configs.iter().find_map(|config| config.gateway.clone()))
            .and_then(|gateway| gateway.parse().ok())
            .ok_or_else(|| {
                Error::Other(format!(
                    "the {RELAY} network has no gateway address for the host; remove it (docker network rm {RELAY}) and the admin makes it again"
                ))
            })
    }

    async fn relay_container(&self) -> Result<Option<ContainerInspectResponse>> {
        match self
            .docker()
            .inspect_container(RELAY, None::<InspectContainerOptions>)
            .await
        {
            Ok(relay) => {
                let ours = relay
                    .config
                    .as_ref()
                    .and_then(|config| config.labels.as_ref())
                    .and_then(|labels| labels.get(LABEL_ROLE))
                    .map(String::as_str)
                    == Some("relay");
                if ours {
                    Ok(Some(relay))
                } else {
                    Err(Error::Foreign {
                        name: RELAY.to_string(),
                    })
                }
            }
            Err(err) if is_status(&err, 404) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    /// Makes the relay from the admin's own image and binary, locked down
    /// like a cell (no capabilities, read-only, small), then puts it on every
    /// tenant's overlay there is.
    async fn create_relay(
        &self,
        me: &ContainerInspectResponse,
        host_side: IpAddr,
    ) -> Result<ContainerInspectResponse> {
        let (Some(image), Some(binary)) = (me.image.clone(), me.path.clone()) else {
            return Err(Error::Other(
                "the admin's own container has no image or command to make the relay from".into(),
            ));
        };
        let body = ContainerCreateBody {
            image: Some(image),
            entrypoint: Some(vec![binary]),
            cmd: Some(vec![
                "relay".to_string(),
                "--listen".to_string(),
                format!("0.0.0.0:{RELAY_PORT}"),
                "--allow".to_string(),
                host_side.to_string(),
            ]),
            // The relay needs no file: nobody.
            user: Some("65534:65534".to_string()),
            labels: Some(HashMap::from([(
                LABEL_ROLE.to_string(),
                "relay".to_string(),
            )])),
            host_config: Some(HostConfig {
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                    maximum_retry_count: None,
                }),
                readonly_rootfs: Some(true),
                cap_drop: Some(vec!["ALL".to_string()]),
                security_opt: Some(vec!["no-new-privileges:true".to_string()]),
                memory: Some(RELAY_MEMORY),
                memory_swap: Some(RELAY_MEMORY),
                pids_limit: Some(64),
                init: Some(true),
                network_mode: Some(RELAY.to_string()),
                log_config: Some(HostConfigLogConfig {
                    typ: Some("json-file".to_string()),
                    config: Some(HashMap::from([
                        ("max-size".to_string(), "1m".to_string()),
                        ("max-file".to_string(), "2".to_string()),
                    ])),
                }),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    RELAY.to_string(),
                    EndpointSettings::default(),
                )])),
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::new().name(RELAY).build();
        match self.docker().create_container(Some(options), body).await {
            Ok(_) => {
                for overlay in self.tenant_overlays().await? {
                    self.attach(&overlay, RELAY).await?;
                }
            }
            // Another admin process made it meanwhile (it joins the overlays).
            Err(err) if is_status(&err, 409) => {}
            Err(err) => return Err(err.into()),
        }
        self.relay_container()
            .await?
            .ok_or_else(|| Error::Other("the relay container vanished as it was made".into()))
    }

    /// The names of MTP's overlays (one per tenant).
    async fn tenant_overlays(&self) -> Result<Vec<String>> {
        let filters = HashMap::from([
            ("label", vec![format!("{LABEL_MANAGED}=true")]),
            ("driver", vec!["overlay".to_string()]),
        ]);
        let options = ListNetworksOptionsBuilder::new().filters(&filters).build();
        Ok(self
            .docker()
            .list_networks(Some(options))
            .await?
            .into_iter()
            .filter_map(|network| network.name)
            .collect())
    }
}
