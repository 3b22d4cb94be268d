//! A real browser for tests: headless Chromium driven over the DevTools protocol on a pipe
//! (`--remote-debugging-pipe`: fd 3 in, fd 4 out, NUL-separated JSON), so no driver or
//! WebSocket library is needed.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

/// Chromium, or `None` (with a printed line) where it is not installed. CI sets
/// `TELLTALE_REQUIRE_BROWSER=1`, and there a missing browser fails the test.
pub fn chromium() -> Option<PathBuf> {
    let found = ["chromium", "chromium-browser", "google-chrome"].iter().find_map(|name| {
        let out = Command::new("which").arg(name).output().ok()?;
        out.status.success().then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
    });
    if found.is_none() {
        assert!(
            std::env::var("TELLTALE_REQUIRE_BROWSER").is_err(),
            "TELLTALE_REQUIRE_BROWSER is set but Chromium is not installed"
        );
        eprintln!("skipping the browser test: Chromium is not installed (apt-get install -y chromium)");
    }
    found
}

/// A pipe whose ends close on exec and sit above fd 10 (so that placing the child's ends on
/// fds 3 and 4 can never overwrite one with the other).
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2(2) writes.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0, "pipe");
    let high = |fd: i32| {
        // SAFETY: `fd` is open; the duplicate is owned once, and the original closed.
        unsafe {
            let copy = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10);
            assert!(copy >= 10, "fcntl");
            libc::close(fd);
            OwnedFd::from_raw_fd(copy)
        }
    };
    (high(fds[0]), high(fds[1]))
}

/// One headless Chromium with one page.
pub struct Browser {
    child: Child,
    to: File,
    from: BufReader<File>,
    next_id: u64,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub fn launch(binary: &PathBuf) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let (command_read, command_write) = pipe();
        let (answer_read, answer_write) = pipe();
        let (command_read, answer_write) = (command_read.into_raw_fd(), answer_write.into_raw_fd());
        let mut command = Command::new(binary);
        command
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-pipe",
                &format!("--user-data-dir={}", profile.path().display()),
                "about:blank",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: only async-signal-safe calls (dup2) between fork and exec.
        unsafe {
            command.pre_exec(move || {
                if libc::dup2(command_read, 3) < 0 || libc::dup2(answer_write, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("chromium starts");
        // SAFETY: the child has its copies; close the parent's ends it reads and writes.
        unsafe {
            libc::close(command_read);
            libc::close(answer_write);
        }
        let mut browser = Browser {
            child,
            to: File::from(command_write),
            from: BufReader::new(File::from(answer_read)),
            next_id: 0,
            session: String::new(),
            _profile: profile,
        };
        let target = browser.call(None, "Target.createTarget", json!({"url": "about:blank"}));
        let target_id = target["targetId"].as_str().unwrap().to_string();
        let attached = browser.call(None, "Target.attachToTarget", json!({"targetId": target_id, "flatten": true}));
        browser.session = attached["sessionId"].as_str().unwrap().to_string();
        browser.call(Some(()), "Page.enable", json!({}));
        browser
    }

    fn send(&mut self, session: Option<()>, method: &str, params: Value) -> u64 {
        self.next_id += 1;
        let mut message = json!({"id": self.next_id, "method": method, "params": params});
        if session.is_some() {
            message["sessionId"] = json!(self.session);
        }
        self.to.write_all(message.to_string().as_bytes()).unwrap();
        self.to.write_all(b"\0").unwrap();
        self.to.flush().unwrap();
        self.next_id
    }

    fn read(&mut self) -> Value {
        let mut buf = Vec::new();
        let n = self.from.read_until(0, &mut buf).unwrap();
        assert!(n > 0, "chromium closed its pipe");
        buf.pop();
        serde_json::from_slice(&buf).unwrap()
    }

    /// Calls a method and returns its result (events that arrive meanwhile are dropped).
    fn call(&mut self, session: Option<()>, method: &str, params: Value) -> Value {
        let id = self.send(session, method, params);
        loop {
            let message = self.read();
            if message["id"].as_u64() == Some(id) {
                assert!(message.get("error").is_none(), "{method}: {message}");
                return message["result"].clone();
            }
        }
    }

    /// Runs `action` and waits until the page it leads to has loaded.
    fn and_wait_for_load(&mut self, method: &str, params: Value) {
        let id = self.send(Some(()), method, params);
        let mut answered = false;
        let mut loaded = false;
        while !(answered && loaded) {
            let message = self.read();
            if message["id"].as_u64() == Some(id) {
                assert!(message.get("error").is_none(), "{method}: {message}");
                answered = true;
            } else if message["method"] == "Page.loadEventFired" {
                loaded = true;
            }
        }
    }

    pub fn goto(&mut self, url: &str) {
        self.and_wait_for_load("Page.navigate", json!({"url": url}));
    }

    /// Evaluates JavaScript in the page and returns its value.
    pub fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            Some(()),
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        assert!(result.get("exceptionDetails").is_none(), "{expression}: {result}");
        result["result"]["value"].clone()
    }

    /// Fills the named fields of the form `selector` and submits it as a person would
    /// (`requestSubmit`, which runs the page's submit handlers), then waits for the next page.
    pub fn submit(&mut self, selector: &str, fields: &[(&str, &str)]) {
        let mut script = format!("const f = document.querySelector({});", json!(selector));
        for (name, value) in fields {
            script.push_str(&format!("f.querySelector('[name={name}]').value = {};", json!(value)));
        }
        script.push_str("setTimeout(() => f.requestSubmit(), 0); true");
        self.and_wait_for_load("Runtime.evaluate", json!({"expression": script, "returnByValue": true}));
    }

    pub fn dom(&mut self) -> String {
        self.eval("document.documentElement.outerHTML").as_str().unwrap().to_string()
    }

    pub fn url(&mut self) -> String {
        self.eval("location.href").as_str().unwrap().to_string()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
