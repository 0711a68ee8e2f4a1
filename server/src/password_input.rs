//! The password of `--createaccount` / `--resetaccount`. On the command line (`--pass PW`) it is
//! visible to every local user in `ps` and stays in shell history, so it may instead come from the
//! TETHER_PASSWORD environment variable (clap reads it into `--pass`), from one line on standard
//! input (`--pass -`, not echoed on a terminal), or, with neither, from a prompt on the terminal.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};

/// The password for `account`, given `--pass` (or TETHER_PASSWORD) as `given`.
pub(crate) fn account_password(given: Option<&str>, account: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    let prompt = format!("Password for {account}: ");
    match given {
        Some("-") if terminal => hidden_line(&prompt),
        Some("-") => first_line(stdin.lock()),
        Some("") => bail!("the password is empty"),
        Some(password) => Ok(password.to_owned()),
        None if terminal => {
            let first = hidden_line(&prompt)?;
            if first != hidden_line("Again: ")? {
                bail!("the two passwords differ");
            }
            Ok(first)
        }
        None => bail!(
            "no password for {account}: set TETHER_PASSWORD, or give --pass - and write it on standard input"
        ),
    }
}

/// The first line of `input` without its line ending; an empty one is an error.
fn first_line(mut input: impl BufRead) -> anyhow::Result<String> {
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

    #[test]
    fn a_given_password_is_used_as_it_is() {
        assert_eq!(account_password(Some("pw 1"), "a").unwrap(), "pw 1");
        assert!(account_password(Some(""), "a").is_err());
    }

    #[test]
    fn standard_input_gives_its_first_line_without_the_line_ending() {
        assert_eq!(
            first_line(&b"s3cret pass\nmore\n"[..]).unwrap(),
            "s3cret pass"
        );
        assert_eq!(first_line(&b"crlf\r\n"[..]).unwrap(), "crlf");
        assert!(first_line(&b"\n"[..]).is_err());
        assert!(first_line(&b""[..]).is_err());
    }
}
