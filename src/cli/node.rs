//! `mtp node list`: the hosts that run cells, their memory and tenants.

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
    }
}
