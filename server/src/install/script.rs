//! `install.sh`: the POSIX `sh` script an invite serves. It downloads the agent and the `.msh`
//! through the same invite (checking the server against the root certificate it carries), puts
//! them in one folder and starts the agent: as the systemd service `tether-agent` (enabled, so it
//! survives reboots; the unit is `installers/systemd/tether-agent.service` with this folder) when
//! run as root on a machine systemd runs, else in the background with `nohup`, with a warning
//! that it will not start again after a reboot. `tether-agent uninstall` undoes either.
//!
//! The folder is `$TETHER_INSTALL_DIR` when set, else `/usr/local/lib/tether-agent` for root,
//! else `$HOME/.local/lib/tether-agent`. `$TETHER_AGENT_ARGS` adds flags to `tether-agent run`
//! (e.g. `--small-key`); `TETHER_NO_SERVICE=1` keeps the `nohup` way even under systemd.

use time::OffsetDateTime;

pub(super) struct ScriptInput<'a> {
    /// `host:port`; only host characters (checked by `server_authority`).
    pub authority: &'a str,
    /// base64url and `.` only (a MAC'd token).
    pub token: &'a str,
    pub group_name: &'a str,
    /// Unix seconds.
    pub expires: i64,
    pub root_cert_pem: &'a str,
}

const TEMPLATE: &str = r#"#!/bin/sh
# Tether agent installer for device group "@GROUP@" on @AUTHORITY@.
# The invite in this script stops working at @EXPIRES@.
#
# Installs into $TETHER_INSTALL_DIR when set, else /usr/local/lib/tether-agent as root, else
# $HOME/.local/lib/tether-agent. As root under systemd the agent becomes the tether-agent service
# (started now and at every boot); otherwise it starts in the background with nohup and must be
# started again after a reboot. "$dir/tether-agent uninstall" removes it.
# $TETHER_AGENT_ARGS adds flags to `tether-agent run` (e.g. --small-key); TETHER_NO_SERVICE=1
# keeps the nohup way.
set -eu

base='https://@AUTHORITY@/api/invite/@TOKEN@'

if [ -n "${TETHER_INSTALL_DIR:-}" ]; then
    dir=$TETHER_INSTALL_DIR
elif [ "$(id -u)" = 0 ]; then
    dir=/usr/local/lib/tether-agent
else
    dir=${HOME:?HOME is not set}/.local/lib/tether-agent
fi
umask 077
mkdir -p "$dir/state"

# The server's root certificate: the downloads below must chain to it.
cat > "$dir/root.crt" <<'TETHER_ROOT_CERT'
@ROOT_PEM@TETHER_ROOT_CERT

fetch() {
    if command -v curl >/dev/null 2>&1; then
        curl -fsS --cacert "$dir/root.crt" -o "$2" "$1"
    elif command -v wget >/dev/null 2>&1; then
        wget -q --ca-certificate="$dir/root.crt" -O "$2" "$1"
    else
        echo "tether-agent install: curl or wget is needed" >&2
        exit 1
    fi
}

echo "tether-agent install: downloading into $dir"
fetch "$base/tether-agent" "$dir/tether-agent.new"
fetch "$base/agent.msh" "$dir/agent.msh.new"
chmod 700 "$dir/tether-agent.new"

unit=/etc/systemd/system/tether-agent.service
if [ "$(id -u)" = 0 ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1 \
    && [ -z "${TETHER_NO_SERVICE:-}" ]; then
    service=yes
else
    service=
fi

# Stop the agent an earlier run of this script started: two processes with one identity would
# keep replacing each other's connection.
if [ -f "$unit" ] && command -v systemctl >/dev/null 2>&1; then
    systemctl stop tether-agent.service 2>/dev/null || true
fi
if [ -f "$dir/agent.pid" ]; then
    old=$(cat "$dir/agent.pid")
    if [ -n "$old" ] && [ "$(cat "/proc/$old/comm" 2>/dev/null)" = tether-agent ]; then
        kill "$old" 2>/dev/null || true
    fi
    rm -f "$dir/agent.pid"
fi
mv -f "$dir/tether-agent.new" "$dir/tether-agent"
mv -f "$dir/agent.msh.new" "$dir/agent.msh"

if [ -n "$service" ]; then
    # The unit of installers/systemd/tether-agent.service, with this folder.
    cat > "$unit" <<TETHER_UNIT
[Unit]
Description=Tether agent (remote management of this machine)
After=network-online.target
Wants=network-online.target

[Service]
Type=exec
ExecStart="$dir/tether-agent" run --config "$dir/agent.msh" --state "$dir/state" ${TETHER_AGENT_ARGS:-}
Restart=always
RestartSec=5
KillMode=mixed
TimeoutStopSec=10

[Install]
WantedBy=multi-user.target
TETHER_UNIT
    chmod 644 "$unit"
    systemctl daemon-reload
    systemctl enable tether-agent.service >/dev/null 2>&1
    systemctl restart tether-agent.service
    echo "tether-agent install: started the tether-agent service (also at every boot); remove it with: $dir/tether-agent uninstall"
    exit 0
fi

echo "tether-agent install: warning: not installing a service (needs root and systemd): the agent starts in the background now and not again after a reboot" >&2
# stdin from /dev/null: when this script is piped into sh, the agent must not read the rest of it.
# TETHER_AGENT_ARGS is split into words on purpose.
nohup "$dir/tether-agent" run --config "$dir/agent.msh" --state "$dir/state" ${TETHER_AGENT_ARGS:-} \
    </dev/null >>"$dir/agent.log" 2>&1 &
echo $! > "$dir/agent.pid"
echo "tether-agent install: started the agent (pid $!); its log is $dir/agent.log; remove it with: $dir/tether-agent uninstall"
"#;

/// A field that cannot be put into the script safely. Each is a server-side fault (a bad `--cert`
/// name, a corrupted certificate file), never something a user can cause through the group name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum ScriptError {
    #[error("the server address {0:?} has characters a URL host may not have")]
    Authority(String),
    #[error("the invite token has characters outside base64url and '.'")]
    Token,
    #[error("the root certificate is not a plain PEM certificate")]
    RootPem,
}

/// Fills the template in one pass: each `@NAME@` of the template is replaced by its field, and what
/// a field brings in is never scanned again, so a group name holding `@ROOT_PEM@` stays text.
/// Every field is also checked or reduced for the place it lands in:
/// - the group name only ever lands in a comment, reduced to letters, digits and `._-()` (all else
///   becomes `?`), so no character of it can end the comment or mean anything to `sh`;
/// - the authority and token land inside single quotes and a URL: their character sets contain no
///   quote, space, `$` or backslash;
/// - the PEM lands in a here-document whose delimiter is quoted (no expansion), and must consist of
///   PEM lines only, so it can neither contain the delimiter nor a command.
pub(super) fn render(input: &ScriptInput<'_>) -> Result<String, ScriptError> {
    if !is_authority(input.authority) {
        return Err(ScriptError::Authority(input.authority.to_owned()));
    }
    if input.token.is_empty()
        || !input
            .token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(ScriptError::Token);
    }
    let pem = checked_pem(input.root_cert_pem)?;
    let group = comment_text(input.group_name);
    let expires = utc(input.expires);
    let field = |name: &str| -> Option<&str> {
        match name {
            "GROUP" => Some(&group),
            "EXPIRES" => Some(&expires),
            "AUTHORITY" => Some(input.authority),
            "TOKEN" => Some(input.token),
            "ROOT_PEM" => Some(&pem),
            _ => None,
        }
    };
    Ok(fill(TEMPLATE, field))
}

/// One left-to-right pass over `template`; `@NAME@` with a known NAME is replaced, anything else
/// is copied as it is.
fn fill<'a>(template: &str, field: impl Fn(&str) -> Option<&'a str>) -> String {
    let mut out = String::with_capacity(template.len() + 4096);
    let mut rest = template;
    while let Some(at) = rest.find('@') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        match after
            .find('@')
            .and_then(|end| field(&after[..end]).map(|value| (end, value)))
        {
            Some((end, value)) => {
                out.push_str(value);
                rest = &after[end + 1..];
            }
            None => {
                out.push('@');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn is_authority(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 300
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
}

/// The PEM with a final newline, if every line is a PEM armour line or base64.
fn checked_pem(pem: &str) -> Result<String, ScriptError> {
    let pem = pem.trim_end_matches('\n');
    let armour =
        |line: &str| line == "-----BEGIN CERTIFICATE-----" || line == "-----END CERTIFICATE-----";
    let base64 = |line: &str| {
        !line.is_empty()
            && line
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+/=".contains(c))
    };
    let lines: Vec<&str> = pem.lines().map(|l| l.trim_end_matches('\r')).collect();
    if lines.is_empty() || !lines.iter().all(|l| armour(l) || base64(l)) {
        return Err(ScriptError::RootPem);
    }
    Ok(lines.join("\n") + "\n")
}

/// A name as it may appear in a `#` comment: at most 64 characters, letters and digits of any
/// script, spaces and `._-()`; everything else (quotes, `$`, `@`, control, bidi and line-separator
/// characters) becomes `?`.
fn comment_text(name: &str) -> String {
    name.chars()
        .take(64)
        .map(|c| {
            if c.is_alphanumeric() || " ._-()".contains(c) {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// `2025-01-31 17:05 UTC`.
pub(super) fn utc(unix_secs: i64) -> String {
    match OffsetDateTime::from_unix_timestamp(unix_secs) {
        Ok(t) => format!(
            "{}-{:02}-{:02} {:02}:{:02} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute()
        ),
        Err(_) => format!("unix time {unix_secs}"),
    }
}

#[cfg(test)]
#[path = "script_tests.rs"]
mod tests;
