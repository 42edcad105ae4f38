//! Shell quoting without a shell: the one rule by which `start_opts` becomes words and a
//! line of the LSB defaults file becomes a value. White space separates words; single
//! quotes keep everything; inside double quotes a backslash escapes only `$`, `` ` ``,
//! `"`, `\` and a newline; outside quotes it escapes any character; a `#` that begins
//! a word begins a comment (for the defaults file). Nothing is expanded or executed:
//! `$` and backticks are ordinary characters.

/// One lexed word and what follows it.
struct Lexer<'a> {
    it: std::iter::Peekable<std::str::Chars<'a>>,
}

impl Lexer<'_> {
    fn skip_blanks(&mut self) {
        while self.it.next_if(|c| c.is_whitespace()).is_some() {}
    }

    /// The next word, `None` at the end (or at a comment when `comments` is set).
    fn word(&mut self, comments: bool) -> Result<Option<String>, String> {
        self.skip_blanks();
        match self.it.peek() {
            None => return Ok(None),
            Some('#') if comments => return Ok(None),
            _ => {}
        }
        let mut cur = String::new();
        while let Some(c) = self.it.next_if(|c| !c.is_whitespace()) {
            match c {
                '\'' => loop {
                    match self.it.next() {
                        Some('\'') => break,
                        Some(x) => cur.push(x),
                        None => return Err("unterminated single quote".into()),
                    }
                },
                '"' => loop {
                    match self.it.next() {
                        Some('"') => break,
                        Some('\\') => match self.it.next() {
                            Some('\n') => {}
                            Some(x @ ('$' | '`' | '"' | '\\')) => cur.push(x),
                            Some(x) => {
                                cur.push('\\');
                                cur.push(x);
                            }
                            None => return Err("unterminated double quote".into()),
                        },
                        Some(x) => cur.push(x),
                        None => return Err("unterminated double quote".into()),
                    }
                },
                '\\' => match self.it.next() {
                    Some('\n') => {}
                    Some(x) => cur.push(x),
                    None => return Err("trailing backslash".into()),
                },
                c => cur.push(c),
            }
        }
        Ok(Some(cur))
    }
}

/// Splits options into words as a shell would quote them (no comments: `#` is literal).
pub fn split(s: &str) -> Result<Vec<String>, String> {
    words(s, false)
}

/// The value of a shell assignment `NAME=<text>`: the one word `text` starts with
/// (empty when it starts with blanks or a comment), with a comment after it dropped.
/// An error when more words follow (a shell would run them as a command) or the
/// quoting is unbalanced.
pub fn assignment_value(text: &str) -> Result<String, String> {
    if text.starts_with(char::is_whitespace) {
        // `NAME= cmd` assigns the empty string, then runs cmd.
        return match split_commented(text)?.as_slice() {
            [] => Ok(String::new()),
            _ => Err("a command after the assignment".into()),
        };
    }
    let mut words = split_commented(text)?.into_iter();
    let value = words.next().unwrap_or_default();
    match words.next() {
        None => Ok(value),
        Some(_) => Err("more than one word (quote the value)".into()),
    }
}

fn split_commented(s: &str) -> Result<Vec<String>, String> {
    words(s, true)
}

/// All the words of `s`; `comments`: a `#` starting a word starts a comment.
fn words(s: &str, comments: bool) -> Result<Vec<String>, String> {
    let mut lx = Lexer {
        it: s.chars().peekable(),
    };
    let mut words = Vec::new();
    while let Some(w) = lx.word(comments)? {
        words.push(w);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_split_without_a_shell() {
        assert_eq!(
            split(r#"-c listen_addresses='' -c "work_mem=4MB" $(id) a\ b"#).unwrap(),
            [
                "-c",
                "listen_addresses=",
                "-c",
                "work_mem=4MB",
                "$(id)",
                "a b"
            ]
        );
        assert_eq!(split("  ").unwrap(), Vec::<String>::new());
        assert_eq!(split("a#b #c").unwrap(), ["a#b", "#c"]);
        assert_eq!(split(r#""a\b\"c\$""#).unwrap(), [r#"a\b"c$"#]);
        assert_eq!(split(r#"'a'"b"c"#).unwrap(), ["abc"]);
        assert!(split("'open").is_err());
        assert!(split("\"open").is_err());
        assert!(split("x\\").is_err());
    }

    #[test]
    fn assignments_read_as_a_shell_would() {
        let v = |s| assignment_value(s);
        assert_eq!(v("/srv/pg").unwrap(), "/srv/pg");
        assert_eq!(v("\"5433\" # the port").unwrap(), "5433");
        assert_eq!(v("'/srv/pg'#x").unwrap(), "/srv/pg#x");
        assert!(v("'/srv/pg'# data").is_err());
        assert_eq!(v("postgres   # user").unwrap(), "postgres");
        assert_eq!(
            v("\"-c listen_addresses=''\" # x").unwrap(),
            "-c listen_addresses=''"
        );
        assert_eq!(v("a#b").unwrap(), "a#b");
        assert_eq!(v("").unwrap(), "");
        assert_eq!(v(" # only a comment").unwrap(), "");
        assert_eq!(v("$(reboot)").unwrap(), "$(reboot)");
        assert!(v("a b").is_err());
        assert!(v(" reboot").is_err());
        assert!(v("'open # x").is_err());
    }
}
