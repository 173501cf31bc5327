//! `completion SHELL`: the shell completion script of the command line.

use super::error::Outcome;
use super::out::Out;

/// Arguments of `completion`.
#[derive(Debug, Clone, clap::Args)]
pub struct CompletionArgs {
    /// bash, zsh or fish.
    pub shell: clap_complete::Shell,
}

impl CompletionArgs {
    /// Prints the script completing `command` (the binary's whole clap command) as `bin_name`.
    ///
    /// # Errors
    /// A closed stdout.
    pub fn run(&self, command: &mut clap::Command, bin_name: &str, out: &mut Out) -> Outcome {
        // generated into memory: clap_complete panics when its writer fails
        let mut script = Vec::new();
        clap_complete::generate(self.shell, command, bin_name, &mut script);
        out.bytes(&script)?;
        Ok(0)
    }
}
