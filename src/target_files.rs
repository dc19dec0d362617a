//! Files of targets (`-f FILE`; `-f -` is standard input): one spec a line, blank lines and `#`
//! comments ignored, read a line at a time so that a file of any size takes the memory of one
//! line, and a pipe is checked as it is written.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};
use std::path::Path;

use anyhow::{Context, bail};
use tcp_shaker::Family;

use crate::targets::{InvalidTarget, Source, Spec, parse_spec};

/// The longest line kept; the rest of a longer one is skipped, and the line refused. A spec of
/// every port written one by one takes about 400 KB.
const MAX_LINE: usize = 1 << 20;
/// A line buffer that grew past this is given back after its line.
const KEPT_BUFFER: usize = 64 * 1024;

/// A file of targets, opened.
pub struct TargetFile {
    /// As reported: the path, or `<stdin>`.
    pub name: String,
    reader: Box<dyn BufRead + Send>,
    /// The file itself when it is a regular file, which can be read twice.
    regular: Option<File>,
}

impl TargetFile {
    /// Opens `path` (`-`: standard input). Fails if it cannot be opened or is a directory.
    pub fn open(path: &Path) -> anyhow::Result<TargetFile> {
        if path == Path::new("-") {
            return Ok(TargetFile {
                name: "<stdin>".to_owned(),
                reader: Box::new(BufReader::new(io::stdin())),
                regular: None,
            });
        }
        let name = path.display().to_string();
        let file =
            File::open(path).with_context(|| format!("could not open the targets file {name}"))?;
        let metadata = file
            .metadata()
            .with_context(|| format!("could not read the targets file {name}"))?;
        if metadata.is_dir() {
            bail!("the targets file {name} is a directory; give a file of one target a line");
        }
        let regular = if metadata.is_file() {
            Some(
                file.try_clone()
                    .with_context(|| format!("could not read the targets file {name}"))?,
            )
        } else {
            None
        };
        Ok(TargetFile {
            name,
            reader: Box::new(BufReader::new(file)),
            regular,
        })
    }

    /// The widest target of a regular file and whether it names a host, read ahead of the run
    /// (and the file rewound); `None` for a pipe or a terminal, whose lines come only once.
    pub fn layout(&mut self, family: Family) -> anyhow::Result<Option<Layout>> {
        let Some(file) = &mut self.regular else {
            return Ok(None);
        };
        let mut layout = Layout::default();
        let mut lines = Lines::new(BufReader::new(&*file), &self.name, family);
        let unreadable = || format!("could not read the targets file {}", self.name);
        while let Some(line) = lines.next() {
            if let Line::Spec(spec) = line.with_context(unreadable)? {
                layout.add(&spec);
            }
        }
        file.seek(SeekFrom::Start(0)).with_context(unreadable)?;
        Ok(Some(layout))
    }

    /// The file's lines, parsed.
    pub fn lines(self, family: Family) -> Lines<Box<dyn BufRead + Send>> {
        Lines::new(self.reader, &self.name, family)
    }
}

/// What the target column of text output needs to know of some specs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    /// The widest target, as printed.
    pub widest: usize,
    /// Whether some host is a name, and the address checked is worth a column.
    pub has_host_names: bool,
}

impl Layout {
    pub fn add(&mut self, spec: &Spec) {
        self.widest = self.widest.max(spec.widest_name());
        self.has_host_names |= spec.has_host_name();
    }

    pub fn merge(&mut self, other: Layout) {
        self.widest = self.widest.max(other.widest);
        self.has_host_names |= other.has_host_names;
    }
}

/// A line of a targets file that is not blank or a comment.
#[derive(Debug)]
pub enum Line {
    Spec(Spec),
    Invalid(InvalidTarget),
}

/// The lines of a targets file, one at a time.
pub struct Lines<R> {
    reader: R,
    name: String,
    family: Family,
    number: usize,
    buffer: Vec<u8>,
}

impl<R: BufRead> Lines<R> {
    pub fn new(reader: R, name: &str, family: Family) -> Lines<R> {
        Lines {
            reader,
            name: name.to_owned(),
            family,
            number: 0,
            buffer: Vec::new(),
        }
    }

    /// The next line with a spec in it, parsed; `None` at the end of the file.
    pub fn next(&mut self) -> Option<io::Result<Line>> {
        loop {
            let too_long = match read_line(&mut self.reader, &mut self.buffer) {
                Ok(Some(too_long)) => too_long,
                Ok(None) => return None,
                Err(error) => return Some(Err(error)),
            };
            self.number += 1;
            let line = self.parse(too_long);
            if self.buffer.capacity() > KEPT_BUFFER {
                self.buffer = Vec::new();
            }
            if let Some(line) = line {
                return Some(Ok(line));
            }
        }
    }

    /// The line in the buffer, or `None` if it holds no spec.
    fn parse(&self, too_long: bool) -> Option<Line> {
        let source = Source::File {
            path: self.name.clone(),
            line: self.number,
        };
        let text = match std::str::from_utf8(&self.buffer) {
            Ok(text) => text,
            // A line cut inside a character is still text up to the cut.
            Err(error) if too_long && error.error_len().is_none() => {
                std::str::from_utf8(&self.buffer[..error.valid_up_to()]).unwrap_or_default()
            }
            Err(_) => {
                let text = String::from_utf8_lossy(&self.buffer);
                let reason = "the line is not valid UTF-8".to_owned();
                return Some(Line::Invalid(InvalidTarget::new(
                    source,
                    text.trim(),
                    reason,
                )));
            }
        };
        let has_comment = text.contains('#');
        let spec = strip_comment(text).trim();
        if too_long && !has_comment {
            let reason = format!(
                "the line is longer than {} MiB; write one target a line",
                MAX_LINE >> 20
            );
            return Some(Line::Invalid(InvalidTarget::new(source, spec, reason)));
        }
        if spec.is_empty() {
            return None;
        }
        Some(match parse_spec(spec, self.family) {
            Ok(spec) => Line::Spec(spec),
            Err(reason) => Line::Invalid(InvalidTarget::new(source, spec, reason)),
        })
    }
}

fn strip_comment(line: &str) -> &str {
    line.split_once('#').map_or(line, |(before, _)| before)
}

/// Reads the next line into `buffer` without its `\n`, keeping at most [`MAX_LINE`] bytes of
/// it. `None` at the end of the input, else whether the line was longer than that.
fn read_line(reader: &mut impl BufRead, buffer: &mut Vec<u8>) -> io::Result<Option<bool>> {
    buffer.clear();
    let mut read_any = false;
    let mut too_long = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        if available.is_empty() {
            return Ok(read_any.then_some(too_long));
        }
        read_any = true;
        let newline = available.iter().position(|&byte| byte == b'\n');
        let line_part = &available[..newline.unwrap_or(available.len())];
        let room = MAX_LINE.saturating_sub(buffer.len());
        too_long |= line_part.len() > room;
        buffer.extend_from_slice(&line_part[..line_part.len().min(room)]);
        let used = newline.map_or(available.len(), |at| at + 1);
        reader.consume(used);
        if newline.is_some() {
            return Ok(Some(too_long));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use tcp_shaker::Target;

    fn read_all(text: &[u8]) -> (Vec<String>, Vec<InvalidTarget>) {
        let mut lines = Lines::new(text, "targets.txt", Family::Any);
        let (mut targets, mut invalid) = (Vec::new(), Vec::new());
        while let Some(line) = lines.next() {
            match line.unwrap() {
                Line::Spec(spec) => targets.extend(spec.into_targets().map(|t| t.to_string())),
                Line::Invalid(refused) => invalid.push(refused),
            }
        }
        (targets, invalid)
    }

    #[test]
    fn files_skip_blank_lines_and_comments_and_number_bad_lines() {
        let text =
            "# services\n\ndb:5432  # the database\n  cache:6379\nbad line\n\n[::1]:1-2\r\ndb:5432";
        let (targets, invalid) = read_all(text.as_bytes());
        assert_eq!(
            targets,
            ["db:5432", "cache:6379", "[::1]:1", "[::1]:2", "db:5432"]
        );
        assert_eq!(invalid.len(), 1);
        assert_eq!(
            invalid[0].source,
            Source::File {
                path: "targets.txt".into(),
                line: 5
            }
        );
        assert!(
            invalid[0]
                .to_string()
                .starts_with("targets.txt:5: \"bad line\": "),
            "{}",
            invalid[0]
        );
    }

    #[test]
    fn lines_that_are_not_text_are_reported() {
        let (targets, invalid) = read_all(b"db:1\n\xff\xfe:80\n");
        assert_eq!(targets, ["db:1"]);
        assert_eq!(invalid[0].reason, "the line is not valid UTF-8");
    }

    #[test]
    fn a_huge_line_is_refused_in_part_and_the_next_lines_still_read() {
        let mut text = "x".repeat(3 * MAX_LINE).into_bytes();
        text.extend_from_slice(b"\ndb:1\n# ");
        text.extend_from_slice("y".repeat(2 * MAX_LINE).as_bytes());
        text.extend_from_slice(b"\ndb:2 #");
        text.extend_from_slice("z".repeat(2 * MAX_LINE).as_bytes());
        let (targets, invalid) = read_all(&text);
        assert_eq!(targets, ["db:1", "db:2"]);
        assert_eq!(invalid.len(), 1, "{invalid:?}");
        assert!(
            invalid[0].reason.contains("longer than 1 MiB"),
            "{invalid:?}"
        );
        assert_eq!(invalid[0].input.chars().count(), 101);
    }

    #[test]
    fn a_regular_file_is_laid_out_ahead_and_read_again_from_its_start() {
        let path = std::env::temp_dir().join(format!("tcp-checker-unit-{}", std::process::id()));
        std::fs::write(&path, "127.0.0.1:1-65535\n# db:1\nbad\n").unwrap();
        let mut file = TargetFile::open(&path).unwrap();
        let layout = file.layout(Family::Any).unwrap();
        assert_eq!(
            layout,
            Some(Layout {
                widest: "127.0.0.1:65535".len(),
                has_host_names: false
            })
        );
        let mut lines = file.lines(Family::Any);
        let Some(Ok(Line::Spec(spec))) = lines.next() else {
            panic!("the first line again");
        };
        assert_eq!(spec.first(), &"127.0.0.1:1".parse::<Target>().unwrap());
        std::fs::remove_file(&path).unwrap();
        assert!(TargetFile::open(&std::env::temp_dir()).is_err());
        assert!(TargetFile::open(Path::new("/nonexistent/targets")).is_err());
    }
}
