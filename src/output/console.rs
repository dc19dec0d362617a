//! Standard output and error, buffered, and the progress bar that shares the terminal with them.
//!
//! Lines are collected in memory and written once per turn of the scheduler; when a progress
//! bar is shown, the bar is hidden while they are written, so lines and bar never garble.

use std::io::{self, Write};

use indicatif::{ProgressBar, ProgressStyle};

/// Buffered output is written early once it grows past this.
const FLUSH_AT: usize = 64 * 1024;
/// A progress bar is shown once a run plans at least this many checks.
const PROGRESS_FROM: u64 = 1000;

/// Buffers for stdout and stderr, and the optional progress bar on stderr.
pub struct Console {
    out: Vec<u8>,
    err: Vec<u8>,
    /// Whether a progress bar may be shown (stderr is a terminal, the run has a planned end).
    progress_allowed: bool,
    progress: Option<ProgressBar>,
    /// Checks done so far, for a bar shown late.
    done: u64,
}

impl Console {
    pub fn new(progress_allowed: bool) -> Console {
        Console {
            out: Vec::new(),
            err: Vec::new(),
            progress_allowed,
            progress: None,
            done: 0,
        }
    }

    /// The run now plans `checks` checks in all (targets are read as the run goes): shows the
    /// progress bar once that is [`PROGRESS_FROM`] or more, if allowed.
    pub fn plan(&mut self, checks: u64) {
        if let Some(progress) = &self.progress {
            progress.set_length(checks);
        } else if self.progress_allowed && checks >= PROGRESS_FROM {
            let style = ProgressStyle::with_template(
                "{bar:40.cyan/blue} {pos}/{len} checks, {elapsed} elapsed, {eta} left",
            );
            if let Ok(style) = style {
                let progress = ProgressBar::new(checks).with_style(style);
                progress.set_position(self.done);
                self.progress = Some(progress);
            }
        }
    }

    /// The standard output buffer.
    pub fn out(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// The standard error buffer.
    pub fn err(&mut self) -> &mut Vec<u8> {
        &mut self.err
    }

    /// Moves the progress bar one check on.
    pub fn advance(&mut self) {
        self.done += 1;
        if let Some(progress) = &self.progress {
            progress.inc(1);
        }
    }

    /// Writes what is buffered if it has grown large.
    pub fn flush_if_full(&mut self) -> io::Result<()> {
        if self.out.len() + self.err.len() >= FLUSH_AT {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes what is buffered: stderr first, then stdout.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() && self.err.is_empty() {
            return Ok(());
        }
        let (out, err) = (&mut self.out, &mut self.err);
        let mut write = || -> io::Result<()> {
            write_all_and_clear(&mut io::stderr().lock(), err)?;
            write_all_and_clear(&mut io::stdout().lock(), out)
        };
        match &self.progress {
            Some(progress) => progress.suspend(write),
            None => write(),
        }
    }

    /// Removes the progress bar and writes what is buffered.
    pub fn finish(&mut self) -> io::Result<()> {
        if let Some(progress) = self.progress.take() {
            progress.finish_and_clear();
        }
        self.flush()
    }
}

fn write_all_and_clear(stream: &mut dyn Write, buffer: &mut Vec<u8>) -> io::Result<()> {
    if buffer.is_empty() {
        return Ok(());
    }
    stream.write_all(buffer)?;
    stream.flush()?;
    buffer.clear();
    Ok(())
}
