//! A small but real SMTP server (RFC 5321) on loopback: EHLO, AUTH PLAIN and LOGIN (RFC 4954),
//! MAIL, RCPT, DATA with dot-unstuffing, RSET, NOOP, QUIT. It records every message it accepts.

use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// One message as the server received it.
#[derive(Debug, Clone, Default)]
pub struct Mail {
    pub helo: String,
    /// (user, password) from AUTH, if the client authenticated.
    pub auth: Option<(String, String)>,
    pub from: String,
    pub to: Vec<String>,
    /// The message as sent after DATA (headers and body), dot-unstuffed, CRLF line ends.
    pub data: String,
}

impl Mail {
    /// A header's value (unfolded), by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or_default();
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                if let Some(v) = value.as_mut() {
                    v.push_str(line.trim_start());
                }
                continue;
            }
            if value.is_some() {
                break;
            }
            if let Some((n, v)) = line.split_once(':')
                && n.eq_ignore_ascii_case(name)
            {
                value = Some(v.trim().to_string());
            }
        }
        value
    }

    pub fn body(&self) -> String {
        self.data.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()
    }

    /// The body decoded from its `Content-Transfer-Encoding`, with `\n` line ends.
    pub fn text(&self) -> String {
        let body = self.body();
        let decoded = match self.header("Content-Transfer-Encoding").unwrap_or_default().to_ascii_lowercase().as_str() {
            "quoted-printable" => {
                let joined = body.replace("=\r\n", "");
                let bytes = joined.as_bytes();
                let mut out = Vec::new();
                let mut i = 0;
                while i < bytes.len() {
                    if bytes[i] == b'='
                        && i + 2 < bytes.len()
                        && let Ok(b) = u8::from_str_radix(&joined[i + 1..i + 3], 16)
                    {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    out.push(bytes[i]);
                    i += 1;
                }
                String::from_utf8_lossy(&out).into_owned()
            }
            "base64" => decode(&body.replace("\r\n", "")),
            _ => body,
        };
        decoded.replace("\r\n", "\n")
    }
}

pub struct SmtpServer {
    pub port: u16,
    rx: mpsc::UnboundedReceiver<Mail>,
}

fn decode(b64: &str) -> String {
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64.trim()).unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

impl SmtpServer {
    pub async fn start() -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read);
                    let mut mail = Mail::default();
                    let say = async |w: &mut tokio::net::tcp::OwnedWriteHalf, text: &str| {
                        let _ = w.write_all(text.as_bytes()).await;
                    };
                    say(&mut write, "220 test.invalid ESMTP ready\r\n").await;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let command = line.trim_end().to_string();
                        let upper = command.to_ascii_uppercase();
                        if upper.starts_with("EHLO") {
                            mail.helo = command[4..].trim().to_string();
                            say(
                                &mut write,
                                "250-test.invalid\r\n250-AUTH PLAIN LOGIN\r\n250-8BITMIME\r\n250 SIZE 10000000\r\n",
                            )
                            .await;
                        } else if upper.starts_with("HELO") {
                            mail.helo = command[4..].trim().to_string();
                            say(&mut write, "250 test.invalid\r\n").await;
                        } else if upper.starts_with("AUTH PLAIN") {
                            let mut arg = command[10..].trim().to_string();
                            if arg.is_empty() {
                                say(&mut write, "334 \r\n").await;
                                line.clear();
                                lines.read_line(&mut line).await.unwrap_or(0);
                                arg = line.trim().to_string();
                            }
                            let decoded = decode(&arg);
                            let mut parts = decoded.split('\0').skip(1);
                            let user = parts.next().unwrap_or_default().to_string();
                            let password = parts.next().unwrap_or_default().to_string();
                            mail.auth = Some((user, password));
                            say(&mut write, "235 2.7.0 Authentication successful\r\n").await;
                        } else if upper.starts_with("AUTH LOGIN") {
                            say(&mut write, "334 VXNlcm5hbWU6\r\n").await;
                            line.clear();
                            lines.read_line(&mut line).await.unwrap_or(0);
                            let user = decode(&line);
                            say(&mut write, "334 UGFzc3dvcmQ6\r\n").await;
                            line.clear();
                            lines.read_line(&mut line).await.unwrap_or(0);
                            mail.auth = Some((user, decode(&line)));
                            say(&mut write, "235 2.7.0 Authentication successful\r\n").await;
                        } else if upper.starts_with("MAIL FROM:") {
                            mail.from = command[10..].trim().to_string();
                            say(&mut write, "250 2.1.0 Ok\r\n").await;
                        } else if upper.starts_with("RCPT TO:") {
                            mail.to.push(command[8..].trim().to_string());
                            say(&mut write, "250 2.1.5 Ok\r\n").await;
                        } else if upper == "DATA" {
                            say(&mut write, "354 End data with <CR><LF>.<CR><LF>\r\n").await;
                            let mut data = String::new();
                            loop {
                                line.clear();
                                if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                                    return;
                                }
                                if line == ".\r\n" || line == ".\n" {
                                    break;
                                }
                                let unstuffed = line.strip_prefix('.').unwrap_or(&line);
                                data.push_str(unstuffed);
                            }
                            mail.data = data;
                            let _ = tx.send(mail.clone());
                            mail.from.clear();
                            mail.to.clear();
                            say(&mut write, "250 2.0.0 Ok: queued\r\n").await;
                        } else if upper == "RSET" || upper == "NOOP" {
                            say(&mut write, "250 2.0.0 Ok\r\n").await;
                        } else if upper == "QUIT" {
                            say(&mut write, "221 2.0.0 Bye\r\n").await;
                            return;
                        } else {
                            say(&mut write, "502 5.5.2 Command not recognized\r\n").await;
                        }
                    }
                });
            }
        });
        SmtpServer { port, rx }
    }

    pub async fn next(&mut self, wait: Duration) -> Option<Mail> {
        tokio::time::timeout(wait, self.rx.recv()).await.ok().flatten()
    }

    pub fn drain(&mut self) -> Vec<Mail> {
        let mut out = Vec::new();
        while let Ok(m) = self.rx.try_recv() {
            out.push(m);
        }
        out
    }
}
