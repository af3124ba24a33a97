//! The README's walkthrough, word for word, against the real binary: its server command starts
//! Herald, then one bash session (a newcomer's second terminal) runs each numbered step, and after
//! each step the test checks what the README says happened. A step the README gains without a
//! check here fails the test, so the walkthrough cannot drift from what Herald does.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The README's walkthrough section: its shell blocks and its prose.
struct Walkthrough {
    prose: String,
    server: String,
    /// `(step number, lines)`; number 0 is what comes before the first numbered step.
    steps: Vec<(u32, String)>,
}

fn walkthrough() -> Walkthrough {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).unwrap();
    let start = readme.find("## A one-minute walkthrough").expect("the README has a walkthrough");
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let mut blocks = section.split("```sh\n").skip(1).map(|b| &b[..b.find("```").unwrap()]);
    let server = blocks.next().expect("a block that starts the server").trim().to_owned();
    let mut steps: Vec<(u32, String)> = vec![(0, String::new())];
    for line in blocks.flat_map(str::lines) {
        let number = line.strip_prefix("# ").and_then(|l| l.split_once(". ")).and_then(|(n, _)| n.parse().ok());
        match number {
            Some(n) => steps.push((n, format!("{line}\n"))),
            None => steps.last_mut().unwrap().1.push_str(&format!("{line}\n")),
        }
    }
    Walkthrough { prose: section.to_owned(), server, steps }
}

/// Everything a child process printed, collected by a reader thread.
#[derive(Clone, Default)]
struct Output(Arc<Mutex<String>>);

impl Output {
    fn collect(&self, from: impl Read + Send + 'static) {
        let out = self.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(from).lines() {
                let Ok(line) = line else { return };
                let mut text = out.0.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
    }

    fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }

    /// Waits (bounded) until the output satisfies `found`, and returns its yield.
    fn wait<T>(&self, what: &str, found: impl Fn(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(v) = found(&self.text()) {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; output so far:\n{}", self.text());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Starts the server as the README's first block says, on a free port, in `dir`; returns it,
/// its address and the admin key the command gave it.
fn start_server(command: &str, dir: &Path) -> (Child, String, String) {
    let words: Vec<&str> = command.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "cargo").expect("the server block runs cargo");
    assert_eq!(&words[at..at + 3], ["cargo", "run", "--"], "{command}");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
    for var in ["HERALD_API_KEY", "HERALD_CONFIG", "HERALD_DATA_DIR", "HERALD_URL"] {
        cmd.env_remove(var);
    }
    for assignment in &words[..at] {
        let (k, v) = assignment.split_once('=').expect("VAR=value before cargo");
        cmd.env(k, v);
    }
    // The README's server listens on the default 127.0.0.1:8080; here any free port will do.
    let mut child = cmd
        .args(&words[at + 3..])
        .env("HERALD_LISTEN", "127.0.0.1:0")
        .env("HERALD_LOG", "warn")
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the herald binary starts");
    let key = words[..at].iter().find_map(|w| w.strip_prefix("HERALD_API_KEY=")).expect("an admin key").to_owned();
    let log = Output::default();
    log.collect(child.stderr.take().unwrap());
    let addr = log.wait("Herald to listen", |t| {
        let rest = &t[t.find("Herald listening on http://")? + "Herald listening on http://".len()..];
        Some(rest[..rest.find(char::is_whitespace)?].to_owned())
    });
    (child, addr, key)
}

/// A bash session in `dir`, as the newcomer's second terminal; `cargo run [...] -- ARGS` runs the
/// binary under test with ARGS.
struct Terminal {
    bash: Child,
    stdin: ChildStdin,
    output: Output,
    addr: String,
    key: String,
    marks: u32,
}

impl Terminal {
    fn open(dir: &Path, addr: &str, key: &str) -> Self {
        let mut bash = Command::new("bash")
            .args(["--noprofile", "--norc", "-s"])
            .current_dir(dir)
            .env("HERALD_BIN", env!("CARGO_BIN_EXE_herald"))
            .env("HERALD_URL", format!("http://{addr}"))
            .env_remove("HERALD_API_KEY")
            .env_remove("HERALD_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("bash starts");
        let output = Output::default();
        output.collect(bash.stdout.take().unwrap());
        output.collect(bash.stderr.take().unwrap());
        let stdin = bash.stdin.take().unwrap();
        let mut t = Terminal { bash, stdin, output, addr: addr.to_owned(), key: key.to_owned(), marks: 0 };
        t.type_in(r#"cargo() { [ "$1" = run ] || return 99; while [ "$1" != "--" ]; do shift; done; shift; "$HERALD_BIN" "$@"; }"#);
        t
    }

    /// Types `text` (with the README's address replaced by the server's) and returns what it printed.
    fn type_in(&mut self, text: &str) -> String {
        self.marks += 1;
        let before = self.output.text().len();
        let mark = format!("__step_done_{}__", self.marks);
        let text = text.replace("127.0.0.1:8080", &self.addr);
        writeln!(self.stdin, "{text}\necho; echo {mark}").unwrap();
        self.stdin.flush().unwrap();
        self.output.wait(&mark, |t| t.contains(&format!("{mark}\n")).then_some(()));
        let all = self.output.text();
        all[before..].to_owned()
    }

    fn close(mut self) {
        let _ = writeln!(self.stdin, "kill $(jobs -p) 2>/dev/null; exit");
        let _ = self.bash.wait();
    }
}

/// The JSON objects printed from the start of a line (curl's answers, one after another when
/// two ran in a row; SSE lines start with a field name).
fn objects(output: &str) -> Vec<Value> {
    output
        .lines()
        .filter(|l| l.starts_with('{'))
        .flat_map(|l| serde_json::Deserializer::from_str(l).into_iter::<Value>().map_while(Result::ok))
        .collect()
}

/// The first printed object that has `key`.
fn answer(output: &str, key: &str) -> Value {
    objects(output).into_iter().find(|o| o.get(key).is_some()).unwrap_or_else(|| panic!("no {key:?} in:\n{output}"))
}

/// Polls the notification with the walkthrough's key until it is `completed`.
fn completed(t: &Terminal, id: &str) -> Value {
    let url = format!("http://{}/v1/notifications/{id}", t.addr);
    let auth = format!("Authorization: Bearer {}", t.key);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = Command::new("curl").args(["-s", &url, "-H", &auth]).output().unwrap();
        let n: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if n["status"] == "completed" {
            return n;
        }
        assert!(Instant::now() < deadline, "notification {id} never completed: {n}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn outbox(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir.join("herald-data/outbox/email"))
        .map(|d| d.map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "json")).collect())
        .unwrap_or_default()
}

/// The notification's delivery on `name`.
fn channel(n: &Value, name: &str) -> Value {
    let deliveries = n["recipients"][0]["deliveries"].as_array();
    deliveries
        .and_then(|d| d.iter().find(|d| d["channel"] == name))
        .cloned()
        .unwrap_or_else(|| panic!("no {name}: {n}"))
}

/// Runs one numbered step and checks what the README says of it.
fn step(t: &mut Terminal, dir: &Path, number: u32, text: &str) {
    let out = t.type_in(text);
    match number {
        0 => {}
        1 => assert_eq!(answer(&out, "email")["email"], "ana@example.com", "step 1: {out}"),
        2 => assert!(out.contains("new_reply"), "step 2: {out}"),
        // Connected: the stream sends the unread count first, and Ana is online from then on.
        3 => t.output.wait("the stream to connect", |o| o.contains("event: unread_count").then_some(())),
        4 => {
            let accepted = answer(&out, "status");
            assert_eq!((&accepted["status"], &accepted["recipients"]), (&"accepted".into(), &1.into()), "{out}");
            let n = completed(t, accepted["id"].as_str().unwrap());
            let email = channel(&n, "email");
            assert_eq!((&email["status"], &email["error"]), (&"suppressed".into(), &"user_online".into()), "{n}");
        }
        5 => {
            let inbox = answer(&out, "unread_count");
            assert_eq!(inbox["items"][0]["title"], "Bo replied", "{inbox}");
            let timeline =
                objects(&out).into_iter().find(|o| o.get("unread_count").is_none() && o.get("items").is_some());
            let items = timeline.as_ref().and_then(|t| t["items"].as_array()).expect("a timeline");
            let explained = items.iter().any(|i| i["channel"] == "email" && i["reason"] == "user_online");
            assert!(explained, "the timeline explains the email: {out}");
            t.output.wait("the stream's notification", |o| o.contains("event: notification").then_some(()));
            assert!(outbox(dir).is_empty(), "no email while Ana is online");
        }
        6 => {
            let n = completed(t, answer(&out, "id")["id"].as_str().expect("send prints the id"));
            assert_eq!(n["class"], "transactional", "{n}");
            assert!(["sent", "delivered"].contains(&channel(&n, "email")["status"].as_str().unwrap()), "{n}");
            let emails = outbox(dir);
            assert_eq!(emails.len(), 1, "one email in the outbox: {emails:?}");
            let email: Value = serde_json::from_str(&std::fs::read_to_string(&emails[0]).unwrap()).unwrap();
            let content = email["content"].to_string();
            assert!(content.contains("New reply from Bo") && content.contains("<p>Moved to 6pm</p>"), "{email}");
            assert!(email["unsubscribe_url"].is_string(), "{email}");
            t.output.wait("the stream to show it", |o| o.contains("Moved to 6pm").then_some(()));
        }
        n => panic!("the README's step {n} has no check in this test; add one"),
    }
}

#[test]
fn the_readme_walkthrough_runs_as_written() {
    let w = walkthrough();
    for claim in ["event: notification", "event: unread_count", "user_online", "ls herald-data/outbox/email/"] {
        assert!(w.prose.contains(claim), "the walkthrough says {claim:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let (mut server, addr, key) = start_server(&w.server, dir.path());
    let mut terminal = Terminal::open(dir.path(), &addr, &key);
    for (number, text) in &w.steps {
        step(&mut terminal, dir.path(), *number, text);
    }
    assert_eq!(w.steps.last().map(|s| s.0), Some(6), "every step ran");
    terminal.close();
    let _ = server.kill();
    let _ = server.wait();
}
