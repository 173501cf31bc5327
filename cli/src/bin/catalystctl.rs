//! `catalystctl`: the Catalyst command line. The subcommands' arguments and logic live in
//! [`catalyst_cli::ctl`]; this file parses, connects, dispatches and turns the outcome into an
//! exit status.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use catalyst_cli::client::{Client, ClientError, Config};
use catalyst_cli::ctl::alerts::AlertsArgs;
use catalyst_cli::ctl::apply::ApplyArgs;
use catalyst_cli::ctl::attach::ConsoleArgs;
use catalyst_cli::ctl::audit::AuditArgs;
use catalyst_cli::ctl::auth::AuthArgs;
use catalyst_cli::ctl::backup::BackupArgs;
use catalyst_cli::ctl::completion::CompletionArgs;
use catalyst_cli::ctl::config::ConfigArgs;
use catalyst_cli::ctl::console::CommandArgs;
use catalyst_cli::ctl::convert::ConvertArgs;
use catalyst_cli::ctl::create::CreateArgs;
use catalyst_cli::ctl::delete::DeleteArgs;
use catalyst_cli::ctl::describe::DescribeArgs;
use catalyst_cli::ctl::diff::DiffArgs;
use catalyst_cli::ctl::edit::EditArgs;
use catalyst_cli::ctl::explain::ExplainArgs;
use catalyst_cli::ctl::files::FilesArgs;
use catalyst_cli::ctl::get::GetArgs;
use catalyst_cli::ctl::lifecycle::{GameServerArgs, NodeArgs, PowerAction, TransferArgs};
use catalyst_cli::ctl::login::{LoginArgs, LogoutArgs};
use catalyst_cli::ctl::logs::LogsArgs;
use catalyst_cli::ctl::schedule::ScheduleArgs;
use catalyst_cli::ctl::version::VersionArgs;
use catalyst_cli::ctl::wait::WaitArgs;
use catalyst_cli::ctl::{CtlError, Out};
use clap::{CommandFactory, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "catalystctl", version, about = "Manage Catalyst game servers")]
struct Cli {
    /// The client config (default: $CATALYST_CONFIG, then ~/.catalyst/config).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// The context of the config to use (default: its currentContext).
    #[arg(long, global = true, env = "CATALYST_CONTEXT")]
    context: Option<String>,
    /// The namespace (default: the context's).
    #[arg(short = 'n', long, global = true)]
    namespace: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create or update objects from files, directories or stdin (server-side apply).
    Apply(ApplyArgs),
    /// List objects or show one.
    Get(GetArgs),
    /// Show an object with its status, conditions and recent events.
    Describe(DescribeArgs),
    /// Delete objects by file or by kind and name.
    Delete(DeleteArgs),
    /// Show what apply would change (exit 0: nothing, 1: changes, >1: error).
    Diff(DiffArgs),
    /// Edit an object in $EDITOR.
    Edit(EditArgs),
    /// Wait until an object reaches a phase, a condition, or is deleted.
    Wait(WaitArgs),
    /// Start a GameServer (POST …/start: spec.state: Running).
    Start(GameServerArgs),
    /// Stop a GameServer (POST …/stop: spec.state: Stopped).
    Stop(GameServerArgs),
    /// Suspend a GameServer (POST …/suspend: spec.suspended: true).
    Suspend(GameServerArgs),
    /// Lift a GameServer's suspension (POST …/unsuspend: spec.suspended: false).
    Unsuspend(GameServerArgs),
    /// Print a GameServer's console lines.
    Logs(LogsArgs),
    /// A GameServer's files: ls, cat, get, put, rm, mkdir, chmod, mv, cp, archive, extract,
    /// pull.
    Files(FilesArgs),
    /// Backups of a GameServer's files: create, restore, download.
    Backup(BackupArgs),
    /// An interactive terminal on a GameServer's console: lines as they come, each line typed
    /// sent as a command.
    Console(ConsoleArgs),
    /// Send one line to a GameServer's console: `catalystctl command NAME -- say hello`.
    #[command(name = "command")]
    Say(CommandArgs),
    /// Restart a GameServer (POST …/restart: sets the catalyst.dev/restartedAt annotation).
    Restart(GameServerArgs),
    /// Run a GameServer's install script again (POST …/reinstall): a running server is stopped,
    /// the script runs and the server starts again; a stopped one reinstalls at its next start.
    Reinstall(GameServerArgs),
    /// Schedules: `schedule run NAME` runs one now (POST …/schedules/NAME/run).
    Schedule(ScheduleArgs),
    /// Move a GameServer to another node with its files (sets spec.nodeName): stopped, its
    /// data copied and checked, started there with new host ports; on any failure it stays.
    Transfer(TransferArgs),
    /// Mark a node unschedulable.
    Cordon(NodeArgs),
    /// Mark a node schedulable again.
    Uncordon(NodeArgs),
    /// Describe a kind or one of its fields.
    Explain(ExplainArgs),
    /// Print the client and server versions.
    Version(VersionArgs),
    /// Show the audit log: writes and refused requests, newest last (administrators).
    Audit(AuditArgs),
    /// Sign in with a user name and password; the session goes into a context (--context,
    /// default USER@HOST) that becomes current.
    Login(LoginArgs),
    /// End the session of a context (--context, default the current one) and forget its
    /// tokens.
    Logout(LogoutArgs),
    /// List and switch the contexts of the client config.
    Config(ConfigArgs),
    /// Create a user or an API key.
    Create(CreateArgs),
    /// Ask what you may do (can-i) and who you are (whoami).
    Auth(AuthArgs),
    /// AlertRules for other tools: `alerts export` prints Prometheus alerting rules.
    Alerts(AlertsArgs),
    /// Convert a Pterodactyl egg into a Template: `convert egg FILE.json` prints its YAML,
    /// and what it cannot carry over as warnings on stderr.
    Convert(ConvertArgs),
    /// Print a shell completion script.
    Completion(CompletionArgs),
}

/// Runs the command; the exit status, or why it failed.
async fn run(cli: Cli, out: &mut Out) -> Result<i32, CtlError> {
    let context = cli.context.as_deref().filter(|c| !c.is_empty());
    let connect = || -> Result<Client, ClientError> {
        Ok(Client::from_config(&Config::load_context(
            cli.config.as_deref(),
            context,
        )?))
    };
    let client = match &cli.command {
        Command::Login(args) => {
            return args
                .run(&Config::locate(cli.config.as_deref())?, context, out)
                .await
        }
        Command::Logout(args) => {
            return args
                .run(&Config::locate(cli.config.as_deref())?, context, out)
                .await
        }
        Command::Config(args) => {
            return args.run(&Config::locate(cli.config.as_deref())?, context, out)
        }
        Command::Explain(args) => return args.run(out),
        Command::Convert(args) => return args.run(out),
        Command::Completion(args) => return args.run(&mut Cli::command(), "catalystctl", out),
        Command::Version(args) => {
            let client = if args.client { None } else { Some(connect()?) };
            return args.run(client.as_ref(), out).await;
        }
        _ => connect()?,
    };
    let ns = cli
        .namespace
        .clone()
        .unwrap_or_else(|| client.namespace().to_owned());
    let (c, ns) = (&client, ns.as_str());
    match &cli.command {
        Command::Apply(args) => args.run(c, ns, out).await,
        Command::Get(args) => args.run(c, ns, out).await,
        Command::Describe(args) => args.run(c, ns, out).await,
        Command::Delete(args) => args.run(c, ns, out).await,
        Command::Diff(args) => args.run(c, ns, out).await,
        Command::Edit(args) => args.run(c, ns, out).await,
        Command::Wait(args) => args.run(c, ns, out).await,
        Command::Start(args) => args.run(PowerAction::Start, c, ns, out).await,
        Command::Stop(args) => args.run(PowerAction::Stop, c, ns, out).await,
        Command::Suspend(args) => args.run(PowerAction::Suspend, c, ns, out).await,
        Command::Unsuspend(args) => args.run(PowerAction::Unsuspend, c, ns, out).await,
        Command::Restart(args) => args.run(PowerAction::Restart, c, ns, out).await,
        Command::Reinstall(args) => args.run(PowerAction::Reinstall, c, ns, out).await,
        Command::Logs(args) => args.run(c, ns, out).await,
        Command::Files(args) => args.run(c, ns, out).await,
        Command::Backup(args) => args.run(c, ns, out).await,
        Command::Console(args) => args.run(c, ns, out).await,
        Command::Say(args) => args.run(c, ns, out).await,
        Command::Schedule(args) => args.run(c, ns, out).await,
        Command::Transfer(args) => args.run(c, ns, out).await,
        Command::Cordon(args) => args.run(true, c, out).await,
        Command::Uncordon(args) => args.run(false, c, out).await,
        Command::Audit(args) => args.run(c, out).await,
        Command::Create(args) => args.run(c, out).await,
        Command::Auth(args) => args.run(c, ns, out).await,
        Command::Alerts(args) => args.run(c, ns, out).await,
        Command::Explain(_)
        | Command::Convert(_)
        | Command::Completion(_)
        | Command::Version(_)
        | Command::Login(_)
        | Command::Logout(_)
        | Command::Config(_) => {
            unreachable!("answered above")
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    // diff reserves 1 for "differs"
    let failed = if matches!(cli.command, Command::Diff(_)) {
        2
    } else {
        1
    };
    let mut out = Out::stdio();
    let outcome = run(cli, &mut out).await.and_then(|code| {
        out.flush()?;
        Ok(code)
    });
    let unauthorized = matches!(&outcome, Err(CtlError::Client(e)) if e.code() == Some(401));
    match outcome {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        // the reader of stdout went away (`catalystctl get gs | head -1`): nothing left to do
        Err(e) if e.is_stdout_closed() => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {:#}", anyhow::Error::from(e));
            if unauthorized {
                let _ = writeln!(
                    std::io::stderr(),
                    "hint: the server does not take these credentials (any more): sign in with `catalystctl login`"
                );
            }
            ExitCode::from(failed)
        }
    }
}
