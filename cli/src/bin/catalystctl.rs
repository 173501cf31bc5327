//! `catalystctl`: the Catalyst command line.

use std::path::PathBuf;
use std::process::ExitCode;

use catalyst_cli::client::{Client, ClientError, Config};
use catalyst_cli::ctl::{self, GetArgs, WaitFor};
use catalyst_cli::output::Format;
use clap::{CommandFactory, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "catalystctl", version, about = "Manage Catalyst game servers")]
struct Cli {
    /// The client config (default: $CATALYST_CONFIG, then ~/.catalyst/config).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// The namespace (default: the config's).
    #[arg(short = 'n', long, global = true)]
    namespace: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create or update objects from files, directories or stdin (server-side apply).
    Apply {
        /// Files, directories, or - for stdin.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<String>,
        /// Descend into directories.
        #[arg(short = 'R', long)]
        recursive: bool,
        /// Delete objects with the -l labels that are not in the input.
        #[arg(long, requires = "selector")]
        prune: bool,
        /// The label selector for --prune.
        #[arg(short = 'l', long)]
        selector: Option<String>,
        /// `server`: validate and show what would happen, write nothing.
        #[arg(long, value_parser = ["server"])]
        dry_run: Option<String>,
        /// Take over fields other managers own.
        #[arg(long)]
        force_conflicts: bool,
    },
    /// List objects or show one.
    Get {
        /// The kind: name, plural or short name (gs, node, …).
        kind: String,
        /// One object.
        name: Option<String>,
        /// Every namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        /// Label selector.
        #[arg(short = 'l', long)]
        selector: Option<String>,
        /// Output format.
        #[arg(short = 'o', long, value_enum)]
        output: Option<Format>,
        /// Keep watching for changes.
        #[arg(short = 'w', long)]
        watch: bool,
    },
    /// Show an object with its status, conditions and recent events.
    Describe {
        /// KIND or KIND/NAME.
        kind: String,
        /// NAME.
        name: Option<String>,
    },
    /// Delete objects by file or by kind and name.
    Delete {
        /// Files or directories of the objects to delete.
        #[arg(short = 'f', long = "filename")]
        files: Vec<String>,
        /// KIND NAME or KIND/NAME.
        target: Vec<String>,
        /// Wait until the objects are gone.
        #[arg(long)]
        wait: bool,
    },
    /// Show what apply would change (exit 0: nothing, 1: changes, >1: error).
    Diff {
        /// Files, directories, or - for stdin.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<String>,
        /// Descend into directories.
        #[arg(short = 'R', long)]
        recursive: bool,
    },
    /// Edit an object in $EDITOR.
    Edit {
        /// KIND or KIND/NAME.
        kind: String,
        /// NAME.
        name: Option<String>,
    },
    /// Wait until an object reaches a phase, a condition, or is deleted.
    Wait {
        /// KIND/NAME.
        target: String,
        /// phase=PHASE, condition=TYPE or delete.
        #[arg(long = "for")]
        for_: WaitFor,
        /// Give up after this long (30s, 5m).
        #[arg(long, default_value = "30s", value_parser = ctl::parse_timeout)]
        timeout: std::time::Duration,
    },
    /// Start a GameServer (spec.state: Running).
    Start {
        /// The GameServer.
        name: String,
    },
    /// Stop a GameServer (spec.state: Stopped).
    Stop {
        /// The GameServer.
        name: String,
    },
    /// Print a GameServer's console lines.
    Logs {
        /// The GameServer.
        name: String,
        /// Keep printing new lines.
        #[arg(short, long)]
        follow: bool,
        /// Lines of history to print (default: all kept, up to 1000).
        #[arg(long)]
        tail: Option<usize>,
    },
    /// Send one line to a GameServer's console: `catalystctl command NAME -- say hello`.
    #[command(name = "command")]
    Say {
        /// The GameServer.
        name: String,
        /// The words of the line.
        #[arg(last = true, required = true)]
        text: Vec<String>,
    },
    /// Restart a GameServer (sets the catalyst.dev/restartedAt annotation).
    Restart {
        /// The GameServer.
        name: String,
    },
    /// Mark a node unschedulable.
    Cordon {
        /// The node.
        name: String,
    },
    /// Mark a node schedulable again.
    Uncordon {
        /// The node.
        name: String,
    },
    /// Describe a kind or one of its fields.
    Explain {
        /// KIND or KIND.field.subfield.
        path: String,
    },
    /// Print the client and server versions.
    Version {
        /// Only the client version.
        #[arg(long)]
        client: bool,
    },
    /// Print a shell completion script.
    Completion {
        /// bash, zsh or fish.
        shell: clap_complete::Shell,
    },
}

async fn run(cli: Cli) -> anyhow::Result<i32> {
    let connect = || -> Result<Client, ClientError> {
        Ok(Client::from_config(&Config::load(cli.config.as_deref())?))
    };
    let ns_of = |c: &Client| {
        cli.namespace
            .clone()
            .unwrap_or_else(|| c.namespace().to_owned())
    };
    match cli.command {
        Command::Explain { ref path } => ctl::explain(path),
        Command::Completion { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "catalystctl",
                &mut std::io::stdout(),
            );
            Ok(0)
        }
        Command::Version { client: true } => ctl::version(None).await,
        Command::Version { client: false } => ctl::version(Some(&connect()?)).await,
        ref command => {
            let client = connect()?;
            let ns = ns_of(&client);
            match command {
                Command::Apply {
                    files,
                    recursive,
                    prune,
                    selector,
                    dry_run,
                    force_conflicts,
                } => {
                    let prune = prune.then(|| selector.as_deref().unwrap_or(""));
                    ctl::apply(
                        &client,
                        &ns,
                        files,
                        *recursive,
                        prune,
                        dry_run.is_some(),
                        *force_conflicts,
                    )
                    .await
                }
                Command::Get {
                    kind,
                    name,
                    all_namespaces,
                    selector,
                    output,
                    watch,
                } => {
                    let args = GetArgs {
                        kind: kind.clone(),
                        name: name.clone(),
                        all_namespaces: *all_namespaces,
                        selector: selector.clone(),
                        output: *output,
                        watch: *watch,
                    };
                    ctl::get(&client, &ns, &args).await
                }
                Command::Describe { kind, name } => {
                    ctl::describe(&client, &ns, kind, name.as_deref()).await
                }
                Command::Delete {
                    files,
                    target,
                    wait,
                } => {
                    if files.is_empty() == target.is_empty() {
                        anyhow::bail!("give -f FILE or KIND NAME");
                    }
                    ctl::delete(&client, &ns, files, target, *wait).await
                }
                Command::Diff { files, recursive } => {
                    ctl::diff(&client, &ns, files, *recursive).await
                }
                Command::Edit { kind, name } => {
                    ctl::edit(&client, &ns, kind, name.as_deref()).await
                }
                Command::Wait {
                    target,
                    for_,
                    timeout,
                } => ctl::wait(&client, &ns, target, for_, *timeout).await,
                Command::Start { name } => ctl::lifecycle(&client, &ns, "start", name).await,
                Command::Stop { name } => ctl::lifecycle(&client, &ns, "stop", name).await,
                Command::Restart { name } => ctl::lifecycle(&client, &ns, "restart", name).await,
                Command::Logs { name, follow, tail } => {
                    ctl::logs(&client, &ns, name, *follow, *tail).await
                }
                Command::Say { name, text } => {
                    ctl::command(&client, &ns, name, &text.join(" ")).await
                }
                Command::Cordon { name } => ctl::cordon(&client, name, true).await,
                Command::Uncordon { name } => ctl::cordon(&client, name, false).await,
                Command::Explain { .. } | Command::Completion { .. } | Command::Version { .. } => {
                    unreachable!()
                }
            }
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let is_diff = std::env::args().nth(1).as_deref() == Some("diff");
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match run(cli).await {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("error: {e:#}");
            // diff reserves 1 for "differs"
            ExitCode::from(if is_diff { 2 } else { 1 })
        }
    }
}
