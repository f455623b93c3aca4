//! Running a short-lived program with a deadline: its output is read while it runs (so a
//! large answer cannot fill a pipe and stall it), and it is killed when the deadline passes.

use std::io::Read as _;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `command` with stdin closed and returns its output, or `TimedOut` (after killing it)
/// when it has not finished within `timeout`.
pub fn output_with_timeout(command: &mut Command, timeout: Duration) -> std::io::Result<Output> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            // Killing closes its pipes, so the readers end too.
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "{:?} did not finish within {timeout:?}",
                    command.get_program()
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_answer_does_not_stall_and_a_slow_one_is_stopped() {
        // More than a pipe holds: read while it runs, or it never exits.
        let out = output_with_timeout(
            Command::new("sh").args(["-c", "head -c 300000 /dev/zero"]),
            Duration::from_secs(10),
        )
        .unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout.len(), 300_000);
        let slow = output_with_timeout(Command::new("sleep").arg("5"), Duration::from_millis(100));
        assert_eq!(slow.unwrap_err().kind(), std::io::ErrorKind::TimedOut);
    }
}
