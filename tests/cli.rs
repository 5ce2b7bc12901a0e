//! The binary's commands as a user runs them.

use std::{path::Path, process::Command};

fn cutover() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cutover"))
}

fn yaml_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_passes_lint() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files = yaml_files(&dir);
    files.extend(yaml_files(&dir.join("analysis")));
    assert!(files.len() >= 4);
    let out = cutover().arg("lint").args(&files).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("OK in {} file(s)", files.len()))
    );
    // A directory of scenarios beside the manifests: each says it is one, and is passed over.
    let out = cutover()
        .arg("lint")
        .arg(dir.join("scenarios"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn every_invalid_example_fails_lint_with_its_message() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/invalid");
    let files = yaml_files(&dir);
    assert!(files.len() >= 10);
    // One run over all files: each must still be reported under its own name.
    let out = cutover().arg("lint").args(&files).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let expected: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .collect();
        assert!(
            !expected.is_empty(),
            "{} has no `# expect:` line",
            file.display()
        );
        let prefix = format!("{}:", file.display());
        let reported: Vec<&str> = stdout.lines().filter(|l| l.starts_with(&prefix)).collect();
        for e in expected {
            assert!(
                reported.iter().any(|l| l.contains(e)),
                "{}: expected {e:?} in {reported:?}",
                file.display()
            );
        }
        // Each problem names the line and column where its field is written.
        for line in &reported {
            let rest = &line[prefix.len()..];
            let mut parts = rest.splitn(3, ':');
            let (l, c) = (parts.next().unwrap(), parts.next().unwrap());
            let (l, c): (usize, usize) = (l.parse().unwrap(), c.parse().unwrap());
            let text_line = text.lines().nth(l - 1).unwrap_or_default();
            assert!(c >= 1 && c <= text_line.len() + 1, "{line}");
            let field = parts
                .next()
                .unwrap()
                .trim_start()
                .split(": ")
                .next()
                .unwrap();
            let key = field.rsplit('.').next().unwrap_or_default();
            if field.starts_with("spec.") && !key.contains('[') {
                assert!(
                    text_line[c - 1..].starts_with(key),
                    "{line}: line {l} column {c} is {text_line:?}, not the field {key}"
                );
            }
        }
    }
}

#[test]
fn lint_reports_each_problem_at_its_line_and_column_in_the_stream() {
    let dir = tempdir();
    let path = dir.join("stream.yaml");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n---\napiVersion: cutover.dev/v1alpha1\nkind: Rollout\nmetadata: {name: web}\nspec: {strategy: {}}\n",
    )
    .unwrap();
    let out = cutover().arg("lint").arg(&path).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    // file:line:column of the field at fault, counted in the whole stream; a missing
    // field is reported where its nearest written parent is.
    assert!(
        stdout.contains(&format!(
            "{}:8:8: spec.strategy: exactly one strategy must be set",
            path.display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "{}:5:1: exactly one of spec.template or spec.workloadRef",
            path.display()
        )),
        "{stdout}"
    );
    assert_eq!(
        stdout.lines().count(),
        2,
        "the Service is not checked: {stdout}"
    );
}

#[test]
fn run_with_unreachable_cluster_exits_nonzero_with_one_line() {
    let dir = tempdir();
    let kubeconfig = dir.join("kubeconfig");
    // A port held by a socket that never listens: the connection is refused at once, and
    // nothing else can take the port while the socket is open.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    let server = format!(
        "https://{}",
        socket.local_addr().unwrap().as_socket().unwrap()
    );
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: '{server}'}}}}]\n\
             contexts: [{{name: c, context: {{cluster: c, user: u}}}}]\ncurrent-context: c\nusers: [{{name: u, user: {{token: t}}}}]\n"
        ),
    )
    .unwrap();
    let out = cutover()
        .args(["run", "--metrics-addr", "127.0.0.1:0", "--kubeconfig"])
        .arg(&kubeconfig)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line expected:\n{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "error: cannot reach the Kubernetes API at {server}"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));
}

#[test]
fn logs_written_to_a_file_carry_no_colour_codes() {
    let dir = tempdir();
    let log = dir.join("dev.log");
    let mut dev = cutover()
        .args([
            "dev",
            "--listen",
            "127.0.0.1:0",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .arg("--kubeconfig")
        .arg(dir.join("kubeconfig"))
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(dir.join("dev.err")).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("ready")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "cutover dev never got ready"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // SIGTERM, so that it logs its shutdown on the way out.
    let term = Command::new("kill")
        .args(["-TERM", &dev.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    dev.wait().unwrap();
    let logs = std::fs::read_to_string(dir.join("dev.err")).unwrap();
    assert!(logs.contains("shutdown requested"), "{logs}");
    assert!(!logs.contains('\u{1b}'), "colour codes in a file: {logs:?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn run_with_bad_kubeconfig_exits_nonzero_with_one_line() {
    let dir = tempdir();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, "this: is: not: a kubeconfig").unwrap();
    let out = cutover()
        .args(["run", "--kubeconfig"])
        .arg(&kubeconfig)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: cannot load Kubernetes config"),
        "{stderr}"
    );
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "cutover-test-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}
