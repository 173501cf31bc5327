//! Where commands write: stdout for results, stderr for notes and per-object failures. A closed
//! stdout (a reader like `head` that went away) becomes [`CtlError::StdoutClosed`] instead of a
//! panic, so commands stop at their next write.

use std::fmt::{self, Display};
use std::io::{self, Write};

use super::error::CtlError;

/// The output of a command.
pub struct Out {
    stdout: Box<dyn Write + Send>,
    stderr: Box<dyn Write + Send>,
}

impl fmt::Debug for Out {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Out").finish_non_exhaustive()
    }
}

fn stdout_error(e: io::Error) -> CtlError {
    if e.kind() == io::ErrorKind::BrokenPipe {
        CtlError::StdoutClosed
    } else {
        CtlError::Stdout(e)
    }
}

impl Out {
    /// The process's stdout and stderr.
    pub fn stdio() -> Self {
        Self::new(io::stdout(), io::stderr())
    }

    /// Any two writers (tests capture output in buffers).
    pub fn new(stdout: impl Write + Send + 'static, stderr: impl Write + Send + 'static) -> Self {
        Self {
            stdout: Box::new(stdout),
            stderr: Box::new(stderr),
        }
    }

    /// Writes `text` as is to stdout.
    ///
    /// # Errors
    /// [`CtlError::StdoutClosed`] when the reader went away, else [`CtlError::Stdout`].
    pub fn print(&mut self, text: &str) -> Result<(), CtlError> {
        self.bytes(text.as_bytes())
    }

    /// Writes `line` and a newline to stdout.
    ///
    /// # Errors
    /// As [`Out::print`].
    pub fn line(&mut self, line: impl Display) -> Result<(), CtlError> {
        writeln!(self.stdout, "{line}").map_err(stdout_error)
    }

    /// Writes raw bytes to stdout.
    ///
    /// # Errors
    /// As [`Out::print`].
    pub fn bytes(&mut self, bytes: &[u8]) -> Result<(), CtlError> {
        self.stdout.write_all(bytes).map_err(stdout_error)
    }

    /// Pushes what stdout buffered to its reader (streams do after every chunk).
    ///
    /// # Errors
    /// As [`Out::print`].
    pub fn flush(&mut self) -> Result<(), CtlError> {
        self.stdout.flush().map_err(stdout_error)
    }

    /// Writes `line` and a newline to stderr; a closed stderr is ignored.
    pub fn note(&mut self, line: impl Display) {
        let _ = writeln!(self.stderr, "{line}");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer whose reader went away.
    struct Closed;

    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }

        fn flush(&mut self) -> io::Result<()> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
    }

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_stdout_is_reported_as_such_and_not_as_a_failure() {
        let mut out = Out::new(Closed, Buffer::default());
        assert!(out.line("x").unwrap_err().is_stdout_closed());
        assert!(out.print("x").unwrap_err().is_stdout_closed());
        assert!(out.flush().unwrap_err().is_stdout_closed());
    }

    #[test]
    fn other_write_failures_stay_errors() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let err = Out::new(Full, Closed).line("x").unwrap_err();
        assert!(matches!(err, CtlError::Stdout(_)), "{err:?}");
    }

    #[test]
    fn lines_go_to_stdout_and_notes_to_stderr_which_may_be_closed() {
        let (stdout, stderr) = (Buffer::default(), Buffer::default());
        let mut out = Out::new(stdout.clone(), stderr.clone());
        out.line("gameserver/a created").unwrap();
        out.print("partial").unwrap();
        out.note("a: NotFound");
        assert_eq!(
            String::from_utf8(stdout.0.lock().unwrap().clone()).unwrap(),
            "gameserver/a created\npartial"
        );
        assert_eq!(
            String::from_utf8(stderr.0.lock().unwrap().clone()).unwrap(),
            "a: NotFound\n"
        );
        Out::new(Buffer::default(), Closed).note("ignored");
    }
}
