//! `degrade`: the command users run. It parses the command line and hands each
//! subcommand to its module; the libraries do the work, in the data's order:
//! experiment (the runs) -> runner (training) -> results (Parquet) -> report (HTML).

mod args;
mod commands;
mod settings;

use anyhow::{Context, Result};
use args::{Cli, Command};
use clap::Parser;

fn main() {
    runner::allocator::retain_freed_memory();
    if let Err(e) = dispatch(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Sweep {
            at,
            look,
            jobs,
            train,
        } => commands::sweep::sweep(&at, &look, jobs, &train),
        Command::Arch(arch) => commands::arch::arch(&arch),
        Command::Report { at, look } => commands::report::report_command(&at, &look),
        Command::Plan { at, pending } => commands::plan::plan(&at, pending),
        Command::Run {
            at,
            index,
            pending,
            train,
        } => commands::run::run(&at, index, pending, &train),
        Command::Slurm {
            at,
            submit,
            resources,
            train,
        } => commands::slurm::slurm(&at, submit, &resources, &train),
        Command::Worker {
            run_dir,
            data_dir,
            device,
            keep_final_weights,
            diagnostics,
        } => {
            runner::worker::run_worker(
                &run_dir,
                &data_dir,
                device,
                keep_final_weights,
                &diagnostics.unwrap_or_default(),
            )
            .with_context(|| format!("training {}", run_dir.display()))?;
            Ok(())
        }
    }
}
