//! Where a new account's password comes from (`adduser`, `resetpassword`). A password on the
//! command line is visible to every local user in `ps` and stays in shell history, so there are
//! better ways: `--pass-env VAR` (an environment variable), `--pass -` (one line on standard
//! input, not echoed when that is a terminal), or, with no option on a terminal, a prompt.

use std::ffi::OsString;
use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};

use crate::cli::NewPassword;

/// What the options ask for, before anything is read.
#[derive(Debug, PartialEq, Eq)]
enum Source<'a> {
    Given(&'a str),
    StandardInput,
    Environment(&'a str),
    Prompt,
}

fn source(options: &NewPassword) -> Source<'_> {
    match (&options.pass, &options.pass_env) {
        (Some(pass), _) if pass == "-" => Source::StandardInput,
        (Some(pass), _) => Source::Given(pass),
        (None, Some(var)) => Source::Environment(var),
        (None, None) => Source::Prompt,
    }
}

/// The new password for `account`, from wherever the options say.
pub(crate) fn new_password(options: &NewPassword, account: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    match source(options) {
        Source::Given(pass) => Ok(pass.to_owned()),
        Source::Environment(var) => from_environment(var, std::env::var_os(var)),
        Source::StandardInput if terminal => hidden_line(&format!("New password for {account}: ")),
        Source::StandardInput => one_line(stdin.lock()),
        Source::Prompt if terminal => {
            let first = hidden_line(&format!("New password for {account}: "))?;
            let again = hidden_line("Again: ")?;
            if first != again {
                bail!("the two passwords differ");
            }
            Ok(first)
        }
        Source::Prompt => bail!(
            "no password for {account}: give --pass-env VAR, or --pass - and write it on standard input"
        ),
    }
}

fn from_environment(var: &str, value: Option<OsString>) -> anyhow::Result<String> {
    let value = value.with_context(|| format!("the environment variable {var} is not set"))?;
    let value = value
        .into_string()
        .map_err(|_| anyhow::anyhow!("the environment variable {var} is not UTF-8"))?;
    if value.is_empty() {
        bail!("the environment variable {var} is empty");
    }
    Ok(value)
}

/// The first line of `input`, without its line ending; an empty line is an error.
fn one_line(mut input: impl BufRead) -> anyhow::Result<String> {
    let mut line = String::new();
    input
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let line = line.strip_suffix('\n').unwrap_or(&line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.is_empty() {
        bail!("no password on standard input");
    }
    Ok(line.to_owned())
}

/// Asks on the terminal and reads one line from it with echo off (rpassword restores the
/// settings however the read ends, Ctrl-C included); an empty line is an error, as on standard
/// input.
fn hidden_line(prompt: &str) -> anyhow::Result<String> {
    let line =
        rpassword::prompt_password(prompt).context("reading the password from the terminal")?;
    if line.is_empty() {
        bail!("no password on standard input");
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pass: Option<&str>, pass_env: Option<&str>) -> NewPassword {
        NewPassword {
            pass: pass.map(str::to_owned),
            pass_env: pass_env.map(str::to_owned),
        }
    }

    #[test]
    fn options_choose_the_source() {
        assert_eq!(source(&options(Some("pw"), None)), Source::Given("pw"));
        assert_eq!(source(&options(Some("-"), None)), Source::StandardInput);
        assert_eq!(
            source(&options(None, Some("NEW_PW"))),
            Source::Environment("NEW_PW")
        );
        assert_eq!(source(&options(None, None)), Source::Prompt);
    }

    #[test]
    fn standard_input_gives_its_first_line_without_the_line_ending() {
        assert_eq!(
            one_line(&b"s3cret pass\nnext\n"[..]).unwrap(),
            "s3cret pass"
        );
        assert_eq!(one_line(&b"crlf\r\n"[..]).unwrap(), "crlf");
        assert_eq!(one_line(&b"no newline"[..]).unwrap(), "no newline");
        assert!(one_line(&b"\n"[..]).is_err());
        assert!(one_line(&b""[..]).is_err());
    }

    #[test]
    fn the_environment_variable_must_be_set_and_not_empty() {
        assert_eq!(from_environment("V", Some("pw".into())).unwrap(), "pw");
        let unset = from_environment("V", None).unwrap_err().to_string();
        assert!(unset.contains("V is not set"), "{unset}");
        assert!(from_environment("V", Some("".into())).is_err());
    }
}
