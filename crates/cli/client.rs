//! `gridline client`: an interactive prompt, or requests from standard input.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use clap::Args;
use gridline_client::{Client, Reply, Unasked};

#[derive(Args, Debug)]
pub struct ClientArgs {
    /// The server's address.
    #[arg(long, default_value = crate::DEFAULT_ADDR)]
    pub addr: String,
    /// A token to authenticate with first.
    #[arg(long, env = "GRIDLINE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Seconds to wait for a connection, and for each reply (1 to 86,400):
    /// a server that does not answer ends the client with a message.
    #[arg(long, value_name = "SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub timeout: u64,
}

/// Connects to `addr`, waiting at most `wait` (`--timeout`) for the
/// connection and for each reply after it: a server that does not answer
/// (or another program on the port) ends the command with a message rather
/// than a hang. (`client` and `simulate`.)
pub(crate) async fn connect(addr: &str, wait: std::time::Duration) -> anyhow::Result<Client> {
    Client::connect_within(addr, wait).await.map_err(|e| named_flag(e).context(addr.to_string()))
}

/// A client error, a wait that passed naming the flag that sets it.
pub(crate) fn named_flag(e: gridline_client::ClientError) -> anyhow::Error {
    use gridline_client::ClientError;
    match e {
        ClientError::Timeout(w) => {
            anyhow::anyhow!("no reply in {} s (--timeout): the server is not answering", w.as_secs())
        }
        ClientError::NoConnection(w) => anyhow::anyhow!("no connection in {} s (--timeout)", w.as_secs()),
        e => e.into(),
    }
}

/// `c.call(line)`: a wait that passed is the command's error, any other
/// the request's.
async fn call(c: &mut Client, line: &str) -> anyhow::Result<Result<Reply, gridline_client::ClientError>> {
    match c.call(line).await {
        Err(e @ gridline_client::ClientError::Timeout(_)) => Err(named_flag(e)),
        r => Ok(r),
    }
}

pub fn run(a: ClientArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let wait = std::time::Duration::from_secs(a.timeout);
    rt.block_on(async move {
        if !a.addr.contains(':') {
            anyhow::bail!("--addr {}: no port; give HOST:PORT or IP:PORT, e.g. 127.0.0.1:7700", a.addr);
        }
        let mut c = connect(&a.addr, wait).await?;
        let interactive = std::io::stdin().is_terminal();
        let mut failures = 0u64;
        // The last AUTH that was answered OK, to give again on a new connection.
        let mut auth: Option<String> = None;
        if let Some(t) = &a.token {
            let line = gridline_client::auth_request(t);
            let r = call(&mut c, &line).await??;
            if interactive || !r.is_ok() {
                print_reply(&r)?;
            }
            if !r.is_ok() {
                return Ok(ExitCode::FAILURE);
            }
            auth = Some(line);
        }
        if interactive {
            errln!("connected to {}; type HELP for the verbs, QUIT to leave", a.addr);
        }
        let stdin = std::io::stdin();
        let mut lines = stdin.lock().lines();
        let mut n = 0;
        loop {
            if interactive {
                out!("gridline> ")?;
            }
            let Some(line) = lines.next() else {
                if interactive {
                    // Ctrl-D: the shell's prompt on a line of its own.
                    out!("\n")?;
                }
                break;
            };
            n += 1;
            let line = anyhow::Context::with_context(line, || format!("reading line {n} of the input"))?;
            // A byte order mark (a file saved by a Windows editor) is not part of the verb.
            // Only ASCII white space is the line's own: any other (an ideographic
            // space ending a bare value, say) is the value's, as the server reads it.
            let t = if n == 1 { line.trim_start_matches('\u{feff}') } else { &line }
                .trim_matches(|c: char| c.is_ascii_whitespace());
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            // The server may have closed the connection while nothing was
            // asked (idle too long, say), with a line saying why: that line
            // is not this request's reply, and this request was never read.
            // Connect again, authenticate as before, and send it there.
            if let Some(u) = c.unasked().await.unwrap_or(Some(Unasked::Closed)) {
                if let Unasked::Said(r) = &u {
                    errln!("the server, unasked: {}", brief(r));
                }
                errln!("the server closed the connection; connecting again");
                c = connect(&a.addr, wait).await?;
                if let Some(line) = &auth {
                    let r = call(&mut c, line).await??;
                    if !r.is_ok() {
                        print_reply(&r)?;
                        return Ok(ExitCode::FAILURE);
                    }
                }
            }
            let r = match call(&mut c, t).await.map_err(|e| e.context(format!("line {n} of the input")))? {
                Ok(r) => r,
                // Before its reply: what line `n` asked is unknown, and the
                // lines after it are not sent.
                Err(gridline_client::ClientError::Closed) => {
                    anyhow::bail!("the server closed the connection before it answered line {n} of the input")
                }
                Err(e) => return Err(anyhow::Error::new(e).context(format!("line {n} of the input"))),
            };
            if !r.is_ok() {
                failures += 1;
            }
            print_reply(&r)?;
            // `QUIT`, answered: the server closes the connection. Requests
            // after it in a script are not sent, which is a failure to say.
            let verb = t.split_ascii_whitespace().next().unwrap_or_default();
            if verb.eq_ignore_ascii_case("quit") && r.is_ok() {
                if !interactive {
                    let left = lines
                        .map_while(Result::ok)
                        .filter(|l| {
                            let l = l.trim_matches(|c: char| c.is_ascii_whitespace());
                            !l.is_empty() && !l.starts_with('#')
                        })
                        .count();
                    if left > 0 {
                        errln!("line {n} was QUIT: the {left} requests after it were not sent");
                        return Ok(ExitCode::FAILURE);
                    }
                }
                break;
            }
            if verb.eq_ignore_ascii_case("auth") {
                auth = r.is_ok().then(|| t.to_string());
            }
        }
        Ok(if failures > 0 && !interactive { ExitCode::from(2) } else { ExitCode::SUCCESS })
    })
}

/// A reply on one line, for a notice: `ERR code: message`, or `OK`.
fn brief(r: &Reply) -> String {
    match r {
        Reply::Err { code, message } => format!("ERR {code}: {}", escape_controls(message)),
        Reply::Ok { .. } => "OK".into(),
    }
}

/// Prints a reply readably: `OK` fields one per line, items as indented
/// blocks. A newline or other control character in a value or a message is
/// printed escaped (`\n`), so every printed line is one the reply has.
fn print_reply(r: &Reply) -> anyhow::Result<()> {
    match r {
        Reply::Err { code, message } => outln!("ERR {code}: {}", escape_controls(message))?,
        Reply::Ok { fields, items } => {
            let width = fields.0.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
            outln!("OK")?;
            for (k, v) in &fields.0 {
                outln!("  {k:width$}  {}", escape_controls(v))?;
            }
            for (kind, f) in items {
                let line: Vec<String> =
                    f.0.iter().map(|(k, v)| format!("{k}={}", escape_controls(v))).collect();
                outln!("  {kind}  {}", line.join("  "))?;
            }
        }
    }
    Ok(())
}

/// `s` with its control characters escaped as Rust writes them (`\n`,
/// `\t`, `\u{1b}`); anything else, Chinese included, as it is.
fn escape_controls(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return s.into();
    }
    s.chars()
        .map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() })
        .collect::<String>()
        .into()
}
