//! `install.sh`: the POSIX `sh` script an invite serves. It downloads the agent and the `.msh`
//! through the same invite (checking the server against the root certificate it carries), puts
//! them in one folder and starts the agent in the background with `nohup`.
//!
//! It does not install a service (systemd unit, init script): that is the installers' job, so an
//! agent started this way does not survive a reboot. The folder is `$TETHER_INSTALL_DIR` when set,
//! else `/usr/local/lib/tether-agent` for root, else `$HOME/.local/lib/tether-agent`.
//! `$TETHER_AGENT_ARGS` adds flags to `tether-agent run` (e.g. `--small-key`).

use time::OffsetDateTime;

pub struct ScriptInput<'a> {
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
# $HOME/.local/lib/tether-agent, and starts the agent in the background with nohup. No system
# service is installed: after a reboot, start it again (or set up a service).
# $TETHER_AGENT_ARGS adds flags to `tether-agent run` (e.g. --small-key).
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

# Stop the agent an earlier run of this script started here: two processes with one identity
# would keep replacing each other's connection.
if [ -f "$dir/agent.pid" ]; then
    old=$(cat "$dir/agent.pid")
    if [ -n "$old" ] && [ "$(cat "/proc/$old/comm" 2>/dev/null)" = tether-agent ]; then
        kill "$old" 2>/dev/null || true
    fi
    rm -f "$dir/agent.pid"
fi
mv -f "$dir/tether-agent.new" "$dir/tether-agent"
mv -f "$dir/agent.msh.new" "$dir/agent.msh"

# stdin from /dev/null: when this script is piped into sh, the agent must not read the rest of it.
# TETHER_AGENT_ARGS is split into words on purpose.
nohup "$dir/tether-agent" run --config "$dir/agent.msh" --state "$dir/state" ${TETHER_AGENT_ARGS:-} \
    </dev/null >>"$dir/agent.log" 2>&1 &
echo $! > "$dir/agent.pid"
echo "tether-agent install: started the agent (pid $!); its log is $dir/agent.log"
"#;

pub fn render(input: &ScriptInput<'_>) -> String {
    let mut pem = input.root_cert_pem.to_owned();
    if !pem.ends_with('\n') {
        pem.push('\n');
    }
    // Only in a comment, but a newline there would end it.
    let group: String = input
        .group_name
        .chars()
        .map(|c| if c.is_control() || c == '"' { ' ' } else { c })
        .collect();
    TEMPLATE
        .replace("@GROUP@", &group)
        .replace("@EXPIRES@", &utc(input.expires))
        .replace("@AUTHORITY@", input.authority)
        .replace("@TOKEN@", input.token)
        .replace("@ROOT_PEM@", &pem)
}

/// `2025-01-31 17:05 UTC`.
pub fn utc(unix_secs: i64) -> String {
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
mod tests {
    use super::*;

    #[test]
    fn fills_in_the_invite_and_keeps_the_pem_intact() {
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----";
        let script = render(&ScriptInput {
            authority: "h.example:8443",
            token: "abc.def",
            group_name: "Lab\n rm -rf /",
            expires: 0,
            root_cert_pem: pem,
        });
        assert!(script.starts_with("#!/bin/sh\n"));
        assert!(script.contains("base='https://h.example:8443/api/invite/abc.def'\n"));
        assert!(script.contains(&format!("{pem}\nTETHER_ROOT_CERT\n")));
        assert!(script.contains("# Tether agent installer for device group \"Lab  rm -rf /\""));
        assert!(script.contains("stops working at 1970-01-01 00:00 UTC."));
        assert!(!script.contains('@'), "every placeholder is filled");
    }
}
