//! Users and groups by name, read from /etc/passwd and /etc/group.
//!
//! A static musl binary has no NSS, and routers have no LDAP: the two files
//! are the whole truth, so they are parsed directly (as busybox does). A
//! name that is all digits is taken as a number and need not exist in the
//! files, as with `chown 1234`.

use std::path::PathBuf;

/// A user as the daemon needs it to start a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

/// Looks a user up by name or number in `passwd` (the file's text).
pub fn find_user(passwd: &str, key: &str) -> Option<User> {
    let number: Option<u32> = key.parse().ok();
    for line in passwd.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        let [name, _, uid, gid, _, home, ..] = fields.as_slice() else { continue };
        let (Ok(uid), Ok(gid)) = (uid.parse::<u32>(), gid.parse::<u32>()) else { continue };
        if *name == key || number == Some(uid) {
            return Some(User { name: name.to_string(), uid, gid, home: PathBuf::from(home) });
        }
    }
    // A bare number not in the file: its own group, home at the root.
    number.map(|uid| User { name: uid.to_string(), uid, gid: uid, home: PathBuf::from("/") })
}

/// Looks a group up by name or number in `group` (the file's text).
pub fn find_group(group: &str, key: &str) -> Option<u32> {
    let number: Option<u32> = key.parse().ok();
    for line in group.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        let [name, _, gid, ..] = fields.as_slice() else { continue };
        let Ok(gid) = gid.parse::<u32>() else { continue };
        if *name == key || number == Some(gid) {
            return Some(gid);
        }
    }
    number
}

/// The groups `user` belongs to: `primary` first, then every group that
/// lists the user as a member.
pub fn groups_of(group: &str, user: &str, primary: u32) -> Vec<u32> {
    let mut gids = vec![primary];
    for line in group.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        let [_, _, gid, members] = fields.as_slice() else { continue };
        let Ok(gid) = gid.parse::<u32>() else { continue };
        if members.split(',').any(|m| m.trim() == user) && !gids.contains(&gid) {
            gids.push(gid);
        }
    }
    gids
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n\
                          web:x:1001:1001::/srv/web:/bin/sh\nbroken line\n";
    const GROUP: &str = "root:x:0:\nnogroup:x:65534:\nweb:x:1001:\nlog:x:4:web,other\nwheel:x:10:web\n";

    #[test]
    fn users_by_name_and_number() {
        let web = find_user(PASSWD, "web").unwrap();
        assert_eq!((web.uid, web.gid, web.home), (1001, 1001, PathBuf::from("/srv/web")));
        assert_eq!(find_user(PASSWD, "65534").unwrap().name, "nobody");
        assert_eq!(
            find_user(PASSWD, "4242").unwrap(),
            User { name: "4242".into(), uid: 4242, gid: 4242, home: "/".into() }
        );
        assert_eq!(find_user(PASSWD, "nosuch"), None);
    }

    #[test]
    fn groups_by_name_number_and_membership() {
        assert_eq!(find_group(GROUP, "nogroup"), Some(65534));
        assert_eq!(find_group(GROUP, "77"), Some(77));
        assert_eq!(find_group(GROUP, "nosuch"), None);
        assert_eq!(groups_of(GROUP, "web", 1001), vec![1001, 4, 10]);
        assert_eq!(groups_of(GROUP, "nobody", 65534), vec![65534]);
    }
}
