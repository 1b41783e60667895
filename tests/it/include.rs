//! `[daemon] include`: services from drop-in files, checked across files,
//! and reloaded like any other edit.

use crate::support::*;

/// daemon.toml with `include = ["conf.d/*.toml"]` and the service `keep`.
fn main_config(dir: &TestDir) {
    std::fs::create_dir_all(dir.join("conf.d")).unwrap();
    dir.script("svc.sh", "exec sleep 1000");
    dir.write(
        "daemon.toml",
        "[daemon]\npid_file = \"d.pid\"\ncheck_interval = 1\ninclude = [\"conf.d/*.toml\"]\n\n\
         [[processes]]\nname = \"keep\"\ncommand = \"./svc.sh\"\n",
    );
}

fn drop_in(dir: &TestDir, file: &str, name: &str, extra: &str) {
    dir.write(
        &format!("conf.d/{file}"),
        &format!("[[processes]]\nname = \"{name}\"\ncommand = \"../svc.sh\"\n{extra}"),
    );
}

fn pids(daemon: &Daemon) -> Vec<(String, Option<i32>)> {
    daemon.status().processes.into_iter().map(|p| (p.name, p.pid)).collect()
}

#[test]
fn drop_ins_define_services_and_a_name_defined_twice_names_both_places() {
    let dir = TestDir::new("inc-two");
    main_config(&dir);
    drop_in(&dir, "20-b.toml", "b", "");
    drop_in(&dir, "10-a.toml", "a", "");
    dir.write("conf.d/README", "not a config");
    let daemon = Daemon::start(&dir);
    for name in ["keep", "a", "b"] {
        daemon.wait_running(name, None);
    }
    let names: Vec<String> = pids(&daemon).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["keep", "a", "b"], "the main file's services, then the drop-ins' in sorted order");

    drop_in(&dir, "30-again.toml", "a", "");
    let out = daemon.cli(&["check"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("conf.d/30-again.toml:2:8: [[processes]] \"a\": duplicate name"), "{out:?}");
    assert!(out.stderr.contains("also defined at ") && out.stderr.contains("conf.d/10-a.toml:2:8"), "{out:?}");
}

#[test]
fn reload_applies_added_edited_and_removed_drop_ins_and_touches_nothing_else() {
    let dir = TestDir::new("inc-reload");
    main_config(&dir);
    drop_in(&dir, "a.toml", "a", "");
    drop_in(&dir, "b.toml", "b", "");
    let daemon = Daemon::start(&dir);
    let keep = daemon.wait_running("keep", None);
    let a = daemon.wait_running("a", None);
    let b = daemon.wait_running("b", None);

    // Added.
    drop_in(&dir, "c.toml", "c", "");
    let out = daemon.cli(&["reload"]);
    assert!(out.code == 0 && out.stdout.contains("1 added (c)") && out.stdout.contains("3 unchanged"), "{out:?}");
    let c = daemon.wait_running("c", None);
    assert_eq!(pids(&daemon)[..3], [("keep".into(), Some(keep)), ("a".into(), Some(a)), ("b".into(), Some(b))]);

    // Edited: what b runs changed.
    drop_in(&dir, "b.toml", "b", "environment = { EDITED = \"1\" }\n");
    let out = daemon.cli(&["reload"]);
    assert!(out.code == 0 && out.stdout.contains("1 restarted (b)") && out.stdout.contains("3 unchanged"), "{out:?}");
    let b2 = daemon.wait_running("b", Some(b));
    assert!(!alive(b) || is_zombie(b));
    for (name, pid) in [("keep", keep), ("a", a), ("c", c)] {
        assert_eq!(daemon.process(name).pid, Some(pid), "{name} was touched");
    }

    // Removed.
    std::fs::remove_file(dir.join("conf.d/a.toml")).unwrap();
    let out = daemon.cli(&["reload"]);
    assert!(out.code == 0 && out.stdout.contains("1 removed (a)"), "{out:?}");
    wait_until(secs(15), "a is stopped and forgotten", || daemon.find("a").is_none() && !alive(a));
    assert_eq!(pids(&daemon), [("keep".into(), Some(keep)), ("b".into(), Some(b2)), ("c".into(), Some(c))]);
}

#[test]
fn a_syntax_error_in_a_drop_in_is_located_there_and_changes_nothing() {
    let dir = TestDir::new("inc-bad");
    main_config(&dir);
    drop_in(&dir, "a.toml", "a", "");
    let mut daemon = Daemon::start(&dir);
    let keep = daemon.wait_running("keep", None);
    let a = daemon.wait_running("a", None);
    dir.write("conf.d/b.toml", "[[processes]]\nname = \"b\"\ncommand = \n");
    let out = daemon.cli(&["reload"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("conf.d/b.toml:3:11: invalid TOML"), "{out:?}");
    // The SIGHUP path refuses it too, and logs where.
    kill(daemon.pid(), "HUP");
    wait_until(secs(5), "the refused SIGHUP is logged", || daemon.log().contains("conf.d/b.toml:3:11: invalid TOML"));
    assert!(daemon.is_up());
    // Clients read only [daemon]: status works meanwhile, and nothing moved.
    assert_eq!(pids(&daemon), [("keep".into(), Some(keep)), ("a".into(), Some(a))]);
    assert!(alive(keep) && alive(a));
}
