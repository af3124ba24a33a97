//! The `herald` command line as a newcomer meets it, through the real binary: strict
//! configuration, `config check`, keys in an existing database only, unique key names, `send`'s
//! hints, webhook secrets, and the documented example configuration.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{KEY, spawn};

/// How long any one command may take before the test gives up on it.
const DEADLINE: Duration = Duration::from_secs(30);

/// What a finished command left behind.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// The real binary in `dir`, with no `HERALD_` variable from the test's own environment but `env`.
fn command(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
    cmd.args(args).current_dir(dir).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().to_ascii_uppercase().starts_with("HERALD_") {
            cmd.env_remove(name);
        }
    }
    cmd.envs(env.iter().copied());
    cmd
}

/// Runs `herald ARGS` in `dir` to its end (within [`DEADLINE`]).
fn herald(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut child = command(dir, args, env).spawn().expect("the herald binary starts");
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("the child can be waited for") {
            break status;
        }
        if Instant::now() > deadline {
            stop(&mut child);
            panic!("herald {args:?} was still running after {DEADLINE:?}: {}", stderr.join().unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run { code: status.code(), stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() }
}

fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// A configuration file in `dir`.
fn write_config(dir: &Path, toml: &str) -> String {
    let path = dir.join("herald.toml");
    std::fs::write(&path, toml).unwrap();
    path.display().to_string()
}

#[test]
fn serve_refuses_a_misspelt_key_and_says_what_was_meant() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(
        dir.path(),
        "listen = \"127.0.0.1:0\"\ndata_dir = \"data\"\n[channels.email]\nsmpt = { host = \"smtp.example.com\" }\n",
    );
    let run = herald(dir.path(), &["serve", "--config", &file], &[]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("unknown key `channels.email.smpt` in {file}; did you mean `smtp`?")),
        "{}",
        run.stderr
    );
    assert!(!dir.path().join("data").exists(), "nothing was started");
}

#[test]
fn config_check_prints_what_serve_would_run_with() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(
        dir.path(),
        r#"
        listen = "127.0.0.1:9123"
        data_dir = "data"
        [channels.email]
        from = "Herald <noreply@example.com>"
        smtp = { host = "smtp.example.com", port = 587, tls = "starttls" }
        "#,
    );
    let run = herald(dir.path(), &["config", "check", "--config", &file], &[("HERALD_CHANNELS__SMS__PROVIDER", "dev")]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let database = format!("SQLite at {} (created by `herald serve`", dir.path().join("data/herald.db").display());
    for line in [
        "configuration OK",
        "listen      127.0.0.1:9123",
        "data_dir    data (",
        database.as_str(),
        "channel in_app: inbox",
        "channel email: smtp (smtp.example.com:587, starttls)",
        "channel push: dev (writes to data/outbox/push)",
        "channel webhook: webhook (",
    ] {
        assert!(run.stdout.contains(line), "{line:?} missing from:\n{}", run.stdout);
    }
    assert!(!dir.path().join("data").exists(), "a check creates nothing");
}

#[test]
fn config_check_fails_on_what_serve_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(dir.path(), "listen = 8080\n[channels.email]\nprovider = \"smtp\"\n");
    let run = herald(dir.path(), &["config", "check", "--config", &file], &[]);
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    assert!(run.stderr.contains("`listen` in") && run.stderr.contains("expected a string"), "{}", run.stderr);
    assert!(!run.stdout.contains("configuration OK"));

    // Keys all known, but the provider cannot work: found by building it, as `serve` would.
    let file = write_config(dir.path(), "[channels.email]\nprovider = \"smtp\"\n");
    let run = herald(dir.path(), &["config", "check", "--config", &file], &[]);
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    assert!(run.stderr.contains("needs channels.email.from"), "{}", run.stderr);

    let run = herald(dir.path(), &["config", "check", "--config", "missing.toml"], &[]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("missing.toml does not exist"), "{}", run.stderr);
}

#[test]
fn an_unknown_herald_variable_is_refused_and_environment_only_ones_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let run = herald(dir.path(), &["config", "check"], &[("HERALD_CHANNELS__EMAIL__SMPT__HOST", "smtp.example.com")]);
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    assert!(
        run.stderr.contains("unknown environment variable HERALD_CHANNELS__EMAIL__SMPT__HOST")
            && run.stderr.contains("did you mean `smtp` (HERALD_CHANNELS__EMAIL__SMTP__HOST)?"),
        "{}",
        run.stderr
    );
    let file = write_config(dir.path(), "");
    let env_only = [
        ("HERALD_CONFIG", file.as_str()),
        ("HERALD_API_KEY", "k"),
        ("HERALD_URL", "http://127.0.0.1:1"),
        ("HERALD_LOG", "warn"),
    ];
    let run = herald(dir.path(), &["config", "check"], &env_only);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains(&format!("file        {file}")), "HERALD_CONFIG was read: {}", run.stdout);
    assert!(run.stdout.contains("HERALD_API_KEY is set"), "{}", run.stdout);
}

#[test]
fn key_commands_never_create_a_database() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["keys", "list"][..], &["keys", "create", "--name", "ci"], &["keys", "revoke", "ci"]] {
        let run = herald(dir.path(), args, &[]);
        assert_eq!(run.code, Some(1), "{args:?}: {}", run.stdout);
        let expected = format!("no database at {}", dir.path().join("herald-data/herald.db").display());
        assert!(run.stderr.contains(&expected), "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains("run `herald migrate` or `herald serve` first"), "{}", run.stderr);
    }
    let elsewhere = dir.path().join("elsewhere");
    let run = herald(dir.path(), &["keys", "list"], &[("HERALD_DATA_DIR", elsewhere.to_str().unwrap())]);
    assert_eq!(run.code, Some(1));
    assert!(!dir.path().join("herald-data").exists() && !elsewhere.exists(), "no stray database");
}

#[test]
fn key_names_are_unique_and_revoke_says_which_key_it_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = [("HERALD_DATA_DIR", data.to_str().unwrap())];
    assert_eq!(herald(dir.path(), &["migrate"], &env).code, Some(0));

    let created = herald(dir.path(), &["keys", "create", "--name", "ci"], &env);
    assert_eq!(created.code, Some(0), "{}", created.stderr);
    let key = created.stdout.trim();
    assert!(key.starts_with("hk_"), "{key}");
    let list = herald(dir.path(), &["keys", "list"], &env).stdout;
    let row = list.lines().find(|l| l.contains(" ci ")).unwrap_or_else(|| panic!("ci is listed: {list}"));
    let id = row.split_whitespace().next().unwrap();

    let again = herald(dir.path(), &["keys", "create", "--name", "ci"], &env);
    assert_eq!(again.code, Some(1));
    assert!(
        again.stderr.contains(&format!("a key named ci exists (id {id}); revoke it first or choose another name")),
        "{}",
        again.stderr
    );

    let revoked = herald(dir.path(), &["keys", "revoke", "ci"], &env);
    assert_eq!(revoked.code, Some(0), "{}", revoked.stderr);
    assert_eq!(revoked.stdout.trim(), format!("revoked key {id} (ci, prefix {})", &key[..8]));
    let unknown = herald(dir.path(), &["keys", "revoke", "ci"], &env);
    assert_eq!(unknown.code, Some(1));
    assert!(unknown.stderr.contains("no active key with id or name ci"), "{}", unknown.stderr);
    assert_eq!(herald(dir.path(), &["keys", "create", "--name", "ci"], &env).code, Some(0), "a revoked name is free");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_explains_a_missing_key_a_missing_server_and_a_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let send = ["send", "--template", "nope", "--to", "u1"];
    let run = herald(dir.path(), &send, &[]);
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.contains("no API key: pass --api-key or set HERALD_API_KEY")
            && run.stderr.contains("herald keys create --name NAME"),
        "{}",
        run.stderr
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let url = format!("http://{closed}");
    let run = herald(dir.path(), &send, &[("HERALD_API_KEY", KEY), ("HERALD_URL", &url)]);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains(&format!("no Herald server at {url} (start one with `herald serve`")),
        "{}",
        run.stderr
    );

    let app = spawn().await;
    let run = herald(dir.path(), &send, &[("HERALD_API_KEY", KEY), ("HERALD_URL", &app.url)]);
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    assert!(run.stderr.contains("the server answered 422") && run.stderr.contains("template"), "{}", run.stderr);
    let run = herald(dir.path(), &send, &[("HERALD_API_KEY", "wrong"), ("HERALD_URL", &app.url)]);
    assert!(run.stderr.contains("401") && run.stderr.contains("does not accept this API key"), "{}", run.stderr);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_webhook_secret_registers_a_webhook_device() {
    let dir = tempfile::tempdir().unwrap();
    let run = herald(dir.path(), &["secrets", "webhook"], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let secret = run.stdout.trim();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert_ne!(secret, herald(dir.path(), &["secrets", "webhook"], &[]).stdout.trim(), "fresh every time");

    let app = spawn().await;
    let device = json!({"kind": "webhook", "url": "https://hooks.example.com/h", "secret": secret});
    let (status, body) = app.post("/v1/users/u1/devices", device).await;
    assert_eq!(status, 201, "{body}");
    app.stop().await;
}

#[test]
fn serve_logs_each_channels_providers_without_colour_codes_off_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("HERALD_LISTEN", "127.0.0.1:0"),
        ("HERALD_DATA_DIR", "data"),
        ("HERALD_LOG", "info"),
        ("HERALD_CHANNELS__EMAIL__FROM", "Herald <noreply@example.com>"),
        ("HERALD_CHANNELS__EMAIL__SMTP__HOST", "smtp.example.com"),
        ("HERALD_CHANNELS__EMAIL__SMTP__PORT", "587"),
        ("HERALD_CHANNELS__EMAIL__SMTP__TLS", "starttls"),
    ];
    let mut child = command(dir.path(), &["serve"], &env).spawn().expect("the herald binary starts");
    let (tx, rx) = mpsc::channel();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || stderr.lines().map_while(Result::ok).try_for_each(|line| tx.send(line)));
    let deadline = Instant::now() + DEADLINE;
    let mut log = Vec::new();
    while !log.iter().any(|l: &String| l.starts_with("Herald listening")) {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => log.push(line),
            Err(_) => {
                stop(&mut child);
                panic!("serve did not come up:\n{}", log.join("\n"));
            }
        }
    }
    stop(&mut child);
    let log = log.join("\n");
    for line in [
        "channel in_app: inbox",
        "channel email: smtp (smtp.example.com:587, starttls)",
        "channel push: dev (writes to data/outbox/push)",
        "channel webhook: webhook (",
    ] {
        assert!(log.contains(line), "{line:?} missing from:\n{log}");
    }
    assert!(!log.contains('\u{1b}'), "no colour codes in a file or pipe:\n{log}");
}

#[test]
fn the_documented_example_configuration_passes_the_check_as_is() {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md"))
        .expect("docs/configuration.md");
    let start = doc.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let example = &doc[start..start + doc[start..].find("```").expect("the block ends")];
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(dir.path(), example);
    let run = herald(dir.path(), &["config", "check", "--config", &file], &[]);
    assert_eq!(run.code, Some(0), "the example in docs/configuration.md is refused:\n{}", run.stderr);
    assert!(run.stdout.contains("configuration OK"));
}
