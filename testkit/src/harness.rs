//! What a test binary with `harness = false` needs of libtest's command line: the tests
//! that re-run their own binary as a second process (`backends/redis/tests/processes.rs`)
//! cannot use the standard harness, which would run the worker's `main` as tests.

/// Which tests the command line selects: a name filter, `--skip NAME`, and `--list` (what
/// `cargo test -- --list` and the test command's traceability check ask).
#[derive(Debug, Default)]
pub struct Selection {
    filter: Option<String>,
    skip: Vec<String>,
    list: bool,
}

impl Selection {
    /// The selection of this process's arguments; the other libtest flags are accepted and
    /// ignored.
    pub fn from_args() -> Self {
        let mut selection = Selection::default();
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--list" => selection.list = true,
                "--skip" => selection.skip.extend(args.next()),
                "--test-threads" | "--format" | "--color" | "--logfile" | "-Z" => {
                    args.next();
                }
                flag if flag.starts_with('-') => {}
                name => selection.filter = Some(name.to_owned()),
            }
        }
        selection
    }

    /// Whether the test `name` is selected.
    pub fn selected(&self, name: &str) -> bool {
        self.filter.as_deref().is_none_or(|f| name.contains(f))
            && !self.skip.iter().any(|s| name.contains(s.as_str()))
    }

    /// Lists `name` (with `--list`), or runs `test` when `name` is selected, with the lines
    /// libtest prints around it. A test fails by panicking, which ends the binary.
    pub fn run(&self, name: &str, test: impl FnOnce()) {
        if self.list {
            #[expect(clippy::print_stdout, reason = "libtest's --list answers on stdout")]
            {
                println!("{name}: test");
            }
        } else if self.selected(name) {
            eprintln!("test {name} ...");
            test();
            eprintln!("test {name} ... ok");
        }
    }
}
