//! The shape of `src/`: roles are siblings that never import each other; what two roles
//! share lives in a top-level module, and only `server.rs` puts roles together.

use std::path::{Path, PathBuf};

/// The role modules under `src/`.
const ROLES: [&str; 3] = ["app", "proxy", "monitor"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `crate::<role>` path named in a file of `role`'s folder, other than its own.
fn imports_of_other_roles(src: &Path, role: &str) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(&src.join(role), &mut files);
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read source");
        for (n, line) in text.lines().enumerate() {
            for other in ROLES.iter().filter(|r| **r != role) {
                let named = [format!("crate::{other}::"), format!("crate::{other}}}")];
                let grouped = format!("crate::{{{other}");
                if named.iter().any(|n| line.contains(n.as_str())) || line.contains(&grouped) {
                    found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    found
}

#[test]
fn no_role_imports_another_role() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut crossings = Vec::new();
    for role in ROLES {
        crossings.extend(imports_of_other_roles(&src, role));
    }
    assert!(
        crossings.is_empty(),
        "a role imports another role; move the shared piece to a top-level module:\n{}",
        crossings.join("\n")
    );
}

#[test]
fn the_check_sees_an_import_of_another_role() {
    let dir = std::env::temp_dir().join(format!("fastpick-layout-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("proxy")).expect("dir");
    std::fs::write(
        dir.join("proxy/x.rs"),
        "use crate::app::error::ApiError;\nfn f() { crate::envelope::Code::C001; }\n",
    )
    .expect("write");
    let found = imports_of_other_roles(&dir, "proxy");
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(found.len(), 1, "{found:?}");
}
