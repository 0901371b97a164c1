//! scripts/install.sh and scripts/uninstall.sh, in both layouts, into a temporary DESTDIR.

use std::path::{Path, PathBuf};
use std::process::Command;

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scripts")
        .join(name)
}

fn run(script_name: &str, destdir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(script(script_name))
        .args(args)
        .env("DESTDIR", destdir)
        .output()
        .expect("running the script")
}

#[test]
fn both_layouts_install_answer_version_and_uninstall_cleanly() {
    // Uses the release binaries scripts/test.sh built; never builds here.
    let _ = rcni_integration::our_plugins();
    let destdir =
        std::env::temp_dir().join(format!("rcni-install-{}", rcni_testkit::random_hex(4)));
    let bin = destdir.join("opt/cni/bin");
    std::fs::create_dir_all(&bin).expect("dir");
    std::fs::write(bin.join("flannel"), "another vendor's plugin").expect("foreign file");
    let before = rcni_testkit::dir_names(&bin);

    for layout in [&["--no-build"][..], &["--no-build", "--multicall"][..]] {
        let out = run("install.sh", &destdir, layout);
        assert!(
            out.status.success(),
            "install {layout:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let printed = String::from_utf8_lossy(&out.stdout).into_owned();
        for plugin in ["bridge", "host-local", "loopback", "static"] {
            let path = bin.join(plugin);
            assert!(
                printed.contains(&format!("installed {}", path.display())),
                "{printed}"
            );
            assert_eq!(
                path.is_symlink(),
                layout.contains(&"--multicall"),
                "{plugin} {layout:?}"
            );
            let out = Command::new(&path)
                .env("CNI_COMMAND", "VERSION")
                .output()
                .expect("exec plugin");
            let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("VERSION JSON");
            assert_eq!(doc["cniVersion"], "1.1.0", "{plugin}");
            assert!(
                doc["supportedVersions"]
                    .as_array()
                    .is_some_and(|v| v.len() == 7),
                "{plugin}: {doc}"
            );
        }
    }
    // A file we did not install is never replaced without --force.
    std::fs::remove_file(bin.join("static")).expect("rm");
    std::fs::write(bin.join("static"), "not ours").expect("write");
    let out = run("uninstall.sh", &destdir, &[]);
    assert!(out.status.success());
    assert_eq!(
        std::fs::read(bin.join("static")).expect("kept"),
        b"not ours",
        "uninstall keeps what it did not install"
    );
    std::fs::remove_file(bin.join("static")).expect("rm foreign static");
    std::fs::write(bin.join("bridge"), "someone else's bridge").expect("write");
    let out = run("install.sh", &destdir, &["--no-build"]);
    assert!(
        !out.status.success(),
        "must refuse to overwrite a foreign bridge"
    );
    assert_eq!(
        std::fs::read(bin.join("bridge")).expect("read"),
        b"someone else's bridge"
    );
    std::fs::remove_file(bin.join("bridge")).expect("rm");

    assert_eq!(
        rcni_testkit::dir_names(&bin),
        before,
        "uninstall leaves the directory as it was"
    );
    let _ = std::fs::remove_dir_all(&destdir);
}
