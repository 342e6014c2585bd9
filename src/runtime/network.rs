//! The cell's own bridge network, with an explicit /28 subnet handed out by MTP:
//! Docker's default pools run out after about 29 networks.

use std::collections::HashMap;

use bollard::models::{Ipam, IpamConfig, NetworkCreateRequest};
use bollard::query_parameters::ListNetworksOptionsBuilder;

use crate::runtime::{Error, LABEL_TENANT, Result, Runtime, is_status, labels};
use crate::tenant::TenantId;

impl Runtime {
    /// Every subnet any Docker network on this host uses, ours or not.
    ///
    /// # Errors
    ///
    /// `Docker` when the engine cannot be reached.
    pub async fn used_subnets(&self) -> Result<Vec<String>> {
        let networks = self
            .docker()
            .list_networks(None::<bollard::query_parameters::ListNetworksOptions>)
            .await?;
        let mut res = Vec::new();
        for network in networks {
            for config in network
                .ipam
                .and_then(|ipam| ipam.config)
                .unwrap_or_default()
            {
                if let Some(subnet) = config.subnet {
                    res.push(subnet);
                }
            }
        }
        Ok(res)
    }

    /// Creates the tenant's network with `subnet`. Returns `Ok(false)` when Docker
    /// refuses the subnet because another network overlaps it, so the caller can
    /// try the next one.
    ///
    /// # Errors
    ///
    /// `Foreign` when a network of that name exists without our label.
    pub async fn create_network(
        &self,
        tenant: &TenantId,
        generation: u64,
        subnet: &str,
    ) -> Result<bool> {
        if self.engine == crate::tenant::Engine::Swarm {
            self.create_overlay(tenant, generation, subnet).await?;
            return Ok(true);
        }
        let name = tenant.cell_name();
        if let Some(existing) = self.network_of(&name).await? {
            if existing.tenant.as_deref() != Some(tenant.as_str()) {
                return Err(Error::Foreign { name });
            }
            // Ours already, on the subnet the record holds: keep it. Removing it
            // would free the subnet for anyone's create until it is made again.
            if existing.subnets.iter().any(|s| s == subnet) {
                return Ok(true);
            }
            // Ours from an earlier attempt on another subnet: start clean.
            self.docker().remove_network(&name).await?;
        }
        let request = NetworkCreateRequest {
            name: name.clone(),
            driver: Some("bridge".to_string()),
            internal: Some(false),
            attachable: Some(false),
            ipam: Some(ipam(subnet)),
            labels: Some(labels(tenant, generation)),
            options: Some(HashMap::from([(
                // No inter-container traffic on the cell's own network.
                "com.docker.network.bridge.enable_icc".to_string(),
                "false".to_string(),
            )])),
            ..Default::default()
        };
        match self.docker().create_network(request).await {
            Ok(_) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError { message, .. })
                if message.contains("overlap") || message.contains("Pool overlaps") =>
            {
                Ok(false)
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Removes the tenant's network; `Ok(false)` when there was none.
    ///
    /// # Errors
    ///
    /// `Foreign` for a network of that name without our label.
    pub async fn remove_network(&self, tenant: &TenantId) -> Result<bool> {
        if self.engine == crate::tenant::Engine::Swarm {
            return self.remove_swarm_network(tenant).await;
        }
        self.remove_own_network(tenant).await
    }

    /// `remove_network` of the network itself, bridge or overlay.
    pub(super) async fn remove_own_network(&self, tenant: &TenantId) -> Result<bool> {
        let name = tenant.cell_name();
        match self.network_of(&name).await?.map(|network| network.tenant) {
            None => Ok(false),
            Some(Some(owner)) if owner == tenant.as_str() => {
                match self.docker().remove_network(&name).await {
                    Ok(()) => Ok(true),
                    Err(err) if is_status(&err, 404) => Ok(false),
                    Err(err) => Err(err.into()),
                }
            }
            Some(_) => Err(Error::Foreign { name }),
        }
    }

    /// Tenants that have a labelled network, for reconcile.
    ///
    /// # Errors
    ///
    /// `Docker` when the engine cannot be reached.
    pub async fn managed_networks(&self) -> Result<Vec<(String, Option<TenantId>)>> {
        let filters = HashMap::from([("label", vec!["mtp.managed=true"])]);
        let options = ListNetworksOptionsBuilder::new().filters(&filters).build();
        let networks = self.docker().list_networks(Some(options)).await?;
        Ok(networks
            .into_iter()
            .filter_map(|network| {
                let name = network.name?;
                let tenant = network
                    .labels
                    .and_then(|labels| labels.get(LABEL_TENANT).and_then(|id| id.parse().ok()));
                Some((name, tenant))
            })
            .collect())
    }

    /// The subnets of the tenant's network; `Ok(None)` when it does not exist.
    ///
    /// # Errors
    ///
    /// `Foreign` when a network of that name is not ours, `Docker` when the
    /// engine cannot be reached.
    pub async fn network_subnets(&self, tenant: &TenantId) -> Result<Option<Vec<String>>> {
        let name = tenant.cell_name();
        match self.network_of(&name).await? {
            None => Ok(None),
            Some(facts) if facts.tenant.as_deref() == Some(tenant.as_str()) => {
                Ok(Some(facts.subnets))
            }
            Some(_) => Err(Error::Foreign { name }),
        }
    }

    /// `None`: no such network; otherwise its tenant label, if any, and subnets.
    pub(super) async fn network_of(&self, name: &str) -> Result<Option<NetworkFacts>> {
        match self
            .docker()
            .inspect_network(
                name,
                None::<bollard::query_parameters::InspectNetworkOptions>,
            )
            .await
        {
            Ok(network) => {
                // Inspect matches id prefixes too; insist on the exact name.
                if network.name.as_deref() != Some(name) {
                    return Ok(None);
                }
                Ok(Some(NetworkFacts {
                    tenant: network
                        .labels
                        .and_then(|labels| labels.get(LABEL_TENANT).cloned()),
                    subnets: network
                        .ipam
                        .and_then(|ipam| ipam.config)
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(|config| config.subnet)
                        .collect(),
                }))
            }
            Err(err) if is_status(&err, 404) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }
}

/// Docker's address management for a network on exactly `subnet`.
pub(super) fn ipam(subnet: &str) -> Ipam {
    Ipam {
        driver: Some("default".to_string()),
        config: Some(vec![IpamConfig {
            subnet: Some(subnet.to_string()),
            ..Default::default()
        }]),
        options: None,
    }
}

/// What `create_network` and `remove_network` need to know of a network.
pub(super) struct NetworkFacts {
    tenant: Option<String>,
    subnets: Vec<String>,
}
