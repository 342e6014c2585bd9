//! `mtp fleet …`: staged upgrades of the whole fleet (canary, waves, pauses),
//! their status, halt, resume and abandon.

use std::time::Duration;

use anyhow::bail;
use clap::{Args, Subcommand};

use crate::cli::terminal::Progress;
use crate::cli::{BadInput, parse_id, render};
use crate::config::AdminConfig;
use crate::fleet::rollout::{self, Canary, Rollout, RolloutError, RolloutRequest, RolloutState};
use crate::fleet::{Actor, App};

#[derive(Subcommand)]
pub(crate) enum FleetCommand {
    /// Upgrade every tenant to one pinned image: canary tenants first, then
    /// waves; the first failure rolls that tenant back and halts the rollout.
    Upgrade(UpgradeArgs),
    /// Where the newest rollout stands.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Halt the running rollout before its next tenant (`upgrade --resume` continues it).
    Halt,
    /// Give up a halted rollout (upgraded tenants stay upgraded) so a new one may start.
    Abandon,
}

#[derive(Args)]
pub(crate) struct UpgradeArgs {
    /// The new image (pinned: a tag other than `latest`, or a digest).
    #[arg(long, required_unless_present = "resume")]
    image: Option<String>,
    /// Canary tenants, upgraded first: `acme,globex`.
    #[arg(long, value_delimiter = ',', conflicts_with = "canary_count")]
    canary: Vec<String>,
    /// How many tenants (the first by id) go first as canaries.
    #[arg(long, default_value_t = 1)]
    canary_count: usize,
    /// Tenants per wave after the canary.
    #[arg(long, default_value_t = 5)]
    wave_size: usize,
    /// The wait after the canary and between waves (e.g. 10m, 30s, 0s).
    #[arg(long, default_value = "5m")]
    pause: String,
    /// Show the plan (canary, waves, who is passed by and why); change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Continue the halted rollout instead of starting one.
    #[arg(long, conflicts_with_all = ["image", "canary", "dry_run"])]
    resume: bool,
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(config: AdminConfig, command: FleetCommand) -> anyhow::Result<()> {
    let app = App::open(config).await?;
    let actor = Actor::cli();
    match command {
        FleetCommand::Upgrade(args) => upgrade(&app, &actor, args).await,
        FleetCommand::Status { json } => {
            let Some(current) = rollout::rollout(&app)? else {
                if json {
                    return render::print_json(&serde_json::Value::Null);
                }
                return render::print_line("no rollout yet");
            };
            if json {
                return render::print_json(&current);
            }
            render::print_line(&render::rollout(&current))
        }
        FleetCommand::Halt => {
            let halted = rollout::halt(&app, &actor).map_err(refusal)?;
            render::print_line(&match halted.state {
                RolloutState::Halted => format!("the rollout to {} is halted", halted.image),
                _ => format!(
                    "the rollout to {} halts before its next tenant",
                    halted.image
                ),
            })
        }
        FleetCommand::Abandon => {
            let abandoned = rollout::abandon(&app, &actor).map_err(refusal)?;
            render::print_line(&format!(
                "the rollout to {} is abandoned; its upgraded tenants stay upgraded",
                abandoned.image
            ))
        }
    }
}

async fn upgrade(app: &App, actor: &Actor, args: UpgradeArgs) -> anyhow::Result<()> {
    let progress = Progress::new(1, args.json || args.dry_run);
    let mut report = |now: rollout::RolloutProgress<'_>| {
        let (done, total) = now.rollout.done_count();
        progress.set_length(total);
        progress.show(done, render::rollout_now(&now));
    };
    let finished = if args.resume {
        rollout::resume(app, actor, &mut report).await
    } else {
        let request = request(&args)?;
        if args.dry_run {
            let plan = rollout::plan(app, actor, &request).await.map_err(refusal)?;
            if args.json {
                return render::print_json(&plan);
            }
            return render::print_line(&render::rollout_plan(&plan));
        }
        rollout::start(app, actor, &request, &mut report).await
    };
    drop(progress);
    let finished = finished.map_err(refusal)?;
    if args.json {
        render::print_json(&finished)?;
    } else {
        render::print_line(&render::rollout(&finished))?;
    }
    halted(&finished)
}

fn request(args: &UpgradeArgs) -> anyhow::Result<RolloutRequest> {
    let Some(image) = args.image.clone() else {
        bail!(BadInput("name the new image with --image".into()));
    };
    let pause = humantime::parse_duration(&args.pause).map_err(|_| {
        BadInput(format!(
            "--pause {:?} is not a duration; write it like 10m, 30s or 0s",
            args.pause
        ))
    })?;
    let canary = if args.canary.is_empty() {
        Canary::Count(args.canary_count)
    } else {
        Canary::Ids(
            args.canary
                .iter()
                .map(|id| parse_id(id))
                .collect::<anyhow::Result<_>>()?,
        )
    };
    Ok(RolloutRequest {
        image,
        canary,
        wave_size: args.wave_size,
        pause: pause.max(Duration::ZERO),
    })
}

/// A refusal is bad input (exit 2): nothing was changed.
fn refusal(err: RolloutError) -> anyhow::Error {
    match err {
        RolloutError::Refused(text) => BadInput(text).into(),
        RolloutError::Busy { .. } => BadInput(err.to_string()).into(),
        RolloutError::Other(err) => err,
    }
}

/// A halted rollout is a failed command (exit 1), after its report.
fn halted(rollout: &Rollout) -> anyhow::Result<()> {
    if rollout.state == RolloutState::Halted {
        bail!(
            "the rollout halted: {}; look at it, then `mtp fleet upgrade --resume` (or `mtp fleet abandon`)",
            rollout
                .halted_because
                .as_deref()
                .unwrap_or("no reason recorded")
        );
    }
    Ok(())
}
