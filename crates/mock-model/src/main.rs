//! `mock-model`: run the scripted Anthropic Messages API server on its own.
//!
//! `mock-model [--addr 127.0.0.1:PORT] [--script FILE.json | --persona]` prints the base URL
//! and serves until Ctrl-C. Without `--script` it answers every request with the default text;
//! `--persona` loads the demo persona.

use std::process::ExitCode;

use mock_model::Script;

fn usage() -> ExitCode {
    eprintln!("usage: mock-model [--addr 127.0.0.1:PORT] [--script FILE.json | --persona]");
    ExitCode::from(2)
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut addr = "127.0.0.1:0".to_string();
    let mut script = Script::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => match args.next() {
                Some(value) => addr = value,
                None => return usage(),
            },
            "--script" => match args.next().map(|path| Script::from_file(&path)) {
                Some(Ok(loaded)) => script = loaded,
                Some(Err(error)) => {
                    eprintln!("mock-model: {error}");
                    return ExitCode::FAILURE;
                }
                None => return usage(),
            },
            "--persona" => script = Script::demo_persona(),
            _ => return usage(),
        }
    }
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("mock-model: cannot listen on {addr}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let handle = match mock_model::start(script, listener).await {
        Ok(handle) => handle,
        Err(error) => {
            eprintln!("mock-model: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", handle.base_url());
    let _ = tokio::signal::ctrl_c().await;
    handle.shutdown().await;
    ExitCode::SUCCESS
}
