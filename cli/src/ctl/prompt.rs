//! Asking the user: a line on the terminal, a secret with echo off, or a password piped in
//! (`--password-stdin`).

use std::io::{self, BufRead, IsTerminal, Read, Write};

use super::error::CtlError;

fn stdin_error(source: io::Error) -> CtlError {
    CtlError::Read {
        what: "stdin".into(),
        source,
    }
}

/// True when stdin is a terminal (a person can be asked).
pub fn interactive() -> bool {
    io::stdin().is_terminal()
}

/// The first line of stdin without its line end (`--password-stdin`).
///
/// # Errors
/// [`CtlError::Read`] when stdin cannot be read, [`CtlError::Usage`] when it is empty.
pub fn secret_from_stdin(what: &str) -> Result<String, CtlError> {
    let mut text = String::new();
    io::stdin().read_to_string(&mut text).map_err(stdin_error)?;
    let line = text.lines().next().unwrap_or_default().to_owned();
    if line.is_empty() {
        return Err(CtlError::Usage(format!("no {what} on stdin")));
    }
    Ok(line)
}

/// Asks `prompt` on stderr and reads one line from stdin (echoed).
///
/// # Errors
/// [`CtlError::Read`] when stdin cannot be read.
pub fn line(prompt: &str) -> Result<String, CtlError> {
    let mut stderr = io::stderr();
    let _ = write!(stderr, "{prompt}");
    let _ = stderr.flush();
    let mut text = String::new();
    io::stdin()
        .lock()
        .read_line(&mut text)
        .map_err(stdin_error)?;
    Ok(text.trim_end_matches(['\r', '\n']).to_owned())
}

/// Asks `prompt` on stderr and reads one line from stdin; on a terminal, with echo off (and
/// echo restored afterwards, whatever happens).
///
/// # Errors
/// [`CtlError::Read`] when stdin cannot be read.
pub fn secret(prompt: &str) -> Result<String, CtlError> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let stdin = io::stdin();
    let Ok(saved) = tcgetattr(&stdin) else {
        return line(prompt);
    };
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    quiet.local_flags.insert(LocalFlags::ECHONL);
    let _ = tcsetattr(&stdin, SetArg::TCSANOW, &quiet);
    let read = line(prompt);
    let _ = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
    read
}
