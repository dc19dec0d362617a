//! `tcp-checker man`: the manual page, in roff.
//!
//! clap_mangen renders what it knows from the flags (title, name, options by heading, version);
//! this module adds the rest as sections of their own: a synopsis with every form and its
//! placeholders, a description, each subcommand with its options (on this page: there are no
//! pages per subcommand), the exit status, the environment, the JSON output and examples.

use std::io::{self, Write};

use clap::{Arg, Command, CommandFactory};
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, italic, roman};

use crate::args::Cli;
use crate::guide;

/// Every form of the command line, one a line.
const SYNOPSIS: &str = "\
tcp-checker [OPTIONS] [-a ADDR]... [-f FILE]... [TARGET]...
tcp-checker --wait TIME [OPTIONS] TARGET... [-- COMMAND [ARG]...]
tcp-checker bench [OPTIONS] [TARGET]
tcp-checker completions SHELL
tcp-checker man";

const DESCRIPTION: &[&str] = &[
    "tcp-checker checks that TCP ports are open without the checked server's application ever \
     seeing a connection: it sends SYN, takes the SYN-ACK, and answers RST, so the connection \
     never becomes established and accept() never returns it.",
    "Targets are host:port, [v6]:port (with a zone for a link-local address, \
     [fe80::1%eth0]:22), port lists host:80,443, ranges host:8000-8100 and mixes \
     host:22,80,8000-8010, given as arguments, with -a, or one a line in files given with -f \
     (- is standard input; blank lines and # comments are ignored). A target given twice is \
     checked once. Each check prints a line: the target, the address checked when a target is \
     a host name, the outcome (open, closed, timed out, unreachable, or error) and the time.",
];

/// The roff preamble that every rendering of clap_mangen starts with; the page keeps one.
const PREAMBLE: &[u8] = b".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";

/// Writes the manual page.
pub fn render(out: &mut dyn Write) -> io::Result<()> {
    let command = Cli::command().override_usage(SYNOPSIS);
    let man = Man::new(command.clone());
    let mut page = Page::default();
    page.add(|w| man.render_title(w))?;
    page.add(|w| man.render_name_section(w))?;
    page.add(|w| man.render_synopsis_section(w))?;
    page.add_roff(description)?;
    page.add(|w| man.render_options_section(w))?;
    page.add_roff(|roff| subcommands(roff, &command))?;
    page.add_roff(exit_status)?;
    page.add_roff(environment)?;
    page.add_roff(json_output)?;
    page.add_roff(examples)?;
    page.add(|w| man.render_version_section(w))?;
    out.write_all(&page.text)
}

/// The page as its sections are rendered, with one roff preamble.
#[derive(Default)]
struct Page {
    text: Vec<u8>,
}

impl Page {
    /// Appends what `render` writes, less the preamble the page already has.
    fn add(&mut self, render: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> io::Result<()> {
        let mut section = Vec::new();
        render(&mut section)?;
        let section = match section.strip_prefix(PREAMBLE) {
            Some(rest) if !self.text.is_empty() => rest,
            _ => &section,
        };
        self.text.extend_from_slice(section);
        Ok(())
    }

    /// Appends a section that `write` puts in a [`Roff`].
    fn add_roff(&mut self, write: impl FnOnce(&mut Roff)) -> io::Result<()> {
        let mut roff = Roff::new();
        write(&mut roff);
        self.add(|w| roff.to_writer(w))
    }
}

fn description(roff: &mut Roff) {
    roff.control("SH", ["DESCRIPTION"]);
    for (number, paragraph) in DESCRIPTION.iter().enumerate() {
        if number > 0 {
            roff.control("PP", []);
        }
        roff.text([roman(*paragraph)]);
    }
}

/// Each subcommand, its synopsis, what it does and its options.
fn subcommands(roff: &mut Roff, command: &Command) {
    roff.control("SH", ["SUBCOMMANDS"]);
    for subcommand in command.get_subcommands() {
        let mut synopsis = format!("tcp-checker {}", subcommand.get_name());
        if subcommand.get_arguments().any(|arg| !arg.is_positional()) {
            synopsis.push_str(" [OPTIONS]");
        }
        for positional in subcommand.get_positionals() {
            synopsis.push_str(&format!(" {}", placeholder(positional)));
        }
        roff.control("SS", [synopsis.as_str()]);
        if let Some(about) = subcommand.get_about() {
            roff.text([roman(about.to_string())]);
        }
        for arg in subcommand.get_arguments().filter(|arg| !arg.is_hide_set()) {
            option(roff, arg);
        }
    }
}

/// An option as a tagged paragraph: `-n, --count <N> [default: 100000]`, then its help.
fn option(roff: &mut Roff, arg: &Arg) {
    roff.control("TP", []);
    let mut header = Vec::new();
    if arg.is_positional() {
        header.push(italic(placeholder(arg)));
    }
    if let Some(short) = arg.get_short() {
        header.push(bold(format!("-{short}")));
    }
    if let Some(long) = arg.get_long() {
        if arg.get_short().is_some() {
            header.push(roman(", "));
        }
        header.push(bold(format!("--{long}")));
    }
    if !arg.is_positional() && arg.get_action().takes_values() {
        header.push(roman(" "));
        header.push(italic(placeholder(arg)));
    }
    let defaults = arg
        .get_default_values()
        .iter()
        .map(|value| value.to_string_lossy());
    if let Some(defaults) = comma_list(defaults) {
        header.push(roman(format!(" [default: {defaults}]")));
    }
    roff.text(header);
    if let Some(help) = arg.get_help() {
        roff.text([roman(help.to_string())]);
    }
    if !arg.get_action().takes_values() {
        return;
    }
    let values = arg.get_possible_values();
    if let Some(values) = comma_list(values.iter().map(|value| value.get_name())) {
        roff.control("br", []);
        roff.text([roman(format!("One of: {values}."))]);
    }
}

/// The value name of an argument as clap_mangen writes it: `<N>`, `<TIME>`, `[TARGET]`.
fn placeholder(arg: &Arg) -> String {
    let name = arg
        .get_value_names()
        .and_then(|names| names.first())
        .map_or_else(
            || arg.get_id().to_string().to_uppercase(),
            ToString::to_string,
        );
    match (arg.is_positional(), arg.is_required_set()) {
        (true, false) => format!("[{name}]"),
        (true, true) => name,
        (false, _) => format!("<{name}>"),
    }
}

/// `items` separated by commas, or `None` if there are none.
fn comma_list<T: AsRef<str>>(items: impl Iterator<Item = T>) -> Option<String> {
    let items: Vec<T> = items.collect();
    if items.is_empty() {
        return None;
    }
    let items: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
    Some(items.join(", "))
}

/// Tagged paragraphs: each term in bold, then what it means.
fn terms(roff: &mut Roff, terms: &[(&str, &str)]) {
    for (term, meaning) in terms {
        roff.control("TP", []);
        roff.text([bold(*term)]);
        roff.text([roman(*meaning)]);
    }
}

fn exit_status(roff: &mut Roff) {
    roff.control("SH", ["EXIT STATUS"]);
    terms(roff, guide::EXIT_STATUSES);
    for note in guide::EXIT_NOTES {
        roff.control("PP", []);
        roff.text([roman(*note)]);
    }
}

fn environment(roff: &mut Roff) {
    roff.control("SH", ["ENVIRONMENT"]);
    terms(roff, guide::ENVIRONMENT);
}

fn json_output(roff: &mut Roff) {
    roff.control("SH", ["JSON OUTPUT"]);
    roff.text([roman(
        "With --json, tcp-checker prints one object a line (NDJSON), its kind in the field \
         \"type\". The field names are stable; times are milliseconds, rounded to the \
         microsecond.",
    )]);
    terms(roff, guide::JSON_OBJECTS);
}

fn examples(roff: &mut Roff) {
    roff.control("SH", ["EXAMPLES"]);
    terms(roff, guide::EXAMPLES);
}
