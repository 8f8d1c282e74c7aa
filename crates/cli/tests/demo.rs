//! The assignment's demonstration (docs/demo.md) stays true: `scripts/demo.sh` runs every
//! question's steps against a fresh local consortium of this build's `bank` and checks each
//! outcome; it fails on the first step that no longer holds.

use std::process::Command;

use bank_testkit::ports;

#[test]
fn the_demonstration_of_the_eight_questions_holds() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/demo.sh");
    let output = Command::new("bash")
        .arg(script)
        .env("BANK", env!("CARGO_BIN_EXE_bank"))
        .env("DEMO_BASE_PORT", ports::consecutive(4).to_string())
        .output()
        .expect("run scripts/demo.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("demo: every step held"),
        "the demonstration failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
