//! The flags of xtask tasks: `--flag`, `--flag VALUE` and `--flag=VALUE`,
//! parsed the same way by every task.

/// One argument: its flag and, for `--flag=VALUE`, the inline value.
pub struct Flag<'a> {
    pub name: &'a str,
    inline: Option<&'a str>,
}

/// Walks `args` flag by flag for `task` (named in error messages).
pub struct Flags<'a> {
    task: &'static str,
    args: std::slice::Iter<'a, String>,
}

impl<'a> Flags<'a> {
    pub fn new(task: &'static str, args: &'a [String]) -> Flags<'a> {
        Flags { task, args: args.iter() }
    }

    pub fn next_flag(&mut self) -> Option<Flag<'a>> {
        let arg = self.args.next()?;
        Some(match arg.split_once('=') {
            Some((name, value)) => Flag { name, inline: Some(value) },
            None => Flag { name: arg, inline: None },
        })
    }

    /// The positive number that goes with `flag` (inline or the next argument).
    pub fn number(&mut self, flag: &Flag) -> Result<u64, String> {
        let (task, name) = (self.task, flag.name);
        let value = flag.inline.or_else(|| self.args.next().map(String::as_str));
        let value = value.ok_or(format!("{task}: {name} needs a number"))?;
        value.parse().ok().filter(|&n| n > 0).ok_or(format!("{task}: {name} {value:?}: not a positive number"))
    }

    pub fn unexpected(&self, flag: &Flag) -> String {
        format!("{}: unexpected argument {:?}", self.task, flag.name)
    }
}
