//! `natask`: the operator's command line for natask queues on NATS
//! JetStream — list queues, pause and resume them, follow, await and cancel
//! tasks, browse, replay and purge dead letters, list schedules, enqueue a
//! task by name (checked against the live catalog's schema), list the
//! running runtimes and the tasks they serve, check a server (`doctor`),
//! and serve all of it as a web dashboard (`web`).
//!
//! Built on `natask-runtime`'s public API only. Exit codes: 0 success, 1 a
//! failure (the message says what and what to do), 2 a usage error (clap).
//! Every listing takes `--json`; the field names are documented in
//! `docs/operations.md` and kept stable.

/// `println!` that returns the error instead of panicking, so that
/// `natask dlq ls --json | head` ends quietly when `head` has read enough.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))?
    };
}

mod args;
mod connect;
mod dlq;
mod doctor;
mod enqueue;
mod fleet;
mod output;
mod queues;
mod schedules;
mod schema;
mod tasks;
mod web;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};

/// What a command returns: `Err` is printed with its causes and exits 1.
type Outcome = Result<(), Box<dyn std::error::Error + Send + Sync>>;

fn main() -> ExitCode {
    // clap exits with 2 on a usage error and 0 for --help / --version.
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&e),
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of stdout went away (`| head`): nothing left to do.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => fail(&*e),
    }
}

async fn run(cli: Cli) -> Outcome {
    if let Command::Web(web) = &cli.command {
        // Refused before connecting: the mistake is in the arguments.
        web::check_listen(web)?;
    }
    let client = connect::client(&cli.connection).await?;
    match cli.command {
        Command::Queues(json) => queues::list(&client, json.json).await,
        Command::Queue(command) => queues::run(&client, command).await,
        Command::Tasks(command) => tasks::run(&client, command).await,
        Command::Dlq(command) => dlq::run(&client, command).await,
        Command::Schedules(command) => schedules::run(&client, command).await,
        Command::Enqueue(command) => enqueue::run(&client, command).await,
        Command::Doctor(json) => doctor::run(&client, json.json).await,
        Command::Workers(json) => fleet::workers(&client, json.json).await,
        Command::Catalog { queue, json } => {
            fleet::catalog(&client, queue.as_deref(), json.json).await
        }
        Command::Web(web) => web::run(client, web).await,
    }
}

/// Prints `error` and its causes on stderr; exit code 1.
fn fail(error: &(dyn std::error::Error + 'static)) -> ExitCode {
    let mut message = format!("error: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(&format!("\n  caused by: {cause}"));
        source = cause.source();
    }
    eprintln!("{message}");
    ExitCode::FAILURE
}
