//! `telltale run`: runs a command and reports its run, without ever changing its outcome.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt as _;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::task::JoinHandle;

use super::report::{Reporter, new_event, say};

/// The combined output kept: the last 64 KiB, as the server keeps.
pub const OUTPUT_TAIL_BYTES: usize = 64 * 1024;
/// After the command exits, its output pipes are read until they close or this passes (a
/// background process it left behind may hold them open for ever).
const DRAIN_WAIT: Duration = Duration::from_millis(500);

/// What to run and how to name it.
pub struct RunSpec {
    pub slug: String,
    pub run_id: String,
    pub host: Option<String>,
    pub command: Vec<OsString>,
}

/// The last bytes of the combined output.
#[derive(Default)]
pub struct Tail {
    bytes: VecDeque<u8>,
    total: u64,
}

impl Tail {
    pub fn push(&mut self, chunk: &[u8]) {
        self.total += chunk.len() as u64;
        let chunk = &chunk[chunk.len().saturating_sub(OUTPUT_TAIL_BYTES)..];
        let overflow = (self.bytes.len() + chunk.len()).saturating_sub(OUTPUT_TAIL_BYTES);
        self.bytes.drain(..overflow);
        self.bytes.extend(chunk);
    }

    /// True when the kept bytes hold something that is not UTF-8 (beyond a character cut by the
    /// 64 KiB boundary), so that [`Tail::text`] had to replace it.
    pub fn is_lossy(&self) -> bool {
        let (front, back) = self.bytes.as_slices();
        let bytes = [front, back].concat();
        let cut = if self.total > bytes.len() as u64 {
            bytes.iter().take(3).take_while(|b| (**b & 0b1100_0000) == 0b1000_0000).count()
        } else {
            0
        };
        std::str::from_utf8(&bytes[cut..]).is_err()
    }

    /// The kept bytes as text: a character cut by the 64 KiB boundary is dropped, and bytes that
    /// are not UTF-8 become U+FFFD. Never longer than 64 KiB.
    pub fn text(&self) -> String {
        let (front, back) = self.bytes.as_slices();
        let mut bytes = [front, back].concat();
        if self.total > bytes.len() as u64 {
            let cut = bytes.iter().take(3).take_while(|b| (**b & 0b1100_0000) == 0b1000_0000).count();
            bytes.drain(..cut);
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if text.len() <= OUTPUT_TAIL_BYTES {
            return text;
        }
        let mut start = text.len() - OUTPUT_TAIL_BYTES;
        while !text.is_char_boundary(start) {
            start += 1;
        }
        text[start..].to_string()
    }
}

/// Copies a pipe to one of the wrapper's own outputs as it comes, and into the tail. A closed
/// output of the wrapper does not stop the capture.
fn pump(
    mut from: impl AsyncRead + Unpin + Send + 'static,
    mut to: impl AsyncWrite + Unpin + Send + 'static,
    tail: Arc<Mutex<Tail>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        let mut passing = true;
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            tail.lock().unwrap_or_else(|e| e.into_inner()).push(&buf[..n]);
            if passing {
                passing = to.write_all(&buf[..n]).await.is_ok() && to.flush().await.is_ok();
            }
        }
    })
}

/// The signals passed on to the command.
const FORWARDED: [(SignalKind, libc::c_int); 4] = [
    (SignalKind::terminate(), libc::SIGTERM),
    (SignalKind::interrupt(), libc::SIGINT),
    (SignalKind::hangup(), libc::SIGHUP),
    (SignalKind::quit(), libc::SIGQUIT),
];

/// Catches the forwarded signals from now on (so one arriving before the command starts is
/// passed on as soon as it does).
pub struct Signals(Vec<(Signal, libc::c_int)>);

impl Signals {
    pub fn catch() -> Signals {
        let mut caught = Vec::new();
        for (kind, number) in FORWARDED {
            match signal(kind) {
                Ok(stream) => caught.push((stream, number)),
                Err(e) => say(format!("cannot catch signal {number}: {e}")),
            }
        }
        Signals(caught)
    }

    /// The next caught signal's number.
    async fn next(&mut self) -> libc::c_int {
        if self.0.is_empty() {
            return std::future::pending().await;
        }
        let waits = self.0.iter_mut().map(|(stream, number)| {
            let number = *number;
            Box::pin(async move {
                stream.recv().await;
                number
            })
        });
        futures::future::select_all(waits).await.0
    }
}

/// The exit code a shell would show: the code, or 128 + the signal that killed it.
pub fn exit_code(status: ExitStatus) -> i32 {
    status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(1)
}

fn signal_name(number: i32) -> String {
    let name = match number {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGABRT => "SIGABRT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        _ => return format!("signal {number}"),
    };
    name.to_string()
}

fn finish_event(spec: &RunSpec, code: i32, duration: Duration) -> Map<String, Value> {
    let mut event = new_event(if code == 0 { "completed" } else { "failed" }, spec.host.as_deref());
    event.insert("run_id".into(), spec.run_id.clone().into());
    event.insert("exit_code".into(), code.into());
    event.insert("duration_ms".into(), i64::try_from(duration.as_millis()).unwrap_or(i64::MAX).into());
    event
}

/// Runs the command, reports it, and returns the exit code to leave with.
pub async fn run(spec: RunSpec, reporter: &mut Reporter, mut signals: Signals) -> i32 {
    let mut started = new_event("started", spec.host.as_deref());
    started.insert("run_id".into(), spec.run_id.clone().into());
    reporter.report(&spec.slug, started).await;

    let program = spec.command[0].clone();
    let mut command = tokio::process::Command::new(&program);
    command.args(&spec.command[1..]).stdin(Stdio::inherit()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let clock = Instant::now();
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            let duration = clock.elapsed();
            let code = if e.kind() == std::io::ErrorKind::PermissionDenied { 126 } else { 127 };
            let message = format!("cannot run `{}`: {e}", program.to_string_lossy());
            say(&message);
            let mut failed = finish_event(&spec, code, duration);
            failed.insert("message".into(), message.into());
            reporter.report(&spec.slug, failed).await;
            return code;
        }
    };
    let tail = Arc::new(Mutex::new(Tail::default()));
    let mut pumps = Vec::new();
    if let Some(out) = child.stdout.take() {
        pumps.push(pump(out, tokio::io::stdout(), tail.clone()));
    }
    if let Some(err) = child.stderr.take() {
        pumps.push(pump(err, tokio::io::stderr(), tail.clone()));
    }
    let pid = child.id();
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            number = signals.next() => {
                if let Some(pid) = pid {
                    // SAFETY: kill has no memory preconditions; the child is not reaped yet, so
                    // its pid still names it.
                    unsafe { libc::kill(pid as libc::pid_t, number) };
                }
            }
        }
    };
    let duration = clock.elapsed();
    let drained = futures::future::join_all(pumps.iter_mut());
    if tokio::time::timeout(DRAIN_WAIT, drained).await.is_err() {
        pumps.iter().for_each(JoinHandle::abort);
    }

    let (code, message) = match status {
        Ok(status) => {
            let message = status.signal().map(|s| format!("killed by {}", signal_name(s)));
            (exit_code(status), message)
        }
        Err(e) => {
            say(format!("cannot wait for the command: {e}"));
            (1, Some(format!("telltale could not wait for the command: {e}")))
        }
    };
    let mut finished = finish_event(&spec, code, duration);
    let (output, lossy) = {
        let tail = tail.lock().unwrap_or_else(|e| e.into_inner());
        (tail.text(), tail.is_lossy())
    };
    if !output.is_empty() {
        finished.insert("output".into(), output.into());
    }
    if lossy {
        finished.insert("output_lossy".into(), true.into());
    }
    if let Some(message) = message {
        finished.insert("message".into(), message.into());
    }
    reporter.report(&spec.slug, finished).await;
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_keeps_the_last_64_kib_as_text() {
        let mut tail = Tail::default();
        tail.push(b"caf\xe9\n");
        assert_eq!(tail.text(), "caf\u{fffd}\n");
        assert!(tail.is_lossy());

        let mut tail = Tail::default();
        tail.push(&vec![b'a'; OUTPUT_TAIL_BYTES]);
        tail.push("é".as_bytes());
        tail.push(b"end");
        let text = tail.text();
        assert!(text.ends_with("aéend"));
        assert!(text.len() <= OUTPUT_TAIL_BYTES);

        let mut tail = Tail::default();
        tail.push(&vec![b'x'; 3 * OUTPUT_TAIL_BYTES]);
        assert_eq!(tail.text().len(), OUTPUT_TAIL_BYTES);

        // A character cut in two at the start of the tail is dropped, not replaced.
        let mut tail = Tail::default();
        tail.push("é".as_bytes());
        tail.push(&vec![b'b'; OUTPUT_TAIL_BYTES - 1]);
        assert_eq!(tail.text(), "b".repeat(OUTPUT_TAIL_BYTES - 1));
    }

    #[test]
    fn a_signal_becomes_128_plus_its_number() {
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(ExitStatus::from_raw(libc::SIGKILL)), 137);
    }
}
