//! The runner as the daemon sees it: a real `picortex-runner` process with the `command` backend
//! (`cat`, so the reply is the prompt byte for byte), driven over its unix socket.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use picortex_runner::protocol::{Request, Response, TurnSpec, encode};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

fn spawn_runner(
    home: &Path,
    idle_secs: u64,
    program: &str,
    args: &[&str],
) -> tokio::process::Child {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_picortex-runner"));
    cmd.arg("--home")
        .arg(home)
        .args(["--agent", "command", "--command", program])
        .args(["--idle-timeout-secs", &idle_secs.to_string()]);
    for a in args {
        cmd.arg(format!("--arg={a}"));
    }
    cmd.stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

async fn connect(home: &Path) -> UnixStream {
    let sock = home.join(".picortex/runner.sock");
    for _ in 0..200 {
        if let Ok(s) = UnixStream::connect(&sock).await {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("runner socket never appeared");
}

async fn exchange(stream: &mut UnixStream, req: &Request, answers: usize) -> Vec<Response> {
    stream.write_all(&encode(req).unwrap()).await.unwrap();
    let (r, _) = stream.split();
    let mut lines = BufReader::new(r).lines();
    let mut out = Vec::new();
    for _ in 0..answers {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("runner answered in time")
            .unwrap()
            .expect("a line");
        out.push(serde_json::from_str(&line).unwrap());
    }
    out
}

fn turn(turn_id: i64, prompt: &str) -> Request {
    Request::Turn(TurnSpec {
        turn_id,
        prompt: prompt.into(),
        senders: vec!["+15551230001".into()],
        request_id: "req".into(),
    })
}

#[tokio::test]
async fn prompts_arrive_byte_exact_and_results_are_durable_and_idempotent() {
    let home = tempfile::tempdir().unwrap();
    let mut child = spawn_runner(home.path(), 30, "cat", &[]);
    let nasty = "it's \"quoted\" $(touch /tmp/pwned) `id` ; rm -rf ~ | cat /etc/passwd\nline two\t\u{1b}[31mred\u{1b}[0m 🙂 \\ end";
    let mut s = connect(home.path()).await;
    let answers = exchange(&mut s, &turn(1, nasty), 2).await;
    assert_eq!(answers[0], Response::Accepted { turn_id: 1 });
    let Response::Result(result) = &answers[1] else {
        panic!("{answers:?}")
    };
    assert!(result.ok, "{result:?}");
    assert_eq!(result.text, nasty, "the agent saw exactly what was sent");
    assert!(!Path::new("/tmp/pwned").exists());

    // The result is on disk before it was reported.
    let file = home.path().join(".picortex/turns/1.json");
    let stored: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(stored["text"], nasty);

    // Asking again (a restarted daemon) returns the stored result without running it again.
    let mut s2 = connect(home.path()).await;
    let again = exchange(&mut s2, &turn(1, "different text"), 1).await;
    let Response::Result(again) = &again[0] else {
        panic!("{again:?}")
    };
    assert_eq!(again.text, nasty);

    let pong = exchange(&mut s2, &Request::Ping, 1).await;
    assert!(matches!(&pong[0], Response::Pong { agent, .. } if agent == "command"));

    // Garbage on the socket gets an error, not a crash.
    s2.write_all(b"{not json}\n").await.unwrap();
    let (r, _) = s2.split();
    let line = BufReader::new(r)
        .lines()
        .next_line()
        .await
        .unwrap()
        .unwrap();
    assert!(line.contains("malformed request"), "{line}");
    child.kill().await.unwrap();
}

#[tokio::test]
async fn a_failing_command_is_a_failed_turn_and_idle_runners_exit() {
    let home = tempfile::tempdir().unwrap();
    let mut child = spawn_runner(
        home.path(),
        1,
        "sh",
        &["-c", "echo partial; echo oops >&2; exit 3"],
    );
    let mut s = connect(home.path()).await;
    let answers = exchange(&mut s, &turn(5, "x"), 2).await;
    let Response::Result(r) = &answers[1] else {
        panic!("{answers:?}")
    };
    assert!(!r.ok);
    assert!(
        r.error.as_deref().unwrap_or_default().contains("oops"),
        "{r:?}"
    );
    drop(s);
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("idle runner exits")
        .unwrap();
    assert!(status.success());
    assert!(!home.path().join(".picortex/runner.sock").exists());
}

#[tokio::test]
async fn a_turn_can_be_interrupted() {
    let home = tempfile::tempdir().unwrap();
    let mut child = spawn_runner(home.path(), 30, "sleep", &["30"]);
    let mut s = connect(home.path()).await;
    s.write_all(&encode(&turn(9, "long")).unwrap())
        .await
        .unwrap();
    let mut other = connect(home.path()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    other
        .write_all(&encode(&Request::Interrupt { turn_id: 9 }).unwrap())
        .await
        .unwrap();
    let (r, _) = s.split();
    let mut lines = BufReader::new(r).lines();
    let _accepted = lines.next_line().await.unwrap();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("interrupted in time")
        .unwrap()
        .unwrap();
    let Response::Result(r) = serde_json::from_str(&line).unwrap() else {
        panic!("{line}")
    };
    assert!(!r.ok);
    assert_eq!(r.error.as_deref(), Some("interrupted"));
    child.kill().await.unwrap();
}
