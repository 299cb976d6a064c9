//! A second OS process for tests that need two: the test binary runs itself again with an
//! environment variable set, and the two talk in lines — one command a line on the
//! second process's standard input, one answer a line on its standard output. Such a test
//! binary has its own `main` (`harness = false`): it calls [`serve`] when the variable is
//! set, and runs its tests otherwise.

use std::io::BufRead as _;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// The second process, ready to take commands.
#[derive(Debug)]
pub struct Worker {
    child: Child,
    commands: ChildStdin,
    answers: Lines<BufReader<ChildStdout>>,
}

impl Worker {
    /// Runs this test binary again with `var` set to `value`, and waits until it says
    /// `ready`. It is killed if the `Worker` is dropped without [`Worker::stop`].
    pub async fn start(var: &str, value: &str) -> Self {
        let mut child = Command::new(std::env::current_exe().expect("the test binary's path"))
            .env(var, value)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the test binary runs again");
        let commands = child.stdin.take().expect("the worker's standard input");
        let answers =
            BufReader::new(child.stdout.take().expect("the worker's standard output")).lines();
        let mut worker = Worker {
            child,
            commands,
            answers,
        };
        assert_eq!(worker.answer().await, "ready");
        worker
    }

    /// Sends one command, without waiting for its answer.
    pub async fn send(&mut self, command: &str) {
        self.commands
            .write_all(format!("{command}\n").as_bytes())
            .await
            .expect("the worker takes commands");
        self.commands
            .flush()
            .await
            .expect("the worker takes commands");
    }

    /// The next answer.
    pub async fn answer(&mut self) -> String {
        self.answers
            .next_line()
            .await
            .expect("the worker's answers can be read")
            .expect("the worker process ended early")
    }

    /// Sends one command and waits for its answer.
    pub async fn ask(&mut self, command: &str) -> String {
        self.send(command).await;
        self.answer().await
    }

    /// Closes the worker's standard input and waits for it to end; it must end well.
    pub async fn stop(mut self) {
        drop(self.commands);
        let status = self.child.wait().await.expect("the worker process ends");
        assert!(status.success(), "the worker process failed: {status}");
    }
}

/// The second process's side: says `ready`, then answers each line of standard input, split
/// into words, with the one line `handle` returns, until standard input ends.
#[expect(clippy::print_stdout, reason = "the worker answers on standard output")]
pub fn serve(mut handle: impl FnMut(&[&str]) -> String) {
    println!("ready");
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("a command line");
        let words: Vec<&str> = line.split_whitespace().collect();
        println!("{}", handle(&words));
    }
}
