//! `mtp node list`: the hosts that run cells, their memory and tenants;
//! `mtp node drain`: every tenant moved off a node of the swarm.

use clap::Subcommand;

use crate::cli::{render, views};
use crate::config::AdminConfig;
use crate::fleet::App;

#[derive(Subcommand)]
pub(crate) enum NodeCommand {
    /// Every node (this Docker engine, or the nodes of the swarm it manages)
    /// with its role, state, labels, memory and tenants.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Move every tenant off a node of the swarm (cell.engine swarm), one at a
    /// time, each to the node with the most room; stops at the first failure.
    Drain {
        /// The node's hostname or id.
        node: String,
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn run(config: AdminConfig, command: NodeCommand) -> anyhow::Result<()> {
    match command {
        NodeCommand::List { json } => {
            let app = App::open(config).await?;
            let nodes = crate::fleet::nodes::list(&app).await?;
            if json {
                let views: Vec<views::Node> = nodes.iter().map(views::Node::new).collect();
                return render::print_json(&views);
            }
            let next = crate::fleet::nodes::next_placement(&app, &nodes);
            render::print_line(&render::nodes(&nodes, &next))
        }
        NodeCommand::Drain { node, json } => {
            let app = App::open(config).await?;
            let actor = crate::fleet::Actor::cli();
            let mut report = |tenant: &crate::tenant::TenantId, step| {
                if !json {
                    eprintln!("{tenant}: {}", render::move_step(step));
                }
            };
            let drained = crate::fleet::moves::drain(&app, &actor, &node, &mut report).await?;
            if json {
                render::print_json(&views::Drained::new(&drained))?;
            } else {
                render::print_line(&render::drained(&drained))?;
            }
            match &drained.failed {
                Some((tenant, _)) => anyhow::bail!(
                    "the drain of {} stopped at {tenant}; {} tenants are still on it",
                    drained.node,
                    drained.left.len() + 1
                ),
                None => Ok(()),
            }
        }
    }
}
